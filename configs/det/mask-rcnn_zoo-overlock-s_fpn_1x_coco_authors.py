# The authors' OverLoCK-S Mask R-CNN 1x (mask_rcnn_overlock_s_in1k_fpn_1x_coco.py); weights: the manifest tag
# zoo_overlock_s.mask_rcnn_1x_coco (load_from='zoo_overlock_s.mask_rcnn_1x_coco' converts the authors' file).
_base_ = ['../_base_/det/mask-rcnn_overlock_authors.py']
model = dict(backbone=dict(model_name='zoo_overlock_s', drop_path_rate=0.4), neck=dict(in_channels=[64, 128, 448, 640]))
