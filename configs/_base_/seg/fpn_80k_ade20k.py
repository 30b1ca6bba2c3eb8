# Semantic FPN 80k ADE20K (512x512 crops) with a zoo backbone: mmseg's ResNet recipe (fpn_r50_4xb4-80k: SGD lr
# 0.01, poly decay, 4 GPUs x 4 images). A config on top names the backbone and the FPN's in_channels.
_base_ = [
    'mmseg::_base_/models/fpn_r50.py',
    'mmseg::_base_/datasets/ade20k.py',
    'mmseg::_base_/default_runtime.py',
    'mmseg::_base_/schedules/schedule_80k.py',
    '../zoo_mm.py',
]
crop_size = (512, 512)
data_preprocessor = dict(size=crop_size)
model = dict(
    data_preprocessor=data_preprocessor,
    pretrained=None,
    backbone=dict(_delete_=True, type='ZooBackbone', pretrained=False),
    neck=dict(num_outs=4),
    decode_head=dict(num_classes=150))
sync_bn = 'torch'  # backbone BatchNorm -> SyncBatchNorm in multi-GPU training (heads already use SyncBN)
train_dataloader = dict(batch_size=4)
