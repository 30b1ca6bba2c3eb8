# Semantic FPN 80k ADE20K (512x512 crops), BiFormer-S backbone.
# BiFormer (Zhu et al., CVPR 2023) official segmentation configs: n_win 8 for 512 crops, a new LayerNorm2d per
# output, drop path 0.3 (UperNet) / 0.15 (Semantic FPN). Paper: Semantic FPN 48.9, UperNet 49.8 mIoU.
_base_ = ['../_base_/seg/fpn_adamw_80k_ade20k.py']
# ImageNet weights zoo_biformer_small.in1k are a manual download (see its pretrained_cfg notes):
# set pretrained='<downloaded file>' (converted on load)
# feature levels 0: stages.0 s4 64ch, 1: stages.1 s8 128ch, 2: stages.2 s16 256ch, 3: stages.3 s32 512ch
model = dict(
    backbone=dict(model_name='zoo_biformer_small', out_indices=(0, 1, 2, 3), n_win=8, out_norms=True,
        drop_path_rate=0.15),
    neck=dict(in_channels=[64, 128, 256, 512]))
# BiFormer's Semantic FPN recipe: AdamW lr 2e-4, 1000-iteration warm-up from 0.1x, then cosine decay
optim_wrapper = dict(optimizer=dict(lr=0.0002))
param_scheduler = [
    dict(type='LinearLR', start_factor=0.1, by_epoch=False, begin=0, end=1000),
    dict(type='CosineAnnealingLR', eta_min_ratio=1e-8, T_max=79000, begin=1000, end=80000, by_epoch=False),
]
