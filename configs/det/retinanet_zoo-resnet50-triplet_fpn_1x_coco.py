# RetinaNet 1x COCO, ResNet-50 + triplet attention backbone.
# Triplet attention (Misra et al., WACV 2021) trained its mmdet RetinaNet / Faster R-CNN with the standard
# ResNet-50 settings (SGD, frozen stem + stage 1, frozen BN): RetinaNet 37.6 AP.
_base_ = ['../_base_/det/retinanet_fpn_1x_coco.py']
# ImageNet weights zoo_resnet50_triplet.in1k are a manual download (see its pretrained_cfg notes):
# set pretrained='<downloaded file>' (converted on load)
# only C3-C5 are requested (RetinaNet's FPN starts at C3); feature levels:
# 2: layer2 s8 512ch, 3: layer3 s16 1024ch, 4: layer4 s32 2048ch
model = dict(
    backbone=dict(model_name='zoo_resnet50_triplet', out_indices=(2, 3, 4), frozen_stages=1, norm_eval=True),
    neck=dict(in_channels=[512, 1024, 2048]))
