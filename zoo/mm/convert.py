"""The authors' mmdetection 2.x / mmsegmentation 0.x checkpoints -> the zoo's mmdet 3 / mmseg 1 models, in one step.

Backbone keys (``backbone.<authors' names>``) go through the family's own ``checkpoint_filter_fn`` into
``backbone.body.model.*``; neck and head keys keep their names: FPN, RPNHead, (Shared2FC / ConvFC) BBoxHead,
FCNMaskHead, UPerHead and FCNHead have the same parameter names in mmdet 2.11 / 2.28 and 3.3 and in mmseg 0.30 and
1.2 (the stand-ins of tests/test_dense.py, recorded from the 2.x / 0.x definitions, load strictly). The result is
written atomically in mmengine's format (``state_dict`` + ``meta`` with the dataset classes); every tensor left
unmatched, on either side, is named in one :class:`~zoo.checkpoint.CheckpointError`.
"""
import os
from pathlib import Path
from typing import Any, Dict, Optional, Union

import torch

from ..checkpoint import (CheckpointError, atomic_save, compare_state_dict, convert_and_check, load,
                          mmengine_checkpoint_globals, sha256_file, strip_prefix)
from ..errors import UserError
from ..models import checkpoint_filter
from .weights import dense_entry

__all__ = ['LAYOUTS', 'LayoutError', 'detect_layout', 'convert_state_dict', 'convert_checkpoint', 'build_model',
           'dense_entry', 'resolve_checkpoint', 'inferencer']

# layout -> the OpenMMLab package its config runs in
LAYOUTS = {'mmdet2': 'mmdet', 'mmseg0': 'mmseg'}
_BODY = 'backbone.body.model.'


class LayoutError(UserError, ValueError):
    """A checkpoint whose layout is not one this converter knows."""


def detect_layout(ckpt: Any) -> str:
    """``'mmdet2'`` / ``'mmseg0'`` from the checkpoint's ``meta`` (``mmdet_version`` / ``mmseg_version``)."""
    meta = ckpt.get('meta') if isinstance(ckpt, dict) else None
    meta = meta if isinstance(meta, dict) else {}
    for key, major, layout in (('mmdet_version', '2.', 'mmdet2'), ('mmseg_version', '0.', 'mmseg0')):
        version = str(meta.get(key) or '')
        if version.startswith(major):
            return layout
    found = {k: meta[k] for k in ('mmdet_version', 'mmseg_version', 'mmengine_version') if k in meta}
    raise LayoutError(f'unknown checkpoint layout (meta: {found or "none"}); known: '
                      f'{", ".join(LAYOUTS)} (mmdet 2.x / mmseg 0.x checkpoints); name one with --layout')


def _check_layout(layout: str, scope: Optional[str]) -> None:
    if layout not in LAYOUTS:
        raise LayoutError(f'unknown checkpoint layout {layout!r}; known: {", ".join(LAYOUTS)}')
    if scope and LAYOUTS[layout] != scope:
        raise LayoutError(f'a {layout} checkpoint cannot load into an {scope} config')


def _body(model) -> torch.nn.Module:
    from .backbone import ZooBackbone
    backbone = getattr(model, 'backbone', None)
    if not isinstance(backbone, ZooBackbone) or not hasattr(backbone.body, 'model'):
        raise CheckpointError('the config\'s backbone must be a ZooBackbone of a zoo model (features_only body)')
    return backbone.body.model


def convert_state_dict(state_dict: Dict[str, torch.Tensor], model: torch.nn.Module) -> Dict[str, torch.Tensor]:
    """The authors' state dict -> ``model``'s keys (an mmdet / mmseg model with a zoo ``ZooBackbone``).

    Raises one :class:`CheckpointError` naming every tensor left unmatched: the family filter's complaints, the
    model's tensors nothing in the checkpoint provides, the checkpoint's tensors with no place, and shape mismatches.
    """
    body = _body(model)
    sd = strip_prefix(dict(state_dict), 'module.')
    backbone = {k[len('backbone.'):]: v for k, v in sd.items() if k.startswith('backbone.')}
    rest = {k: v for k, v in sd.items() if not k.startswith('backbone.')}
    if any(k.startswith('body.') for k in backbone):
        raise LayoutError('the checkpoint is already in the zoo layout (backbone.body.*): load it as it is')
    problems = []
    converted: Dict[str, torch.Tensor] = {}
    if not backbone:
        problems.append('no backbone.* tensor in the checkpoint')
    else:
        fn = checkpoint_filter(body.default_cfg['architecture']) if hasattr(body, 'default_cfg') else None
        if fn is None:
            raise CheckpointError(f'{type(body).__name__} has no checkpoint filter to convert the authors\' keys')
        own = body.state_dict()
        try:
            out = convert_and_check(backbone, body, fn)
        except CheckpointError as e:
            problems.append(f'backbone: {e}')
        else:
            # a filter keeps the model's own tensor for a module the checkpoint lacks: that is a missing tensor
            filled = [k for k, v in out.items() if k in own and v.data_ptr() == own[k].data_ptr()]
            problems += [f'missing in the checkpoint: backbone.{k}' for k in filled]
            converted = {_BODY + k: v for k, v in out.items()}
    converted.update(rest)
    diff = compare_state_dict(converted, model)
    if not any(k.startswith(_BODY) for k in converted):  # the backbone failed as a whole: said above
        diff.missing = [k for k in diff.missing if not k.startswith(_BODY)]
    if diff:
        problems.append(diff.message('converted checkpoint', type(model).__name__))
    if problems:
        raise CheckpointError('cannot convert the checkpoint:\n  ' + '\n  '.join(problems))
    return converted


