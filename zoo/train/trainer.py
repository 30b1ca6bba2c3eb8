"""The classification training run behind ``tools/train.py``.

``Trainer(cfg).fit()`` (or ``train(cfg)``) builds data, model, optimiser and scheduler from a config
(``zoo.train.config``), trains with ``engine.train_one_epoch``, validates, and writes into the run folder:

* ``last.pth`` every epoch and ``best.pth`` (by ``eval_metric``), written atomically (temp file + ``os.replace``);
  ``checkpoint-<epoch>.pth`` for the last ``checkpoint_hist`` epochs when asked;
* ``summary.csv`` (one row per epoch), ``tb/`` TensorBoard events (if tensorboard is installed), ``log.txt``,
  ``config.yaml`` (the resolved config) and ``results.json`` (final metrics; ``status`` is ``'ok'``, or
  ``'non_finite_loss'`` when the loss became NaN/inf, in which case the last good checkpoint is left untouched).

Checkpoints hold model, optimiser, scheduler, GradScaler and EMA states, the epoch, the update count, the history,
and every rank's RNG states (python / numpy / torch / CUDA), all as tensors and plain types, so they load with
``torch.load(weights_only=True)``. The data order and augmentation seeds of an epoch are derived from
``(seed, rank, epoch)``, so ``resume`` continues exactly as an uninterrupted run. Checkpoints are also loadable by
timm (``create_model(..., checkpoint_path=...)`` / ``pretrained_cfg_overlay=dict(file=...)``: keys ``state_dict``,
``state_dict_ema``).
"""
import csv
import io
import json
import logging
import math
import os
import sys
import time
from pathlib import Path
from typing import Any, Dict, List, Optional

import torch
import torch.nn as nn
import yaml
from torch.utils.data import DataLoader, DistributedSampler, get_worker_info

from .config import ConfigError, validate_config
from .engine import (CorruptTracker, NonFiniteLossError, ShardSampler, TrainState, build_loss, build_mixup,
                     build_optimizer, evaluate, resolve_lr, train_one_epoch)
from .utils import (DistInfo, all_gather_object, atomic_copy, atomic_torch_save, barrier, broadcast_object,
                    capture_rng_state, derive_seed, init_distributed, is_primary, load_checkpoint_file,
                    resolve_amp_dtype, restore_rng_state, seed_everything, setup_logging, state_dict_from_checkpoint,
                    unwrap_model, TrainCheckpointError)

__all__ = ['Trainer', 'train', 'build_datasets', 'load_initial_checkpoint', 'CHECKPOINT_VERSION']

_logger = logging.getLogger('zoo.train')
CHECKPOINT_VERSION = 1


def _worker_init(worker_id: int) -> None:
    """Each DataLoader worker re-seeds its copy of the albumentations pipeline from its torch seed (which comes
    from the loader's generator, itself seeded per epoch). Threads: torch already runs workers single-threaded and
    zoo.data switches OpenCV's thread pool off before any fork (calling into it in a forked child can deadlock)."""
    info = get_worker_info()
    ds = info.dataset
    if hasattr(ds, 'set_transform_seed'):
        ds.set_transform_seed(info.seed)


def _shapes_data(cfg: Dict[str, Any]):
    from zoo.data.shapes import make_classification
    root = cfg['data_dir'] or None
    return make_classification(root, n_train=cfg['shapes_train'], n_val=cfg['shapes_val'], size=cfg['shapes_size'],
                               seed=cfg['shapes_seed'])


