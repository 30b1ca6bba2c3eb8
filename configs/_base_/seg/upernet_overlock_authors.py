# The authors' OverLoCK UperNet (LMMMEng/OverLoCK segmentation/configs/overlock, mmseg 0.30 / mmcv 1.7): mmseg's
# UperNet (channels 512, FCN auxiliary head on level 2, SyncBN), ADE20K 512x512 crops, AdamW lr 6e-5 wd 0.01 without
# decay on norms, 1500-iteration linear warm-up then poly decay over 160k iterations, 8 GPUs x 2 images. The dense
# backbone: dense_outputs='norms' (four output LayerNorms; the normed stride-8 map feeds stage 2; no context
# projection). Test: resize to 2048x512 keeping the ratio, then to a multiple of 32 (bicubic), whole-image inference.
# A config on top names the variant (model_name, drop_path_rate) and the heads' in_channels.
_base_ = ['./upernet_adamw_160k_ade20k.py']
model = dict(backbone=dict(pretrained=True, out_indices=(0, 1, 2, 3), dense_outputs='norms'))
optim_wrapper = dict(paramwise_cfg=dict(custom_keys={'norm': dict(decay_mult=0.)}))
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=(2048, 512), keep_ratio=True),
    dict(type='ResizeToMultiple', size_divisor=32, interpolation='bicubic'),
    dict(type='LoadAnnotations', reduce_zero_label=True),
    dict(type='PackSegInputs'),
]
val_dataloader = dict(dataset=dict(pipeline=test_pipeline))
test_dataloader = val_dataloader
