# The authors' CoaT Mask R-CNN 3x: ./mask-rcnn_coat_authors.py for 36 epochs (steps at 27 and 33).
_base_ = ['./mask-rcnn_coat_authors.py']
train_cfg = dict(max_epochs=36)
param_scheduler = [
    dict(type='LinearLR', start_factor=0.001, by_epoch=False, begin=0, end=500),
    dict(type='MultiStepLR', begin=0, end=36, by_epoch=True, milestones=[27, 33], gamma=0.1),
]
