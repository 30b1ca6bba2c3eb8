"""mmdetection 3.x with zoo backbones: every family's RetinaNet / Mask R-CNN config builds, trains a step and predicts
on generated shapes; ZooAlbu survives empty boxes; a short end-to-end train + COCO evaluation through the runner.

Needs mmcv with compiled ops (``mmcv._ext``), mmdet and pycocotools; skipped with the reason otherwise.
"""
import copy
import json
import os.path as osp

import numpy as np
import pytest
import torch

from helpers import MM_FAMILIES, MM_SIZE, ROOT, mm_family, mm_missing

_REASON = mm_missing('mmdet', 'pycocotools')
pytestmark = [pytest.mark.mm, pytest.mark.xdist_group('mmdet'),
              pytest.mark.skipif(_REASON is not None, reason=_REASON or '')]

DET = osp.join(ROOT, 'configs', 'det')

FAMILIES = MM_FAMILIES
SIZE = MM_SIZE


def _small_backbone(cfg, small):
    """Swap the config's backbone for the family's small model (same level numbering), fix the neck channels."""
    import timm
    bb = cfg.model.backbone
    bb.model_name = small
    bb.pretrained = False
    kwargs = {k: v for k, v in bb.items() if k in ('n_win', 'dense_outputs', 'img_size')}
    info = timm.create_model(small, features_only=True, **kwargs).feature_info.info
    cfg.model.neck.in_channels = [info[i]['num_chs'] for i in bb.out_indices]
    return cfg


def _shapes_dataset(root, pipeline_key, cfg_path=osp.join(ROOT, 'configs', '_base_', 'det', 'shapes_instance.py'),
                    test_mode=False):
    from mmdet.registry import DATASETS
    from mmengine.config import Config
    base = Config.fromfile(cfg_path)
    split = 'val' if test_mode else 'train'
    pipeline = copy.deepcopy(base[pipeline_key])
    for t in pipeline:
        if t['type'] == 'Resize':
            t['scale'] = (SIZE, SIZE)  # tiny images stay tiny
    return DATASETS.build(dict(
        type='CocoDataset', data_root=root, metainfo=base.metainfo, ann_file=f'annotations/instances_{split}.json',
        data_prefix=dict(img=f'images/{split}/'), test_mode=test_mode, pipeline=pipeline,
        filter_cfg=None if test_mode else dict(filter_empty_gt=True, min_size=4)))


def _step_and_predict(cfg, root, with_mask):
    from mmdet.registry import MODELS
    from mmengine.dataset import pseudo_collate
    from mmengine.optim import build_optim_wrapper
    torch.manual_seed(0)
    model = MODELS.build(cfg.model)
    model.init_weights()
    model.train()
    train_ds = _shapes_dataset(root, 'train_pipeline')
    batch = pseudo_collate([train_ds[0], train_ds[1]])
    data = model.data_preprocessor(batch, True)
    losses = model(**data, mode='loss')
    loss, log_vars = model.parse_losses(losses)
    assert torch.isfinite(loss), log_vars
    if with_mask:
        assert 'loss_mask' in log_vars
    loss.backward()
    bb = model.backbone
    missing = [n for n, p in bb.named_parameters() if p.requires_grad and p.grad is None]
    if not cfg.get('find_unused_parameters', False):
        assert not missing, f'backbone parameters without gradient (DDP would fail): {missing[:10]}'
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in bb.parameters())
    optim = build_optim_wrapper(model, copy.deepcopy(cfg.optim_wrapper))
    optim.step()
    optim.zero_grad()

    model.eval()
    val_ds = _shapes_dataset(root, 'test_pipeline', test_mode=True)
    with torch.no_grad():
        preds = model.test_step(pseudo_collate([val_ds[0], val_ds[1]]))
    assert len(preds) == 2
    for p in preds:
        inst = p.pred_instances
        assert inst.bboxes.shape[1:] == (4,) and len(inst.scores) == len(inst.labels) == len(inst.bboxes)
        if with_mask:
            assert inst.masks.shape[1:] == (SIZE, SIZE)
    return model


@pytest.mark.parametrize('family', list(FAMILIES))
@pytest.mark.parametrize('algo', ['retinanet', 'mask-rcnn'])
def test_coco_config_trains_and_predicts(family, algo, shapes_det_root, mmdet_scope):
    from mmengine.config import Config
    slug, small = mm_family(family)
    cfg = Config.fromfile(osp.join(DET, f'{algo}_{slug}_fpn_1x_coco.py'))
    assert cfg.model.backbone.type == 'ZooBackbone'
    cfg = _small_backbone(cfg, small)
    n = 6
    if algo == 'retinanet':
        cfg.model.bbox_head.num_classes = n
    else:
        cfg.model.roi_head.bbox_head.num_classes = n
        cfg.model.roi_head.mask_head.num_classes = n
        cfg.model.train_cfg.rcnn.sampler.num = 64  # tiny images: fewer RoIs keep the step fast
        cfg.model.train_cfg.rpn_proposal.update(nms_pre=300, max_per_img=100)
        cfg.model.test_cfg.rpn.update(nms_pre=300, max_per_img=100)
    _step_and_predict(cfg, shapes_det_root, with_mask=algo == 'mask-rcnn')


