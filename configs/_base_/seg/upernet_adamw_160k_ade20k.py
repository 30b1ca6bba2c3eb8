# UperNet 160k ADE20K, AdamW lr 6e-5, weight decay 0.01; 1500-iteration warm-up, then linear decay to 0;
# 8 GPUs x 2 images (the Swin / BiFormer / OverLoCK segmentation recipe).
_base_ = ['./upernet_160k_ade20k.py']
optim_wrapper = dict(
    _delete_=True,
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=0.00006, betas=(0.9, 0.999), weight_decay=0.01))
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-6, by_epoch=False, begin=0, end=1500),
    dict(type='PolyLR', eta_min=0.0, power=1.0, begin=1500, end=160000, by_epoch=False),
]
train_dataloader = dict(batch_size=2)
