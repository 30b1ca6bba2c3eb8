"""Train / evaluate mmdetection 3.x and mmsegmentation 1.x configs on mmengine's Runner.

``tools/train.py`` and ``tools/eval.py`` dispatch ``.py`` (mmengine) configs here with mmdet-style arguments::

    tools/train.py CONFIG [--work-dir DIR] [--amp] [--auto-scale-lr] [--resume [CKPT]] [--cfg-options k=v ...]
                          [--launcher none|pytorch|slurm|mpi]
    tools/eval.py  CONFIG CHECKPOINT [--work-dir DIR] [--out preds.pkl] [--cfg-options k=v ...] [--launcher ...]

Multi-process: ``torchrun --nproc_per_node=N tools/train.py CONFIG --launcher pytorch``.

Multi-process on CPU-only machines works too: gloo instead of nccl, the process group is started here (mmengine's
``init_dist`` calls ``torch.cuda.set_device``), DDP without ``device_ids`` and plain BN instead of SyncBN.

Before the Runner is built the config is checked, so that a bad config fails with one clear message before any
training step: the backbone must name a known zoo/timm model, and every dataset path (``data_root``, ``ann_file``,
``data_prefix`` folders, evaluator ``ann_file``) must exist. Out-of-range ``out_indices`` are reported by
``ZooBackbone`` while the Runner builds the model (also before training). ``main_train`` / ``main_eval`` print these
as ``error: ...`` and return exit code 2.

A config may ask for generated data with ``zoo_data = dict(generator='shapes', task='detection'|'segmentation',
root=..., n_train=..., n_val=..., size=..., seed=..., max_objects=...)``: it is generated (once, cached) before the
path checks. The ``configs/*/*_shapes.py`` configs use this.

``CONFIG`` is a file or a packaged config by name, ``zoo::det/<file>.py`` (see :mod:`zoo.mm.configs`); a
``configs/...`` path that does not exist under the current folder is looked up among the packaged configs too.

Errors follow the zoo tools' convention (``zoo.cli.run``): a user mistake prints one ``error: ...`` line and exits
with status 2, without a traceback (``--debug`` shows it). Nothing is overwritten: training into a work dir that
already holds checkpoints needs ``--resume`` (or another ``--work-dir``); a work dir this run created is removed
again when the run fails before its first checkpoint; ``--out`` refuses an existing file; ``metrics.json`` is
written atomically.
"""
import argparse
import glob
import json
import logging
import os
import os.path as osp
import shutil
from typing import List, Optional, Sequence

from ..cli import ArgumentParser, config_path
from ..cli import run as _run_cli
from ..errors import UserError
from .backbone import ConfigError  # also raised by ZooBackbone for bad backbone arguments

__all__ = ['main_train', 'main_eval', 'run_train', 'run_eval', 'load_config', 'check_config', 'prepare_data',
           'ConfigError']


# ------------------------------------------------------------------------------------------------------- arguments
class MissingPackageError(UserError, ImportError):
    """A package the config needs is not installed (the message says how to install it)."""


def _train_parser() -> argparse.ArgumentParser:
    p = ArgumentParser(prog='tools/train.py', description='Train an mmdet/mmseg config (mmengine Runner)')
    p.add_argument('config', help='config file (.py), or a packaged config by name: zoo::det/<file>.py')
    p.add_argument('--work-dir', help='folder for logs and checkpoints (default ./work_dirs/<config name>)')
    p.add_argument('--amp', action='store_true', help='automatic mixed precision (AmpOptimWrapper, needs CUDA)')
    p.add_argument('--auto-scale-lr', action='store_true', help='scale the lr by total batch / base_batch_size')
    p.add_argument('--resume', nargs='?', type=str, const='auto',
                   help='resume from CKPT, or from the latest checkpoint in the work dir when no CKPT is given')
    p.add_argument('--cfg-options', nargs='+', action=_DictAction, default={},
                   help='override config entries, e.g. model.backbone.drop_path_rate=0.2 train_dataloader.batch_size=4')
    p.add_argument('--launcher', choices=['none', 'pytorch', 'slurm', 'mpi'], default='none')
    p.add_argument('--local_rank', '--local-rank', type=int, default=0)
    return p


