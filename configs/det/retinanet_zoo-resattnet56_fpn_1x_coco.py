# RetinaNet 1x COCO, Residual Attention Network-56 backbone.
# The Residual Attention Network paper has no detection/segmentation results; this uses the standard mmdet/mmseg
# ResNet recipe (SGD, frozen stem + stage 1, frozen BN for detection).
_base_ = ['../_base_/det/retinanet_fpn_1x_coco.py']
# no released ImageNet weights; pretrained='cls.pth' loads your own classification checkpoint
# only C3-C5 are requested (RetinaNet's FPN starts at C3); feature levels:
# 1: stages.1 s8 512ch, 2: stages.2 s16 1024ch, 3: stages.3 s32 2048ch
model = dict(
    backbone=dict(model_name='zoo_resattnet56', out_indices=(1, 2, 3), frozen_stages=0, norm_eval=True),
    neck=dict(in_channels=[512, 1024, 2048]))