# ------------------------------------------------------------------------------------------------------ ZooAlbu
def _results(n_boxes=3, h=64, w=80):
    from mmdet.structures.bbox import HorizontalBoxes
    from mmdet.structures.mask import BitmapMasks
    rng = np.random.default_rng(0)
    img = rng.integers(0, 255, (h, w, 3), dtype=np.uint8)
    boxes = np.array([[40, 30, 60, 50], [50, 10, 70, 25], [45, 40, 75, 60]], np.float32)[:n_boxes]
    masks = np.zeros((n_boxes, h, w), np.uint8)
    for i, (x0, y0, x1, y1) in enumerate(boxes.astype(int)):
        masks[i, y0:y1, x0:x1] = 1
    return dict(img=img, img_shape=(h, w), ori_shape=(h, w), gt_bboxes=HorizontalBoxes(boxes),
                gt_bboxes_labels=np.arange(n_boxes, dtype=np.int64), gt_ignore_flags=np.zeros(n_boxes, bool),
                gt_masks=BitmapMasks(masks, h, w))


def _albu(transforms, skip=False, cls='ZooAlbu', **kw):
    from mmdet.registry import TRANSFORMS
    return TRANSFORMS.build(dict(
        type=cls, transforms=transforms,
        bbox_params=dict(type='BboxParams', format='pascal_voc', label_fields=['gt_bboxes_labels', 'gt_ignore_flags'],
                         min_visibility=0.1, filter_lost_elements=True),
        keymap={'img': 'image', 'gt_masks': 'masks', 'gt_bboxes': 'bboxes'}, skip_img_without_anno=skip, **kw))


CROP_EMPTY = [dict(type='Crop', x_min=0, y_min=0, x_max=32, y_max=24)]  # top-left corner: no box lies there


def test_mmdet_albu_crashes_on_empty_crop(mmdet_scope):
    """The bug ZooAlbu fixes (mmdet 3.3.0): a crop that drops every box with masks -> IndexError."""
    with pytest.raises(IndexError):
        _albu(CROP_EMPTY, cls='Albu').transform(_results())


def test_zoo_albu_all_boxes_dropped(mmdet_scope):
    from mmdet.datasets.transforms import PackDetInputs
    out = _albu(CROP_EMPTY).transform(_results())
    assert out['img'].shape == (24, 32, 3) and out['img_shape'] == (24, 32)
    assert out['gt_bboxes'].tensor.shape == (0, 4)
    assert out['gt_bboxes_labels'].dtype == np.int64 and out['gt_bboxes_labels'].shape == (0,)
    assert out['gt_ignore_flags'].dtype == bool and out['gt_ignore_flags'].shape == (0,)
    assert out['gt_masks'].masks.shape == (0, 24, 32)
    packed = PackDetInputs().transform(out)  # the rest of the pipeline accepts the empty sample
    assert len(packed['data_samples'].gt_instances) == 0
    # skip_img_without_anno: mmengine's dataset then draws another image
    assert _albu(CROP_EMPTY, skip=True).transform(_results()) is None


def test_zoo_albu_keeps_masks_aligned_with_kept_boxes(mmdet_scope):
    # right half: boxes 0 (x 40-60) and 2 (x 45-75) survive, box 1 (x 50-70, y 10-25) is cut away by y >= 28
    out = _albu([dict(type='Crop', x_min=36, y_min=28, x_max=80, y_max=64)]).transform(_results())
    labels = out['gt_bboxes_labels']
    assert labels.dtype == np.int64 and list(labels) == [0, 2]
    boxes = out['gt_bboxes'].tensor.numpy()
    masks = out['gt_masks'].masks
    assert masks.shape == (2, 36, 44)
    for box, m in zip(boxes, masks):
        ys, xs = np.nonzero(m)
        np.testing.assert_allclose([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1], box, atol=1)


def test_zoo_albu_image_without_annotations(mmdet_scope):
    out = _albu([dict(type='HorizontalFlip', p=1.0)]).transform(_results(n_boxes=0))
    assert out['gt_bboxes'].tensor.shape == (0, 4) and out['gt_masks'].masks.shape == (0, 64, 80)
    assert out['gt_bboxes_labels'].dtype == np.int64


def test_zoo_albu_bgr_to_rgb_and_strict(mmdet_scope):
    import albumentations as A
    seen = {}

    def record(img, **kwargs):
        seen['first'] = img[..., 0].copy()
        return img
    res = _results()
    bgr_first = res['img'][..., 0].copy()
    _albu([dict(type=A.Lambda, image=record)], bgr_to_rgb=True).transform(copy.deepcopy(res))
    np.testing.assert_array_equal(seen['first'], res['img'][..., 2])  # albumentations saw RGB
    _albu([dict(type=A.Lambda, image=record)]).transform(copy.deepcopy(res))
    np.testing.assert_array_equal(seen['first'], bgr_first)
    # albumentations 2.x renamed value= -> fill=; strict=True makes the old name an error instead of a warning
    with pytest.raises(Exception, match='value'):
        _albu([dict(type='PadIfNeeded', min_height=96, min_width=96, value=0)])


