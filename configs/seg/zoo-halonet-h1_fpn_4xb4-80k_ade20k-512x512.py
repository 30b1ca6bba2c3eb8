# Semantic FPN 80k ADE20K (512x512 crops), HaloNet-H1 backbone.
# Backbone: HaloNet-H1 (`zoo_halonet_h1`) through zoo.mm.ZooBackbone (timm features_only).
# HaloNet (Vaswani et al., CVPR 2021) is a BatchNorm ResNet-style network; no official dense configs exist, so
# the standard mmdet/mmseg ResNet recipe is used (SGD, frozen stem + stage 1, frozen BN for detection).
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
        model_name='zoo_halonet_h1',
        # no released ImageNet weights; pretrained='cls.pth' loads your own classification checkpoint
        pretrained=False,
        out_indices=(1, 2, 3, 4),
    ),
    # feature levels 1: stages.0 s4 64ch, 2: stages.1 s8 128ch, 3: stages.2 s16 256ch, 4: final_conv s32 512ch
    neck=dict(in_channels=[64, 128, 256, 512], num_outs=4),
    decode_head=dict(num_classes=150))
sync_bn = 'torch'  # backbone BatchNorm -> SyncBatchNorm in multi-GPU training (heads already use SyncBN)
# mmseg's ResNet Semantic FPN recipe (fpn_r50_4xb4-80k): SGD lr 0.01, poly, 4 GPUs x 4 images
train_dataloader = dict(batch_size=4)
