"""What the mm modules share about weights: mmengine's checkpoint types allowed during its loads, and the det / seg
tags of the manifest.

mmengine 0.10.7 calls ``torch.load`` without ``weights_only`` (True by default since torch 2.6), and its
checkpoints carry a few plain data types (:func:`zoo.checkpoint.mmengine_checkpoint_globals`).
:func:`scope_mmengine_checkpoint_loads` allows them only *during* ``CheckpointLoader.load_checkpoint`` (behind
``load_checkpoint``, ``load_from`` / ``--resume`` and ``init_cfg=dict(type='Pretrained')``); nothing is added to
torch's allowlist for the process.
"""
import functools
from typing import Any, Dict, Optional

from ..checkpoint import allow_globals, mmengine_checkpoint_globals

__all__ = ['mmengine_checkpoint_allowlist', 'scope_mmengine_checkpoint_loads', 'dense_entry']


def mmengine_checkpoint_allowlist():
    """Context manager: :func:`mmengine_checkpoint_globals` allowed for ``torch.load(weights_only=True)`` inside the
    ``with`` block only (entries that were allowed before stay allowed afterwards)."""
    return allow_globals(mmengine_checkpoint_globals())


def scope_mmengine_checkpoint_loads() -> None:
    """Wrap mmengine's ``CheckpointLoader.load_checkpoint`` so that its ``torch.load`` runs inside
    :func:`mmengine_checkpoint_allowlist` (idempotent)."""
    from mmengine.runner.checkpoint import CheckpointLoader
    current = CheckpointLoader.__dict__['load_checkpoint']
    func = current.__func__ if isinstance(current, classmethod) else current
    if getattr(func, '_zoo_scoped_allowlist', False):
        return

    @functools.wraps(func)
    def load_checkpoint(cls, *args, **kwargs):
        with mmengine_checkpoint_allowlist():
            return func(cls, *args, **kwargs)

    load_checkpoint._zoo_scoped_allowlist = True
    load_checkpoint.__wrapped__ = func
    CheckpointLoader.load_checkpoint = classmethod(load_checkpoint)


def dense_entry(name: str) -> Optional[Dict[str, Any]]:
    """The manifest entry of a det / seg tag (None for anything else)."""
    from .. import manifest
    e = manifest.entry(name) if isinstance(name, str) and '.' in name and '/' not in name else None
    return e if e and e.get('task') in ('det', 'seg') else None
