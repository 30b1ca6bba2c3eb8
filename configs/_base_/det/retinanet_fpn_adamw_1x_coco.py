# RetinaNet 1x COCO, AdamW lr 1e-4, weight decay 1e-4 (the PVT / BiFormer / WaveViT RetinaNet recipe).
_base_ = ['./retinanet_fpn_1x_coco.py']
optim_wrapper = dict(optimizer=dict(_delete_=True, type='AdamW', lr=0.0001, weight_decay=0.0001))
