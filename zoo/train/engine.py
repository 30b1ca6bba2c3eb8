"""``run_train_steps``: N steps of the real training loop on given batches, with what a config builds -- the same
builder as ``tools/train.py`` (``zoo.train.build.build_training``: optimiser, schedule, EMA with its warm-up, AMP,
mixup, loss) and the same loop (``zoo.train.loop.train_one_epoch``). ``tools/benchmark.py`` compares it to a bare
PyTorch loop.
"""
from typing import Any, Dict, Mapping, Optional, Sequence, Union

import torch
import torch.nn as nn

from .build import build_training, wrap_model
from .config import TrainConfig
from .loop import train_one_epoch
from .utils import DistInfo

__all__ = ['run_train_steps']


def run_train_steps(model: nn.Module, batches: Sequence, cfg: Union[TrainConfig, Mapping[str, Any], None] = None,
                    *, device: Optional[torch.device] = None, num_steps: Optional[int] = None,
                    num_classes: Optional[int] = None, warmup_steps: int = 0) -> Dict[str, float]:
    """Run ``num_steps`` steps of the real training loop (``train_one_epoch``) on given ``(x, y)`` batches.

    Everything but the data comes from ``cfg`` (defaults of ``zoo.train.config``) through the builder
    ``tools/train.py`` uses, as a one-epoch run of ``warmup_steps + num_steps`` updates without LR warm-up.
    ``batches`` is cycled if shorter than ``num_steps``; ``warmup_steps`` untimed steps run first. Returns the
    loop's stats (``images_per_s``, ``seconds``, ``loss``, ...).
    """
    cfg = TrainConfig.of(cfg)
    device = torch.device(device) if device is not None else next(model.parameters()).device
    model.to(device)
    if cfg.loop.channels_last:
        model.to(memory_format=torch.channels_last)
    num_classes = num_classes or getattr(model, 'num_classes', None)
    n = num_steps or len(batches)
    total = n + warmup_steps
    sched_cfg = cfg.replace(epochs=1, warmup_epochs=0, cooldown_epochs=0, sched_on_updates=True)
    parts = build_training(model, sched_cfg, num_classes, device, updates_per_epoch=max(total, 1))
    state = parts.state(wrap_model(model, cfg, DistInfo(device=device)), cfg, device)

    def cycle(k):
        i = 0
        while i < k:
            for b in batches:
                if i >= k:
                    return
                yield b
                i += 1

    if warmup_steps:
        train_one_epoch(state, cycle(warmup_steps), num_steps=warmup_steps, log_interval=0)
    if device.type == 'cuda':
        torch.cuda.synchronize(device)
    stats = train_one_epoch(state, cycle(n), num_steps=n, log_interval=0)
    if device.type == 'cuda':
        torch.cuda.synchronize(device)
    return stats
