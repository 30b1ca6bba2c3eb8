"""Train / evaluate mmdetection 3.x and mmsegmentation 1.x configs on mmengine's Runner, from a config and values.

The config is a file or a packaged config (``zoo::det/<file>.py``), read by :func:`zoo.mm.configs.load_config`.
Before the Runner is built :func:`check_config` fails with one ``ConfigError`` for an unknown backbone or a dataset
path that does not exist, after generating the data a config asks for (``zoo_data = dict(generator='shapes', ...)``).
CPU-only machines run multi-process too (gloo, plain BN, DDP without ``device_ids``). Nothing is overwritten: a work
dir with checkpoints needs ``resume``, a run that fails before its first checkpoint removes the work dir it created,
``out`` refuses an existing file and ``metrics.json`` is written atomically. The command lines: :mod:`zoo.cli.mm`.
"""
import glob
import json
import logging
import os
import os.path as osp
import shutil
from typing import List, Optional, Sequence

from .configs import ConfigError, load_config

__all__ = ['run_train', 'run_eval', 'check_config', 'prepare_data']


# ---------------------------------------------------------------------------------------------------------- config
def _iter_dicts(obj, path=''):
    if isinstance(obj, dict):
        yield path, obj
        for k, v in obj.items():
            yield from _iter_dicts(v, f'{path}.{k}' if path else str(k))
    elif isinstance(obj, (list, tuple)):
        for i, v in enumerate(obj):
            yield from _iter_dicts(v, f'{path}[{i}]')


def _is_remote(path: str) -> bool:
    return '://' in str(path)


def _datasets(cfg_ds, path):
    """Leaf dataset configs inside wrappers (RepeatDataset, ConcatDataset, ClassBalancedDataset, ...)."""
    if cfg_ds is None:
        return
    if isinstance(cfg_ds, (list, tuple)):
        for i, d in enumerate(cfg_ds):
            yield from _datasets(d, f'{path}[{i}]')
        return
    if 'dataset' in cfg_ds:
        yield from _datasets(cfg_ds['dataset'], path + '.dataset')
    elif 'datasets' in cfg_ds:
        yield from _datasets(cfg_ds['datasets'], path + '.datasets')
    else:
        yield path, cfg_ds


def _check_paths(cfg, loaders: Sequence[str]) -> None:
    problems = []
    for loader in loaders:
        dl = cfg.get(loader)
        if not dl:
            continue
        for path, ds in _datasets(dl.get('dataset'), f'{loader}.dataset'):
            root = ds.get('data_root') or ''
            if root and not _is_remote(root) and not osp.isdir(root):
                problems.append(f'{path}.data_root: folder {root!r} does not exist')
                continue
            ann = ds.get('ann_file') or ''
            if ann and not _is_remote(ann):
                full = ann if osp.isabs(ann) or not root else osp.join(root, ann)
                if not osp.isfile(full):
                    problems.append(f'{path}.ann_file: file {full!r} does not exist')
            for key, prefix in (ds.get('data_prefix') or {}).items():
                if not prefix or _is_remote(prefix):
                    continue
                full = prefix if osp.isabs(prefix) or not root else osp.join(root, prefix)
                if not osp.isdir(full):
                    problems.append(f'{path}.data_prefix.{key}: folder {full!r} does not exist')
    for ev_name in ('val_evaluator' if 'val_dataloader' in loaders else None,
                    'test_evaluator' if 'test_dataloader' in loaders else None):
        if ev_name is None or not cfg.get(ev_name):
            continue
        evs = cfg.get(ev_name)
        for i, ev in enumerate(evs if isinstance(evs, (list, tuple)) else [evs]):
            ann = ev.get('ann_file') if isinstance(ev, dict) else None
            if ann and not _is_remote(ann) and not osp.isfile(ann):
                problems.append(f'{ev_name}{"[%d]" % i if isinstance(evs, (list, tuple)) else ""}.ann_file: '
                                f'file {ann!r} does not exist')
    if problems:
        raise ConfigError('dataset paths in the config do not exist (nothing was trained):\n  ' + '\n  '.join(problems)
                          + '\nFix the paths (e.g. --cfg-options train_dataloader.dataset.data_root=...) or generate '
                            'the shapes data first (see configs/README.md).')


def _check_backbones(cfg) -> None:
    from .backbone import check_backbone_name
    for path, d in _iter_dicts(cfg.get('model', {}), 'model'):
        t = d.get('type')
        if isinstance(t, str) and t.split('.')[-1] == 'ZooBackbone':
            try:
                check_backbone_name(d.get('model_name'))
            except ValueError as e:
                raise ConfigError(f'{path}: {e}') from None