def resolve_dataset(cfg: Dict[str, Any]) -> Dict[str, Any]:
    """The config with its data source made explicit: ``dataset: shapes`` (the default) with a ``data_dir`` that is
    an existing ImageFolder tree (``data_dir/train/<class>/...`` and ``val/``, or ``data_dir/<class>/...``) and not
    a shapes cache becomes ``dataset: folder`` with the splits found there; ``dataset: folder`` without
    ``data_dir/<train_split>`` but with class folders directly trains on them (no validation). Raises
    ``DatasetError`` for a missing folder, a file, or a folder that is not an image folder."""
    from zoo.data.datasets import DatasetError, image_folder_splits, is_shapes_folder
    cfg = dict(cfg)
    root = Path(cfg['data_dir']).expanduser() if cfg['data_dir'] else None
    note = ''
    if cfg['dataset'] == 'shapes' and root is not None and root.exists() and not is_shapes_folder(root):
        if root.is_dir() and not any(root.iterdir()):
            return cfg  # an empty folder: the shapes set is generated there
        splits = image_folder_splits(root, cfg['train_split'], cfg['val_split'])
        if splits is None:
            raise DatasetError(f'data_dir {root} is neither an image folder ({root}/<class>/<images> or '
                               f'{root}/train/<class>/<images>) nor a shapes dataset; for a CSV/JSON list of images '
                               f'use dataset list')
        cfg.update(dataset='folder', train_split=splits[0], val_split=splits[1])
        note = f'data_dir {root} is an image folder: dataset folder'
    elif cfg['dataset'] == 'folder' and root is not None:
        if not (cfg['train_split'] and (root / cfg['train_split']).is_dir()):
            splits = image_folder_splits(root, cfg['train_split'], cfg['val_split'])
            if splits is None:
                raise DatasetError(f'{root} has no {cfg["train_split"] or "class"} folder (expected '
                                   f'{root}/{cfg["train_split"] or "train"}/<class>/<images> or {root}/<class>/<images>)')
            if splits != (cfg['train_split'], cfg['val_split']):
                cfg.update(train_split=splits[0], val_split=splits[1])
                note = f'data_dir {root}: training on {root / splits[0]}'
    if note:
        note += (f', train split {cfg["train_split"]!r}, ' + (f'validation split {cfg["val_split"]!r}'
                                                             if cfg['val_split'] else 'no validation split'))
        _logger.info(note)
    return cfg


def build_datasets(cfg: Dict[str, Any], dist: Optional[DistInfo] = None):
    """(train_dataset, val_dataset or None, class_names) without transforms; validates classes up front.

    The generated shapes set is written by rank 0 first (others wait), then reused from the cache.
    """
    from zoo.data.datasets import DatasetError, ImageFolderDataset, ImageListDataset
    dist = dist or DistInfo()
    kind = cfg['dataset']
    classes = cfg.get('class_names')
    if kind == 'shapes':
        if is_primary(dist):
            data = _shapes_data(cfg)
        barrier(dist)
        if not is_primary(dist):
            data = _shapes_data(cfg)
        train_ds = ImageFolderDataset(data.train_dir, classes=classes or list(data.classes), corrupt=cfg['corrupt'])
        val_ds = ImageFolderDataset(data.val_dir, classes=train_ds.classes, corrupt=cfg['corrupt'])
        return train_ds, val_ds, train_ds.classes
    if kind == 'folder':
        root = Path(cfg['data_dir']).expanduser()
        train_dir = root / cfg['train_split'] if cfg['train_split'] else root
        train_ds = ImageFolderDataset(train_dir, classes=classes, corrupt=cfg['corrupt'])
        val_ds = None
        if cfg['val_split']:
            val_dir = root / cfg['val_split']
            if not val_dir.is_dir():
                raise DatasetError(f'validation folder {val_dir} does not exist (set val_split to "" to train '
                                   f'without validation)')
            val_ds = ImageFolderDataset(val_dir, classes=train_ds.classes, corrupt=cfg['corrupt'])
        return train_ds, val_ds, train_ds.classes
    root = cfg['data_dir'] or None
    train_ds = ImageListDataset(cfg['train_list'], root=root, classes=classes, corrupt=cfg['corrupt'])
    val_ds = None
    if cfg['val_list']:
        val_ds = ImageListDataset(cfg['val_list'], root=root, classes=train_ds.classes, corrupt=cfg['corrupt'])
    return train_ds, val_ds, train_ds.classes


def _pair(size) -> tuple:
    return (int(size), int(size)) if isinstance(size, (int, float)) else tuple(int(s) for s in size)


def _classifier_names(model: nn.Module) -> List[str]:
    clf = (getattr(model, 'pretrained_cfg', None) or {}).get('classifier') or []
    return [clf] if isinstance(clf, str) else list(clf)


def load_initial_checkpoint(model: nn.Module, path: str, use_ema: bool = True) -> List[str]:
    """Load weights for fine-tuning: classifier tensors whose shape differs (another class count) are skipped and
    left freshly initialised; any other missing / unexpected / mis-shaped tensor raises naming them.
    Returns the skipped keys."""
    sd = dict(state_dict_from_checkpoint(load_checkpoint_file(path), use_ema=use_ema, source=path))
    own = model.state_dict()
    heads = _classifier_names(model)
    skipped = [k for k, v in sd.items() if k in own and own[k].shape != v.shape
               and any(k == h or k.startswith(h + '.') for h in heads)]
    for k in skipped:
        del sd[k]
    wrong = [f'{k}: checkpoint {tuple(v.shape)} vs model {tuple(own[k].shape)}' for k, v in sd.items()
             if k in own and own[k].shape != v.shape]
    missing = [k for k in own if k not in sd and k not in skipped]
    unexpected = [k for k in sd if k not in own]
    if wrong or missing or unexpected:
        raise TrainCheckpointError(f'initial checkpoint {path} does not fit the model: '
                           + '; '.join(f'{n}: {v[:8]}{" ..." if len(v) > 8 else ""}' for n, v in
                                       (('missing', missing), ('unexpected', unexpected), ('wrong shape', wrong)) if v))
    model.load_state_dict(sd, strict=False)
    if skipped:
        _logger.info(f'initial checkpoint: kept the new classifier ({", ".join(skipped)} differ in shape)')
    return skipped


