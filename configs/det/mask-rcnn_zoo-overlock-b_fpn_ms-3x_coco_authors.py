# The authors' OverLoCK-B Mask R-CNN 3x (mask_rcnn_overlock_b_in1k_fpn_3x_coco.py); weights: the manifest tag
# zoo_overlock_b.mask_rcnn_3x_coco (load_from='zoo_overlock_b.mask_rcnn_3x_coco' converts the authors' file).
_base_ = ['../_base_/det/mask-rcnn_overlock_ms-3x_authors.py']
model = dict(backbone=dict(model_name='zoo_overlock_b', drop_path_rate=0.6), neck=dict(in_channels=[80, 160, 528, 720]))
