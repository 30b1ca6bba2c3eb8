"""Checkpoint plumbing shared by the family files: unwrap, validate, report clearly."""
from collections.abc import Mapping
from typing import Dict, Iterable, Optional, Sequence

import torch
import torch.nn as nn
from timm.layers import register_notrace_function
from ..errors import UserError

__all__ = ['CheckpointError', 'unwrap_state_dict', 'strip_prefix', 'check_state_dict', 'check_in_chans', 'check_input']


class CheckpointError(UserError, ValueError):
    """A checkpoint that cannot be loaded into a zoo model; the message names every offending tensor."""


def unwrap_state_dict(checkpoint, keys: Sequence[str] = ('state_dict_ema', 'model_ema', 'state_dict', 'model')) -> Dict[str, torch.Tensor]:
    """Return the tensor dict inside a checkpoint (a bare state dict or one wrapped under one of ``keys``).

    Raises CheckpointError when the object is not a mapping of names to tensors.
    """
    if not isinstance(checkpoint, Mapping):
        raise CheckpointError(f'checkpoint is not a state dict: got {type(checkpoint).__name__}')
    obj = checkpoint
    for k in keys:
        if k in obj and isinstance(obj[k], Mapping):
            obj = obj[k]
            break
    non_tensor = [k for k, v in obj.items() if not isinstance(v, torch.Tensor)]
    if not obj or non_tensor:
        top = sorted(map(str, checkpoint.keys()))[:10]
        raise CheckpointError(
            'checkpoint is not a state dict (expected a mapping of parameter names to tensors, possibly under '
            f'one of {list(keys)}); top-level keys: {top}'
            + (f'; non-tensor entries: {non_tensor[:10]}' if non_tensor else ''))
    return dict(obj)


def strip_prefix(state_dict: Dict[str, torch.Tensor], prefix: str = 'module.') -> Dict[str, torch.Tensor]:
    return {(k[len(prefix):] if k.startswith(prefix) else k): v for k, v in state_dict.items()}


def _fmt(names: Iterable[str], limit: int = 20) -> str:
    names = sorted(names)
    more = f' ... (+{len(names) - limit} more)' if len(names) > limit else ''
    return ', '.join(names[:limit]) + more


def check_state_dict(state_dict: Dict[str, torch.Tensor], model: nn.Module, source: str = 'checkpoint',
                     ignore_shape_prefixes: Optional[Sequence[str]] = None) -> Dict[str, torch.Tensor]:
    """Compare a converted state dict with ``model`` and raise one error naming all problems.

    Shapes of the classifier and first conv (from the model's pretrained cfg) are not compared, because
    timm adapts those afterwards when ``num_classes`` or ``in_chans`` differ from the checkpoint's.
    """
    expected = model.state_dict()
    if ignore_shape_prefixes is None:
        cfg = getattr(model, 'pretrained_cfg', None) or {}
        ignore_shape_prefixes = []
        for key in ('classifier', 'first_conv'):
            names = cfg.get(key)
            if names:
                ignore_shape_prefixes += [names] if isinstance(names, str) else list(names)
    missing = set(expected) - set(state_dict)
    unexpected = set(state_dict) - set(expected)
    wrong = []
    for k in set(expected) & set(state_dict):
        if any(k.startswith(p + '.') for p in ignore_shape_prefixes):
            continue
        if tuple(state_dict[k].shape) != tuple(expected[k].shape):
            wrong.append(f'{k} (checkpoint {tuple(state_dict[k].shape)}, model {tuple(expected[k].shape)})')
    if missing or unexpected or wrong:
        parts = [f'{source} does not match {type(model).__name__}:']
        if missing:
            parts.append(f'missing {len(missing)} tensors: {_fmt(missing)}')
        if unexpected:
            parts.append(f'unexpected {len(unexpected)} tensors: {_fmt(unexpected)}')
        if wrong:
            parts.append(f'wrongly shaped {len(wrong)} tensors: {_fmt(wrong)}')
        raise CheckpointError('\n  '.join(parts))
    return state_dict


@register_notrace_function  # a leaf under FX: the checks run when the traced graph runs
def check_in_chans(x: torch.Tensor, in_chans: int) -> None:
    """Clear error for an NCHW input with the wrong channel count (call at the top of forward_features).

    Written with string concatenation so that it also compiles under TorchScript.
    """
    if x.dim() != 4:
        raise ValueError('expected a 4-D NCHW input, got a ' + str(x.dim()) + '-D tensor')
    if x.shape[1] != in_chans:
        raise ValueError('expected ' + str(in_chans) + ' input channels, got ' + str(x.shape[1]) + ' channels')


@register_notrace_function
def check_input(x: torch.Tensor, in_chans: int, min_size: int = 0, family: str = 'this model') -> None:
    """The one input check of every zoo model: 4-D NCHW, ``in_chans`` channels, and at least ``min_size`` pixels
    on each side where the architecture has a minimum (``min_size=0``: none). A leaf under FX tracing, and
    TorchScript-compatible, so models stay traceable and scriptable with the check in place."""
    check_in_chans(x, in_chans)
    if min_size > 0 and (x.shape[2] < min_size or x.shape[3] < min_size):
        raise ValueError(family + ' needs inputs of at least ' + str(min_size) + 'x' + str(min_size) + ' pixels, got '
                         + str(x.shape[2]) + 'x' + str(x.shape[3]))


def imagenet_cfg(first_conv: str, classifier: str, paper: str, origin_url: str, license: str = 'apache-2.0',
                 **overrides) -> Dict:
    """Base timm pretrained cfg shared by the zoo families: ImageNet-1k, 224 px, 7x7 final map, bicubic 0.875
    crop, ImageNet mean/std; a family passes its module names, paper and source, and whatever differs."""
    from timm.data import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD
    cfg = dict(num_classes=1000, input_size=(3, 224, 224), pool_size=(7, 7), crop_pct=0.875,
               interpolation='bicubic', mean=IMAGENET_DEFAULT_MEAN, std=IMAGENET_DEFAULT_STD,
               first_conv=first_conv, classifier=classifier, license=license, paper_ids=paper, origin_url=origin_url)
    cfg.update(overrides)
    return cfg
