"""Conversion of a checkpoint (official, training or zoo layout) into a zoo model, and the strict check of a result.

:func:`convert` builds the zoo model through timm's own pretrained path
(``timm.create_model(name, pretrained=True, pretrained_cfg_overlay=dict(state_dict=...))``), so the family's
``checkpoint_filter_fn`` converts the official layout exactly as it does for ``pretrained=True`` users, and checks
that every converted tensor landed in the model. :func:`load_for_publish` also accepts a folder in timm's Hub
layout. :func:`verify_export` reloads an exported folder the way users will and compares every tensor.
"""
import json
import os
from pathlib import Path
from typing import Any, Dict, Mapping, Optional, Union

import torch
import torch.nn as nn

import timm

from ..checkpoint import (CheckpointError, classifier_names, load as safe_load, num_classes as head_classes,
                          sha256_file, state_dict_from)
from ..errors import UserError, check_model_name
from ..models import checkpoint_filter

__all__ = ['ZOO_CONFIG_KEY', 'convert', 'load_for_publish', 'verify_export']

ZOO_CONFIG_KEY = 'zoo'  # provenance block stored in config.json (ignored by timm's loaders)


def _split_name(name: str):
    check_model_name(name)
    arch, _, tag = name.partition('.')
    return arch, tag or None


def _checkpoint_num_classes(arch: str, state_dict: Dict[str, torch.Tensor], model_args: Dict[str, Any]) -> int:
    """Classes of the checkpoint's head, read after converting it to the zoo layout (0 if it has no head)."""
    fn = checkpoint_filter(arch)

    def probe(device):
        with torch.device(device):
            model = timm.create_model(arch, pretrained=False, **model_args)
        sd = fn(dict(state_dict), model) if fn else state_dict
        return head_classes(sd, model) or 0

    try:
        return probe('meta')
    except CheckpointError:
        raise
    except Exception:  # a filter that needs real tensors
        return probe('cpu')


def convert(name: str, checkpoint: Union[str, os.PathLike, Mapping[str, Any]], num_classes: Optional[int] = None,
            use_ema: bool = True, model_args: Optional[Dict[str, Any]] = None, **kwargs) -> nn.Module:
    """Build zoo model ``name`` (``arch`` or ``arch.tag``) with the weights of ``checkpoint`` (file or loaded).

    Goes through timm's pretrained path, so the family's ``checkpoint_filter_fn`` converts official layouts; the
    head keeps the checkpoint's class count (read from the converted classifier weights) unless ``num_classes``
    is given, and every converted tensor is checked to have been loaded. Returns the model in eval mode.
    """
    arch, tag = _split_name(name)
    model_args = dict(model_args or {})
    is_file = isinstance(checkpoint, (str, os.PathLike))
    obj = safe_load(checkpoint) if is_file else checkpoint
    sd = state_dict_from(obj, use_ema=use_ema)
    ckpt_classes = _checkpoint_num_classes(arch, sd, model_args)
    model = timm.create_model(
        name, pretrained=True, num_classes=ckpt_classes if num_classes is None else num_classes,
        pretrained_cfg_overlay=dict(state_dict=sd, num_classes=ckpt_classes), **model_args, **kwargs)
    model.pretrained_cfg.pop('state_dict', None)
    # the same conversion once more against the built model: every converted tensor must be in it, unchanged
    fn = checkpoint_filter(arch)
    converted = fn(dict(sd), model) if fn else sd
    own = model.state_dict()
    skip = classifier_names(model) if (num_classes is not None and num_classes != ckpt_classes) else ()
    differ = [k for k, v in converted.items()
              if not any(k.startswith(c + '.') for c in skip)
              and (k not in own or own[k].shape != v.shape or not torch.equal(own[k], v.to(own[k].dtype)))]
    if differ:
        raise CheckpointError(f'{name}: {len(differ)} converted tensors did not load into the model: {differ[:10]}')
    if is_file:
        model.zoo_provenance = {'checkpoint': Path(checkpoint).name, 'checkpoint_sha256': sha256_file(checkpoint)}
    return model.eval()


class ExportMismatchError(CheckpointError):
    """An exported folder does not reload into the same weights."""


def load_for_publish(name: Optional[str], checkpoint: Union[str, os.PathLike], use_ema: bool = True,
                     num_classes: Optional[int] = None) -> nn.Module:
    """A model ready to export/publish from a checkpoint file (official, training or zoo layout) or a folder in
    timm's Hub layout (``config.json`` + weights, e.g. the output of ``tools/convert.py``)."""
    path = Path(checkpoint)
    if path.is_dir():
        if not (path / 'config.json').is_file():
            raise FileNotFoundError(f'{path} is a folder without config.json (expected timm\'s Hub layout)')
        cfg = json.loads((path / 'config.json').read_text())
        if name and name.partition('.')[0] != cfg.get('architecture'):
            raise CheckpointError(f'{path} holds a {cfg.get("architecture")!r} model, not {name.partition(".")[0]!r}')
        weights = next((path / f for f in ('model.safetensors', 'pytorch_model.bin') if (path / f).is_file()), None)
        if weights is not None:
            safe_load(weights)  # clear refusal of unsafe pickles before timm touches the folder
        model = timm.create_model(f'local-dir:{path}', pretrained=True)
        model.pretrained_cfg.pop('file', None)
        model.pretrained_cfg.pop('source', None)
        model.zoo_provenance = cfg.get(ZOO_CONFIG_KEY) or {}
        return model.eval()
    if not name:
        raise UserError('a model name is needed to convert a checkpoint file')
    obj = safe_load(path)
    # tools/train.py checkpoints name these model_kwargs / data_cfg / history; accept both spellings
    args = {}
    if isinstance(obj, Mapping):
        args = next((obj[k] for k in ('model_args', 'model_kwargs') if isinstance(obj.get(k), Mapping)), {})
    model = convert(name, obj, num_classes=num_classes, use_ema=use_ema, model_args=dict(args))
    model.zoo_provenance = {'checkpoint': path.name, 'checkpoint_sha256': sha256_file(path)}
    if isinstance(obj, Mapping):
        metrics = obj.get('metrics')
        if not isinstance(metrics, Mapping) and isinstance(obj.get('metric'), (int, float)):
            metrics = {'top1': obj['metric']}
        if isinstance(metrics, Mapping):
            model.zoo_provenance['metrics'] = {k: v for k, v in metrics.items() if isinstance(v, (int, float))}
        data_cfg = next((obj[k] for k in ('data_config', 'data_cfg') if isinstance(obj.get(k), Mapping)), None)
        if data_cfg is not None:
            model.zoo_provenance['data_config'] = dict(data_cfg)
    return model


def verify_export(folder: Union[str, os.PathLike], model: nn.Module) -> int:
    """Reload ``folder`` (timm Hub layout) as users will -- ``timm.create_model('local-dir:...', pretrained=True)``,
    which loads strictly -- and check that every tensor equals ``model``'s. Returns the number of tensors compared;
    raises :class:`ExportMismatchError` naming the ones that differ."""
    reloaded = timm.create_model(f'local-dir:{folder}', pretrained=True)
    ours, theirs = model.state_dict(), reloaded.state_dict()
    bad = sorted(set(ours) ^ set(theirs))
    bad += [k for k in sorted(set(ours) & set(theirs))
            if ours[k].shape != theirs[k].shape or not torch.equal(ours[k].cpu(), theirs[k].cpu())]
    if bad:
        raise ExportMismatchError(f'{folder} does not reload into the converted weights: {len(bad)} tensors differ '
                                  f'({", ".join(bad[:10])})')
    return len(ours)
