# Mask R-CNN 1x COCO with a zoo backbone: mmdet's ResNet-50 recipe (schedule_1x: SGD lr 0.02, 12 epochs, steps at
# 8 and 11). A config on top names the backbone (model.backbone.model_name, out_indices, ...) and the FPN's
# in_channels (four levels, strides 4-32).
_base_ = [
    'mmdet::_base_/models/mask-rcnn_r50_fpn.py',
    'mmdet::_base_/datasets/coco_instance.py',
    'mmdet::_base_/schedules/schedule_1x.py',
    'mmdet::_base_/default_runtime.py',
    '../zoo_mm.py',
]
model = dict(backbone=dict(_delete_=True, type='ZooBackbone', pretrained=False))
