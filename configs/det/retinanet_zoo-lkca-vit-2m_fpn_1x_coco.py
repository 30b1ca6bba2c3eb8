# RetinaNet 1x COCO, LKCA ViT-2M backbone.
# LKCA (Li et al., 2024) is an isotropic ViT; zoo_lkca_* expose a parameter-free ViTDet-style pyramid (strides
# 4-32, patch 8). No official dense configs: AdamW recipe of the table in configs/README.md.
_base_ = ['../_base_/det/retinanet_fpn_adamw_1x_coco.py']
# no released ImageNet weights; pretrained='cls.pth' loads your own classification checkpoint
# only C3-C5 are requested (RetinaNet's FPN starts at C3); feature levels:
# 1: pyramid.1 s8 192ch, 2: pyramid.2 s16 192ch, 3: pyramid.3 s32 192ch
model = dict(
    backbone=dict(model_name='zoo_lkca_vit_2m', out_indices=(1, 2, 3), drop_path_rate=0.1),
    neck=dict(in_channels=[192, 192, 192]))
