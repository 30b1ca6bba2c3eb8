# Mask R-CNN 1x COCO, AdamW lr 1e-4, betas (0.9, 0.999), weight decay 0.05; 1000-iteration linear warm-up, then
# steps at epochs 8 and 11 (the Swin / BiFormer / OverLoCK detection recipe).
_base_ = ['./mask-rcnn_fpn_1x_coco.py']
optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(_delete_=True, type='AdamW', lr=0.0001, betas=(0.9, 0.999), weight_decay=0.05))
param_scheduler = [
    dict(type='LinearLR', start_factor=0.001, by_epoch=False, begin=0, end=1000),
    dict(type='MultiStepLR', begin=0, end=12, by_epoch=True, milestones=[8, 11], gamma=0.1),
]
