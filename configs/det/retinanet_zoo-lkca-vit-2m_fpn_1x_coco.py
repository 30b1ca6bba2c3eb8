# RetinaNet 1x COCO, LKCA ViT-2M backbone.
# Backbone: LKCA ViT-2M (`zoo_lkca_vit_2m`) through zoo.mm.ZooBackbone (timm features_only).
# LKCA (Li et al., 2024) is an isotropic ViT; zoo_lkca_* expose a parameter-free ViTDet-style pyramid (strides
# 4-32, patch 8). No official dense configs: AdamW recipe of the table in configs/README.md.
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
        model_name='zoo_lkca_vit_2m',
        # no released ImageNet weights; pretrained='cls.pth' loads your own classification checkpoint
        pretrained=False,
        out_indices=(1, 2, 3),
        drop_path_rate=0.1,
    ),
    # only C3-C5 are requested (RetinaNet's FPN starts at C3); feature levels:
    # 1: pyramid.1 s8 192ch, 2: pyramid.2 s16 192ch, 3: pyramid.3 s32 192ch
    neck=dict(in_channels=[192, 192, 192], start_level=0, add_extra_convs='on_input', num_outs=5))
# AdamW lr 1e-4, wd 1e-4 (PVT / BiFormer / WaveViT RetinaNet recipe); 12 epochs, steps at 8 and 11
optim_wrapper = dict(optimizer=dict(_delete_=True, type='AdamW', lr=0.0001, weight_decay=0.0001))
