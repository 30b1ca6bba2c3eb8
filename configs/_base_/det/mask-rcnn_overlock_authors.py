# The authors' OverLoCK Mask R-CNN (LMMMEng/OverLoCK detection/configs/maskrcnn_overlock, mmdet 2.28 / mmcv 1.7):
# mmdet's Mask R-CNN R-50 FPN heads and 1x schedule (500-iteration linear warm-up from 0.001, steps at 8 and 11,
# 8 GPUs x 2 images), AdamW lr 2e-4 wd 0.05 without decay on norms (UniFormer's recipe), single-scale 1333x800
# training. The dense backbone: dense_outputs=True (output LayerNorms; the normed stride-8 map feeds stage 2; a
# LayerScaled projection of the Overview-Net context added to the stride-32 output). The test pipeline is mmdet's
# (Resize 1333x800 keep ratio, padding to 32 in the data preprocessor), as the authors' mmdet 2 pipeline.
# A config on top names the variant (model_name, drop_path_rate) and the FPN in_channels.
_base_ = ['./mask-rcnn_fpn_1x_coco.py']
model = dict(backbone=dict(pretrained=True, out_indices=(0, 1, 2, 3), dense_outputs=True))
optim_wrapper = dict(
    optimizer=dict(_delete_=True, type='AdamW', lr=0.0002, betas=(0.9, 0.999), weight_decay=0.05),
    paramwise_cfg=dict(custom_keys={'norm': dict(decay_mult=0.)}))
auto_scale_lr = dict(enable=False, base_batch_size=16)
