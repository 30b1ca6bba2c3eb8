# Semantic FPN 80k ADE20K (512x512 crops), LKCA ViT-2M backbone.
# LKCA (Li et al., 2024) is an isotropic ViT; zoo_lkca_* expose a parameter-free ViTDet-style pyramid (strides
# 4-32, patch 8). No official segmentation configs: AdamW recipe of the table in configs/README.md.
_base_ = ['../_base_/seg/fpn_adamw_80k_ade20k.py']
# no released ImageNet weights; pretrained='cls.pth' loads your own classification checkpoint
# feature levels 0: pyramid.0 s4 192ch, 1: pyramid.1 s8 192ch, 2: pyramid.2 s16 192ch, 3: pyramid.3 s32 192ch
model = dict(
    backbone=dict(model_name='zoo_lkca_vit_2m', out_indices=(0, 1, 2, 3), drop_path_rate=0.1),
    neck=dict(in_channels=[192, 192, 192, 192]))
