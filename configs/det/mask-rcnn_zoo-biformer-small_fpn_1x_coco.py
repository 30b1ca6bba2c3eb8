# Mask R-CNN 1x COCO, BiFormer-S backbone.
# BiFormer (Zhu et al., CVPR 2023) official mm configs: n_win 16 on COCO / 8 on ADE20K (512 crops), a new
# LayerNorm2d per output, frozen BN statistics for detection, drop path 0.2 (det) / 0.3 (UperNet) / 0.15
# (Semantic FPN). Paper: RetinaNet 45.9, Mask R-CNN 47.8/43.2, Semantic FPN 48.9, UperNet 49.8 mIoU.
_base_ = ['../_base_/det/mask-rcnn_fpn_adamw_1x_coco.py']
# ImageNet weights zoo_biformer_small.in1k are a manual download (see its pretrained_cfg notes):
# set pretrained='<downloaded file>' (converted on load)
# feature levels 0: stages.0 s4 64ch, 1: stages.1 s8 128ch, 2: stages.2 s16 256ch, 3: stages.3 s32 512ch
model = dict(
    backbone=dict(model_name='zoo_biformer_small', out_indices=(0, 1, 2, 3), n_win=16, out_norms=True,
        norm_eval=True, drop_path_rate=0.2),
    neck=dict(in_channels=[64, 128, 256, 512]))
optim_wrapper = dict(paramwise_cfg=dict(custom_keys={'norm': dict(decay_mult=0.)}))
