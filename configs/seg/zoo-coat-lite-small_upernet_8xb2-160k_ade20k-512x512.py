# UperNet 160k ADE20K (512x512 crops), CoaT-Lite Small backbone.
# CoaT (Xu et al., ICCV 2021) reports no ADE20K results; this uses the AdamW recipe of the table in
# configs/README.md with drop path 0.1.
_base_ = ['../_base_/seg/upernet_adamw_160k_ade20k.py']
# ImageNet weights (zoo_coat_lite_small.in1k); pretrained='cls.pth' loads a local classification checkpoint
# feature levels 0: stages.0 s4 64ch, 1: stages.1 s8 128ch, 2: stages.2 s16 320ch, 3: stages.3 s32 512ch
model = dict(
    backbone=dict(model_name='zoo_coat_lite_small', pretrained=True, out_indices=(0, 1, 2, 3), drop_path_rate=0.1),
    decode_head=dict(in_channels=[64, 128, 320, 512]),
    auxiliary_head=dict(in_channels=320))
# each attention layer registers its stage's shared CRPE: bypass_duplicate puts its parameters in one group, once
optim_wrapper = dict(paramwise_cfg=dict(custom_keys={'norm': dict(decay_mult=0.)}, bypass_duplicate=True))
