"""The classification training run behind ``tools/train.py`` (docs/training.md describes what it writes).

``Trainer(cfg).setup()`` turns the config into data, model and loaders (``zoo.train.build``) and opens the run
folder; ``fit()`` runs ``Fit``: the optimiser / schedule / EMA / loss (``build.build_training``), the resumed
``RunState`` (``zoo.train.state``), then per epoch: train, validate, step the schedule, checkpoint, log, and stop
when done or asked (SIGTERM / SIGINT: a checkpoint at that step, ``status`` 'interrupted'; a NaN/inf loss: the last
good checkpoint kept, ``status`` 'non_finite_loss'). Checkpoints load with ``torch.load(weights_only=True)`` and
``resume`` continues exactly as an uninterrupted run.
"""
import logging
import signal
import sys
import time
from pathlib import Path
from typing import Any, Dict, Mapping, Optional, Union

import torch
import torch.nn as nn
import yaml

from zoo.checkpoint import atomic_save, atomic_write_text
from zoo.data.loader import CorruptTracker

from .build import (build_datasets, build_loaders, build_model, build_training, build_transforms, resolve_dataset,
                    resolve_lr, wrap_model)
from .config import ConfigError, TrainConfig
from .loop import NonFiniteLossError, StopSignals, agreed_signal, evaluate, train_one_epoch
from .outputs import RunWriters, run_folder, run_results, save_checkpoints, write_json
from .state import RunState, resume_path
from .utils import (all_gather_object, barrier, capture_rng_state, derive_seed, init_distributed, is_primary,
                    restore_rng_state, seed_everything, setup_logging, unwrap_model)

__all__ = ['Trainer', 'Fit', 'train']

_logger = logging.getLogger('zoo.train')


