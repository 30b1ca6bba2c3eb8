# UperNet 160k ADE20K (512x512 crops), LKCA ViT-2M backbone.
# Backbone: LKCA ViT-2M (`zoo_lkca_vit_2m`) through zoo.mm.ZooBackbone (timm features_only).
# LKCA (Li et al., 2024) is an isotropic ViT; zoo_lkca_* expose a parameter-free ViTDet-style pyramid (strides
# 4-32, patch 8). No official dense configs: AdamW recipe of the table in configs/README.md.
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
        model_name='zoo_lkca_vit_2m',
        # no released ImageNet weights; pretrained='cls.pth' loads your own classification checkpoint
        pretrained=False,
        out_indices=(0, 1, 2, 3),
        drop_path_rate=0.1,
    ),
    # feature levels 0: pyramid.0 s4 192ch, 1: pyramid.1 s8 192ch, 2: pyramid.2 s16 192ch, 3: pyramid.3 s32 192ch
    decode_head=dict(in_channels=[192, 192, 192, 192], in_index=[0, 1, 2, 3], num_classes=150),
    auxiliary_head=dict(in_channels=192, in_index=2, num_classes=150))
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
