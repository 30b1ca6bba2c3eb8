# RetinaNet 1x COCO, CoaT-Lite Small backbone.
# Backbone: CoaT-Lite Small (`zoo_coat_lite_small`) through zoo.mm.ZooBackbone (timm features_only).
# CoaT (Xu et al., ICCV 2021) official mmdet configs: drop path 0.0, AdamW lr 1e-4 wd 0.05 without per-parameter
# decay rules. Paper Mask R-CNN 1x (multi-scale training): 45.2 / 40.7.
_base_ = [
    'mmdet::_base_/models/retinanet_r50_fpn.py',
    'mmdet::_base_/datasets/coco_detection.py',
    'mmdet::_base_/schedules/schedule_1x.py',
    'mmdet::_base_/default_runtime.py',
    '../_base_/zoo_mm.py',
]
model = dict(
    backbone=dict(
        _delete_=True,
        type='ZooBackbone',
        model_name='zoo_coat_lite_small',
        # ImageNet weights (zoo_coat_lite_small.in1k); pretrained='cls.pth' loads a local classification checkpoint
        pretrained=True,
        out_indices=(1, 2, 3),
        drop_path_rate=0.0,
    ),
    # only C3-C5 are requested (RetinaNet's FPN starts at C3); feature levels:
    # 1: stages.1 s8 128ch, 2: stages.2 s16 320ch, 3: stages.3 s32 512ch
    neck=dict(in_channels=[128, 320, 512], start_level=0, add_extra_convs='on_input', num_outs=5))
# AdamW lr 1e-4, wd 1e-4 (PVT / BiFormer / WaveViT RetinaNet recipe); 12 epochs, steps at 8 and 11
optim_wrapper = dict(optimizer=dict(_delete_=True, type='AdamW', lr=0.0001, weight_decay=0.0001))