class Trainer:
    """One training run. ``setup()`` builds everything (hooks may then adjust ``self.model``), ``fit()`` trains.

    ``fit()`` returns the results dict (also written to ``results.json``); a non-finite loss ends the run with
    ``results['status'] == 'non_finite_loss'`` (``raise_on_nan=True`` re-raises ``NonFiniteLossError``), SIGTERM /
    SIGINT with ``'interrupted'`` after a resumable checkpoint (the handlers are installed during ``fit()`` only).
    """

    def __init__(self, cfg: Union[TrainConfig, Mapping[str, Any]]):
        self.cfg = TrainConfig.of(cfg)
        self._is_setup = False

    def setup(self) -> 'Trainer':
        """Everything the user can get wrong (model name, data, class count, weights) is checked before the run
        folder is created, so a mistake leaves no folder behind and never touches an existing run."""
        from zoo.errors import check_model_name
        check_model_name(self.cfg.model.model)
        self.dist = dist = init_distributed(self.cfg.loop.device)
        setup_logging(dist.rank, None)
        self.cfg = cfg = resolve_dataset(self.cfg)
        seed_everything(cfg.loop.seed + dist.rank)
        self.corrupt = CorruptTracker(log=True)
        self.train_ds, self.val_ds, self.class_names = build_datasets(cfg, dist)
        self.num_classes = len(self.class_names)
        if cfg.model.num_classes is not None and cfg.model.num_classes != self.num_classes:
            raise ConfigError(f'num_classes={cfg.model.num_classes} but the training data has {self.num_classes} '
                              f'classes {self.class_names}')
        if cfg.output.resume not in ('', 'auto') and not Path(cfg.output.resume).expanduser().is_file():
            raise FileNotFoundError(f'resume: checkpoint {cfg.output.resume} does not exist')
        model, self.model_kwargs, img_size = build_model(cfg, self.num_classes)
        self.arch = cfg.model.model
        self._open_run_folder()
        self._verify_images()
        self.data_cfg = build_transforms(cfg, model, self.train_ds, self.val_ds, img_size)
        self.model = self._place(model)
        self.param_count = sum(p.numel() for p in self.model.parameters())
        self.loaders = build_loaders(cfg, self.train_ds, self.val_ds, dist)
        self._is_setup = True
        return self

    # the loaders' parts (benchmarks and hooks use them)
    train_loader = property(lambda self: self.loaders.train)
    val_loader = property(lambda self: self.loaders.val)

    def _open_run_folder(self) -> None:
        self.out_dir = run_folder(self.cfg, self.dist)
        if is_primary(self.dist):
            self.out_dir.mkdir(parents=True, exist_ok=True)
        barrier(self.dist)
        setup_logging(self.dist.rank, self.out_dir / 'log.txt' if is_primary(self.dist) else None)

    def _verify_images(self) -> None:
        if not self.cfg.data.verify_images:
            return
        for ds, name in ((self.train_ds, 'train'), (self.val_ds, 'val')):
            if ds is not None:
                bad = ds.scan_images(drop=True)
                self.corrupt(bad)
                if bad and is_primary(self.dist):
                    _logger.warning(f'{name}: dropped {len(bad)} unreadable images')

    def _place(self, model: nn.Module) -> nn.Module:
        """On the device, channels-last if asked, SyncBatchNorm under DDP on CUDA."""
        cfg, dist = self.cfg, self.dist
        model.to(dist.device)
        if cfg.loop.channels_last:
            model.to(memory_format=torch.channels_last)
        self.sync_bn = bool(dist.distributed and cfg.loop.sync_bn)
        if self.sync_bn and dist.device.type == 'cpu':
            _logger.warning('sync_bn needs CUDA; on CPU the BatchNorm statistics are averaged over the ranks after '
                            'each epoch instead (dist_bn)')
            self.sync_bn = False
        return nn.SyncBatchNorm.convert_sync_batchnorm(model) if self.sync_bn else model

    def fit(self, raise_on_nan: bool = False) -> Dict[str, Any]:
        if not self._is_setup:
            self.setup()
        with StopSignals() as stop:
            return Fit(self, stop).run(raise_on_nan)

    def progress_bars(self) -> bool:
        mode = self.cfg.output.progress
        if mode == 'auto':
            mode = 'bar' if sys.stderr.isatty() else 'log'
        return mode == 'bar' and is_primary(self.dist)

    def seed_epoch(self, epoch: int) -> None:
        """Data order, worker seeds and the main-process augmentation seed are functions of (seed, rank, epoch)."""
        seed, rank = self.cfg.loop.seed, self.dist.rank
        self.loaders.sampler.set_epoch(epoch)
        self.loaders.generator.manual_seed(derive_seed(seed, rank, epoch, 1))
        self.train_ds.set_transform_seed(derive_seed(seed, rank, epoch, 2))

    def header(self, num_updates: int, amp_dtype) -> str:
        """The run's first log line."""
        cfg, dist, data_cfg = self.cfg, self.dist, self.data_cfg
        return (f'model {self.arch}: {self.param_count / 1e6:.2f}M params, {self.num_classes} classes; '
                f'data {cfg.data.dataset}: {len(self.train_ds)} train / {len(self.val_ds) if self.val_ds else 0} '
                f'val images; input {data_cfg["input_size"]}, crop_pct {data_cfg["crop_pct"]}, '
                f'{data_cfg["interpolation"]}; lr {resolve_lr(cfg, dist.world_size):.3g} ({cfg.optim.opt}, '
                f'{cfg.sched.sched}); batch {cfg.loop.batch_size} x {dist.world_size} rank(s) x '
                f'{cfg.loop.grad_accum_steps} accum; amp {amp_dtype}; device {dist.device}; output {self.out_dir}')


