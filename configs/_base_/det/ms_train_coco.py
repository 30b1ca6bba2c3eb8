# Mask R-CNN 1x COCO (the zoo's base) with the DETR / Sparse R-CNN multi-scale training the OverLoCK 3x and all CoaT
# detectors were trained with: mmdet 2's AutoAugment of two policies (resize the short side to 480-800; or resize to
# 400-600, crop 384-600, resize to 480-800) is mmdet 3's RandomChoice of the two transform lists.
_base_ = ['./mask-rcnn_fpn_1x_coco.py']
_scales = [(480, 1333), (512, 1333), (544, 1333), (576, 1333), (608, 1333), (640, 1333), (672, 1333), (704, 1333),
           (736, 1333), (768, 1333), (800, 1333)]
train_pipeline = [
    dict(type='LoadImageFromFile', backend_args=None),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
    dict(type='RandomFlip', prob=0.5),
    dict(type='RandomChoice', transforms=[
        [dict(type='RandomChoiceResize', scales=_scales, keep_ratio=True)],
        [dict(type='RandomChoiceResize', scales=[(400, 1333), (500, 1333), (600, 1333)], keep_ratio=True),
         dict(type='RandomCrop', crop_type='absolute_range', crop_size=(384, 600), allow_negative_crop=True),
         dict(type='RandomChoiceResize', scales=_scales, keep_ratio=True)]]),
    dict(type='PackDetInputs'),
]
train_dataloader = dict(dataset=dict(pipeline=train_pipeline))
