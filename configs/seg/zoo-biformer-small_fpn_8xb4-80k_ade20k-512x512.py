# Semantic FPN 80k ADE20K (512x512 crops), BiFormer-S backbone.
# Backbone: BiFormer-S (`zoo_biformer_small`) through zoo.mm.ZooBackbone (timm features_only).
# BiFormer (Zhu et al., CVPR 2023) official mm configs: n_win 16 on COCO / 8 on ADE20K (512 crops), a new
# LayerNorm2d per output, frozen BN statistics for detection, drop path 0.2 (det) / 0.3 (UperNet) / 0.15
# (Semantic FPN). Paper: RetinaNet 45.9, Mask R-CNN 47.8/43.2, Semantic FPN 48.9, UperNet 49.8 mIoU.
_base_ = [
    'mmseg::_base_/models/fpn_r50.py',
    'mmseg::_base_/datasets/ade20k.py',
    'mmseg::_base_/default_runtime.py',
    'mmseg::_base_/schedules/schedule_80k.py',
    '../_base_/zoo_mm.py',
]
crop_size = (512, 512)
data_preprocessor = dict(size=crop_size)
model = dict(
    data_preprocessor=data_preprocessor,
    pretrained=None,
    backbone=dict(
        _delete_=True,
        type='ZooBackbone',
        model_name='zoo_biformer_small',
        # ImageNet weights zoo_biformer_small.in1k are a manual download (see its pretrained_cfg notes):
        # set pretrained='<downloaded file>' (converted on load)
        pretrained=False,
        out_indices=(0, 1, 2, 3),
        n_win=8,
        out_norms=True,
        drop_path_rate=0.15,
    ),
    # feature levels 0: stages.0 s4 64ch, 1: stages.1 s8 128ch, 2: stages.2 s16 256ch, 3: stages.3 s32 512ch
    neck=dict(in_channels=[64, 128, 256, 512], num_outs=4),
    decode_head=dict(num_classes=150))
sync_bn = 'torch'  # backbone BatchNorm -> SyncBatchNorm in multi-GPU training (heads already use SyncBN)
# BiFormer's Semantic FPN recipe (UniFormer, 8 GPUs): AdamW lr 2e-4, wd 1e-4, 1000-iteration warm-up
# from 0.1x, cosine decay over 80k iterations, 8 GPUs x 4 images
optim_wrapper = dict(_delete_=True, type='OptimWrapper', optimizer=dict(type='AdamW', lr=0.0002, weight_decay=0.0001))
param_scheduler = [
    dict(type='LinearLR', start_factor=0.1, by_epoch=False, begin=0, end=1000),
    dict(type='CosineAnnealingLR', eta_min_ratio=1e-8, T_max=79000, begin=1000, end=80000, by_epoch=False),
]
train_dataloader = dict(batch_size=4)
