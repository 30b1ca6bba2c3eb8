# Mask R-CNN 1x COCO, OverLoCK-T backbone.
# Backbone: OverLoCK-T (`zoo_overlock_t`) through zoo.mm.ZooBackbone (timm features_only).
# OverLoCK (Lou & Yu, CVPR 2025) official configs: drop path 0.2 (T), Mask R-CNN AdamW lr 2e-4 wd 0.05;
# dense_outputs=True adds the official dense output norms and context projection. Paper: Mask R-CNN 1x 48.3 /
# 43.3, UperNet 160k 50.3 mIoU.
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
        model_name='zoo_overlock_t',
        # ImageNet weights (zoo_overlock_t.in1k); pretrained='cls.pth' loads a local classification checkpoint
        pretrained=True,
        out_indices=(0, 1, 2, 3),
        dense_outputs=True,
        drop_path_rate=0.2,
    ),
    # feature levels 0: stages.0 s4 64ch, 1: stages.1 s8 128ch, 2: focus_stages.0 s16 384ch, 3: focus_stages.1 s32 640ch
    neck=dict(in_channels=[64, 128, 384, 640]))
# AdamW lr 0.0002, betas (0.9, 0.999), wd 0.05; 12 epochs, steps at 8 and 11, 1000-iteration warm-up
optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(_delete_=True, type='AdamW', lr=0.0002, betas=(0.9, 0.999), weight_decay=0.05),
    paramwise_cfg=dict(custom_keys={'absolute_pos_embed': dict(decay_mult=0.),
                                     'relative_position_bias_table': dict(decay_mult=0.0),
                                     'norm': dict(decay_mult=0.)}))
param_scheduler = [
    dict(type='LinearLR', start_factor=0.001, by_epoch=False, begin=0, end=1000),
    dict(type='MultiStepLR', begin=0, end=12, by_epoch=True, milestones=[8, 11], gamma=0.1),
]
