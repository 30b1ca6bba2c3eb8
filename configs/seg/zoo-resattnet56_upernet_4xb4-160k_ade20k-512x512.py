# UperNet 160k ADE20K (512x512 crops), Residual Attention Network-56 backbone.
# The Residual Attention Network paper has no segmentation results: mmseg's ResNet recipe (SGD, poly decay,
# SyncBN).
_base_ = ['../_base_/seg/upernet_160k_ade20k.py']
# no released ImageNet weights; pretrained='cls.pth' loads your own classification checkpoint
# feature levels 0: stages.0 s4 256ch, 1: stages.1 s8 512ch, 2: stages.2 s16 1024ch, 3: stages.3 s32 2048ch
model = dict(
    backbone=dict(model_name='zoo_resattnet56', out_indices=(0, 1, 2, 3)),
    decode_head=dict(in_channels=[256, 512, 1024, 2048]),
    auxiliary_head=dict(in_channels=1024))
