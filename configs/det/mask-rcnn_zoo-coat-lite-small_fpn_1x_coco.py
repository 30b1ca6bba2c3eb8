# Mask R-CNN 1x COCO, CoaT-Lite Small backbone.
# CoaT (Xu et al., ICCV 2021) official mmdet configs: drop path 0.0, AdamW lr 1e-4 wd 0.05 without per-parameter
# decay rules. Paper Mask R-CNN 1x (multi-scale training): 45.2 / 40.7.
_base_ = ['../_base_/det/mask-rcnn_fpn_adamw_1x_coco.py']
# ImageNet weights (zoo_coat_lite_small.in1k); pretrained='cls.pth' loads a local classification checkpoint
# feature levels 0: stages.0 s4 64ch, 1: stages.1 s8 128ch, 2: stages.2 s16 320ch, 3: stages.3 s32 512ch
model = dict(
    backbone=dict(model_name='zoo_coat_lite_small', pretrained=True, out_indices=(0, 1, 2, 3), drop_path_rate=0.0),
    neck=dict(in_channels=[64, 128, 320, 512]))
# CoaT's 1x results use DETR-style multi-scale training (as the official configs)
train_pipeline = [
    dict(type='LoadImageFromFile', backend_args={{_base_.backend_args}}),
    dict(type='LoadAnnotations', with_mask=True, with_bbox=True),
    dict(type='RandomFlip', prob=0.5),
    dict(type='RandomChoice',
         transforms=[[dict(type='RandomChoiceResize', keep_ratio=True,
                           scales=[(480, 1333), (512, 1333), (544, 1333), (576, 1333), (608, 1333), (640, 1333),
                                   (672, 1333), (704, 1333), (736, 1333), (768, 1333), (800, 1333)])],
                     [dict(type='RandomChoiceResize', scales=[(400, 1333), (500, 1333), (600, 1333)], keep_ratio=True),
                      dict(type='RandomCrop', crop_type='absolute_range', crop_size=(384, 600),
                           allow_negative_crop=True),
                      dict(type='RandomChoiceResize', keep_ratio=True,
                           scales=[(480, 1333), (512, 1333), (544, 1333), (576, 1333), (608, 1333), (640, 1333),
                                   (672, 1333), (704, 1333), (736, 1333), (768, 1333), (800, 1333)])]]),
    dict(type='PackDetInputs'),
]
train_dataloader = dict(dataset=dict(pipeline=train_pipeline))
