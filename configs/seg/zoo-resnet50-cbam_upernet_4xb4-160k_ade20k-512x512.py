# UperNet 160k ADE20K (512x512 crops), ResNet-50 + CBAM backbone.
# Backbone: ResNet-50 + CBAM (`zoo_resnet50_cbam`) through zoo.mm.ZooBackbone (timm features_only).
# CBAM (Woo et al., ECCV 2018) reports COCO detection with the standard mmdet ResNet-50 settings: SGD, frozen
# stem + stage 1, frozen BN statistics.
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
        model_name='zoo_resnet50_cbam',
        # ImageNet weights zoo_resnet50_cbam.in1k are a manual download (see its pretrained_cfg notes):
        # set pretrained='<downloaded file>' (converted on load)
        pretrained=False,
        out_indices=(1, 2, 3, 4),
    ),
    # feature levels 1: layer1 s4 256ch, 2: layer2 s8 512ch, 3: layer3 s16 1024ch, 4: layer4 s32 2048ch
    decode_head=dict(in_channels=[256, 512, 1024, 2048], in_index=[0, 1, 2, 3], num_classes=150),
    auxiliary_head=dict(in_channels=1024, in_index=2, num_classes=150))
sync_bn = 'torch'  # backbone BatchNorm -> SyncBatchNorm in multi-GPU training (heads already use SyncBN)
# mmseg's ResNet UperNet recipe (upernet_r50_4xb4-160k): SGD lr 0.01, poly, 4 GPUs x 4 images
train_dataloader = dict(batch_size=4)
