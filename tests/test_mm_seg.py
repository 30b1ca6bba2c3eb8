"""mmsegmentation 1.x with zoo backbones: every family's UperNet / Semantic FPN config builds, trains a step and
predicts on generated shapes label maps; a short end-to-end train + mIoU evaluation through the runner.

Needs mmcv with compiled ops (``mmcv._ext``) and mmseg; skipped with the reason otherwise.
"""
import copy
import glob
import os
import os.path as osp

import pytest
import torch

from helpers import MM_FAMILIES, MM_SIZE, ROOT, mm_family, mm_missing

_REASON = mm_missing('mmseg')
pytestmark = [pytest.mark.mm, pytest.mark.xdist_group('mmseg'),
              pytest.mark.skipif(_REASON is not None, reason=_REASON or '')]

SEG = osp.join(ROOT, 'configs', 'seg')
FAMILIES = MM_FAMILIES
SIZE = MM_SIZE
NUM_CLASSES = 7  # background + 6 shapes


def _config(head, slug):
    (path,) = glob.glob(osp.join(SEG, f'{slug}_{head}_*ade20k-512x512.py'))
    return path


def _shapes_dataset(root, test_mode):
    from mmengine.config import Config
    from mmseg.registry import DATASETS
    base = Config.fromfile(osp.join(ROOT, 'configs', '_base_', 'seg', 'shapes_segmentation.py'))
    split = 'val' if test_mode else 'train'
    if test_mode:
        pipeline = base.test_pipeline
    else:
        pipeline = copy.deepcopy(base.train_pipeline)
        for t in pipeline:
            if t['type'] == 'RandomResize':
                t['scale'] = (SIZE, SIZE)
            if t['type'] == 'RandomCrop':
                t['crop_size'] = (SIZE, SIZE)
    return DATASETS.build(dict(type='BaseSegDataset', data_root=root, metainfo=base.metainfo, img_suffix='.png',
                               seg_map_suffix='.png', reduce_zero_label=False, pipeline=pipeline,
                               data_prefix=dict(img_path=f'images/{split}', seg_map_path=f'labels/{split}')))


@pytest.mark.parametrize('family', list(FAMILIES))
@pytest.mark.parametrize('head', ['upernet', 'fpn'])
def test_ade20k_config_trains_and_predicts(family, head, shapes_seg_root, mmseg_scope):
    import timm
    from mmengine.config import Config
    from mmengine.dataset import pseudo_collate
    from mmengine.optim import build_optim_wrapper
    from mmseg.registry import MODELS
    slug, small = mm_family(family)
    cfg = Config.fromfile(_config(head, slug))
    bb = cfg.model.backbone
    assert bb.type == 'ZooBackbone' and cfg.model.pretrained is None
    bb.model_name, bb.pretrained = small, False
    kwargs = {k: v for k, v in bb.items() if k in ('n_win', 'dense_outputs', 'img_size')}
    info = timm.create_model(small, features_only=True, **kwargs).feature_info.info
    chs = [info[i]['num_chs'] for i in bb.out_indices]
    if head == 'upernet':
        cfg.model.decode_head.in_channels = chs
        cfg.model.decode_head.channels = 64  # tiny test: narrower head (the structure is the config's)
        cfg.model.auxiliary_head.in_channels = chs[cfg.model.auxiliary_head.in_index]
        cfg.model.auxiliary_head.num_classes = NUM_CLASSES
    else:
        cfg.model.neck.in_channels = chs
    cfg.model.decode_head.num_classes = NUM_CLASSES
    cfg.model.data_preprocessor.size = (SIZE, SIZE)

    torch.manual_seed(0)
    model = MODELS.build(cfg.model)
    model.init_weights()
    model.train()
    batch = pseudo_collate([_shapes_dataset(shapes_seg_root, False)[i] for i in range(2)])
    data = model.data_preprocessor(batch, True)
    losses = model(**data, mode='loss')
    loss, log_vars = model.parse_losses(losses)
    assert torch.isfinite(loss), log_vars
    loss.backward()
    missing = [n for n, p in model.backbone.named_parameters() if p.requires_grad and p.grad is None]
    assert not missing, f'backbone parameters without gradient (DDP would fail): {missing[:10]}'
    optim = build_optim_wrapper(model, copy.deepcopy(cfg.optim_wrapper))
    optim.step()
    optim.zero_grad()

    model.eval()
    val = _shapes_dataset(shapes_seg_root, True)
    with torch.no_grad():
        preds = model.test_step(pseudo_collate([val[0], val[1]]))
    for p in preds:
        seg = p.pred_sem_seg.data
        assert seg.shape == (1, SIZE, SIZE) and int(seg.max()) < NUM_CLASSES


