# RetinaNet 1x COCO with a zoo backbone: mmdet's RetinaNet R-50 FPN recipe (SGD lr 0.01, 12 epochs, steps at 8
# and 11). A config on top names the backbone (model.backbone.model_name, out_indices, ...) and the FPN's
# in_channels; RetinaNet's FPN starts at C3, so request only the stride 8/16/32 feature levels.
_base_ = [
    'mmdet::_base_/models/retinanet_r50_fpn.py',
    'mmdet::_base_/datasets/coco_detection.py',
    'mmdet::_base_/schedules/schedule_1x.py',
    'mmdet::_base_/default_runtime.py',
    '../zoo_mm.py',
]
model = dict(
    backbone=dict(_delete_=True, type='ZooBackbone', pretrained=False),
    neck=dict(start_level=0, add_extra_convs='on_input', num_outs=5))
optim_wrapper = dict(optimizer=dict(type='SGD', lr=0.01, momentum=0.9, weight_decay=0.0001))
