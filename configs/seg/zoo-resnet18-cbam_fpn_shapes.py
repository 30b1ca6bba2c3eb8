# Semantic FPN on the generated shapes scenes (128 px label maps, 7 classes incl. background), ResNet-18 + CBAM
# from scratch, sized for a CPU. Used by the seg demo (configs/README.md) and, with smaller overrides, by tests.
#   python tools/train.py configs/seg/zoo-resnet18-cbam_fpn_shapes.py   (generates data/shapes-128 first)
_base_ = [
    'mmseg::_base_/models/fpn_r50.py',
    'mmseg::_base_/default_runtime.py',
    '../_base_/seg/shapes_segmentation.py',
    '../_base_/zoo_mm.py',
]
norm_cfg = dict(requires_grad=True, type='BN')  # single-process CPU: plain BN
data_preprocessor = dict(size={{_base_.crop_size}})
model = dict(
    data_preprocessor=data_preprocessor,
    pretrained=None,
    backbone=dict(
        _delete_=True,
        type='ZooBackbone',
        model_name='zoo_resnet18_cbam',
        pretrained=False,
        out_indices=(1, 2, 3, 4),  # layer1-4: strides 4/8/16/32
        drop_path_rate=0.05),
    neck=dict(in_channels=[64, 128, 256, 512], out_channels=128, num_outs=4),
    decode_head=dict(in_channels=[128, 128, 128, 128], channels=64, num_classes=7, norm_cfg=norm_cfg))

max_iters = 1500
train_cfg = dict(type='IterBasedTrainLoop', max_iters=max_iters, val_interval=500)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
optim_wrapper = dict(type='OptimWrapper', optimizer=dict(type='AdamW', lr=0.001, weight_decay=0.01),
                     clip_grad=dict(max_norm=10.0))
param_scheduler = [
    dict(type='LinearLR', start_factor=0.01, by_epoch=False, begin=0, end=100),
    dict(type='PolyLR', eta_min=0.0, power=1.0, begin=100, end=max_iters, by_epoch=False),
]
default_hooks = dict(
    timer=dict(type='IterTimerHook'),
    logger=dict(type='LoggerHook', interval=50, log_metric_by_epoch=False),
    param_scheduler=dict(type='ParamSchedulerHook'),
    checkpoint=dict(type='CheckpointHook', by_epoch=False, interval=500, max_keep_ckpts=2, save_best='mIoU'),
    sampler_seed=dict(type='DistSamplerSeedHook'),
    visualization=dict(type='SegVisualizationHook', draw=False))
log_processor = dict(by_epoch=False)
randomness = dict(seed=0)