class _Writers:
    """summary.csv (rewritten from the history each epoch), TensorBoard (optional)."""

    def __init__(self, out_dir: Path, enable_tb: bool, purge_step: Optional[int]):
        self.out_dir = out_dir
        self.tb = None
        if enable_tb:
            try:
                from torch.utils.tensorboard import SummaryWriter
                self.tb = SummaryWriter(log_dir=str(out_dir / 'tb'), purge_step=purge_step)
            except Exception as e:  # tensorboard not installed (optional extra zoo[tb])
                _logger.info(f'TensorBoard logging off ({type(e).__name__}: {e})')

    def scalars(self, prefix: str, values: Dict[str, Any], step: int) -> None:
        if self.tb is None:
            return
        for k, v in values.items():
            if isinstance(v, (int, float)) and v is not None and not isinstance(v, bool):
                self.tb.add_scalar(f'{prefix}/{k}', v, step)

    def summary(self, history: List[Dict[str, Any]]) -> None:
        if not history:
            return
        cols = list(history[0].keys())
        for row in history[1:]:
            cols += [k for k in row if k not in cols]
        buf = io.StringIO()
        w = csv.DictWriter(buf, fieldnames=cols)
        w.writeheader()
        for row in history:
            w.writerow({k: (f'{v:.6g}' if isinstance(v, float) else v) for k, v in row.items()})
        tmp = self.out_dir / '.summary.csv.tmp'
        tmp.write_text(buf.getvalue())
        os.replace(tmp, self.out_dir / 'summary.csv')

    def close(self):
        if self.tb is not None:
            self.tb.close()


def _json_default(o):
    if isinstance(o, Path):
        return str(o)
    if isinstance(o, torch.Tensor):
        return o.tolist()
    return str(o)


def _write_json(path: Path, obj: Any) -> None:
    tmp = path.with_name('.' + path.name + '.tmp')
    tmp.write_text(json.dumps(obj, indent=2, default=_json_default))
    os.replace(tmp, path)


