# RetinaNet 1x COCO, Residual Attention Network-56 backbone.
# Backbone: Residual Attention Network-56 (`zoo_resattnet56`) through zoo.mm.ZooBackbone (timm features_only).
# The Residual Attention Network paper has no detection/segmentation results; this uses the standard mmdet/mmseg
# ResNet recipe (SGD, frozen stem + stage 1, frozen BN for detection).
_base_ = [
    'mmdet::_base_/models/retinanet_r50_fpn.py',
    'mmdet::_base_/datasets/coco_detection.py',
    'mmdet::_base_/schedules/schedule_1x.py',
    'mmdet::_base_/default_runtime.py',
    '../_base_/zoo_mm.py',
]
model = dict(
    backbone=dict(
        _delete_=True,
        type='ZooBackbone',
        model_name='zoo_resattnet56',
        # no released ImageNet weights; pretrained='cls.pth' loads your own classification checkpoint
        pretrained=False,
        out_indices=(1, 2, 3),
        frozen_stages=0,
        norm_eval=True,
    ),
    # only C3-C5 are requested (RetinaNet's FPN starts at C3); feature levels:
    # 1: stages.1 s8 512ch, 2: stages.2 s16 1024ch, 3: stages.3 s32 2048ch
    neck=dict(in_channels=[512, 1024, 2048], start_level=0, add_extra_convs='on_input', num_outs=5))
# mmdet's ResNet-50 RetinaNet recipe (retinanet_r50_fpn_1x_coco): SGD lr 0.01
optim_wrapper = dict(optimizer=dict(type='SGD', lr=0.01, momentum=0.9, weight_decay=0.0001))
