# The authors' CoaT-Lite Small Cascade Mask R-CNN 3x (cascade_mask_rcnn_coat_lite_small_mstrain_480-800_giou_4conv1f_
# adamw_3x_coco.py): the 1x config for 36 epochs (steps at 27 and 33); weights: the manifest tag
# zoo_coat_lite_small.cascade_mask_rcnn_3x_coco.
_base_ = ['./cascade-mask-rcnn_zoo-coat-lite-small_fpn_giou-4conv1f_ms-1x_coco_authors.py']
train_cfg = dict(max_epochs=36)
param_scheduler = [
    dict(type='LinearLR', start_factor=0.001, by_epoch=False, begin=0, end=500),
    dict(type='MultiStepLR', begin=0, end=36, by_epoch=True, milestones=[27, 33], gamma=0.1),
]
