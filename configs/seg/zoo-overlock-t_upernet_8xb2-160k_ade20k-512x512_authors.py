# The authors' OverLoCK-T UperNet 160k ADE20K (upernet_overlock_tiny_ade20k_8xb2.py); weights: the manifest tag
# zoo_overlock_t.upernet_160k_ade20k (load_from='zoo_overlock_t.upernet_160k_ade20k' converts the authors' file).
_base_ = ['../_base_/seg/upernet_overlock_authors.py']
model = dict(
    backbone=dict(model_name='zoo_overlock_t', drop_path_rate=0.2),
    decode_head=dict(in_channels=[64, 128, 384, 640]),
    auxiliary_head=dict(in_channels=384))
