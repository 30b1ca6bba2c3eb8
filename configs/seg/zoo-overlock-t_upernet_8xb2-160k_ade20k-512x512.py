# UperNet 160k ADE20K (512x512 crops), OverLoCK-T backbone.
# OverLoCK (Lou & Yu, CVPR 2025) official segmentation configs: drop path 0.2 (T); dense_outputs=True adds the
# official dense output norms and context projection. Paper: UperNet 160k 50.3 mIoU.
_base_ = ['../_base_/seg/upernet_adamw_160k_ade20k.py']
# ImageNet weights (zoo_overlock_t.in1k); pretrained='cls.pth' loads a local classification checkpoint
# feature levels 0: stages.0 s4 64ch, 1: stages.1 s8 128ch, 2: focus_stages.0 s16 384ch, 3: focus_stages.1 s32 640ch
model = dict(
    backbone=dict(model_name='zoo_overlock_t', pretrained=True, out_indices=(0, 1, 2, 3), dense_outputs=True,
        drop_path_rate=0.2),
    decode_head=dict(in_channels=[64, 128, 384, 640]),
    auxiliary_head=dict(in_channels=384))
optim_wrapper = dict(paramwise_cfg=dict(custom_keys={'norm': dict(decay_mult=0.)}))
