# RetinaNet 1x COCO, HaloNet-H1 backbone.
# Backbone: HaloNet-H1 (`zoo_halonet_h1`) through zoo.mm.ZooBackbone (timm features_only).
# HaloNet (Vaswani et al., CVPR 2021) is a BatchNorm ResNet-style network; no official dense configs exist, so
# the standard mmdet/mmseg ResNet recipe is used (SGD, frozen stem + stage 1, frozen BN for detection).
_base_ = [
    'mmdet::_base_/models/retinanet_r50_fpn.py',
    'mmdet::_base_/datasets/coco_detection.py',
    'mmdet::_base_/schedules/schedule_1x.py',
    'mmdet::_base_/default_runtime.py',
    '../_base_/zoo_mm.py',
]
model = dict(
    backbone=dict(
        _delete_=True,
        type='ZooBackbone',
        model_name='zoo_halonet_h1',
        # no released ImageNet weights; pretrained='cls.pth' loads your own classification checkpoint
        pretrained=False,
        out_indices=(2, 3, 4),
        frozen_stages=1,
        norm_eval=True,
    ),
    # only C3-C5 are requested (RetinaNet's FPN starts at C3); feature levels:
    # 2: stages.1 s8 128ch, 3: stages.2 s16 256ch, 4: final_conv s32 512ch
    neck=dict(in_channels=[128, 256, 512], start_level=0, add_extra_convs='on_input', num_outs=5))
# mmdet's ResNet-50 RetinaNet recipe (retinanet_r50_fpn_1x_coco): SGD lr 0.01
optim_wrapper = dict(optimizer=dict(type='SGD', lr=0.01, momentum=0.9, weight_decay=0.0001))