def _eval_parser() -> argparse.ArgumentParser:
    p = ArgumentParser(prog='tools/eval.py', description='Evaluate an mmdet/mmseg checkpoint (mmengine Runner)')
    p.add_argument('config', help='config file (.py), or a packaged config by name: zoo::seg/<file>.py')
    p.add_argument('checkpoint', help='checkpoint file (.pth) written by tools/train.py, or a det / seg manifest tag '
                   '(the authors\' file, downloaded and converted once)')
    p.add_argument('--work-dir', help='folder for the evaluation log and metrics.json')
    p.add_argument('--out', help='also dump the raw predictions to this .pkl file')
    p.add_argument('--cfg-options', nargs='+', action=_DictAction, default={})
    p.add_argument('--launcher', choices=['none', 'pytorch', 'slurm', 'mpi'], default='none')
    p.add_argument('--local_rank', '--local-rank', type=int, default=0)
    return p


class _DictAction(argparse.Action):
    """``key=value`` pairs parsed like mmengine's DictAction (imported lazily so --help works without mmengine)."""

    def __call__(self, parser, namespace, values, option_string=None):
        from mmengine.config import DictAction
        DictAction(self.option_strings, self.dest)(parser, namespace, values, option_string)


# ---------------------------------------------------------------------------------------------------------- config
def _import_stack(cfg) -> None:
    """Import zoo.mm (registers ZooBackbone) and the packages the config's scope needs, with clear errors."""
    from . import require
    scope = cfg.get('default_scope', None)
    if scope == 'mmdet':
        require('mmcv', 'mmcv._ext', 'mmdet', 'pycocotools')
    elif scope == 'mmseg':
        require('mmcv', 'mmcv._ext', 'mmseg')


def load_config(config: str, cfg_options: Optional[dict] = None):
    """The mmengine Config of a file or a packaged config name (``zoo::det/<file>.py``)."""
    from . import require
    require('mmengine')
    try:
        config = config_path(config)
    except FileNotFoundError as e:
        raise ConfigError(str(e)) from None
    if not osp.isfile(config):
        raise ConfigError(f'config file {config} does not exist')
    with open(config, encoding='utf-8') as f:
        text = f.read()
    for scope in ('mmdet', 'mmseg'):  # `_base_ = 'mmdet::...'` reads the configs shipped inside the package
        if f'{scope}::' in text:
            require(scope)
    from mmengine.config import Config

    from .configs import enable_zoo_bases
    enable_zoo_bases()  # `_base_ = 'zoo::det/...'` in a user's config
    cfg = Config.fromfile(config)
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    _import_stack(cfg)
    return cfg


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


def _run_config(args):
    """The config a train / eval command runs: ``--cfg-options``, ``--launcher`` and the work dir applied (and
    ``LOCAL_RANK`` set for mmengine when no launcher set it)."""
    if 'LOCAL_RANK' not in os.environ:
        os.environ['LOCAL_RANK'] = str(args.local_rank)
    cfg = load_config(args.config, args.cfg_options)
    cfg.load_from = _dense_weights(cfg, cfg.get('load_from'))
    cfg.launcher = args.launcher
    cfg.work_dir = _work_dir(cfg, args.work_dir, args.config)
    return cfg


def _check_and_fit(cfg, args, loaders: Sequence[str]) -> None:
    """Check the config (generating its data), then fit it to this machine and its data loaders."""
    check_config(cfg, loaders, generate=True)
    _adapt_to_machine(cfg, args.launcher != 'none')
    _fix_loaders(cfg)


