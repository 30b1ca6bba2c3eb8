"""What a training run writes into its folder: the folder itself (never an existing run's), checkpoints
(``last.pth``, ``best.pth``, ``checkpoint-<epoch>.pth``), ``summary.csv``, TensorBoard events and JSON files --
every file written atomically (temporary file + ``os.replace``, via ``zoo.checkpoint``)."""
import csv
import io
import json
import logging
import time
from pathlib import Path
from typing import Any, Dict, List, Optional

import torch

from zoo.checkpoint import atomic_copy, atomic_save, atomic_write_text

from .config import TrainConfig
from .utils import DistInfo, broadcast_object, is_primary

__all__ = ['CHECKPOINT_VERSION', 'run_folder', 'RunWriters', 'write_json', 'run_results', 'save_checkpoints']

_logger = logging.getLogger('zoo.train')
CHECKPOINT_VERSION = 1


def run_folder(cfg: TrainConfig, dist: DistInfo) -> Path:
    """``resume=<path>``: the checkpoint's folder. Otherwise ``output/<experiment>`` (default name
    ``<date>-<time>-<model>-<size>``); an existing run folder with checkpoints gets a ``-1``, ``-2``... suffix
    instead of being overwritten, except with ``resume=auto``, which continues in it."""
    if cfg.output.resume and cfg.output.resume != 'auto':
        return Path(cfg.output.resume).expanduser().resolve().parent
    out = None
    if is_primary(dist):
        name = cfg.output.experiment
        if not name:
            size = cfg.data.img_size or (cfg.data.input_size[-1] if cfg.data.input_size else '')
            safe = cfg.model.model.replace('/', '_').replace(':', '_')
            name = '-'.join(str(p) for p in (time.strftime('%Y%m%d-%H%M%S'), safe, size) if p != '')
        base = Path(cfg.output.output).expanduser()
        out = base / name
        if cfg.output.resume != 'auto':
            i = 0
            while (out / 'last.pth').exists():
                i += 1
                out = base / f'{name}-{i}'
        out = str(out)
    return Path(broadcast_object(out, dist))


class RunWriters:
    """summary.csv (rewritten from the history each epoch), TensorBoard (optional)."""

    def __init__(self, out_dir: Path, enable_tb: bool, purge_step: Optional[int]):
        self.out_dir = out_dir
        self.tb = None
        if enable_tb:
            try:
                from torch.utils.tensorboard import SummaryWriter
                self.tb = SummaryWriter(log_dir=str(out_dir / 'tb'), purge_step=purge_step)
            except Exception as e:  # tensorboard not installed (optional extra timm-attention-zoo[tb])
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
        atomic_write_text(self.out_dir / 'summary.csv', buf.getvalue())

    def epoch(self, row: Dict[str, Any], history: List[Dict[str, Any]], num_epochs: int, is_best: bool) -> None:
        """The epoch's log line, ``summary.csv`` and TensorBoard scalars."""
        msg = (f'epoch {row["epoch"]}/{num_epochs}: train loss {row["train_loss"]:.4f}, '
               f'{row["train_images_per_s"]:.1f} img/s, {row["epoch_time_s"]:.1f}s')
        if 'eval_top1' in row:
            msg += f'; val loss {row["eval_loss"]:.4f} top1 {row["eval_top1"]:.2f} top5 {row["eval_top5"]:.2f}'
        if 'ema_eval_top1' in row:
            msg += f' (EMA top1 {row["ema_eval_top1"]:.2f})'
        _logger.info(msg + (' *best*' if is_best else ''))
        self.summary(history)
        self.scalars('epoch', {k: v for k, v in row.items() if k != 'epoch'}, row['epoch'])

    def close(self):
        if self.tb is not None:
            self.tb.close()


def _json_default(o):
    if isinstance(o, Path):
        return str(o)
    if isinstance(o, torch.Tensor):
        return o.tolist()
    return str(o)


def write_json(path: Path, obj: Any) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, default=_json_default))


def run_results(trainer: Any, rs: Any, *, status: str, message: str, epochs: int, paths: List[str],
                train_time_s: float) -> Dict[str, Any]:
    """``results.json`` of a run: its outcome, model, data, history and files (``paths``: the unreadable images
    of all ranks)."""
    t, dist = trainer, trainer.dist
    return dict(
        status=status, message=message, model=t.arch, num_params=t.param_count,
        num_classes=t.num_classes, class_names=list(t.class_names), epochs=epochs,
        epochs_done=len(rs.history), best_metric=rs.best_metric, best_epoch=rs.best_epoch,
        eval_metric=t.cfg.output.eval_metric, final_eval=rs.last_eval, history=rs.history,
        train_time_s=train_time_s, world_size=dist.world_size, device=str(dist.device),
        data_cfg=t.data_cfg, n_corrupt=len(paths), corrupt_paths=paths[:1000],
        output_dir=str(t.out_dir), signal=rs.stopped_by or None,
        checkpoints=dict(last=str(t.out_dir / 'last.pth'), best=str(t.out_dir / 'best.pth')),
    )


def save_checkpoints(out_dir: Path, ckpt: Dict[str, Any], epoch: int, is_best: bool, keep_last: int = 0) -> Path:
    """``last.pth`` (then copied to ``best.pth`` when best, and to ``checkpoint-<epoch+1>.pth`` keeping the last
    ``keep_last`` of those); a crash mid-write leaves the previous files intact."""
    last = atomic_save(ckpt, out_dir / 'last.pth')
    if is_best:
        atomic_copy(last, out_dir / 'best.pth')
    if keep_last > 0:
        atomic_copy(last, out_dir / f'checkpoint-{epoch + 1}.pth')
        old = out_dir / f'checkpoint-{epoch + 1 - keep_last}.pth'
        if old.exists():
            old.unlink()
    return last