def prepare_data(cfg) -> None:
    """Generate the data a config asks for with ``zoo_data`` (generated shapes; cached, safe across processes)."""
    spec = cfg.get('zoo_data')
    if not spec:
        return
    spec = dict(spec)
    gen = spec.pop('generator', 'shapes')
    task = spec.pop('task', 'detection')
    if gen != 'shapes':
        raise ConfigError(f"zoo_data.generator={gen!r}: only 'shapes' is known")
    from zoo.data import shapes
    fn = {'detection': shapes.make_detection, 'segmentation': shapes.make_segmentation}.get(task)
    if fn is None:
        raise ConfigError(f"zoo_data.task={task!r}: expected 'detection' or 'segmentation'")
    fn(**spec)


def check_config(cfg, loaders: Sequence[str] = ('train_dataloader', 'val_dataloader'), generate: bool = False) -> None:
    """Fail with one clear ConfigError for an unknown backbone or a dataset path that does not exist.

    With ``generate=True`` the ``zoo_data`` the config asks for is generated (after the backbone check).
    """
    if 'model' not in cfg:
        raise ConfigError('config has no `model`')
    _check_backbones(cfg)
    if generate:
        prepare_data(cfg)
    _check_paths(cfg, loaders)


def _adapt_to_machine(cfg, distributed: bool) -> None:
    """CPU-only machines: gloo instead of nccl, plain BN instead of SyncBN across processes, DDP without device_ids."""
    import torch
    if torch.cuda.is_available():
        return
    cfg.merge_from_dict({'env_cfg.dist_cfg.backend': 'gloo'})
    if distributed:
        for _, d in _iter_dicts(cfg._cfg_dict if hasattr(cfg, '_cfg_dict') else cfg):
            if d.get('type') == 'SyncBN':
                d['type'] = 'BN'
        if cfg.get('model_wrapper_cfg') is None:
            cfg.model_wrapper_cfg = dict(type='MMDistributedDataParallel', device_ids=None, broadcast_buffers=False,
                                         find_unused_parameters=cfg.get('find_unused_parameters', False))


def _init_cpu_distributed(cfg) -> None:
    """mmengine's init_dist calls torch.cuda.set_device even for gloo: on a CPU-only machine start the process group
    here (env:// from torchrun); the Runner then sees it is already distributed and skips its own init."""
    import torch
    import torch.distributed as dist
    if torch.cuda.is_available() or cfg.launcher != 'pytorch' or dist.is_initialized():
        return
    timeout = (cfg.get('env_cfg') or {}).get('dist_cfg', {}).get('timeout')
    kwargs = {}
    if timeout is not None:
        import datetime
        kwargs['timeout'] = datetime.timedelta(seconds=timeout)
    dist.init_process_group(backend='gloo', **kwargs)


def _fix_loaders(cfg) -> None:
    for name in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        dl = cfg.get(name)
        if dl and not dl.get('num_workers', 0):
            dl['persistent_workers'] = False


def _work_dir(cfg, work_dir: Optional[str], config: str) -> str:
    if work_dir:
        return work_dir
    if cfg.get('work_dir'):
        return cfg.work_dir
    return osp.join('./work_dirs', osp.splitext(osp.basename(config))[0])


# ------------------------------------------------------------------------------------------------------- train/eval
def _build_runner(cfg):
    _init_cpu_distributed(cfg)
    from mmengine.registry import RUNNERS
    from mmengine.runner import Runner
    return Runner.from_cfg(cfg) if 'runner_type' not in cfg else RUNNERS.build(cfg)


def _dense_weights(cfg, spec):
    """``spec`` (``load_from`` or the evaluated checkpoint), with a det / seg manifest tag replaced by its converted
    file (downloaded and converted once, see :mod:`zoo.mm.convert`); the backbone then skips its ImageNet weights."""
    from .convert import dense_entry, resolve_checkpoint
    if not (isinstance(spec, str) and dense_entry(spec)):
        return spec
    cfg.model.backbone.pretrained = False
    return resolve_checkpoint(spec)


def _run_config(config: str, work_dir: Optional[str], cfg_options: Optional[dict], launcher: str, local_rank: int):
    """The config a train / eval run uses: ``cfg_options``, ``launcher`` and the work dir applied (and
    ``LOCAL_RANK`` set for mmengine when no launcher set it)."""
    if 'LOCAL_RANK' not in os.environ:
        os.environ['LOCAL_RANK'] = str(local_rank)
    cfg = load_config(config, cfg_options)
    cfg.load_from = _dense_weights(cfg, cfg.get('load_from'))
    cfg.launcher = launcher
    cfg.work_dir = _work_dir(cfg, work_dir, config)
    return cfg


def _check_and_fit(cfg, loaders: Sequence[str]) -> None:
    """Check the config (generating its data), then fit it to this machine and its data loaders."""
    check_config(cfg, loaders, generate=True)
    _adapt_to_machine(cfg, cfg.launcher != 'none')
    _fix_loaders(cfg)


def _set_resume(cfg, resume: Optional[str]) -> None:
    if resume == 'auto':
        cfg.resume = True
        cfg.load_from = None
    elif resume is not None:
        if not osp.isfile(resume):
            raise ConfigError(f'--resume {resume}: checkpoint file does not exist')
        cfg.resume = True
        cfg.load_from = resume


