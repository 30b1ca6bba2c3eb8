"""What a training run's checkpoint holds (``RunState``: weights, optimiser, schedule, GradScaler, EMA, epoch and
update counters, best metric, history, RNG states), how it is written and how ``resume`` restores it."""
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional

import torch.nn as nn

from .config import ConfigError, TrainConfig
from .outputs import CHECKPOINT_VERSION
from .utils import DistInfo, load_checkpoint_file, unwrap_model

__all__ = ['RunState', 'resume_path']

_logger = logging.getLogger('zoo.train')


def _plain(d: Dict[str, Any]) -> Dict[str, Any]:
    return {k: (list(v) if isinstance(v, tuple) else v) for k, v in d.items()}


@dataclass
class RunState:
    """The state of a run between steps. ``model`` is the unwrapped model; ``resume_rng`` / ``resume_step``: what a
    resumed run restores before its first step (the RNG state; the stopped step of an interrupted epoch)."""
    model: nn.Module
    optimizer: Any
    scheduler: Any = None
    model_ema: Any = None
    scaler: Any = None
    start_epoch: int = 0
    num_updates: int = 0
    best_metric: Optional[float] = None
    best_epoch: Optional[int] = None
    history: List[Dict[str, Any]] = field(default_factory=list)
    last_eval: Dict[str, Any] = field(default_factory=dict)
    resume_rng: Any = None
    resume_step: Optional[Dict[str, Any]] = None
    stopped_by: int = 0

    def update_best(self, epoch: int, metric: Optional[float], lower_is_better: bool) -> bool:
        """Whether this epoch's metric is the best so far (then recorded as such)."""
        if metric is None:
            return False
        better = (self.best_metric is None or (metric < self.best_metric if lower_is_better
                                               else metric > self.best_metric))
        if better:
            self.best_metric, self.best_epoch = metric, epoch + 1
        return better

    def record(self, epoch: int, tr: Dict[str, Any], evals: Dict[str, Any], n_corrupt: int) -> Dict[str, Any]:
        """The epoch's row of the history (and of ``summary.csv``)."""
        row = dict(epoch=epoch + 1, train_loss=tr['loss'], lr=tr['lr'], train_images_per_s=tr['images_per_s'],
                   epoch_time_s=tr['seconds'])
        for prefix, key in (('', 'model'), ('ema_', 'ema')):
            if key in evals:
                ev = evals[key]
                row.update({f'{prefix}eval_loss': ev['loss'], f'{prefix}eval_top1': ev['top1'],
                            f'{prefix}eval_top5': ev['top5']})
        row['n_corrupt'] = n_corrupt
        self.history.append(row)
        return row

    def checkpoint(self, epoch: int, metric: Optional[float], rng_all: List[Any], num_updates: int,
                   run: Dict[str, Any]) -> Dict[str, Any]:
        """The checkpoint of ``epoch``: this state and the run's ``arch``, ``class_names``, ``model_kwargs``,
        ``data_cfg``, ``config`` (a ``TrainConfig``) and ``world_size``."""
        return {
            'version': CHECKPOINT_VERSION, 'epoch': epoch, 'arch': run['arch'],
            'state_dict': unwrap_model(self.model).state_dict(),
            'state_dict_ema': self.model_ema.module.state_dict() if self.model_ema is not None else None,
            'optimizer': self.optimizer.state_dict(),
            'scheduler': self.scheduler.state_dict() if self.scheduler is not None else None,
            'scaler': self.scaler.state_dict() if self.scaler is not None else None,
            'num_updates': num_updates, 'metric': metric, 'best_metric': self.best_metric,
            'best_epoch': self.best_epoch, 'history': self.history, 'rng': rng_all,
            'class_names': list(run['class_names']), 'num_classes': len(run['class_names']),
            'model_kwargs': _plain(run['model_kwargs']), 'data_cfg': _plain(run['data_cfg']),
            'config': run['config'].to_dict(), 'world_size': run['world_size'],
        }

    def resume(self, path: Path, cfg: TrainConfig, class_names: List[str], dist: DistInfo) -> None:
        """Weights (and EMA), then -- unless ``no_resume_opt`` -- optimiser, GradScaler, schedule, epoch, update
        count, best metric, history and this rank's RNG state from the checkpoint at ``path``."""
        ckpt = load_checkpoint_file(path, map_location='cpu')
        self.model.load_state_dict(ckpt['state_dict'])
        if self.model_ema is not None and ckpt.get('state_dict_ema') is not None:
            self.model_ema.module.load_state_dict(ckpt['state_dict_ema'])
        if cfg.output.no_resume_opt:
            _logger.info(f'resumed weights from {path} (optimizer/schedule restarted)')
            return
        self.optimizer.load_state_dict(ckpt['optimizer'])
        if self.scaler is not None and ckpt.get('scaler'):
            self.scaler.load_state_dict(ckpt['scaler'])
        self.start_epoch = int(ckpt['epoch']) + 1
        self.num_updates = int(ckpt.get('num_updates', 0))
        self.best_metric, self.best_epoch = ckpt.get('best_metric'), ckpt.get('best_epoch')
        self.history = list(ckpt.get('history', []))
        if ckpt.get('class_names') and list(ckpt['class_names']) != list(class_names):
            raise ConfigError(f'resume: the checkpoint was trained on classes {ckpt["class_names"]}, the data has '
                              f'{class_names}')
        where = self._resume_rng_and_step(ckpt, dist)
        self._resume_schedule(ckpt, cfg.sched.sched_on_updates)
        _logger.info(f'resumed from {path} at epoch {self.start_epoch}{where} ({self.num_updates} updates)')

    def _resume_rng_and_step(self, ckpt: Dict[str, Any], dist: DistInfo) -> str:
        rng = ckpt.get('rng') or []
        if len(rng) == dist.world_size:
            self.resume_rng = rng[dist.rank]
        else:
            _logger.warning(f'resume: checkpoint has RNG states for {len(rng)} ranks, running {dist.world_size}; '
                            f'RNG re-seeded (the run will not repeat the original exactly)')
        stop = ckpt.get('interrupted')
        if not stop:
            return ''
        # mid-epoch: the loop replays the data of the first steps, then restores the RNG state
        r = min(dist.rank, len(stop['n_seen']) - 1)
        self.resume_step = dict(step=int(stop['step']), seconds=stop['seconds'], loss_sum=stop['loss_sum'][r],
                                n_seen=stop['n_seen'][r], rng=self.resume_rng)
        self.resume_rng = None
        return f', step {self.resume_step["step"]}'

    def _resume_schedule(self, ckpt: Dict[str, Any], on_updates: bool) -> None:
        if self.scheduler is None:
            return
        if ckpt.get('scheduler'):
            self.scheduler.load_state_dict(ckpt['scheduler'])
        if ckpt.get('interrupted'):  # mid-epoch, the optimiser's learning rates are those of the stopped step already
            return
        if on_updates:
            self.scheduler.step_update(self.num_updates)
        else:
            self.scheduler.step(self.start_epoch)


def resume_path(cfg: TrainConfig, out_dir: Path) -> Optional[Path]:
    """The checkpoint ``resume`` names (``auto``: the run folder's ``last.pth`` when there is one)."""
    r = cfg.output.resume
    if not r:
        return None
    if r == 'auto':
        p = out_dir / 'last.pth'
        return p if p.is_file() else None
    return Path(r).expanduser()
