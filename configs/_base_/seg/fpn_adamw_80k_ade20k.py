# Semantic FPN 80k ADE20K, AdamW lr 1e-4, weight decay 1e-4 (the PVT / Twins recipe), poly decay to 0 over 80k
# iterations (mmseg's schedule_80k has eta_min=1e-4, which would keep the lr constant); 8 GPUs x 4 images.
_base_ = ['./fpn_80k_ade20k.py']
optim_wrapper = dict(_delete_=True, type='OptimWrapper', optimizer=dict(type='AdamW', lr=0.0001, weight_decay=0.0001))
param_scheduler = [dict(type='PolyLR', power=0.9, eta_min=0.0, begin=0, end=80000, by_epoch=False)]
