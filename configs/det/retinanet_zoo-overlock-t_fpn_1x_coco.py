# RetinaNet 1x COCO, OverLoCK-T backbone.
# Backbone: OverLoCK-T (`zoo_overlock_t`) through zoo.mm.ZooBackbone (timm features_only).
# OverLoCK (Lou & Yu, CVPR 2025) official configs: drop path 0.2 (T), Mask R-CNN AdamW lr 2e-4 wd 0.05;
# dense_outputs=True adds the official dense output norms and context projection. Paper: Mask R-CNN 1x 48.3 /
# 43.3, UperNet 160k 50.3 mIoU.
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
        model_name='zoo_overlock_t',
        # ImageNet weights (zoo_overlock_t.in1k); pretrained='cls.pth' loads a local classification checkpoint
        pretrained=True,
        out_indices=(1, 2, 3),
        dense_outputs=True,
        drop_path_rate=0.2,
    ),
    # only C3-C5 are requested (RetinaNet's FPN starts at C3); feature levels:
    # 1: stages.1 s8 128ch, 2: focus_stages.0 s16 384ch, 3: focus_stages.1 s32 640ch
    neck=dict(in_channels=[128, 384, 640], start_level=0, add_extra_convs='on_input', num_outs=5))
# AdamW lr 1e-4, wd 1e-4 (PVT / BiFormer / WaveViT RetinaNet recipe); 12 epochs, steps at 8 and 11
optim_wrapper = dict(optimizer=dict(_delete_=True, type='AdamW', lr=0.0001, weight_decay=0.0001))
# dense_outputs builds an output norm for every level; the stride-4 one is unused by RetinaNet
find_unused_parameters = True
