# The authors' OverLoCK-B UperNet 160k ADE20K (upernet_overlock_base_ade20k_8xb2.py); weights: the manifest tag
# zoo_overlock_b.upernet_160k_ade20k (load_from='zoo_overlock_b.upernet_160k_ade20k' converts the authors' file).
_base_ = ['../_base_/seg/upernet_overlock_authors.py']
model = dict(
    backbone=dict(model_name='zoo_overlock_b', drop_path_rate=0.5),
    decode_head=dict(in_channels=[80, 160, 528, 720]),
    auxiliary_head=dict(in_channels=528))
