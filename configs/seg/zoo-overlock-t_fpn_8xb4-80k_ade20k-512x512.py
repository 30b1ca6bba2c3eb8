# Semantic FPN 80k ADE20K (512x512 crops), OverLoCK-T backbone.
# Backbone: OverLoCK-T (`zoo_overlock_t`) through zoo.mm.ZooBackbone (timm features_only).
# OverLoCK (Lou & Yu, CVPR 2025) official configs: drop path 0.2 (T), Mask R-CNN AdamW lr 2e-4 wd 0.05;
# dense_outputs=True adds the official dense output norms and context projection. Paper: Mask R-CNN 1x 48.3 /
# 43.3, UperNet 160k 50.3 mIoU.
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
        model_name='zoo_overlock_t',
        # ImageNet weights (zoo_overlock_t.in1k); pretrained='cls.pth' loads a local classification checkpoint
        pretrained=True,
        out_indices=(0, 1, 2, 3),
        dense_outputs=True,
        drop_path_rate=0.2,
    ),
    # feature levels 0: stages.0 s4 64ch, 1: stages.1 s8 128ch, 2: focus_stages.0 s16 384ch, 3: focus_stages.1 s32 640ch
    neck=dict(in_channels=[64, 128, 384, 640], num_outs=4),
    decode_head=dict(num_classes=150))
sync_bn = 'torch'  # backbone BatchNorm -> SyncBatchNorm in multi-GPU training (heads already use SyncBN)
# AdamW lr 1e-4, wd 1e-4 (PVT / Twins Semantic FPN recipe), poly decay to 0 over 80k iterations
# (mmseg's schedule_80k has eta_min=1e-4, which would keep the lr constant), 8 GPUs x 4 images
optim_wrapper = dict(_delete_=True, type='OptimWrapper', optimizer=dict(type='AdamW', lr=0.0001, weight_decay=0.0001))
param_scheduler = [dict(type='PolyLR', power=0.9, eta_min=0.0, begin=0, end=80000, by_epoch=False)]
train_dataloader = dict(batch_size=4)
