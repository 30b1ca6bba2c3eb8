# Semantic FPN 80k ADE20K (512x512 crops), ResNet-50 + triplet attention backbone.
# Backbone: ResNet-50 + triplet attention (`zoo_resnet50_triplet`) through zoo.mm.ZooBackbone (timm features_only).
# Triplet attention (Misra et al., WACV 2021) trained its mmdet RetinaNet / Faster R-CNN with the standard
# ResNet-50 settings (SGD, frozen stem + stage 1, frozen BN): RetinaNet 37.6 AP.
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
        model_name='zoo_resnet50_triplet',
        # ImageNet weights zoo_resnet50_triplet.in1k are a manual download (see its pretrained_cfg notes):
        # set pretrained='<downloaded file>' (converted on load)
        pretrained=False,
        out_indices=(1, 2, 3, 4),
    ),
    # feature levels 1: layer1 s4 256ch, 2: layer2 s8 512ch, 3: layer3 s16 1024ch, 4: layer4 s32 2048ch
    neck=dict(in_channels=[256, 512, 1024, 2048], num_outs=4),
    decode_head=dict(num_classes=150))
sync_bn = 'torch'  # backbone BatchNorm -> SyncBatchNorm in multi-GPU training (heads already use SyncBN)
# mmseg's ResNet Semantic FPN recipe (fpn_r50_4xb4-80k): SGD lr 0.01, poly, 4 GPUs x 4 images
train_dataloader = dict(batch_size=4)
