# UperNet 160k ADE20K (512x512 crops), ResNet-50 + CBAM backbone.
# CBAM (Woo et al., ECCV 2018) reports no segmentation results: mmseg's ResNet-50 recipe (SGD, poly decay,
# SyncBN).
_base_ = ['../_base_/seg/upernet_160k_ade20k.py']
# ImageNet weights zoo_resnet50_cbam.in1k are a manual download (see its pretrained_cfg notes):
# set pretrained='<downloaded file>' (converted on load)
# feature levels 1: layer1 s4 256ch, 2: layer2 s8 512ch, 3: layer3 s16 1024ch, 4: layer4 s32 2048ch
model = dict(
    backbone=dict(model_name='zoo_resnet50_cbam', out_indices=(1, 2, 3, 4)),
    decode_head=dict(in_channels=[256, 512, 1024, 2048]),
    auxiliary_head=dict(in_channels=1024))
