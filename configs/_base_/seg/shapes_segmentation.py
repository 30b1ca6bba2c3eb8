# Generated "shapes" scenes (zoo.data.shapes.make_segmentation): PNG label maps, 0 = background, k = shape k.
# zoo.mm.runner (tools/train.py / tools/eval.py) generates the data into `data_root` when it is missing
# (see `zoo_data`); it is cached and reused afterwards.
dataset_type = 'BaseSegDataset'
data_root = 'data/shapes-128/'
metainfo = dict(classes=('background', 'circle', 'triangle', 'square', 'pentagon', 'star', 'cross'),
                palette=[[0, 0, 0], [230, 25, 75], [60, 180, 75], [255, 225, 25], [0, 130, 200], [245, 130, 48],
                         [145, 30, 180]])
zoo_data = dict(generator='shapes', task='segmentation', root=data_root, n_train=400, n_val=100, size=128, seed=0,
                max_objects=5)
crop_size = (128, 128)
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', reduce_zero_label=False),
    dict(type='RandomResize', scale=(128, 128), ratio_range=(0.75, 1.5), keep_ratio=True),
    dict(type='RandomCrop', crop_size=crop_size, cat_max_ratio=0.9),
    dict(type='RandomFlip', prob=0.5),
    # mmseg's own Albu wrapper (converts BGR <-> RGB around the albumentations transforms)
    dict(type='Albu',
         transforms=[dict(type='RandomBrightnessContrast', p=0.5), dict(type='HueSaturationValue', p=0.3)]),
    dict(type='PackSegInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', reduce_zero_label=False),
    dict(type='PackSegInputs'),
]
train_dataloader = dict(
    batch_size=8,
    num_workers=2,
    persistent_workers=True,
    sampler=dict(type='InfiniteSampler', shuffle=True),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        metainfo=metainfo,
        img_suffix='.png',
        seg_map_suffix='.png',
        reduce_zero_label=False,
        data_prefix=dict(img_path='images/train', seg_map_path='labels/train'),
        pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=1,
    num_workers=2,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        metainfo=metainfo,
        img_suffix='.png',
        seg_map_suffix='.png',
        reduce_zero_label=False,
        data_prefix=dict(img_path='images/val', seg_map_path='labels/val'),
        pipeline=test_pipeline))
test_dataloader = val_dataloader
val_evaluator = dict(type='IoUMetric', iou_metrics=['mIoU'])
test_evaluator = val_evaluator
