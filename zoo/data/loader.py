"""What the data loaders of the tools share: the unreadable-image tracker, the exact (unpadded) evaluation shard
sampler and the worker initialiser that re-seeds each worker's augmentation pipeline."""
import logging
import signal
from typing import Dict, Sequence, Tuple

import torch
from torch.utils.data import get_worker_info

__all__ = ['CorruptTracker', 'ShardSampler', 'seed_worker_transform']

_logger = logging.getLogger('zoo.train')


class CorruptTracker:
    """Collects unreadable images reported by the loaders (``collate_skip_corrupt``); logs each path once."""

    def __init__(self, log: bool = True):
        self.paths: Dict[str, str] = {}
        self.log = log

    def __call__(self, bad: Sequence[Tuple[str, str]]) -> None:
        for path, reason in bad:
            if path not in self.paths:
                self.paths[path] = reason
                if self.log:
                    _logger.warning(f'skipping unreadable image {path}: {reason}')

    @property
    def count(self) -> int:
        return len(self.paths)


class ShardSampler(torch.utils.data.Sampler):
    """Every ``world_size``-th index starting at ``rank``, in order, without padding (exact distributed eval)."""

    def __init__(self, n: int, rank: int = 0, world_size: int = 1):
        self.indices = list(range(rank, n, world_size))

    def __iter__(self):
        return iter(self.indices)

    def __len__(self):
        return len(self.indices)


def seed_worker_transform(worker_id: int) -> None:
    """DataLoader ``worker_init_fn``: each worker re-seeds its copy of the albumentations pipeline from its torch
    seed (which comes from the loader's generator, itself seeded per epoch). Threads: torch already runs workers
    single-threaded and zoo.data switches OpenCV's thread pool off before any fork (calling into it in a forked
    child can deadlock). Workers ignore SIGTERM / SIGINT, which a scheduler or a terminal sends to the whole process
    group: the main process decides (the trainer stops at a step boundary) and shuts the workers down itself."""
    for s in (signal.SIGTERM, signal.SIGINT):
        signal.signal(s, signal.SIG_IGN)
    info = get_worker_info()
    ds = info.dataset
    if hasattr(ds, 'set_transform_seed'):
        ds.set_transform_seed(info.seed)
