# Mask R-CNN 1x COCO, OverLoCK-T backbone.
# OverLoCK (Lou & Yu, CVPR 2025) official configs: drop path 0.2 (T), Mask R-CNN AdamW lr 2e-4 wd 0.05;
# dense_outputs=True adds the official dense output norms and context projection. Paper: Mask R-CNN 1x 48.3 /
# 43.3, UperNet 160k 50.3 mIoU.
_base_ = ['../_base_/det/mask-rcnn_fpn_adamw_1x_coco.py']
# ImageNet weights (zoo_overlock_t.in1k); pretrained='cls.pth' loads a local classification checkpoint
# feature levels 0: stages.0 s4 64ch, 1: stages.1 s8 128ch, 2: focus_stages.0 s16 384ch, 3: focus_stages.1 s32 640ch
model = dict(
    backbone=dict(model_name='zoo_overlock_t', pretrained=True, out_indices=(0, 1, 2, 3), dense_outputs=True,
        drop_path_rate=0.2),
    neck=dict(in_channels=[64, 128, 384, 640]))
optim_wrapper = dict(optimizer=dict(lr=0.0002),
                     paramwise_cfg=dict(custom_keys={'norm': dict(decay_mult=0.)}))
