"""The classification training run behind ``tools/train.py``.

``Trainer(cfg).fit()`` (or ``train(cfg)``): ``setup()`` turns the config into data, model and loaders
(``zoo.train.build``), ``fit()`` builds the optimiser / schedule / EMA / loss (``build.build_training``), resumes
if asked, then per epoch: train (``loop.train_one_epoch``), validate, step the schedule, checkpoint, log, and stop
when done or asked. It writes into the run folder (``zoo.train.outputs``):

* ``last.pth`` every epoch and ``best.pth`` (by ``eval_metric``), written atomically (temp file + ``os.replace``);
  ``checkpoint-<epoch>.pth`` for the last ``checkpoint_hist`` epochs when asked;
* ``summary.csv`` (one row per epoch), ``tb/`` TensorBoard events (if tensorboard is installed), ``log.txt``,
  ``config.yaml`` (the resolved config) and ``results.json`` (final metrics; ``status`` is ``'ok'``,
  ``'stopped'``, ``'interrupted'`` (by a signal) or ``'non_finite_loss'`` when the loss became NaN/inf, in which
  case the last good checkpoint is left untouched).

SIGTERM or SIGINT during ``fit()`` stops the run at the next optimizer update (all ranks at the same one), writes
``last.pth`` at that step and logs one line naming it; ``results['signal']`` holds the signal's number
(``tools/train.py`` exits with 128 + it). ``resume`` from that checkpoint finishes the epoch exactly as the
uninterrupted run would have. A full device ends the run with ``zoo.errors.DiskFullError``, the earlier files intact.

Checkpoints hold model, optimiser, scheduler, GradScaler and EMA states, the epoch, the update count, the history,
and every rank's RNG states (python / numpy / torch / CUDA), all as tensors and plain types, so they load with
``torch.load(weights_only=True)``; one written mid-epoch also holds ``interrupted`` (the epoch, the step and the
ranks' running loss sums). The data order and augmentation seeds of an epoch are derived from
``(seed, rank, epoch)``, so ``resume`` continues exactly as an uninterrupted run. Checkpoints are also loadable by
timm (``create_model(..., checkpoint_path=...)`` / ``pretrained_cfg_overlay=dict(file=...)``: keys ``state_dict``,
``state_dict_ema``).
"""
import logging
import signal
import sys
import time
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Union

import torch
import torch.nn as nn
import yaml

from zoo.data.loader import CorruptTracker

from .build import (build_datasets, build_loaders, build_model, build_training, build_transforms,
                    load_initial_checkpoint, resolve_dataset, resolve_lr, wrap_model)
from .config import ConfigError, TrainConfig
from .loop import NonFiniteLossError, StopSignals, evaluate, train_one_epoch
from .outputs import CHECKPOINT_VERSION, RunWriters, run_folder, save_checkpoints, write_json
from .utils import (all_gather_object, atomic_torch_save, atomic_write_text, barrier, capture_rng_state, derive_seed,
                    init_distributed, is_primary, load_checkpoint_file, restore_rng_state, seed_everything,
                    setup_logging, unwrap_model)

