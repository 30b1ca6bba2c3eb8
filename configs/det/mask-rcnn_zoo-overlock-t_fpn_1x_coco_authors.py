# The authors' OverLoCK-T Mask R-CNN 1x (mask_rcnn_overlock_t_in1k_fpn_1x_coco.py); weights: the manifest tag
# zoo_overlock_t.mask_rcnn_1x_coco (load_from='zoo_overlock_t.mask_rcnn_1x_coco' converts the authors' file).
_base_ = ['../_base_/det/mask-rcnn_overlock_authors.py']
model = dict(backbone=dict(model_name='zoo_overlock_t', drop_path_rate=0.2), neck=dict(in_channels=[64, 128, 384, 640]))