def run_train(argv: Optional[List[str]] = None):
    """Train; returns the mmengine Runner after ``runner.train()`` (``main_train`` is the CLI wrapper)."""
    args = _train_parser().parse_args(argv)
    cfg = _run_config(args)
    existed = osp.exists(cfg.work_dir)
    if args.resume is None and _checkpoints(cfg.work_dir):
        raise ConfigError(f'work dir {cfg.work_dir} already holds checkpoints ({_checkpoints(cfg.work_dir)[0]}); '
                          'continue it with --resume, or choose another --work-dir (nothing is overwritten)')
    if args.amp:
        import torch
        if not torch.cuda.is_available():
            raise ConfigError('--amp needs a CUDA device (mmengine AmpOptimWrapper); drop --amp on CPU')
        ow = cfg.optim_wrapper
        if ow.get('type', 'OptimWrapper') == 'AmpOptimWrapper':
            logging.getLogger(__name__).warning('AMP is already enabled in the config')
        else:
            ow.type = 'AmpOptimWrapper'
            ow.setdefault('loss_scale', 'dynamic')
    if args.auto_scale_lr:
        if 'auto_scale_lr' in cfg and 'base_batch_size' in cfg.auto_scale_lr:
            cfg.auto_scale_lr.enable = True
        else:
            raise ConfigError('--auto-scale-lr needs `auto_scale_lr = dict(base_batch_size=...)` in the config')
    if args.resume == 'auto':
        cfg.resume = True
        cfg.load_from = None
    elif args.resume is not None:
        if not osp.isfile(args.resume):
            raise ConfigError(f'--resume {args.resume}: checkpoint file does not exist')
        cfg.resume = True
        cfg.load_from = args.resume
    _check_and_fit(cfg, args, ('train_dataloader', 'val_dataloader') if cfg.get('val_cfg') else ('train_dataloader',))
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


def run_eval(argv: Optional[List[str]] = None) -> dict:
    """Evaluate a checkpoint on the config's test set; returns the metrics (also written to work_dir/metrics.json)."""
    args = _eval_parser().parse_args(argv)
    cfg = _run_config(args)
    args.checkpoint = _dense_weights(cfg, args.checkpoint)
    if not osp.isfile(args.checkpoint) and not _is_remote(args.checkpoint):
        raise ConfigError(f'checkpoint {args.checkpoint} does not exist')
    _check_and_fit(cfg, args, ('test_dataloader',))
    cfg.load_from = args.checkpoint
    cfg.resume = False
    if args.out:
        if not args.out.endswith(('.pkl', '.pickle')):
            raise ConfigError('--out must be a .pkl/.pickle file')
        if osp.exists(args.out):
            raise ConfigError(f'--out {args.out} already exists (nothing is overwritten); remove it or choose another')
        dump = dict(type='DumpDetResults' if cfg.get('default_scope') == 'mmdet' else 'DumpResults',
                    out_file_path=args.out)
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
            json.dump(dict(config=args.config, checkpoint=args.checkpoint, metrics=metrics), f, indent=2, default=str)
        os.replace(path + '.tmp', path)
    return metrics


def _user_errors(fn, argv):
    """Run ``fn(argv)``; a missing package (``zoo.mm.require``) becomes a user error like a bad config."""
    try:
        return fn(argv)
    except ImportError as e:
        if isinstance(e, UserError) or not str(e).startswith('zoo.mm: missing package'):
            raise
        raise MissingPackageError(str(e)) from None


def _main_train(argv: List[str]) -> int:
    _user_errors(run_train, argv)
    return 0


def _main_eval(argv: List[str]) -> int:
    metrics = _user_errors(run_eval, argv)
    print(json.dumps(metrics, indent=2, default=str))
    return 0


def main_train(argv: Optional[List[str]] = None) -> int:
    """CLI entry (``tools/train.py CONFIG ...``); returns the exit code: 0, or 2 with one ``error: ...`` line for a
    user mistake (bad config, missing file or package, existing checkpoints without --resume)."""
    return _run_cli(_main_train, argv)


def main_eval(argv: Optional[List[str]] = None) -> int:
    """CLI entry (``tools/eval.py CONFIG CHECKPOINT ...``); prints the metrics, returns the exit code (0 or 2)."""
    return _run_cli(_main_eval, argv)


if __name__ == '__main__':  # python -m zoo.mm.runner {train,eval} ...
    import sys
    if len(sys.argv) < 2 or sys.argv[1] not in ('train', 'eval'):
        print('error: usage: python -m zoo.mm.runner {train,eval} CONFIG ...', file=sys.stderr)
        sys.exit(2)
    sys.exit(main_train(sys.argv[2:]) if sys.argv[1] == 'train' else main_eval(sys.argv[2:]))
