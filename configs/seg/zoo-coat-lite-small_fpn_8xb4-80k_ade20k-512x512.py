# Semantic FPN 80k ADE20K (512x512 crops), CoaT-Lite Small backbone.
# Backbone: CoaT-Lite Small (`zoo_coat_lite_small`) through zoo.mm.ZooBackbone (timm features_only).
# CoaT (Xu et al., ICCV 2021) official mmdet configs: drop path 0.0, AdamW lr 1e-4 wd 0.05 without per-parameter
# decay rules. Paper Mask R-CNN 1x (multi-scale training): 45.2 / 40.7.
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
        model_name='zoo_coat_lite_small',
        # ImageNet weights (zoo_coat_lite_small.in1k); pretrained='cls.pth' loads a local classification checkpoint
        pretrained=True,
        out_indices=(0, 1, 2, 3),
        drop_path_rate=0.1,
    ),
    # feature levels 0: stages.0 s4 64ch, 1: stages.1 s8 128ch, 2: stages.2 s16 320ch, 3: stages.3 s32 512ch
    neck=dict(in_channels=[64, 128, 320, 512], num_outs=4),
    decode_head=dict(num_classes=150))
sync_bn = 'torch'  # backbone BatchNorm -> SyncBatchNorm in multi-GPU training (heads already use SyncBN)
# AdamW lr 1e-4, wd 1e-4 (PVT / Twins Semantic FPN recipe), poly decay to 0 over 80k iterations
# (mmseg's schedule_80k has eta_min=1e-4, which would keep the lr constant), 8 GPUs x 4 images
optim_wrapper = dict(_delete_=True, type='OptimWrapper', optimizer=dict(type='AdamW', lr=0.0001, weight_decay=0.0001))
param_scheduler = [dict(type='PolyLR', power=0.9, eta_min=0.0, begin=0, end=80000, by_epoch=False)]
train_dataloader = dict(batch_size=4)