__all__ = ['Trainer', 'train', 'build_datasets', 'load_initial_checkpoint', 'CHECKPOINT_VERSION']

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

    # ------------------------------------------------------------------ set-up: data, model, loaders
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

    # the loaders' parts, by their former names (benchmarks and hooks use them)
    train_loader = property(lambda self: self.loaders.train)
    val_loader = property(lambda self: self.loaders.val)
    train_sampler = property(lambda self: self.loaders.sampler)
    loader_gen = property(lambda self: self.loaders.generator)
    steps_per_epoch = property(lambda self: self.loaders.steps_per_epoch)
    updates_per_epoch = property(lambda self: self.loaders.updates_per_epoch)

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

    # ------------------------------------------------------------------ the run
    def fit(self, raise_on_nan: bool = False) -> Dict[str, Any]:
        if not self._is_setup:
            self.setup()
        with StopSignals() as self._stop:
            return self._fit(raise_on_nan)

    def _fit(self, raise_on_nan: bool) -> Dict[str, Any]:
        self._start()
        status, message = 'ok', ''
        try:
            for epoch in range(self.start_epoch, self.num_epochs):
                train_stats = self._train_epoch(epoch)
                if train_stats['stopped_by']:
                    status, message = 'interrupted', self._save_interrupted(epoch, train_stats)
                    break
                evals = self._validate(epoch)
                metric = self._epoch_metric(train_stats, evals)
                is_best = self._schedule_and_rank(epoch, metric)
                row = self._record(epoch, train_stats, evals)
                self._save(epoch, metric, is_best)
                self._log_epoch(epoch, row, is_best)
                if epoch + 1 < self.num_epochs and self._agreed_signal():
                    status = 'interrupted'
                    message = self._interrupted_message(f'after epoch {epoch + 1}')
                    break
                if self._asked_to_stop(epoch):
                    status = 'stopped'
                    message = (f'stopped after {self.cfg.output.stop_after_epochs} epoch(s) as asked; continue with '
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
                self._finish(status, message)
                raise
        return self._finish(status, message)

    def _start(self) -> None:
        """Optimiser, schedule, EMA, AMP, loss (one builder with ``run_train_steps``), the resumed state, the
        wrapped model, the run's writers and its header line."""
        cfg, dist = self.cfg, self.dist
        parts = build_training(self.model, cfg, self.num_classes, dist.device, self.updates_per_epoch,
                               dist.world_size)
        self.parts = parts
        self.optimizer, self.scheduler, self.num_epochs = parts.optimizer, parts.scheduler, parts.num_epochs
        self.model_ema, self.scaler, self.amp_dtype = parts.model_ema, parts.scaler, parts.amp_dtype
        self.start_epoch, self.num_updates = 0, 0
        self.best_metric, self.best_epoch, self.history = None, None, []
        self._resume_rng, self._resume_step, self.stopped_by = None, None, 0
        self._resume()
        self.state = parts.state(wrap_model(self.model, cfg, dist), cfg, dist.device, self.num_updates, dist)
        primary = is_primary(dist)
        self.writers = None
        self.last_eval: Dict[str, Any] = {}
        if primary:
            atomic_write_text(self.out_dir / 'config.yaml', yaml.safe_dump(cfg.to_dict(), sort_keys=False))
            self.writers = RunWriters(self.out_dir, cfg.output.tensorboard,
                                      purge_step=self.num_updates if self.start_epoch > 0 or self._resume_step
                                      else None)
            _logger.info(
                f'model {self.arch}: {self.param_count / 1e6:.2f}M params, {self.num_classes} classes; '
                f'data {cfg.data.dataset}: {len(self.train_ds)} train / {len(self.val_ds) if self.val_ds else 0} val '
                f'images; input {self.data_cfg["input_size"]}, crop_pct {self.data_cfg["crop_pct"]}, '
                f'{self.data_cfg["interpolation"]}; lr {resolve_lr(cfg, dist.world_size):.3g} ({cfg.optim.opt}, '
                f'{cfg.sched.sched}); batch {cfg.loop.batch_size} x {dist.world_size} rank(s) x '
                f'{cfg.loop.grad_accum_steps} '
                f'accum; amp {self.amp_dtype}; device {dist.device}; output {self.out_dir}')
        if self._resume_rng is not None:
            restore_rng_state(self._resume_rng)
        self.t_start = time.time()

    def _train_epoch(self, epoch: int) -> Dict[str, Any]:
        """One epoch of the loop (seeded by (seed, rank, epoch)), with a progress bar or log lines; then the
        ranks' BatchNorm statistics are averaged (DDP without SyncBatchNorm)."""
        cfg, dist = self.cfg, self.dist
        self._seed_epoch(epoch)
        progress = None
        if self._progress_bars():
            from tqdm import tqdm
            progress = tqdm(total=self.steps_per_epoch, desc=f'epoch {epoch + 1}/{self.num_epochs}',
                            dynamic_ncols=True, leave=False)
        writers = self.writers

        def on_log(info):
            if writers is not None:
                writers.scalars('train', dict(loss=info['loss'], lr=info['lr'], images_per_s=info['images_per_s']),
                                info['global_step'])
        resume_from, self._resume_step = self._resume_step, None
        try:
            stats = train_one_epoch(self.state, self.train_loader, epoch, num_steps=self.steps_per_epoch,
                                    log_interval=cfg.output.log_interval, on_corrupt=self.corrupt, progress=progress,
                                    on_log=on_log, should_stop=self._stop, resume_from=resume_from)
        finally:
            if progress is not None:
                progress.close()
        if stats['stopped_by']:
            return stats
        if dist.distributed and (cfg.loop.dist_bn or cfg.loop.sync_bn) and not self.sync_bn:
            from timm.utils import distribute_bn
            distribute_bn(unwrap_model(self.model), dist.world_size, cfg.loop.dist_bn != 'broadcast')
        return stats

    def _validate(self, epoch: int) -> Dict[str, Any]:
        """``{'model': ..., 'ema': ...}`` metrics on the validation set when this epoch validates, else {}."""
        due = (epoch + 1) % self.cfg.output.val_interval == 0 or epoch + 1 == self.num_epochs
        if self.val_loader is None or not due:
            return {}
        out = {'model': self._evaluate(self.model)}
        self.last_eval = dict(out['model'])
        if self.model_ema is not None:
            out['ema'] = self.last_eval['ema'] = self._evaluate(self.model_ema.module, desc='eval (EMA)')
        return out

    def _epoch_metric(self, train_stats: Dict[str, Any], evals: Dict[str, Any]) -> Optional[float]:
        """The ``eval_metric`` of this epoch (of the EMA weights when kept); without a validation set, the training
        loss stands in (negated unless the metric is the loss); None on an epoch that does not validate."""
        if evals:
            return evals.get('ema', evals['model'])[self.cfg.output.eval_metric]
        if self.val_loader is None:
            return train_stats['loss'] if self.cfg.output.eval_metric == 'loss' else -train_stats['loss']
        return None

    def _schedule_and_rank(self, epoch: int, metric: Optional[float]) -> bool:
        if self.scheduler is not None:
            self.scheduler.step(epoch + 1, metric)
        if metric is None:
            return False
        better = (self.best_metric is None or (metric < self.best_metric if self.cfg.output.eval_metric == 'loss'
                                               else metric > self.best_metric))
        if better:
            self.best_metric, self.best_epoch = metric, epoch + 1
        return better

    def _record(self, epoch: int, tr: Dict[str, Any], evals: Dict[str, Any]) -> Dict[str, Any]:
        row = dict(epoch=epoch + 1, train_loss=tr['loss'], lr=tr['lr'], train_images_per_s=tr['images_per_s'],
                   epoch_time_s=tr['seconds'])
        for prefix, key in (('', 'model'), ('ema_', 'ema')):
            if key in evals:
                ev = evals[key]
                row.update({f'{prefix}eval_loss': ev['loss'], f'{prefix}eval_top1': ev['top1'],
                            f'{prefix}eval_top5': ev['top5']})
        row['n_corrupt'] = self.corrupt.count
        self.history.append(row)
        return row

    def _log_epoch(self, epoch: int, row: Dict[str, Any], is_best: bool) -> None:
        if not is_primary(self.dist):
            return
        msg = (f'epoch {epoch + 1}/{self.num_epochs}: train loss {row["train_loss"]:.4f}, '
               f'{row["train_images_per_s"]:.1f} img/s, {row["epoch_time_s"]:.1f}s')
        if 'eval_top1' in row:
            msg += f'; val loss {row["eval_loss"]:.4f} top1 {row["eval_top1"]:.2f} top5 {row["eval_top5"]:.2f}'
        if 'ema_eval_top1' in row:
            msg += f' (EMA top1 {row["ema_eval_top1"]:.2f})'
        _logger.info(msg + (' *best*' if is_best else ''))
        self.writers.summary(self.history)
        self.writers.scalars('epoch', {k: v for k, v in row.items() if k != 'epoch'}, epoch + 1)

    def _agreed_signal(self) -> int:
        """The stop signal any rank has received (0: none); every rank gets the same answer."""
        sig = self._stop()
        if self.dist.distributed:
            import torch.distributed as tdist
            flag = torch.tensor([sig], device=self.dist.device if self.dist.backend == 'nccl' else 'cpu')
            tdist.all_reduce(flag, op=tdist.ReduceOp.MAX)
            sig = int(flag)
        self.stopped_by = sig
        return sig

    def _interrupted_message(self, where: str) -> str:
        last = self.out_dir / 'last.pth'
        message = (f'{signal.Signals(self.stopped_by).name}: stopped {where}; checkpoint {last} '
                   f'(continue with resume={last})')
        if is_primary(self.dist):
            _logger.warning(message)
        return message

    def _save_interrupted(self, epoch: int, stats: Dict[str, Any]) -> str:
        """``last.pth`` at the step the loop stopped at (a signal), with what ``resume`` needs to finish the
        epoch exactly: the step, every rank's running loss sums and RNG states."""
        self.stopped_by = stats['stopped_by']
        rng_all = all_gather_object(capture_rng_state(), self.dist)
        sums = all_gather_object((stats['loss_sum'], stats['n_seen']), self.dist)
        if is_primary(self.dist):
            ckpt = self._checkpoint(epoch - 1, None, rng_all)
            ckpt['interrupted'] = dict(epoch=epoch, step=stats['steps'], seconds=stats['seconds'],
                                       loss_sum=[s[0] for s in sums], n_seen=[s[1] for s in sums])
            atomic_torch_save(ckpt, self.out_dir / 'last.pth')
        return self._interrupted_message(f'at epoch {epoch + 1}, step {stats["steps"]}/{self.steps_per_epoch}')

    def _asked_to_stop(self, epoch: int) -> bool:
        n = self.cfg.output.stop_after_epochs
        return bool(n and epoch + 1 < self.num_epochs and epoch + 1 - self.start_epoch >= n)

    # ------------------------------------------------------------------ pieces
    def _progress_bars(self) -> bool:
        mode = self.cfg.output.progress
        if mode == 'auto':
            mode = 'bar' if sys.stderr.isatty() else 'log'
        return mode == 'bar' and is_primary(self.dist)

    def _seed_epoch(self, epoch: int) -> None:
        """Data order, worker seeds and the main-process augmentation seed are functions of (seed, rank, epoch)."""
        seed, rank = self.cfg.loop.seed, self.dist.rank
        self.train_sampler.set_epoch(epoch)
        self.loader_gen.manual_seed(derive_seed(seed, rank, epoch, 1))
        self.train_ds.set_transform_seed(derive_seed(seed, rank, epoch, 2))

    def _evaluate(self, model: nn.Module, desc: str = 'eval') -> Dict[str, Any]:
        return evaluate(unwrap_model(model), self.val_loader, self.dist.device, self.num_classes,
                        amp_dtype=self.amp_dtype, channels_last=self.cfg.loop.channels_last, dist=self.dist,
                        on_corrupt=self.corrupt, class_names=self.class_names, desc=desc,
                        progress=self._progress_bars())

    def _resume_path(self) -> Optional[Path]:
        r = self.cfg.output.resume
        if not r:
            return None
        if r == 'auto':
            p = self.out_dir / 'last.pth'
            return p if p.is_file() else None
        return Path(r).expanduser()

    def _resume(self) -> None:
        """Weights (and EMA), then -- unless ``no_resume_opt`` -- optimiser, GradScaler, schedule, epoch, update
        count, best metric, history and this rank's RNG state from the checkpoint."""
        path = self._resume_path()
        if path is None:
            if self.cfg.output.resume == 'auto':
                _logger.info(f'resume=auto: no {self.out_dir / "last.pth"}, starting from scratch')
            return
        ckpt = load_checkpoint_file(path, map_location='cpu')
        self.model.load_state_dict(ckpt['state_dict'])
        if self.model_ema is not None and ckpt.get('state_dict_ema') is not None:
            self.model_ema.module.load_state_dict(ckpt['state_dict_ema'])
        if self.cfg.output.no_resume_opt:
            _logger.info(f'resumed weights from {path} (optimizer/schedule restarted)')
            return
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
        where = ''
        stop = ckpt.get('interrupted')
        if stop:  # mid-epoch: the loop replays the data of the first steps, then restores the RNG state
            r = min(self.dist.rank, len(stop['n_seen']) - 1)
            self._resume_step = dict(step=int(stop['step']), seconds=stop['seconds'], loss_sum=stop['loss_sum'][r],
                                     n_seen=stop['n_seen'][r], rng=self._resume_rng)
            self._resume_rng = None
            where = f', step {self._resume_step["step"]}'
        if self.scheduler is not None:
            if ckpt.get('scheduler'):
                self.scheduler.load_state_dict(ckpt['scheduler'])
            if not stop:  # (mid-epoch, the optimiser's learning rates are those of the stopped step already)
                if self.cfg.sched.sched_on_updates:
                    self.scheduler.step_update(self.num_updates)
                else:
                    self.scheduler.step(self.start_epoch)
        _logger.info(f'resumed from {path} at epoch {self.start_epoch}{where} ({self.num_updates} updates)')

    def _checkpoint(self, epoch: int, metric: Optional[float], rng_all: List[Any]) -> Dict[str, Any]:
        plain = lambda d: {k: (list(v) if isinstance(v, tuple) else v) for k, v in d.items()}  # noqa: E731
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
            'model_kwargs': plain(self.model_kwargs), 'data_cfg': plain(self.data_cfg),
            'config': self.cfg.to_dict(), 'world_size': self.dist.world_size,
        }

    def _save(self, epoch: int, metric: Optional[float], is_best: bool) -> None:
        rng_all = all_gather_object(capture_rng_state(), self.dist)
        if is_primary(self.dist):
            save_checkpoints(self.out_dir, self._checkpoint(epoch, metric, rng_all), epoch, is_best,
                             self.cfg.output.checkpoint_hist)

    def _finish(self, status: str, message: str) -> Dict[str, Any]:
        dist = self.dist
        # the count of unreadable images over all ranks
        paths = sorted(set().union(*all_gather_object(list(self.corrupt.paths), dist)))
        results = dict(
            status=status, message=message, model=self.arch, num_params=self.param_count,
            num_classes=self.num_classes, class_names=list(self.class_names), epochs=self.num_epochs,
            epochs_done=len(self.history), best_metric=self.best_metric, best_epoch=self.best_epoch,
            eval_metric=self.cfg.output.eval_metric, final_eval=self.last_eval, history=self.history,
            train_time_s=time.time() - self.t_start, world_size=dist.world_size, device=str(dist.device),
            data_cfg=self.data_cfg, n_corrupt=len(paths), corrupt_paths=paths[:1000],
            output_dir=str(self.out_dir), signal=self.stopped_by or None,
            checkpoints=dict(last=str(self.out_dir / 'last.pth'), best=str(self.out_dir / 'best.pth')),
        )
        if is_primary(dist):
            if paths:
                _logger.warning(f'{len(paths)} unreadable image(s) were skipped (listed in results.json)')
            write_json(self.out_dir / 'results.json', results)
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
