# RetinaNet 1x COCO, HaloNet-H1 backbone.
# HaloNet (Vaswani et al., CVPR 2021) is a BatchNorm ResNet-style network; no official dense configs exist, so
# the standard mmdet/mmseg ResNet recipe is used (SGD, frozen stem + stage 1, frozen BN for detection).
_base_ = ['../_base_/det/retinanet_fpn_1x_coco.py']
# no released ImageNet weights; pretrained='cls.pth' loads your own classification checkpoint
# only C3-C5 are requested (RetinaNet's FPN starts at C3); feature levels:
# 2: stages.1 s8 128ch, 3: stages.2 s16 256ch, 4: final_conv s32 512ch
model = dict(
    backbone=dict(model_name='zoo_halonet_h1', out_indices=(2, 3, 4), frozen_stages=1, norm_eval=True),
    neck=dict(in_channels=[128, 256, 512]))