def run_train(config: str, work_dir: Optional[str] = None, cfg_options: Optional[dict] = None, *, amp: bool = False,
              auto_scale_lr: bool = False, resume: Optional[str] = None, launcher: str = 'none', local_rank: int = 0):
    """Train ``config`` (a file or a ``zoo::`` name); returns the mmengine Runner after ``runner.train()``.

    ``resume``: ``'auto'`` (the latest checkpoint in the work dir) or a checkpoint file; ``launcher``: mmengine's
    (``none``, ``pytorch``, ``slurm``, ``mpi``)."""
    cfg = _run_config(config, work_dir, cfg_options, launcher, local_rank)
    existed = osp.exists(cfg.work_dir)
    if resume is None and _checkpoints(cfg.work_dir):
        raise ConfigError(f'work dir {cfg.work_dir} already holds checkpoints ({_checkpoints(cfg.work_dir)[0]}); '
                          'continue it with --resume, or choose another --work-dir (nothing is overwritten)')
    if amp:
        import torch
        if not torch.cuda.is_available():
            raise ConfigError('--amp needs a CUDA device (mmengine AmpOptimWrapper); drop --amp on CPU')
        ow = cfg.optim_wrapper
        if ow.get('type', 'OptimWrapper') == 'AmpOptimWrapper':
            logging.getLogger(__name__).warning('AMP is already enabled in the config')
        else:
            ow.type = 'AmpOptimWrapper'
            ow.setdefault('loss_scale', 'dynamic')
    if auto_scale_lr:
        if 'auto_scale_lr' in cfg and 'base_batch_size' in cfg.auto_scale_lr:
            cfg.auto_scale_lr.enable = True
        else:
            raise ConfigError('--auto-scale-lr needs `auto_scale_lr = dict(base_batch_size=...)` in the config')
    _set_resume(cfg, resume)
    _check_and_fit(cfg, ('train_dataloader', 'val_dataloader') if cfg.get('val_cfg') else ('train_dataloader',))
    try:
        runner = _build_runner(cfg)
        runner.train()
    except BaseException:
        # a run that failed before its first checkpoint leaves no half-written work dir behind
        if not existed and osp.isdir(cfg.work_dir) and not _checkpoints(cfg.work_dir):
            shutil.rmtree(cfg.work_dir, ignore_errors=True)
        raise
    return runner


def _checkpoints(work_dir: str) -> List[str]:
    """Checkpoints (and mmengine's ``last_checkpoint`` pointer) already in a work dir."""
    if not osp.isdir(work_dir):
        return []
    found = sorted(glob.glob(osp.join(work_dir, '*.pth')))
    if osp.isfile(osp.join(work_dir, 'last_checkpoint')):
        found.append(osp.join(work_dir, 'last_checkpoint'))
    return found


def run_eval(config: str, checkpoint: str, work_dir: Optional[str] = None, out: Optional[str] = None,
             cfg_options: Optional[dict] = None, *, launcher: str = 'none', local_rank: int = 0) -> dict:
    """Evaluate ``checkpoint`` (a file or a det / seg manifest tag) on the config's test set; returns the metrics
    (also written to work_dir/metrics.json); ``out``: a .pkl file for the raw predictions."""
    cfg = _run_config(config, work_dir, cfg_options, launcher, local_rank)
    checkpoint = _dense_weights(cfg, checkpoint)
    if not osp.isfile(checkpoint) and not _is_remote(checkpoint):
        raise ConfigError(f'checkpoint {checkpoint} does not exist')
    _check_and_fit(cfg, ('test_dataloader',))
    cfg.load_from = checkpoint
    cfg.resume = False
    if out:
        if not out.endswith(('.pkl', '.pickle')):
            raise ConfigError('--out must be a .pkl/.pickle file')
        if osp.exists(out):
            raise ConfigError(f'--out {out} already exists (nothing is overwritten); remove it or choose another')
        dump = dict(type='DumpDetResults' if cfg.get('default_scope') == 'mmdet' else 'DumpResults',
                    out_file_path=out)
        ev = cfg.test_evaluator
        cfg.test_evaluator = (list(ev) if isinstance(ev, (list, tuple)) else [ev]) + [dump]
    runner = _build_runner(cfg)
    metrics = runner.test()
    metrics = {k: (float(v) if isinstance(v, (int, float)) or hasattr(v, 'item') else v) for k, v in metrics.items()}
    from mmengine.dist import is_main_process
    if is_main_process():
        os.makedirs(cfg.work_dir, exist_ok=True)
        path = osp.join(cfg.work_dir, 'metrics.json')
        with open(path + '.tmp', 'w') as f:  # written whole, then renamed: never a half-written metrics.json
            json.dump(dict(config=config, checkpoint=checkpoint, metrics=metrics), f, indent=2, default=str)
        os.replace(path + '.tmp', path)
    return metrics
