# Generated "shapes" scenes (zoo.data.shapes.make_detection): COCO-format boxes + instance masks, 6 classes.
# zoo.mm.runner (tools/train.py / tools/eval.py) generates the data into `data_root` when it is missing
# (see `zoo_data`); it is cached and reused afterwards.
dataset_type = 'CocoDataset'
data_root = 'data/shapes-128/'
metainfo = dict(classes=('circle', 'triangle', 'square', 'pentagon', 'star', 'cross'))
zoo_data = dict(generator='shapes', task='detection', root=data_root, n_train=400, n_val=100, size=128, seed=0,
                max_objects=5)
backend_args = None
img_scale = (128, 128)

train_pipeline = [
    dict(type='LoadImageFromFile', backend_args=backend_args),
    dict(type='LoadAnnotations', with_mask=True, with_bbox=True),
    dict(type='Resize', scale=img_scale, keep_ratio=True),
    dict(type='RandomFlip', prob=0.5),
    # albumentations inside the pipeline; ZooAlbu survives transforms that drop every box (mmdet's Albu does not)
    dict(type='ZooAlbu',
         transforms=[dict(type='Affine', scale=(0.8, 1.25), translate_percent=(-0.1, 0.1), p=0.5),
                     dict(type='RandomBrightnessContrast', brightness_limit=0.2, contrast_limit=0.2, p=0.5),
                     dict(type='HueSaturationValue', p=0.3)],
         bbox_params=dict(type='BboxParams', format='pascal_voc',
                          label_fields=['gt_bboxes_labels', 'gt_ignore_flags'], min_visibility=0.3,
                          filter_lost_elements=True),
         keymap={'img': 'image', 'gt_masks': 'masks', 'gt_bboxes': 'bboxes'},
         bgr_to_rgb=True, skip_img_without_anno=True),
    dict(type='PackDetInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile', backend_args=backend_args),
    dict(type='Resize', scale=img_scale, keep_ratio=True),
    dict(type='LoadAnnotations', with_mask=True, with_bbox=True),
    dict(type='PackDetInputs', meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape', 'scale_factor')),
]
train_dataloader = dict(
    batch_size=8,
    num_workers=2,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=True),
    batch_sampler=dict(type='AspectRatioBatchSampler'),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        metainfo=metainfo,
        ann_file='annotations/instances_train.json',
        data_prefix=dict(img='images/train/'),
        filter_cfg=dict(filter_empty_gt=True, min_size=4),
        pipeline=train_pipeline,
        backend_args=backend_args))
val_dataloader = dict(
    batch_size=8,
    num_workers=2,
    persistent_workers=True,
    drop_last=False,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        metainfo=metainfo,
        ann_file='annotations/instances_val.json',
        data_prefix=dict(img='images/val/'),
        test_mode=True,
        pipeline=test_pipeline,
        backend_args=backend_args))
test_dataloader = val_dataloader
val_evaluator = dict(type='CocoMetric', ann_file=data_root + 'annotations/instances_val.json',
                     metric=['bbox', 'segm'], format_only=False, backend_args=backend_args)
test_evaluator = val_evaluator
