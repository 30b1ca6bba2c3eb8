# UperNet 160k ADE20K (512x512 crops), BiFormer-S backbone.
# Backbone: BiFormer-S (`zoo_biformer_small`) through zoo.mm.ZooBackbone (timm features_only).
# BiFormer (Zhu et al., CVPR 2023) official mm configs: n_win 16 on COCO / 8 on ADE20K (512 crops), a new
# LayerNorm2d per output, frozen BN statistics for detection, drop path 0.2 (det) / 0.3 (UperNet) / 0.15
# (Semantic FPN). Paper: RetinaNet 45.9, Mask R-CNN 47.8/43.2, Semantic FPN 48.9, UperNet 49.8 mIoU.
_base_ = [
    'mmseg::_base_/models/upernet_r50.py',
    'mmseg::_base_/datasets/ade20k.py',
    'mmseg::_base_/default_runtime.py',
    'mmseg::_base_/schedules/schedule_160k.py',
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
        drop_path_rate=0.3,
    ),
    # feature levels 0: stages.0 s4 64ch, 1: stages.1 s8 128ch, 2: stages.2 s16 256ch, 3: stages.3 s32 512ch
    decode_head=dict(in_channels=[64, 128, 256, 512], in_index=[0, 1, 2, 3], num_classes=150),
    auxiliary_head=dict(in_channels=256, in_index=2, num_classes=150))
sync_bn = 'torch'  # backbone BatchNorm -> SyncBatchNorm in multi-GPU training (heads already use SyncBN)
# AdamW lr 6e-5, wd 0.01, no decay on norms / position tables; 1500-iteration warm-up, then linear decay
optim_wrapper = dict(
    _delete_=True,
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=0.00006, betas=(0.9, 0.999), weight_decay=0.01),
    paramwise_cfg=dict(custom_keys={'absolute_pos_embed': dict(decay_mult=0.),
                                     'relative_position_bias_table': dict(decay_mult=0.0),
                                     'norm': dict(decay_mult=0.)}))
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-6, by_epoch=False, begin=0, end=1500),
    dict(type='PolyLR', eta_min=0.0, power=1.0, begin=1500, end=160000, by_epoch=False),
]
train_dataloader = dict(batch_size=2)  # 8 GPUs x 2 images