class Trainer:
    """One training run. ``setup()`` builds everything (hooks may then adjust ``self.model``), ``fit()`` trains.

    ``fit()`` returns the results dict (also written to ``results.json``); a non-finite loss ends the run with
    ``results['status'] == 'non_finite_loss'`` (``raise_on_nan=True`` re-raises ``NonFiniteLossError``).
    """

    def __init__(self, cfg: Dict[str, Any]):
        self.cfg = validate_config(dict(cfg))
        self._is_setup = False

    # ------------------------------------------------------------------ set-up
    def setup(self) -> 'Trainer':
        """Everything the user can get wrong (model name, data, class count, weights) is checked before the run
        folder is created, so a mistake leaves no folder behind and never touches an existing run."""
        from zoo.errors import check_model_name
        cfg = self.cfg
        check_model_name(cfg['model'])
        self.dist = init_distributed(cfg['device'])
        dist = self.dist
        setup_logging(dist.rank, None)
        self.cfg = cfg = resolve_dataset(cfg)
        seed_everything(cfg['seed'] + dist.rank)
        self.corrupt = CorruptTracker(log=True)

        # data (classes checked before anything else)
        from zoo.data.transforms import create_eval_transform, create_train_transform, resolve_data_cfg
        self.train_ds, self.val_ds, self.class_names = build_datasets(cfg, dist)
        num_classes = len(self.class_names)
        if cfg['num_classes'] is not None and cfg['num_classes'] != num_classes:
            raise ConfigError(f'num_classes={cfg["num_classes"]} but the training data has {num_classes} classes '
                              f'{self.class_names}')
        self.num_classes = num_classes

        # model
        import timm
        kwargs = dict(cfg['model_kwargs'] or {})
        if cfg['drop_rate']:
            kwargs['drop_rate'] = cfg['drop_rate']
        if cfg['drop_path_rate'] is not None:
            kwargs['drop_path_rate'] = cfg['drop_path_rate']
        img_size = tuple(cfg['input_size'][-2:]) if cfg['input_size'] else cfg['img_size']
        pretrained = bool(cfg['pretrained'] or cfg['pretrained_path'])
        if cfg['pretrained_path']:
            if not Path(cfg['pretrained_path']).expanduser().is_file():
                raise FileNotFoundError(f'pretrained_path {cfg["pretrained_path"]} does not exist')
            kwargs['pretrained_cfg_overlay'] = dict(file=str(Path(cfg['pretrained_path']).expanduser()))
        model = timm.create_model(cfg['model'], pretrained=pretrained, num_classes=num_classes, **kwargs)
        if (img_size and 'img_size' not in kwargs and model.pretrained_cfg.get('fixed_input_size')
                and tuple(model.pretrained_cfg['input_size'][-2:]) != _pair(img_size)):
            # a model built for one input size (e.g. absolute position embeddings): build it for the new size
            kwargs['img_size'] = _pair(img_size)
            model = timm.create_model(cfg['model'], pretrained=pretrained, num_classes=num_classes, **kwargs)
        self.model_kwargs = {k: v for k, v in kwargs.items()
                             if k not in ('drop_rate', 'drop_path_rate', 'pretrained_cfg_overlay')}
        if cfg['initial_checkpoint']:
            load_initial_checkpoint(model, cfg['initial_checkpoint'], use_ema=cfg['initial_checkpoint_ema'])

        # the run folder, once the inputs are known to be usable
        self.out_dir = self._resolve_out_dir()
        if is_primary(dist):
            self.out_dir.mkdir(parents=True, exist_ok=True)
        barrier(dist)
        setup_logging(dist.rank, self.out_dir / 'log.txt' if is_primary(dist) else None)
        if cfg['verify_images']:
            for ds, name in ((self.train_ds, 'train'), (self.val_ds, 'val')):
                if ds is not None:
                    bad = ds.scan_images(drop=True)
                    self.corrupt(bad)
                    if bad and is_primary(dist):
                        _logger.warning(f'{name}: dropped {len(bad)} unreadable images')
        if cfg['grad_checkpointing']:
            model.set_grad_checkpointing(True)
        self.arch = cfg['model']
        self.data_cfg = resolve_data_cfg(model, img_size=img_size, crop_pct=cfg['crop_pct'],
                                         interpolation=cfg['interpolation'] or None, mean=cfg['mean'], std=cfg['std'],
                                         crop_mode=cfg['crop_mode'])
        self.train_ds.transform = create_train_transform(
            self.data_cfg, scale=cfg['scale'], ratio=cfg['ratio'], hflip=cfg['hflip'], vflip=cfg['vflip'],
            color_jitter=cfg['color_jitter'], color_jitter_prob=cfg['color_jitter_prob'], auto_augment=cfg['aa'],
            re_prob=cfg['reprob'], seed=cfg['seed'])
        if self.val_ds is not None:
            self.val_ds.transform = create_eval_transform(self.data_cfg, seed=cfg['seed'])

        device = dist.device
        model.to(device)
        if cfg['channels_last']:
            model.to(memory_format=torch.channels_last)
        self.sync_bn = bool(dist.distributed and cfg['sync_bn'])
        if self.sync_bn and device.type == 'cpu':
            _logger.warning('sync_bn needs CUDA; on CPU the BatchNorm statistics are averaged over the ranks after '
                            'each epoch instead (dist_bn)')
            self.sync_bn = False
        if self.sync_bn:
            model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
        self.model = model
        self.param_count = sum(p.numel() for p in model.parameters())
        self._build_loaders()
        self._is_setup = True
        return self

    def _resolve_out_dir(self) -> Path:
        """``resume=<path>``: the checkpoint's folder. Otherwise ``output/<experiment>`` (default name
        ``<date>-<time>-<model>-<size>``); an existing run folder with checkpoints gets a ``-1``, ``-2``... suffix
        instead of being overwritten, except with ``resume=auto``, which continues in it."""
        cfg = self.cfg
        if cfg['resume'] and cfg['resume'] != 'auto':
            return Path(cfg['resume']).expanduser().resolve().parent
        out = None
        if is_primary(self.dist):
            name = cfg['experiment']
            if not name:
                size = cfg['img_size'] or (cfg['input_size'][-1] if cfg['input_size'] else '')
                safe = cfg['model'].replace('/', '_').replace(':', '_')
                name = '-'.join(str(p) for p in (time.strftime('%Y%m%d-%H%M%S'), safe, size) if p != '')
            base = Path(cfg['output']).expanduser()
            out = base / name
            if cfg['resume'] != 'auto':
                i = 0
                while (out / 'last.pth').exists():
                    i += 1
                    out = base / f'{name}-{i}'
            out = str(out)
        return Path(broadcast_object(out, self.dist))

    def _build_loaders(self) -> None:
        cfg, dist = self.cfg, self.dist
        from zoo.data.datasets import collate_skip_corrupt
        self.train_sampler = DistributedSampler(self.train_ds, num_replicas=dist.world_size, rank=dist.rank,
                                                shuffle=True, seed=cfg['seed'], drop_last=False)
        self.loader_gen = torch.Generator()
        per_rank = math.ceil(len(self.train_ds) / dist.world_size)
        common = dict(num_workers=cfg['workers'], collate_fn=collate_skip_corrupt, pin_memory=cfg['pin_memory'],
                      worker_init_fn=_worker_init, persistent_workers=False)
        self.train_loader = DataLoader(self.train_ds, batch_size=cfg['batch_size'], sampler=self.train_sampler,
                                       drop_last=per_rank >= cfg['batch_size'], generator=self.loader_gen, **common)
        self.val_loader = None
        if self.val_ds is not None:
            self.val_loader = DataLoader(self.val_ds, batch_size=cfg['val_batch_size'] or 2 * cfg['batch_size'],
                                         sampler=ShardSampler(len(self.val_ds), dist.rank, dist.world_size),
                                         generator=torch.Generator().manual_seed(cfg['seed']), **common)
        n = len(self.train_loader)
        self.steps_per_epoch = min(n, cfg['steps_per_epoch']) if cfg['steps_per_epoch'] else n
        if self.steps_per_epoch == 0:
            raise ConfigError(f'the training set ({len(self.train_ds)} images) gives no batches of '
                              f'{cfg["batch_size"]}')
        self.updates_per_epoch = math.ceil(self.steps_per_epoch / cfg['grad_accum_steps'])

    # ------------------------------------------------------------------ training
    def _build_optim(self):
        from timm.scheduler import create_scheduler_v2
        from timm.utils import ModelEmaV3
        cfg, dist = self.cfg, self.dist
        model = self.model
        self.optimizer = build_optimizer(model, cfg, dist.world_size)
        self.amp_dtype = resolve_amp_dtype(cfg['amp'], cfg['amp_dtype'], dist.device)
        self.scaler = (torch.amp.GradScaler('cuda') if self.amp_dtype == torch.float16 and dist.device.type == 'cuda'
                       else None)
        self.model_ema = (ModelEmaV3(model, decay=cfg['model_ema_decay'], use_warmup=cfg['model_ema_warmup'],
                                     device=dist.device) if cfg['model_ema'] else None)
        self.start_epoch, self.num_updates = 0, 0
        self.best_metric, self.best_epoch, self.history = None, None, []
        resume_state = self._load_resume()
        self.scheduler, self.num_epochs = create_scheduler_v2(
            self.optimizer, sched=cfg['sched'], num_epochs=cfg['epochs'], decay_epochs=cfg['decay_epochs'],
            decay_milestones=cfg['decay_milestones'], cooldown_epochs=cfg['cooldown_epochs'],
            patience_epochs=cfg['patience_epochs'], decay_rate=cfg['decay_rate'], min_lr=cfg['min_lr'],
            warmup_lr=cfg['warmup_lr'], warmup_epochs=cfg['warmup_epochs'], warmup_prefix=cfg['warmup_prefix'],
            plateau_mode='min' if cfg['eval_metric'] == 'loss' else 'max',
            step_on_epochs=not cfg['sched_on_updates'], updates_per_epoch=self.updates_per_epoch)
        if resume_state is not None and resume_state.get('scheduler') and self.scheduler is not None:
            self.scheduler.load_state_dict(resume_state['scheduler'])
        if self.scheduler is not None and self.start_epoch > 0:
            if cfg['sched_on_updates']:
                self.scheduler.step_update(self.num_updates)
            else:
                self.scheduler.step(self.start_epoch)
        # wrappers last (as timm's train.py): DDP, then torch.compile
        run_model = model
        if dist.distributed:
            from torch.nn.parallel import DistributedDataParallel as DDP
            run_model = (DDP(run_model, device_ids=[dist.device]) if dist.device.type == 'cuda'
                         else DDP(run_model))  # CPU/gloo: no device_ids
        if cfg['torchcompile']:
            run_model = torch.compile(run_model, backend=cfg['torchcompile'])
        mixup_fn = build_mixup(cfg, self.num_classes)
        self.state = TrainState(
            model=run_model, optimizer=self.optimizer, loss_fn=build_loss(cfg, mixup_fn is not None).to(dist.device),
            device=dist.device, scheduler=self.scheduler, mixup_fn=mixup_fn, model_ema=self.model_ema,
            scaler=self.scaler, amp_dtype=self.amp_dtype, channels_last=cfg['channels_last'],
            grad_accum_steps=cfg['grad_accum_steps'], clip_grad=cfg['clip_grad'], clip_mode=cfg['clip_mode'],
            num_updates=self.num_updates, dist=dist)
        return resume_state

    def _resume_path(self) -> Optional[Path]:
        r = self.cfg['resume']
        if not r:
            return None
        if r == 'auto':
            p = self.out_dir / 'last.pth'
            return p if p.is_file() else None
        return Path(r).expanduser()

    def _load_resume(self) -> Optional[Dict[str, Any]]:
        path = self._resume_path()
        if path is None:
            if self.cfg['resume'] == 'auto':
                _logger.info(f'resume=auto: no {self.out_dir / "last.pth"}, starting from scratch')
            return None
        ckpt = load_checkpoint_file(path, map_location='cpu')
        model = self.model
        model.load_state_dict(ckpt['state_dict'])
        if self.model_ema is not None and ckpt.get('state_dict_ema') is not None:
            self.model_ema.module.load_state_dict(ckpt['state_dict_ema'])
        if self.cfg['no_resume_opt']:
            _logger.info(f'resumed weights from {path} (optimizer/schedule restarted)')
            return None
        self.optimizer.load_state_dict(ckpt['optimizer'])
        if self.scaler is not None and ckpt.get('scaler'):
            self.scaler.load_state_dict(ckpt['scaler'])
        self.start_epoch = int(ckpt['epoch']) + 1
        self.num_updates = int(ckpt.get('num_updates', 0))
        self.best_metric, self.best_epoch = ckpt.get('best_metric'), ckpt.get('best_epoch')
        self.history = list(ckpt.get('history', []))
        if ckpt.get('class_names') and list(ckpt['class_names']) != list(self.class_names):
            raise ConfigError(f'resume: the checkpoint was trained on classes {ckpt["class_names"]}, the data has '
                             f'{self.class_names}')
        rng = ckpt.get('rng') or []
        if len(rng) == self.dist.world_size:
            self._resume_rng = rng[self.dist.rank]
        else:
            _logger.warning(f'resume: checkpoint has RNG states for {len(rng)} ranks, running {self.dist.world_size}; '
                            f'RNG re-seeded (the run will not repeat the original exactly)')
            self._resume_rng = None
        _logger.info(f'resumed from {path} at epoch {self.start_epoch} ({self.num_updates} updates)')
        return ckpt

    def _checkpoint(self, epoch: int, metric: Optional[float], rng_all: List[Any]) -> Dict[str, Any]:
        return {
            'version': CHECKPOINT_VERSION, 'epoch': epoch, 'arch': self.arch,
            'state_dict': unwrap_model(self.model).state_dict(),
            'state_dict_ema': self.model_ema.module.state_dict() if self.model_ema is not None else None,
            'optimizer': self.optimizer.state_dict(),
            'scheduler': self.scheduler.state_dict() if self.scheduler is not None else None,
            'scaler': self.scaler.state_dict() if self.scaler is not None else None,
            'num_updates': self.state.num_updates, 'metric': metric, 'best_metric': self.best_metric,
            'best_epoch': self.best_epoch, 'history': self.history, 'rng': rng_all,
            'class_names': list(self.class_names), 'num_classes': self.num_classes,
            'model_kwargs': {k: (list(v) if isinstance(v, tuple) else v) for k, v in self.model_kwargs.items()},
            'data_cfg': {k: (list(v) if isinstance(v, tuple) else v) for k, v in self.data_cfg.items()},
            'config': self.cfg, 'world_size': self.dist.world_size,
        }

    def _is_better(self, metric: Optional[float]) -> bool:
        if metric is None:
            return False
        if self.best_metric is None:
            return True
        return metric < self.best_metric if self.cfg['eval_metric'] == 'loss' else metric > self.best_metric

    def _progress_mode(self) -> str:
        mode = self.cfg['progress']
        if mode == 'auto':
            mode = 'bar' if sys.stderr.isatty() else 'log'
        return mode

    def fit(self, raise_on_nan: bool = False) -> Dict[str, Any]:
        if not self._is_setup:
            self.setup()
        cfg, dist = self.cfg, self.dist
        self._resume_rng = None
        self._build_optim()
        primary = is_primary(dist)
        if primary:
            (self.out_dir / 'config.yaml').write_text(yaml.safe_dump(cfg, sort_keys=False))
        writers = _Writers(self.out_dir, cfg['tensorboard'] and primary,
                           purge_step=self.num_updates if self.start_epoch > 0 else None) if primary else None
        if primary:
            _logger.info(
                f'model {self.arch}: {self.param_count / 1e6:.2f}M params, {self.num_classes} classes; '
                f'data {cfg["dataset"]}: {len(self.train_ds)} train / {len(self.val_ds) if self.val_ds else 0} val '
                f'images; input {self.data_cfg["input_size"]}, crop_pct {self.data_cfg["crop_pct"]}, '
                f'{self.data_cfg["interpolation"]}; lr {resolve_lr(cfg, dist.world_size):.3g} ({cfg["opt"]}, '
                f'{cfg["sched"]}); batch {cfg["batch_size"]} x {dist.world_size} rank(s) x {cfg["grad_accum_steps"]} '
                f'accum; amp {self.amp_dtype}; device {dist.device}; output {self.out_dir}')
        if self._resume_rng is not None:
            restore_rng_state(self._resume_rng)
        status, message = 'ok', ''
        t_start = time.time()
        bar_mode = self._progress_mode() == 'bar' and primary
        last_eval: Dict[str, Any] = {}
        epoch = self.start_epoch
        try:
            for epoch in range(self.start_epoch, self.num_epochs):
                self._seed_epoch(epoch)
                progress = None
                if bar_mode:
                    from tqdm import tqdm
                    progress = tqdm(total=self.steps_per_epoch, desc=f'epoch {epoch + 1}/{self.num_epochs}',
                                    dynamic_ncols=True, leave=False)

                def on_log(info, _w=writers):
                    if _w is not None:
                        _w.scalars('train', dict(loss=info['loss'], lr=info['lr'],
                                                 images_per_s=info['images_per_s']), info['global_step'])
                try:
                    tr = train_one_epoch(self.state, self.train_loader, epoch, num_steps=self.steps_per_epoch,
                                         log_interval=cfg['log_interval'], on_corrupt=self.corrupt, progress=progress,
                                         on_log=on_log)
                finally:
                    if progress is not None:
                        progress.close()
                if dist.distributed and (cfg['dist_bn'] or cfg['sync_bn']) and not self.sync_bn:
                    from timm.utils import distribute_bn
                    distribute_bn(unwrap_model(self.model), dist.world_size, cfg['dist_bn'] != 'broadcast')
                row = dict(epoch=epoch + 1, train_loss=tr['loss'], lr=tr['lr'], train_images_per_s=tr['images_per_s'],
                           epoch_time_s=tr['seconds'])
                metric = None
                if self.val_loader is not None and ((epoch + 1) % cfg['val_interval'] == 0
                                                    or epoch + 1 == self.num_epochs):
                    ev = self._evaluate(self.model)
                    row.update(eval_loss=ev['loss'], eval_top1=ev['top1'], eval_top5=ev['top5'])
                    last_eval = dict(ev)
                    if self.model_ema is not None:
                        ev_ema = self._evaluate(self.model_ema.module, desc='eval (EMA)')
                        row.update(ema_eval_loss=ev_ema['loss'], ema_eval_top1=ev_ema['top1'],
                                   ema_eval_top5=ev_ema['top5'])
                        last_eval['ema'] = ev_ema
                        metric = ev_ema[cfg['eval_metric']]
                    else:
                        metric = ev[cfg['eval_metric']]
                elif self.val_loader is None:
                    metric = -tr['loss'] if cfg['eval_metric'] != 'loss' else tr['loss']
                if self.scheduler is not None:
                    self.scheduler.step(epoch + 1, metric)
                is_best = self._is_better(metric)
                if is_best:
                    self.best_metric, self.best_epoch = metric, epoch + 1
                row['n_corrupt'] = self.corrupt.count
                self.history.append(row)
                self._save(epoch, metric, is_best)
                if primary:
                    msg = (f'epoch {epoch + 1}/{self.num_epochs}: train loss {tr["loss"]:.4f}, '
                           f'{tr["images_per_s"]:.1f} img/s, {tr["seconds"]:.1f}s')
                    if 'eval_top1' in row:
                        msg += (f'; val loss {row["eval_loss"]:.4f} top1 {row["eval_top1"]:.2f} '
                                f'top5 {row["eval_top5"]:.2f}')
                    if 'ema_eval_top1' in row:
                        msg += f' (EMA top1 {row["ema_eval_top1"]:.2f})'
                    _logger.info(msg + (' *best*' if is_best else ''))
                    writers.summary(self.history)
                    writers.scalars('epoch', {k: v for k, v in row.items() if k != 'epoch'}, epoch + 1)
                if (cfg['stop_after_epochs'] and epoch + 1 < self.num_epochs
                        and epoch + 1 - self.start_epoch >= cfg['stop_after_epochs']):
                    status = 'stopped'
                    message = (f'stopped after {cfg["stop_after_epochs"]} epoch(s) as asked; continue with '
                               f'resume={self.out_dir / "last.pth"}')
                    _logger.info(message)
                    break
        except NonFiniteLossError as e:
            status = 'non_finite_loss'
            last = self.out_dir / 'last.pth'
            message = (f'{e}. Training stopped; the last good checkpoint is '
                       + (f'{last} (epoch {self.history[-1]["epoch"]})' if self.history and last.exists()
                          else 'none (no epoch finished)'))
            _logger.error(message)
            if raise_on_nan:
                self._finish(writers, status, message, t_start, last_eval)
                raise
        results = self._finish(writers, status, message, t_start, last_eval)
        return results

    def _seed_epoch(self, epoch: int) -> None:
        """Data order, worker seeds and the main-process augmentation seed are functions of (seed, rank, epoch)."""
        seed, rank = self.cfg['seed'], self.dist.rank
        self.train_sampler.set_epoch(epoch)
        self.loader_gen.manual_seed(derive_seed(seed, rank, epoch, 1))
        self.train_ds.set_transform_seed(derive_seed(seed, rank, epoch, 2))

    def _evaluate(self, model: nn.Module, desc: str = 'eval') -> Dict[str, Any]:
        return evaluate(unwrap_model(model), self.val_loader,
                        self.dist.device, self.num_classes, amp_dtype=self.amp_dtype,
                        channels_last=self.cfg['channels_last'], dist=self.dist, on_corrupt=self.corrupt,
                        class_names=self.class_names, desc=desc,
                        progress=self._progress_mode() == 'bar' and is_primary(self.dist))

    def _save(self, epoch: int, metric: Optional[float], is_best: bool) -> None:
        rng_all = all_gather_object(capture_rng_state(), self.dist)
        if not is_primary(self.dist):
            return
        ckpt = self._checkpoint(epoch, metric, rng_all)
        last = atomic_torch_save(ckpt, self.out_dir / 'last.pth')
        if is_best:
            atomic_copy(last, self.out_dir / 'best.pth')
        hist = self.cfg['checkpoint_hist']
        if hist > 0:
            atomic_copy(last, self.out_dir / f'checkpoint-{epoch + 1}.pth')
            old = self.out_dir / f'checkpoint-{epoch + 1 - hist}.pth'
            if old.exists():
                old.unlink()

    def _finish(self, writers, status, message, t_start, last_eval) -> Dict[str, Any]:
        dist = self.dist
        # the count of unreadable images over all ranks
        paths = sorted(set().union(*all_gather_object(list(self.corrupt.paths), dist)))
        results = dict(
            status=status, message=message, model=self.arch, num_params=self.param_count,
            num_classes=self.num_classes, class_names=list(self.class_names), epochs=self.num_epochs,
            epochs_done=len(self.history), best_metric=self.best_metric, best_epoch=self.best_epoch,
            eval_metric=self.cfg['eval_metric'], final_eval=last_eval, history=self.history,
            train_time_s=time.time() - t_start, world_size=dist.world_size, device=str(dist.device),
            data_cfg=self.data_cfg, n_corrupt=len(paths), corrupt_paths=paths[:1000],
            output_dir=str(self.out_dir),
            checkpoints=dict(last=str(self.out_dir / 'last.pth'), best=str(self.out_dir / 'best.pth')),
        )
        if is_primary(dist):
            if paths:
                _logger.warning(f'{len(paths)} unreadable image(s) were skipped (listed in results.json)')
            _write_json(self.out_dir / 'results.json', results)
            if writers is not None:
                writers.close()
        return results


def train(cfg: Dict[str, Any], raise_on_nan: bool = False) -> Dict[str, Any]:
    """Run a full training from a config dict; returns the results (see ``Trainer``)."""
    trainer = Trainer(cfg)
    try:
        return trainer.fit(raise_on_nan=raise_on_nan)
    finally:
        if getattr(trainer, 'dist', None) is not None and trainer.dist.distributed:
            import torch.distributed as tdist
            if tdist.is_initialized():
                tdist.destroy_process_group()
