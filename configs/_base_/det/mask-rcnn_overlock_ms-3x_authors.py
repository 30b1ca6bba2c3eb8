# The authors' OverLoCK Mask R-CNN 3x (mask_rcnn_overlock_*_in1k_fpn_3x_coco.py): the 1x model and optimiser
# (./mask-rcnn_overlock_authors.py) with multi-scale training, AdamW lr 1e-4 and 36 epochs (steps at 27 and 33,
# 500-iteration linear warm-up).
_base_ = ['./ms_train_coco.py']
model = dict(backbone=dict(pretrained=True, out_indices=(0, 1, 2, 3), dense_outputs=True))
optim_wrapper = dict(
    optimizer=dict(_delete_=True, type='AdamW', lr=0.0001, betas=(0.9, 0.999), weight_decay=0.05),
    paramwise_cfg=dict(custom_keys={'norm': dict(decay_mult=0.)}))
train_cfg = dict(max_epochs=36)
param_scheduler = [
    dict(type='LinearLR', start_factor=0.001, by_epoch=False, begin=0, end=500),
    dict(type='MultiStepLR', begin=0, end=36, by_epoch=True, milestones=[27, 33], gamma=0.1),
]
auto_scale_lr = dict(enable=False, base_batch_size=16)
