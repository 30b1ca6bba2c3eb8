# The authors' CoaT-Lite Small Cascade Mask R-CNN 1x (cascade_mask_rcnn_coat_lite_small_mstrain_480-800_giou_4conv1f_
# adamw_1x_coco.py); weights: the manifest tag zoo_coat_lite_small.cascade_mask_rcnn_1x_coco.
_base_ = ['../_base_/det/cascade-mask-rcnn_coat_authors.py']
model = dict(backbone=dict(model_name='zoo_coat_lite_small'), neck=dict(in_channels=[64, 128, 320, 512]))
