# The authors' CoaT Small Mask R-CNN 3x (mask_rcnn_coat_small_mstrain_480-800_adamw_3x_coco.py); weights: the manifest
# tag zoo_coat_small.mask_rcnn_3x_coco (load_from='zoo_coat_small.mask_rcnn_3x_coco' converts the authors' file).
_base_ = ['../_base_/det/mask-rcnn_coat_ms-3x_authors.py']
model = dict(backbone=dict(model_name='zoo_coat_small'), neck=dict(in_channels=[152, 320, 320, 320]))
