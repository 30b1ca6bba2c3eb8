# RetinaNet 1x COCO, CoaT-Lite Small backbone.
# CoaT (Xu et al., ICCV 2021) official mmdet configs: drop path 0.0, AdamW lr 1e-4 wd 0.05 without per-parameter
# decay rules. Paper Mask R-CNN 1x (multi-scale training): 45.2 / 40.7.
_base_ = ['../_base_/det/retinanet_fpn_adamw_1x_coco.py']
# ImageNet weights (zoo_coat_lite_small.in1k); pretrained='cls.pth' loads a local classification checkpoint
# only C3-C5 are requested (RetinaNet's FPN starts at C3); feature levels:
# 1: stages.1 s8 128ch, 2: stages.2 s16 320ch, 3: stages.3 s32 512ch
model = dict(
    backbone=dict(model_name='zoo_coat_lite_small', pretrained=True, out_indices=(1, 2, 3), drop_path_rate=0.0),
    neck=dict(in_channels=[128, 320, 512]))
