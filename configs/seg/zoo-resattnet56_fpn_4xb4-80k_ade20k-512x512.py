# Semantic FPN 80k ADE20K (512x512 crops), Residual Attention Network-56 backbone.
# Backbone: Residual Attention Network-56 (`zoo_resattnet56`) through zoo.mm.ZooBackbone (timm features_only).
# The Residual Attention Network paper has no detection/segmentation results; this uses the standard mmdet/mmseg
# ResNet recipe (SGD, frozen stem + stage 1, frozen BN for detection).
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
        model_name='zoo_resattnet56',
        # no released ImageNet weights; pretrained='cls.pth' loads your own classification checkpoint
        pretrained=False,
        out_indices=(0, 1, 2, 3),
    ),
    # feature levels 0: stages.0 s4 256ch, 1: stages.1 s8 512ch, 2: stages.2 s16 1024ch, 3: stages.3 s32 2048ch
    neck=dict(in_channels=[256, 512, 1024, 2048], num_outs=4),
    decode_head=dict(num_classes=150))
sync_bn = 'torch'  # backbone BatchNorm -> SyncBatchNorm in multi-GPU training (heads already use SyncBN)
# mmseg's ResNet Semantic FPN recipe (fpn_r50_4xb4-80k): SGD lr 0.01, poly, 4 GPUs x 4 images
train_dataloader = dict(batch_size=4)
