# Mask R-CNN 1x COCO, ResNet-50 + CBAM backbone.
# Backbone: ResNet-50 + CBAM (`zoo_resnet50_cbam`) through zoo.mm.ZooBackbone (timm features_only).
# CBAM (Woo et al., ECCV 2018) reports COCO detection with the standard mmdet ResNet-50 settings: SGD, frozen
# stem + stage 1, frozen BN statistics.
_base_ = [
    'mmdet::_base_/models/mask-rcnn_r50_fpn.py',
    'mmdet::_base_/datasets/coco_instance.py',
    'mmdet::_base_/schedules/schedule_1x.py',
    'mmdet::_base_/default_runtime.py',
    '../_base_/zoo_mm.py',
]
model = dict(
    backbone=dict(
        _delete_=True,
        type='ZooBackbone',
        model_name='zoo_resnet50_cbam',
        # ImageNet weights zoo_resnet50_cbam.in1k are a manual download (see its pretrained_cfg notes):
        # set pretrained='<downloaded file>' (converted on load)
        pretrained=False,
        out_indices=(1, 2, 3, 4),
        frozen_stages=1,
        norm_eval=True,
    ),
    # feature levels 1: layer1 s4 256ch, 2: layer2 s8 512ch, 3: layer3 s16 1024ch, 4: layer4 s32 2048ch
    neck=dict(in_channels=[256, 512, 1024, 2048]))
# mmdet's ResNet-50 Mask R-CNN recipe (schedule_1x): SGD lr 0.02, 12 epochs, steps at 8 and 11
