# Mask R-CNN 1x COCO, HaloNet-H1 backbone.
# Backbone: HaloNet-H1 (`zoo_halonet_h1`) through zoo.mm.ZooBackbone (timm features_only).
# HaloNet (Vaswani et al., CVPR 2021) is a BatchNorm ResNet-style network; no official dense configs exist, so
# the standard mmdet/mmseg ResNet recipe is used (SGD, frozen stem + stage 1, frozen BN for detection).
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
        model_name='zoo_halonet_h1',
        # no released ImageNet weights; pretrained='cls.pth' loads your own classification checkpoint
        pretrained=False,
        out_indices=(1, 2, 3, 4),
        frozen_stages=1,
        norm_eval=True,
    ),
    # feature levels 1: stages.0 s4 64ch, 2: stages.1 s8 128ch, 3: stages.2 s16 256ch, 4: final_conv s32 512ch
    neck=dict(in_channels=[64, 128, 256, 512]))
# mmdet's ResNet-50 Mask R-CNN recipe (schedule_1x): SGD lr 0.02, 12 epochs, steps at 8 and 11