# --------------------------------------------------------------------------------------------------- end to end
def _shapes_options(root, epochs=1):
    ann_val = osp.join(root, 'annotations', 'instances_val.json')
    return ['--cfg-options', f'zoo_data.root={root}', 'zoo_data.n_train=8', 'zoo_data.n_val=4',
            f'zoo_data.size={SIZE}', 'zoo_data.max_objects=3',
            f'train_dataloader.dataset.data_root={root}', f'val_dataloader.dataset.data_root={root}',
            f'test_dataloader.dataset.data_root={root}', f'val_evaluator.ann_file={ann_val}',
            f'test_evaluator.ann_file={ann_val}', 'train_dataloader.batch_size=4', 'train_dataloader.num_workers=0',
            'val_dataloader.num_workers=0', 'test_dataloader.num_workers=0', 'val_dataloader.batch_size=4',
            'test_dataloader.batch_size=4', f'train_cfg.max_epochs={epochs}', 'train_cfg.val_interval=1',
            'default_hooks.checkpoint.interval=1', 'default_hooks.logger.interval=1',
            'param_scheduler.0.end=2', f'param_scheduler.1.T_max={epochs}', f'param_scheduler.1.end={epochs}']


def test_end_to_end_train_resume_and_coco_eval(tmp_path, mmdet_scope):
    from zoo.cli.mm import main_eval, run_eval, run_train
    cfg = osp.join(DET, 'mask-rcnn_zoo-resnet18-cbam_fpn_shapes.py')
    root = str(tmp_path / 'shapes')  # generated by the runner from `zoo_data`
    work = str(tmp_path / 'work')
    runner = run_train([cfg, '--work-dir', work] + _shapes_options(root, epochs=1))
    assert osp.isfile(osp.join(root, 'annotations', 'instances_train.json'))
    assert osp.isfile(osp.join(work, 'epoch_1.pth')) and runner.iter > 0
    # resume from the last checkpoint in the work dir and train one more epoch
    runner = run_train([cfg, '--work-dir', work, '--resume'] + _shapes_options(root, epochs=2))
    assert runner.epoch == 2 and osp.isfile(osp.join(work, 'epoch_2.pth'))
    ckpt = torch.load(osp.join(work, 'epoch_2.pth'), map_location='cpu', weights_only=False)
    assert ckpt['meta']['epoch'] == 2
    # the COCO evaluation through tools/eval.py's entry point
    metrics = run_eval([cfg, osp.join(work, 'epoch_2.pth'), '--work-dir', str(tmp_path / 'eval'),
                        '--out', str(tmp_path / 'preds.pkl')] + _shapes_options(root))
    for k in ('coco/bbox_mAP', 'coco/bbox_mAP_50', 'coco/segm_mAP'):
        assert k in metrics and 0.0 <= metrics[k] <= 1.0
    assert osp.isfile(tmp_path / 'preds.pkl')
    saved = json.loads((tmp_path / 'eval' / 'metrics.json').read_text())
    assert saved['metrics']['coco/bbox_mAP'] == pytest.approx(metrics['coco/bbox_mAP'])
    assert main_eval([cfg, str(tmp_path / 'nope.pth')] + _shapes_options(root)) == 2


def test_bad_inputs_fail_before_training(tmp_path, capsys, mmdet_scope):
    from zoo.cli.mm import main_train
    cfg = osp.join(DET, 'retinanet_zoo-resnet18-cbam_fpn_shapes.py')
    work = tmp_path / 'work'
    # a dataset path that does not exist (and no zoo_data to generate it)
    code = main_train([cfg, '--work-dir', str(work), '--cfg-options', 'zoo_data=None',
                       f'train_dataloader.dataset.data_root={tmp_path}/missing/',
                       f'val_dataloader.dataset.data_root={tmp_path}/missing/',
                       f'val_evaluator.ann_file={tmp_path}/missing/annotations/instances_val.json'])
    err = capsys.readouterr().err
    assert code == 2 and 'does not exist' in err and 'train_dataloader.dataset.data_root' in err
    # an unknown backbone (checked before any data is generated)
    root = str(tmp_path / 'shapes')
    code = main_train([cfg, '--work-dir', str(work)] + _shapes_options(root)
                      + ['model.backbone.model_name=zoo_nope_net'])
    assert code == 2 and "unknown model 'zoo_nope_net'" in capsys.readouterr().err
    assert not osp.exists(root)
    # out_indices outside the model's stages: reported by ZooBackbone while the Runner builds the model
    code = main_train([cfg, '--work-dir', str(work)] + _shapes_options(root) + ['model.backbone.out_indices=(2,3,7)'])
    err = capsys.readouterr().err
    assert code == 2 and 'outside its feature levels 0..4' in err, err[-2000:]
    if not torch.cuda.is_available():
        code = main_train([cfg, '--work-dir', str(work), '--amp'] + _shapes_options(root))
        assert code == 2 and '--amp needs a CUDA device' in capsys.readouterr().err
    assert not any(p.suffix == '.pth' for p in work.rglob('*'))
