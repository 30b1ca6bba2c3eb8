# Mask R-CNN 1x COCO, BiFormer-S backbone.
# Backbone: BiFormer-S (`zoo_biformer_small`) through zoo.mm.ZooBackbone (timm features_only).
# BiFormer (Zhu et al., CVPR 2023) official mm configs: n_win 16 on COCO / 8 on ADE20K (512 crops), a new
# LayerNorm2d per output, frozen BN statistics for detection, drop path 0.2 (det) / 0.3 (UperNet) / 0.15
# (Semantic FPN). Paper: RetinaNet 45.9, Mask R-CNN 47.8/43.2, Semantic FPN 48.9, UperNet 49.8 mIoU.
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
        model_name='zoo_biformer_small',
        # ImageNet weights zoo_biformer_small.in1k are a manual download (see its pretrained_cfg notes):
        # set pretrained='<downloaded file>' (converted on load)
        pretrained=False,
        out_indices=(0, 1, 2, 3),
        n_win=16,
        out_norms=True,
        norm_eval=True,
        drop_path_rate=0.2,
    ),
    # feature levels 0: stages.0 s4 64ch, 1: stages.1 s8 128ch, 2: stages.2 s16 256ch, 3: stages.3 s32 512ch
    neck=dict(in_channels=[64, 128, 256, 512]))
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
