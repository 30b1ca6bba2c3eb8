# The authors' CoaT Mask R-CNN (mlpc-ucsd/CoaT tasks/mmdet/configs/coat, mmdet 2.11 of Swin-Transformer-Object-
# Detection): mmdet's Mask R-CNN R-50 FPN heads, multi-scale training, AdamW lr 1e-4 wd 0.05 with no per-parameter
# rules, 1x schedule (500-iteration linear warm-up, steps at 8 and 11), 8 GPUs x 2 images; the authors trained in
# mixed precision (apex). The dense backbone is CoaT's four stage maps without class tokens (no output norms).
# A config on top names the variant and the FPN in_channels.
_base_ = ['./ms_train_coco.py']
model = dict(backbone=dict(pretrained=True, out_indices=(0, 1, 2, 3), drop_path_rate=0.0))
optim_wrapper = dict(optimizer=dict(_delete_=True, type='AdamW', lr=0.0001, betas=(0.9, 0.999), weight_decay=0.05))
auto_scale_lr = dict(enable=False, base_batch_size=16)
