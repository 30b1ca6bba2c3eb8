# UperNet 160k ADE20K (512x512 crops), HaloNet-H1 backbone.
# HaloNet (Vaswani et al., CVPR 2021) is a BatchNorm ResNet-style network with no official segmentation configs:
# mmseg's ResNet recipe (SGD, poly decay, SyncBN).
_base_ = ['../_base_/seg/upernet_160k_ade20k.py']
# no released ImageNet weights; pretrained='cls.pth' loads your own classification checkpoint
# feature levels 1: stages.0 s4 64ch, 2: stages.1 s8 128ch, 3: stages.2 s16 256ch, 4: final_conv s32 512ch
model = dict(
    backbone=dict(model_name='zoo_halonet_h1', out_indices=(1, 2, 3, 4)),
    decode_head=dict(in_channels=[64, 128, 256, 512]),
    auxiliary_head=dict(in_channels=256))
