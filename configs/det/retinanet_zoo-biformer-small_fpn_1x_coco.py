# RetinaNet 1x COCO, BiFormer-S backbone.
# Backbone: BiFormer-S (`zoo_biformer_small`) through zoo.mm.ZooBackbone (timm features_only).
# BiFormer (Zhu et al., CVPR 2023) official mm configs: n_win 16 on COCO / 8 on ADE20K (512 crops), a new
# LayerNorm2d per output, frozen BN statistics for detection, drop path 0.2 (det) / 0.3 (UperNet) / 0.15
# (Semantic FPN). Paper: RetinaNet 45.9, Mask R-CNN 47.8/43.2, Semantic FPN 48.9, UperNet 49.8 mIoU.
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
        model_name='zoo_biformer_small',
        # ImageNet weights zoo_biformer_small.in1k are a manual download (see its pretrained_cfg notes):
        # set pretrained='<downloaded file>' (converted on load)
        pretrained=False,
        out_indices=(1, 2, 3),
        n_win=16,
        out_norms=True,
        norm_eval=True,
        drop_path_rate=0.2,
    ),
    # only C3-C5 are requested (RetinaNet's FPN starts at C3); feature levels:
    # 1: stages.1 s8 128ch, 2: stages.2 s16 256ch, 3: stages.3 s32 512ch
    neck=dict(in_channels=[128, 256, 512], start_level=0, add_extra_convs='on_input', num_outs=5))
# AdamW lr 1e-4, wd 1e-4 (PVT / BiFormer / WaveViT RetinaNet recipe); 12 epochs, steps at 8 and 11
optim_wrapper = dict(optimizer=dict(_delete_=True, type='AdamW', lr=0.0001, weight_decay=0.0001))
