# Mask R-CNN 1x COCO, LKCA ViT-2M backbone.
# Backbone: LKCA ViT-2M (`zoo_lkca_vit_2m`) through zoo.mm.ZooBackbone (timm features_only).
# LKCA (Li et al., 2024) is an isotropic ViT; zoo_lkca_* expose a parameter-free ViTDet-style pyramid (strides
# 4-32, patch 8). No official dense configs: AdamW recipe of the table in configs/README.md.
_base_ = [
    'mmdet::_base_/models/mask-rcnn_r50_fpn.py',
    'mmdet::_base_/datasets/coco_instance.py',
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
        out_indices=(0, 1, 2, 3),
        drop_path_rate=0.1,
    ),
    # feature levels 0: pyramid.0 s4 192ch, 1: pyramid.1 s8 192ch, 2: pyramid.2 s16 192ch, 3: pyramid.3 s32 192ch
    neck=dict(in_channels=[192, 192, 192, 192]))
# AdamW lr 0.0001, betas (0.9, 0.999), wd 0.05; 12 epochs, steps at 8 and 11, 1000-iteration warm-up
optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(_delete_=True, type='AdamW', lr=0.0001, betas=(0.9, 0.999), weight_decay=0.05),
    paramwise_cfg=dict(custom_keys={'absolute_pos_embed': dict(decay_mult=0.),
                                     'relative_position_bias_table': dict(decay_mult=0.0),
                                     'norm': dict(decay_mult=0.)}))
param_scheduler = [
    dict(type='LinearLR', start_factor=0.001, by_epoch=False, begin=0, end=1000),
    dict(type='MultiStepLR', begin=0, end=12, by_epoch=True, milestones=[8, 11], gamma=0.1),
]
