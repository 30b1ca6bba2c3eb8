# UperNet 160k ADE20K (512x512 crops), BiFormer-S backbone.
# BiFormer (Zhu et al., CVPR 2023) official segmentation configs: n_win 8 for 512 crops, a new LayerNorm2d per
# output, drop path 0.3 (UperNet) / 0.15 (Semantic FPN). Paper: Semantic FPN 48.9, UperNet 49.8 mIoU.
_base_ = ['../_base_/seg/upernet_adamw_160k_ade20k.py']
# ImageNet weights zoo_biformer_small.in1k are a manual download (see its pretrained_cfg notes):
# set pretrained='<downloaded file>' (converted on load)
# feature levels 0: stages.0 s4 64ch, 1: stages.1 s8 128ch, 2: stages.2 s16 256ch, 3: stages.3 s32 512ch
model = dict(
    backbone=dict(model_name='zoo_biformer_small', out_indices=(0, 1, 2, 3), n_win=8, out_norms=True,
        drop_path_rate=0.3),
    decode_head=dict(in_channels=[64, 128, 256, 512]),
    auxiliary_head=dict(in_channels=256))
optim_wrapper = dict(paramwise_cfg=dict(custom_keys={'norm': dict(decay_mult=0.)}))
