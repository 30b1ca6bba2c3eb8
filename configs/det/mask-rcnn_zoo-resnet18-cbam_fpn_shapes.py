# Mask R-CNN on the generated shapes scenes (128 px, 6 classes, instance masks), ResNet-18 + CBAM from scratch,
# sized for a CPU. Used by the det demo (configs/README.md) and, with smaller overrides, by tests/test_mm_det.py.
#   python tools/train.py configs/det/mask-rcnn_zoo-resnet18-cbam_fpn_shapes.py   (generates data/shapes-128 first)
_base_ = [
    'mmdet::_base_/models/mask-rcnn_r50_fpn.py',
    'mmdet::_base_/default_runtime.py',
    '../_base_/det/shapes_instance.py',
    '../_base_/zoo_mm.py',
]
model = dict(
    backbone=dict(
        _delete_=True,
        type='ZooBackbone',
        model_name='zoo_resnet18_cbam',
        pretrained=False,
        out_indices=(1, 2, 3, 4),  # layer1-4: strides 4/8/16/32
        drop_path_rate=0.05),
    neck=dict(in_channels=[64, 128, 256, 512], out_channels=128),
    rpn_head=dict(in_channels=128, feat_channels=128,
                  # shapes are 18-52 px: 16 px anchors at stride 4 (the COCO default starts at 32 px)
                  anchor_generator=dict(scales=[4])),
    roi_head=dict(
        bbox_roi_extractor=dict(out_channels=128),
        bbox_head=dict(in_channels=128, fc_out_channels=256, num_classes=6),
        mask_roi_extractor=dict(out_channels=128),
        mask_head=dict(num_convs=2, in_channels=128, conv_out_channels=128, num_classes=6)),
    train_cfg=dict(rpn_proposal=dict(nms_pre=1000, max_per_img=300), rcnn=dict(sampler=dict(num=128))),
    test_cfg=dict(rpn=dict(nms_pre=500, max_per_img=100), rcnn=dict(max_per_img=50)))

max_epochs = 12
train_cfg = dict(type='EpochBasedTrainLoop', max_epochs=max_epochs, val_interval=4)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
optim_wrapper = dict(type='OptimWrapper', optimizer=dict(type='AdamW', lr=0.001, weight_decay=0.05),
                     clip_grad=dict(max_norm=10.0))
param_scheduler = [
    dict(type='LinearLR', start_factor=0.01, by_epoch=False, begin=0, end=100),
    dict(type='CosineAnnealingLR', T_max=max_epochs, eta_min_ratio=0.01, begin=0, end=max_epochs, by_epoch=True,
         convert_to_iter_based=True),
]
default_hooks = dict(logger=dict(interval=10), checkpoint=dict(interval=4, max_keep_ckpts=2, save_best='auto'),
                     visualization=dict(draw=False))
auto_scale_lr = dict(enable=False, base_batch_size=8)
randomness = dict(seed=0)