def _dataset_meta(meta: Dict[str, Any]) -> Dict[str, Any]:
    out = {}
    if isinstance(meta.get('CLASSES'), (list, tuple)):
        out['classes'] = tuple(meta['CLASSES'])
    if isinstance(meta.get('PALETTE'), (list, tuple)):
        out['palette'] = [list(p) for p in meta['PALETTE']]
    return out


def convert_checkpoint(checkpoint: Union[str, os.PathLike], config: str, out: Union[str, os.PathLike],
                       layout: Optional[str] = None, cfg_options: Optional[dict] = None) -> Path:
    """Convert the authors' checkpoint file for ``config`` (a file or ``zoo::`` name) and write ``out`` atomically
    (mmengine format: ``state_dict`` + ``meta``). ``layout`` defaults to what the checkpoint's meta says."""
    from .configs import load_config
    cfg = load_config(config, cfg_options)
    scope = cfg.get('default_scope')
    ckpt = load(checkpoint, extra_globals=mmengine_checkpoint_globals())
    layout = layout or detect_layout(ckpt)
    _check_layout(layout, scope)
    sd = ckpt.get('state_dict', ckpt) if isinstance(ckpt, dict) else None
    if not isinstance(sd, dict) or not all(isinstance(v, torch.Tensor) for v in sd.values()):
        raise LayoutError(f'{checkpoint}: no state_dict of tensors in the checkpoint')
    cfg.model.backbone.pretrained = False  # the checkpoint holds every weight
    model = build_model(cfg)
    state_dict = convert_state_dict(sd, model)
    src = ckpt.get('meta') if isinstance(ckpt.get('meta'), dict) else {}
    meta = dict(zoo_converted=dict(source=Path(checkpoint).name, source_sha256=sha256_file(checkpoint),
                                   layout=layout, config=str(config)))
    dataset_meta = _dataset_meta(src)
    if dataset_meta:
        meta['dataset_meta'] = dataset_meta
    return atomic_save(dict(meta=meta, state_dict=state_dict), out)


def build_model(cfg) -> torch.nn.Module:
    """The config's detector / segmenter (no weights loaded), built in its OpenMMLab scope."""
    import importlib

    from mmengine.registry import DefaultScope
    scope = cfg.get('default_scope')
    importlib.import_module(f'{scope}.utils').register_all_modules(init_default_scope=False)
    registry = importlib.import_module(f'{scope}.registry')
    with DefaultScope.overwrite_default_scope(scope):
        return registry.MODELS.build(cfg.model)


def resolve_checkpoint(spec: str, progress: bool = True) -> str:
    """A checkpoint path mmengine can load for ``spec``: a det / seg manifest tag is downloaded (verified against its
    SHA-256 prefix) and converted once, for the tag's config, into ``<cache>/converted/<tag>.pth``; anything else is
    returned unchanged."""
    entry = dense_entry(spec)
    if entry is None:
        return spec
    from ..hub import cache_dir, fetch
    out = cache_dir('converted') / f'{spec}.pth'
    if not out.is_file():
        dl = fetch(spec, progress=progress)
        convert_checkpoint(dl.path, entry['config'], out, layout=entry['layout'])
    return str(out)


def inferencer(config: str, checkpoint: str, device: str = 'cpu', cfg_options: Optional[dict] = None):
    """mmdet's ``DetInferencer`` / mmseg's ``MMSegInferencer`` for a zoo config (``cfg_options`` merged into it) and a
    converted checkpoint (the backbone's ImageNet initialisation is skipped: the checkpoint holds every weight)."""
    from .configs import load_config
    cfg = load_config(config, cfg_options)
    cfg.model.backbone.pretrained = False
    if cfg.get('default_scope') == 'mmseg':
        from mmseg.apis import MMSegInferencer
        return MMSegInferencer(model=cfg, weights=checkpoint, device=device)
    from mmdet.apis import DetInferencer
    return DetInferencer(model=cfg, weights=checkpoint, device=device, show_progress=False)