def test_whole_image_inference_pads_odd_sizes(mmseg_scope):
    """mode='whole' at a size that is no multiple of 32 (ADE20K's test resize): the backbone pads and crops."""
    from mmengine.config import Config
    from mmseg.registry import MODELS
    from mmseg.structures import SegDataSample
    cfg = Config.fromfile(_config('fpn', 'zoo-biformer-small'))
    cfg.model.backbone.update(model_name='zoo_biformer_tiny', pretrained=False)
    cfg.model.decode_head.num_classes = NUM_CLASSES
    model = MODELS.build(cfg.model).eval()
    x = torch.randn(1, 3, 75, 101)
    sample = SegDataSample(metainfo=dict(img_shape=(75, 101), ori_shape=(75, 101), pad_shape=(75, 101),
                                         padding_size=[0, 0, 0, 0]))
    with torch.no_grad():
        out = model.predict(x, [sample])
    assert out[0].pred_sem_seg.data.shape == (1, 75, 101)


# --------------------------------------------------------------------------------------------------- end to end
def _shapes_options(root, iters=6):
    return ['--cfg-options', f'zoo_data.root={root}', 'zoo_data.n_train=8', 'zoo_data.n_val=4',
            f'zoo_data.size={SIZE}', 'zoo_data.max_objects=3',
            f'train_dataloader.dataset.data_root={root}', f'val_dataloader.dataset.data_root={root}',
            f'test_dataloader.dataset.data_root={root}', 'train_dataloader.batch_size=4',
            'train_dataloader.num_workers=0', 'val_dataloader.num_workers=0', 'test_dataloader.num_workers=0',
            f'train_cfg.max_iters={iters}', f'train_cfg.val_interval={iters}',
            f'default_hooks.checkpoint.interval={iters}', 'default_hooks.logger.interval=2', 'param_scheduler.0.end=2',
            'param_scheduler.1.begin=2', f'param_scheduler.1.end={iters}']


def test_end_to_end_train_and_miou_eval(tmp_path, mmseg_scope):
    from zoo.cli.mm import main_train, run_eval
    cfg = osp.join(SEG, 'zoo-resnet18-cbam_fpn_shapes.py')
    root = str(tmp_path / 'shapes')  # generated by the runner from `zoo_data`
    work = str(tmp_path / 'work')
    opts = _shapes_options(root)
    # the config's 128 px resize / crop / padding apply to the 64 px test images as they are
    assert main_train([cfg, '--work-dir', work] + opts) == 0
    assert osp.isfile(osp.join(work, 'iter_6.pth'))
    metrics = run_eval([cfg, osp.join(work, 'iter_6.pth'), '--work-dir', str(tmp_path / 'eval')] + opts)
    assert 'mIoU' in metrics and 0.0 <= metrics['mIoU'] <= 100.0
    assert osp.isfile(tmp_path / 'eval' / 'metrics.json')


def test_missing_dataset_fails_before_training(tmp_path, capsys, mmseg_scope):
    from zoo.cli.mm import main_train
    cfg = osp.join(SEG, 'zoo-resnet18-cbam_upernet_shapes.py')
    code = main_train([cfg, '--work-dir', str(tmp_path / 'w'), '--cfg-options', 'zoo_data=None',
                       f'train_dataloader.dataset.data_root={tmp_path}/absent',
                       f'val_dataloader.dataset.data_root={tmp_path}/absent'])
    err = capsys.readouterr().err
    assert code == 2 and 'does not exist' in err and 'absent' in err
    assert not (tmp_path / 'w').exists() or not list((tmp_path / 'w').rglob('*.pth'))


def test_torchrun_two_processes_on_cpu(tmp_path):
    """`torchrun ... --launcher pytorch`: two processes (gloo on CPU), DDP, one checkpoint written by rank 0."""
    import subprocess
    import sys
    cfg = osp.join(SEG, 'zoo-resnet18-cbam_upernet_shapes.py')
    root, work = str(tmp_path / 'shapes'), str(tmp_path / 'work')
    opts = [o for o in _shapes_options(root, iters=4) if o != 'train_dataloader.batch_size=4'] + [
        'train_dataloader.batch_size=2']
    env = dict(os.environ, OMP_NUM_THREADS='1')
    cmd = [sys.executable, '-m', 'torch.distributed.run', '--standalone', '--nproc_per_node=2', '-m', 'zoo.cli.mm',
           'train', cfg, '--launcher', 'pytorch', '--work-dir', work] + opts
    r = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, (r.stdout + r.stderr)[-3000:]
    assert 'Distributed training: True' in r.stdout + r.stderr
    assert osp.isfile(osp.join(work, 'iter_4.pth'))
