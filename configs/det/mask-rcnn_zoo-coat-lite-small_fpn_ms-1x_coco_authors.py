# The authors' CoaT-Lite Small Mask R-CNN 1x (mask_rcnn_coat_lite_small_mstrain_480-800_adamw_1x_coco.py); weights: the manifest
# tag zoo_coat_lite_small.mask_rcnn_1x_coco (load_from='zoo_coat_lite_small.mask_rcnn_1x_coco' converts the authors' file).
_base_ = ['../_base_/det/mask-rcnn_coat_authors.py']
model = dict(backbone=dict(model_name='zoo_coat_lite_small'), neck=dict(in_channels=[64, 128, 320, 512]))