class Fit:
    """``Trainer.fit()`` as named steps over a ``RunState``: start (build, resume), then per epoch train, validate,
    rank, record, save, log, stop when asked; finish (``results.json``)."""

    def __init__(self, trainer: Trainer, stop: StopSignals):
        self.t, self.stop = trainer, stop

    def run(self, raise_on_nan: bool) -> Dict[str, Any]:
        self.start()
        status, message = 'ok', ''
        try:
            for epoch in range(self.rs.start_epoch, self.num_epochs):
                status, message = self.epoch(epoch)
                if status != 'ok':
                    break
        except NonFiniteLossError as e:
            status = 'non_finite_loss'
            last, history = self.t.out_dir / 'last.pth', self.rs.history
            message = (f'{e}. Training stopped; the last good checkpoint is '
                       + (f'{last} (epoch {history[-1]["epoch"]})' if history and last.exists()
                          else 'none (no epoch finished)'))
            _logger.error(message)
            if raise_on_nan:
                self.finish(status, message)
                raise
        return self.finish(status, message)

    def epoch(self, epoch: int):
        """One epoch's steps; ``(status, message)``: 'ok' to go on, else why the run ends here."""
        t, rs = self.t, self.rs
        train_stats = self.train_epoch(epoch)
        if train_stats['stopped_by']:
            return 'interrupted', self.save_interrupted(epoch, train_stats)
        evals = self.validate(epoch)
        metric = self.epoch_metric(train_stats, evals)
        if self.parts.scheduler is not None:
            self.parts.scheduler.step(epoch + 1, metric)
        is_best = rs.update_best(epoch, metric, t.cfg.output.eval_metric == 'loss')
        row = rs.record(epoch, train_stats, evals, t.corrupt.count)
        self.save(epoch, metric, is_best)
        if is_primary(t.dist):
            self.writers.epoch(row, rs.history, self.num_epochs, is_best)
        if epoch + 1 < self.num_epochs and self.agreed_signal():
            return 'interrupted', self.interrupted_message(f'after epoch {epoch + 1}')
        n = t.cfg.output.stop_after_epochs
        if n and epoch + 1 < self.num_epochs and epoch + 1 - rs.start_epoch >= n:
            message = f'stopped after {n} epoch(s) as asked; continue with resume={t.out_dir / "last.pth"}'
            _logger.info(message)
            return 'stopped', message
        return 'ok', ''

    def start(self) -> None:
        """Optimiser, schedule, EMA, AMP, loss (one builder with ``run_train_steps``), the resumed state, the
        wrapped model, the run's writers and its header line."""
        t = self.t
        cfg, dist = t.cfg, t.dist
        self.parts = parts = build_training(t.model, cfg, t.num_classes, dist.device, t.loaders.updates_per_epoch,
                                            dist.world_size)
        self.num_epochs = parts.num_epochs
        self.rs = rs = RunState(t.model, parts.optimizer, parts.scheduler, parts.model_ema, parts.scaler)
        path = resume_path(cfg, t.out_dir)
        if path is not None:
            rs.resume(path, cfg, t.class_names, dist)
        elif cfg.output.resume == 'auto':
            _logger.info(f'resume=auto: no {t.out_dir / "last.pth"}, starting from scratch')
        self.state = parts.state(wrap_model(t.model, cfg, dist), cfg, dist.device, rs.num_updates, dist)
        self.writers = None
        if is_primary(dist):
            atomic_write_text(t.out_dir / 'config.yaml', yaml.safe_dump(cfg.to_dict(), sort_keys=False))
            self.writers = RunWriters(t.out_dir, cfg.output.tensorboard,
                                      purge_step=rs.num_updates if rs.start_epoch > 0 or rs.resume_step else None)
            _logger.info(t.header(rs.num_updates, parts.amp_dtype))
        if rs.resume_rng is not None:
            restore_rng_state(rs.resume_rng)
        self.t_start = time.time()

    def train_epoch(self, epoch: int) -> Dict[str, Any]:
        """One epoch of the loop (seeded by (seed, rank, epoch)), with a progress bar or log lines; then the
        ranks' BatchNorm statistics are averaged (DDP without SyncBatchNorm)."""
        t = self.t
        cfg, dist = t.cfg, t.dist
        t.seed_epoch(epoch)
        progress = None
        if t.progress_bars():
            from tqdm import tqdm
            progress = tqdm(total=t.loaders.steps_per_epoch, desc=f'epoch {epoch + 1}/{self.num_epochs}',
                            dynamic_ncols=True, leave=False)
        resume_from, self.rs.resume_step = self.rs.resume_step, None
        try:
            stats = train_one_epoch(self.state, t.train_loader, epoch, num_steps=t.loaders.steps_per_epoch,
                                    log_interval=cfg.output.log_interval, on_corrupt=t.corrupt, progress=progress,
                                    on_log=self.on_log, should_stop=self.stop, resume_from=resume_from)
        finally:
            if progress is not None:
                progress.close()
        if stats['stopped_by']:
            return stats
        if dist.distributed and (cfg.loop.dist_bn or cfg.loop.sync_bn) and not t.sync_bn:
            from timm.utils import distribute_bn
            distribute_bn(unwrap_model(t.model), dist.world_size, cfg.loop.dist_bn != 'broadcast')
        return stats

    def on_log(self, info: Dict[str, Any]) -> None:
        if self.writers is not None:
            self.writers.scalars('train', dict(loss=info['loss'], lr=info['lr'], images_per_s=info['images_per_s']),
                                 info['global_step'])

    def validate(self, epoch: int) -> Dict[str, Any]:
        """``{'model': ..., 'ema': ...}`` metrics on the validation set when this epoch validates, else {}."""
        due = (epoch + 1) % self.t.cfg.output.val_interval == 0 or epoch + 1 == self.num_epochs
        if self.t.val_loader is None or not due:
            return {}
        out = {'model': self.evaluate(self.t.model)}
        self.rs.last_eval = dict(out['model'])
        if self.parts.model_ema is not None:
            out['ema'] = self.rs.last_eval['ema'] = self.evaluate(self.parts.model_ema.module, desc='eval (EMA)')
        return out

    def evaluate(self, model: nn.Module, desc: str = 'eval') -> Dict[str, Any]:
        t = self.t
        return evaluate(unwrap_model(model), t.val_loader, t.dist.device, t.num_classes,
                        amp_dtype=self.parts.amp_dtype, channels_last=t.cfg.loop.channels_last, dist=t.dist,
                        on_corrupt=t.corrupt, class_names=t.class_names, desc=desc, progress=t.progress_bars())

    def epoch_metric(self, train_stats: Dict[str, Any], evals: Dict[str, Any]) -> Optional[float]:
        """The ``eval_metric`` of this epoch (of the EMA weights when kept); without a validation set, the training
        loss stands in (negated unless the metric is the loss); None on an epoch that does not validate."""
        metric = self.t.cfg.output.eval_metric
        if evals:
            return evals.get('ema', evals['model'])[metric]
        if self.t.val_loader is None:
            return train_stats['loss'] if metric == 'loss' else -train_stats['loss']
        return None

    def agreed_signal(self) -> int:
        self.rs.stopped_by = agreed_signal(self.stop, self.t.dist)
        return self.rs.stopped_by

    def interrupted_message(self, where: str) -> str:
        last = self.t.out_dir / 'last.pth'
        message = (f'{signal.Signals(self.rs.stopped_by).name}: stopped {where}; checkpoint {last} '
                   f'(continue with resume={last})')
        if is_primary(self.t.dist):
            _logger.warning(message)
        return message

    def checkpoint(self, epoch: int, metric: Optional[float], rng_all) -> Dict[str, Any]:
        t = self.t
        run = dict(arch=t.arch, class_names=t.class_names, model_kwargs=t.model_kwargs, data_cfg=t.data_cfg,
                   config=t.cfg, world_size=t.dist.world_size)
        return self.rs.checkpoint(epoch, metric, rng_all, self.state.num_updates, run)

    def save_interrupted(self, epoch: int, stats: Dict[str, Any]) -> str:
        """``last.pth`` at the step the loop stopped at (a signal), with what ``resume`` needs to finish the
        epoch exactly: the step, every rank's running loss sums and RNG states."""
        t = self.t
        self.rs.stopped_by = stats['stopped_by']
        rng_all = all_gather_object(capture_rng_state(), t.dist)
        sums = all_gather_object((stats['loss_sum'], stats['n_seen']), t.dist)
        if is_primary(t.dist):
            ckpt = self.checkpoint(epoch - 1, None, rng_all)
            ckpt['interrupted'] = dict(epoch=epoch, step=stats['steps'], seconds=stats['seconds'],
                                       loss_sum=[s[0] for s in sums], n_seen=[s[1] for s in sums])
            atomic_save(ckpt, t.out_dir / 'last.pth')
        return self.interrupted_message(f'at epoch {epoch + 1}, step {stats["steps"]}/{t.loaders.steps_per_epoch}')

    def save(self, epoch: int, metric: Optional[float], is_best: bool) -> None:
        rng_all = all_gather_object(capture_rng_state(), self.t.dist)
        if is_primary(self.t.dist):
            save_checkpoints(self.t.out_dir, self.checkpoint(epoch, metric, rng_all), epoch, is_best,
                             self.t.cfg.output.checkpoint_hist)

    def finish(self, status: str, message: str) -> Dict[str, Any]:
        t, rs = self.t, self.rs
        # the count of unreadable images over all ranks
        paths = sorted(set().union(*all_gather_object(list(t.corrupt.paths), t.dist)))
        results = run_results(t, rs, status=status, message=message, epochs=self.num_epochs, paths=paths,
                              train_time_s=time.time() - self.t_start)
        if is_primary(t.dist):
            if paths:
                _logger.warning(f'{len(paths)} unreadable image(s) were skipped (listed in results.json)')
            write_json(t.out_dir / 'results.json', results)
            if self.writers is not None:
                self.writers.close()
        return results


def train(cfg: Union[TrainConfig, Mapping[str, Any]], raise_on_nan: bool = False) -> Dict[str, Any]:
    """Run a full training from a config (or its flat values); returns the results (see ``Trainer``)."""
    trainer = Trainer(cfg)
    try:
        return trainer.fit(raise_on_nan=raise_on_nan)
    finally:
        if getattr(trainer, 'dist', None) is not None and trainer.dist.distributed:
            import torch.distributed as tdist
            if tdist.is_initialized():
                tdist.destroy_process_group()
