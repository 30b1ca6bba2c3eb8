"""``ZooBackbone``: any zoo / timm model as an mmdetection 3.x / mmsegmentation 1.x backbone.

The model is built through timm's ``features_only`` path, so every zoo family and every timm model with feature
support works. This module needs only ``torch``, ``timm`` and ``mmengine``; registration into the mmdet / mmseg
registries happens in :mod:`zoo.mm`. ``out_indices`` and ``frozen_stages`` count timm's ``feature_info`` levels
(for ResNets level 0 is the stem, so ``out_indices=(1, 2, 3, 4)``); :func:`feature_levels` prints them for any
model. The full convention: docs/detection_segmentation.md, "ZooBackbone and ZooAlbu".
"""
import math
import warnings
from typing import Dict, List, Optional, Sequence, Tuple, Union

import timm
import torch
import torch.nn as nn
import torch.nn.functional as F
from timm.layers import LayerNorm2d
from torch.nn.modules.batchnorm import _BatchNorm

from ..checkpoint import (CheckpointError, compare_state_dict, load, mmengine_checkpoint_globals, strip_prefix,
                          unwrap_state_dict)
from ..errors import UnknownModelError, check_model_name
from ..models import checkpoint_filter
from .configs import ConfigError
from .weights import dense_entry

try:
    from mmengine.model import BaseModule
except ImportError as e:  # pragma: no cover - zoo.mm checks this first with a clearer message
    raise ImportError('zoo.mm.backbone needs mmengine (pip install "mmengine==0.10.7")') from e

__all__ = ['ZooBackbone', 'feature_levels', 'ConfigError', 'check_backbone_name']


def check_backbone_name(model_name: str) -> str:
    """Raise a clear error when ``model_name`` (``arch`` or ``arch.tag``) is not a registered timm/zoo model."""
    if not isinstance(model_name, str) or not model_name:
        raise ConfigError(f'ZooBackbone: model_name must be a non-empty string, got {model_name!r}')
    try:
        return check_model_name(model_name)
    except UnknownModelError as e:
        raise ConfigError(f'ZooBackbone: {e}') from None


def feature_levels(model_name: str, **kwargs) -> List[Dict]:
    """The feature levels (index, module, channels, reduction) that ``out_indices`` / ``frozen_stages`` refer to."""
    check_backbone_name(model_name)
    m = timm.create_model(model_name, pretrained=False, features_only=True, **kwargs)
    return [dict(index=i, module=fi['module'], num_chs=fi['num_chs'], reduction=fi['reduction'])
            for i, fi in enumerate(m.feature_info.info)]


# ------------------------------------------------------------------------------------------------------- build
def levels_str(levels: List[Dict]) -> str:
    return ', '.join(f'{i}: {fi["module"]} (stride {fi["reduction"]}, {fi["num_chs"]} ch)'
                     for i, fi in enumerate(levels))


def probe_levels(model_name: str, in_channels: int, kwargs: Dict) -> List[Dict]:
    """The feature levels of ``model_name`` (module, channels, reduction), from a model built without weights."""
    kw = {k: v for k, v in kwargs.items() if k != 'pretrained_cfg_overlay'}
    m = timm.create_model(model_name, pretrained=False, features_only=True, in_chans=in_channels, **kw)
    return [dict(module=fi['module'], num_chs=fi['num_chs'], reduction=fi['reduction'])
            for fi in m.feature_info.info]


def build_body(model_name: str, pretrained: bool, in_channels: int, out_indices, kwargs: Dict) -> nn.Module:
    """``timm.create_model(model_name, features_only=True, ...)`` at ``out_indices`` (negative: from the end),
    with a :class:`ConfigError` naming the feature levels for indices the model does not have."""
    create = dict(pretrained=pretrained, features_only=True, in_chans=in_channels, **kwargs)
    if out_indices is None:
        return timm.create_model(model_name, **create)
    if isinstance(out_indices, int) or not all(isinstance(i, int) for i in out_indices) or not out_indices:
        raise ConfigError(f'ZooBackbone: out_indices must be a non-empty sequence of ints, got {out_indices!r}')
    out_indices = tuple(out_indices)
    if any(i < 0 for i in out_indices):
        n = len(probe_levels(model_name, in_channels, kwargs))
        out_indices = tuple(i + n if i < 0 else i for i in out_indices)
    try:
        body = timm.create_model(model_name, out_indices=out_indices, **create)
    except Exception:
        levels = probe_levels(model_name, in_channels, kwargs)
        bad = [i for i in out_indices if not 0 <= i < len(levels)]
        if bad:
            raise ConfigError(
                f'ZooBackbone: out_indices {out_indices} of {model_name}: {bad} outside its feature levels '
                f'0..{len(levels) - 1} ({levels_str(levels)})') from None
        raise
    got = tuple(body.feature_info.out_indices)
    if len(set(out_indices)) != len(out_indices) or sorted(out_indices) != list(out_indices):
        raise ConfigError(f'ZooBackbone: out_indices {out_indices} must be increasing without repeats')
    if got != out_indices:
        raise ValueError(f'ZooBackbone: asked for out_indices {out_indices}, {model_name} gave {got}')
    return body


def check_out_strides(out_strides: Optional[Sequence[int]], out_indices: Tuple[int, ...], native: List[int]
                      ) -> List[int]:
    """The stride of each output: ``out_strides`` (each a multiple or divisor of the native one), else native."""
    if out_strides is None:
        return native
    out_strides = [int(s) for s in out_strides]
    if len(out_strides) != len(out_indices):
        raise ValueError(f'ZooBackbone: out_strides {out_strides} must have one entry per out_indices '
                         f'{out_indices}')
    for s, r in zip(out_strides, native):
        if s <= 0 or (s % r and r % s):
            raise ValueError(f'ZooBackbone: out_strides {out_strides}: each stride must be a multiple or '
                             f'divisor of the native strides {native}')
    return list(out_strides)


# ------------------------------------------------------------------------------------------------------ freeze
def reachable_params(model: nn.Module, level: int, levels: List[Dict], in_channels: int, model_name: str
                     ) -> List[str]:
    """Names of the parameters of ``model`` (a FeatureGetterNet's model) that feature level ``level`` depends on,
    asked of autograd through ``forward_intermediates``."""
    params = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    was_training = model.training
    model.eval()
    cfg = getattr(model, 'pretrained_cfg', None) or {}
    sizes = [max(fi['reduction'] for fi in levels) * 2]
    if cfg.get('input_size'):
        sizes.append(cfg['input_size'][-1])
    err = None
    try:
        for s in sizes:
            try:
                x = torch.randn(1, in_channels, s, s)
                feats = model.forward_intermediates(x, indices=[level], intermediates_only=True)
                out = feats[0] if isinstance(feats, (list, tuple)) else feats
                grads = torch.autograd.grad(out.float().sum(), [p for _, p in params], allow_unused=True)
                return [n for (n, _), g in zip(params, grads) if g is not None]
            except Exception as e:  # try the model's own input size next
                err = e
    finally:
        model.train(was_training)
    raise RuntimeError(f'ZooBackbone: could not trace which parameters feature level {level} of '
                       f'{model_name} depends on (frozen_stages): {err}')


def params_up_to_level(body: nn.Module, level: int, levels: List[Dict], in_channels: int, model_name: str
                       ) -> List[str]:
    """Names (in ``body``) of every parameter that feature level ``level`` depends on."""
    names = [n for n, _ in body.named_parameters()]
    if hasattr(body, 'model') and hasattr(body.model, 'forward_intermediates'):
        # FeatureGetterNet: forward is not a module sequence, so ask autograd which parameters reach the level
        if level > max(body.feature_info.out_indices):
            return names
        return ['model.' + n for n in reachable_params(body.model, level, levels, in_channels, model_name)]
    # FeatureListNet / FeatureDictNet: modules run in registration order
    target = levels[level]['module']
    candidates = {target, target.replace('.', '_')}
    frozen_children = []
    for child_name, _ in body.named_children():
        frozen_children.append(child_name)
        if child_name in candidates:
            return [n for n in names if n.split('.', 1)[0] in frozen_children]
    if level > max(body.feature_info.out_indices):
        return names  # truncated away after the last requested output: everything kept runs before it
    raise RuntimeError(f'ZooBackbone: cannot locate module {target!r} of feature level {level} in '
                       f'{type(body).__name__} to apply frozen_stages')


def freeze(body: nn.Module, frozen: set) -> List[nn.Module]:
    """``requires_grad=False`` for the parameters named in ``frozen``; returns the modules whose parameters are all
    frozen (they run in eval mode: BN statistics, dropout, drop path)."""
    for n, p in body.named_parameters():
        if n in frozen:
            p.requires_grad_(False)
    modules, covered = [], set()
    for name, m in body.named_modules():
        if any(name.startswith(c + '.') for c in covered):
            continue
        ps = [n for n, _ in m.named_parameters(prefix=name)]
        if ps and all(n in frozen for n in ps) and name:
            modules.append(m)
            covered.add(name)
    return modules


# -------------------------------------------------------------------------------------------------------- load
def read_dense_state_dict(checkpoint: str, prefix: Optional[str], map_location='cpu'
                          ) -> Tuple[Dict[str, torch.Tensor], List[str]]:
    """The tensors under ``prefix`` of a detector / segmentor checkpoint (a det / seg manifest tag is downloaded
    and verified first), and every key of the file."""
    if dense_entry(str(checkpoint)):
        from ..hub import fetch
        checkpoint = fetch(str(checkpoint)).path
    path = str(checkpoint)
    if '://' in path:  # URLs, open-mmlab://, s3:// ...: mmengine's loaders (their allowlist is scoped by zoo.mm)
        from mmengine.runner.checkpoint import CheckpointLoader
        ckpt = CheckpointLoader.load_checkpoint(path, map_location=map_location)
    else:  # safetensors or torch.load(weights_only=True), mmengine's data types allowed for this call only
        ckpt = load(path, map_location=map_location, extra_globals=mmengine_checkpoint_globals())
    sd = strip_prefix(unwrap_state_dict(ckpt, keys=('state_dict', 'model')), 'module.')
    raw_keys = list(sd)
    if prefix:
        sd = {k[len(prefix):]: v for k, v in sd.items() if k.startswith(prefix)}
    return sd, raw_keys


def convert_authors(body: nn.Module, sd: Dict[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
    """The authors' backbone keys -> ``body.model.*`` through the family's key filter (when it has one)."""
    model = body.model
    fn = checkpoint_filter(model.default_cfg['architecture']) if hasattr(model, 'default_cfg') else None
    if fn is None:
        return sd
    return {'body.model.' + k: v for k, v in fn(sd, model).items()}


def check_dense_state_dict(backbone: nn.Module, sd: Dict[str, torch.Tensor], raw_keys: List[str], checkpoint: str,
                           prefix: Optional[str]) -> Dict[str, torch.Tensor]:
    """The tensors of ``sd`` that ``backbone`` has; every missing (but the new ``out_norms``) or mis-shaped one
    raises one :class:`CheckpointError`, a classification checkpoint with a pointer to the right option."""
    expected = backbone.state_dict()
    if not set(sd) & set(expected):
        hint = ''
        ours = any(k.startswith('body.') for k in sd) or any(k.startswith(prefix or 'body.') for k in raw_keys)
        if not ours:
            hint = (' It looks like a classification checkpoint: load those with '
                    'pretrained_cfg_overlay=dict(file=...) (or pretrained=<path>) instead of init_cfg.')
        raise CheckpointError(f'ZooBackbone: no tensor of {checkpoint} (prefix {prefix!r}) matches '
                              f'{backbone.model_name}.{hint}')
    diff = compare_state_dict(sd, expected)
    norm_missing = [k for k in diff.missing if k.startswith('out_norms.')]
    unexpected, diff.unexpected = diff.unexpected, []
    diff.missing = [k for k in diff.missing if not k.startswith('out_norms.')]
    if diff:
        raise CheckpointError(diff.message(f'ZooBackbone: {checkpoint} (prefix {prefix!r})', backbone.model_name))
    if norm_missing:
        warnings.warn(f'ZooBackbone: {checkpoint} has no out_norms; they keep their fresh initialisation')
    if unexpected:
        warnings.warn(f'ZooBackbone: ignored {len(unexpected)} tensors of {checkpoint} not in this backbone '
                      f'(e.g. levels after the last out_index): {unexpected[:10]}')
    return {k: v for k, v in sd.items() if k in expected}


class ZooBackbone(BaseModule):
    """Multi-scale backbone from any zoo / timm model (timm ``features_only``).

    Args:
        model_name: zoo or timm model name, optionally with a pretrained tag (``'zoo_biformer_small.in1k'``).
        pretrained: load the tag's pretrained weights at construction (timm path, head/in_chans adaptation).
            A string is a local classification checkpoint (same as ``pretrained_cfg_overlay=dict(file=...)``).
        out_indices: feature levels to output (timm ``feature_info`` indices; negative allowed). ``None`` = the
            model's default levels. Only request what the neck uses (unused outputs break DDP).
        frozen_stages: freeze (``requires_grad=False`` + eval mode, re-applied on ``train()``) every parameter that
            feature level ``frozen_stages`` depends on; ``-1`` freezes nothing. Same numbering as ``out_indices``.
        norm_eval: keep all BatchNorm layers of the backbone in eval mode while training (frozen BN statistics).
        with_cp: gradient checkpointing (timm ``set_grad_checkpointing``).
        drop_path_rate: stochastic depth rate passed to the model (``None`` = model default; not passed).
        pretrained_cfg_overlay: timm overlay, e.g. ``dict(file='cls.pth')`` for a local classification checkpoint.
        out_norms: add a new ``LayerNorm2d`` (eps ``out_norm_eps``) on each output, as BiFormer/OverLoCK dense
            backbones do. They are trained with the detector (not in classification checkpoints).
        out_strides: optional target stride per output; a level whose native stride differs is resampled without
            parameters (bilinear up / max-pool down). Builds a pyramid from isotropic (ViT-like) models.
        pad_to_multiple: zero-pad the input bottom/right to a multiple of this (``'auto'`` = the model's largest
            feature stride; ``None``/``0`` = off). Outputs are cropped back to ``ceil(H / stride)`` when
            ``crop_outputs`` is True, so feature maps always align with the unpadded image.
        in_channels: input channels (timm ``in_chans``).
        init_cfg: mmengine init config. ``dict(type='Pretrained', checkpoint='det.pth', prefix='backbone.')`` loads the
            backbone of a detector/segmentor checkpoint (checked: missing tensors raise, naming them).
        **model_kwargs: passed to ``timm.create_model`` (e.g. ``n_win=16`` for BiFormer, ``img_size``).
    """

    def __init__(
            self,
            model_name: str,
            pretrained: Union[bool, str] = False,
            out_indices: Optional[Sequence[int]] = None,
            frozen_stages: int = -1,
            norm_eval: bool = False,
            with_cp: bool = False,
            drop_path_rate: Optional[float] = None,
            pretrained_cfg_overlay: Optional[dict] = None,
            out_norms: bool = False,
            out_norm_eps: float = 1e-6,
            out_strides: Optional[Sequence[int]] = None,
            pad_to_multiple: Union[int, str, None] = 'auto',
            crop_outputs: bool = True,
            in_channels: int = 3,
            init_cfg: Optional[Union[dict, List[dict]]] = None,
            **model_kwargs,
    ):
        super().__init__(init_cfg=init_cfg)
        self.model_name = check_backbone_name(model_name)
        overlay = dict(pretrained_cfg_overlay or {})
        if isinstance(pretrained, str):
            overlay['file'] = pretrained
            pretrained = True
        self.pretrained = bool(pretrained)
        self.in_channels = in_channels
        kwargs = dict(model_kwargs)
        if drop_path_rate is not None:
            kwargs['drop_path_rate'] = drop_path_rate
        if overlay:
            kwargs['pretrained_cfg_overlay'] = overlay

        self.body = build_body(self.model_name, self.pretrained, in_channels, out_indices, kwargs)
        info = self.body.feature_info
        self.out_indices = tuple(info.out_indices)
        self.all_levels = [dict(module=fi['module'], num_chs=fi['num_chs'], reduction=fi['reduction'])
                           for fi in info.info]
        self.out_channels = list(info.channels())
        self.native_strides = list(info.reduction())
        self.out_strides = check_out_strides(out_strides, self.out_indices, self.native_strides)

        if pad_to_multiple == 'auto':
            pad_to_multiple = max([fi['reduction'] for fi in self.all_levels] + list(self.out_strides))
        self.pad_to_multiple = int(pad_to_multiple or 0)
        self.crop_outputs = crop_outputs
        self.out_norms = nn.ModuleList(
            [LayerNorm2d(c, eps=out_norm_eps) for c in self.out_channels]) if out_norms else None
        self._set_frozen_stages(frozen_stages, norm_eval)
        self.with_cp = with_cp
        if with_cp:
            target = getattr(self.body, 'model', self.body)
            if not hasattr(target, 'set_grad_checkpointing'):
                raise ValueError(f'ZooBackbone: with_cp=True but {type(target).__name__} has no set_grad_checkpointing')
            target.set_grad_checkpointing(True)

        # timm already loaded the classification weights; keep mmengine's init from touching them
        if self.pretrained and not init_cfg:
            self._is_init = True

    # -------------------------------------------------------------------------------------------------- freezing
    def _set_frozen_stages(self, frozen_stages: int, norm_eval: bool) -> None:
        if not isinstance(frozen_stages, int) or frozen_stages < -1 or frozen_stages >= len(self.all_levels):
            raise ConfigError(
                f'ZooBackbone: frozen_stages={frozen_stages!r} must be -1 (none) or a feature level of '
                f'{self.model_name} in 0..{len(self.all_levels) - 1} ({levels_str(self.all_levels)})')
        self.frozen_stages = frozen_stages
        self.norm_eval = norm_eval
        self._frozen_modules: List[nn.Module] = []
        if frozen_stages >= 0:
            frozen = params_up_to_level(self.body, frozen_stages, self.all_levels, self.in_channels, self.model_name)
            self._frozen_modules = freeze(self.body, set(frozen))

    def train(self, mode: bool = True):
        super().train(mode)
        if mode:
            for m in self._frozen_modules:
                m.eval()
            if self.norm_eval:
                for m in self.body.modules():
                    if isinstance(m, _BatchNorm):
                        m.eval()
        return self

    # --------------------------------------------------------------------------------------------- initialisation
    def init_weights(self):
        cfgs = self.init_cfg if isinstance(self.init_cfg, list) else [self.init_cfg] if self.init_cfg else []
        pretrained = [c for c in cfgs if c.get('type') == 'Pretrained']
        others = [c for c in cfgs if c.get('type') != 'Pretrained']
        if others:
            init_cfg, self.init_cfg = self.init_cfg, others
            super().init_weights()
            self.init_cfg = init_cfg
        for c in pretrained:
            self.load_dense_checkpoint(c['checkpoint'], prefix=c.get('prefix'),
                                       map_location=c.get('map_location', 'cpu'))
        self._is_init = True

    def load_dense_checkpoint(self, checkpoint: str, prefix: Optional[str] = 'backbone.', map_location='cpu'):
        """Load this backbone's weights from a detector/segmentor checkpoint (keys ``<prefix>body.*``, or the authors'
        mmdet 2 / mmseg 0.x layout ``<prefix><their names>``, converted by the family's checkpoint filter; a det / seg
        manifest tag names the authors' file, downloaded and verified).

        Missing tensors raise (naming them); the new ``out_norms`` may be absent (a warning says so). A timm
        classification checkpoint is refused with a pointer to ``pretrained_cfg_overlay=dict(file=...)``.
        """
        sd, raw_keys = read_dense_state_dict(checkpoint, prefix, map_location)
        if prefix and sd and not any(k.startswith('body.') for k in sd) and hasattr(self.body, 'model'):
            sd = convert_authors(self.body, sd)
        self.load_state_dict(check_dense_state_dict(self, sd, raw_keys, checkpoint, prefix), strict=False)

    # ---------------------------------------------------------------------------------------------------- forward
    def forward(self, x: torch.Tensor) -> Tuple[torch.Tensor, ...]:
        if x.dim() != 4 or x.shape[1] != self.in_channels:
            raise ValueError(f'ZooBackbone({self.model_name}): expected an N x {self.in_channels} x H x W input, '
                             f'got shape {tuple(x.shape)}')
        h, w = x.shape[-2:]
        m = self.pad_to_multiple
        if m > 1 and (h % m or w % m):
            x = F.pad(x, (0, (m - w % m) % m, 0, (m - h % m) % m))
        feats = self.body(x)
        if isinstance(feats, dict):
            feats = list(feats.values())
        outs = []
        for i, f in enumerate(feats):
            native, stride = self.native_strides[i], self.out_strides[i]
            if stride != native:
                f = self._resample(f, native, stride)
            if self.crop_outputs and m > 1:
                f = f[..., :math.ceil(h / stride), :math.ceil(w / stride)]
            if self.out_norms is not None:
                f = self.out_norms[i](f)
            outs.append(f)
        return tuple(outs)

    @staticmethod
    def _resample(f: torch.Tensor, native: int, stride: int) -> torch.Tensor:
        if stride < native:
            s = native // stride
            return F.interpolate(f, size=(f.shape[-2] * s, f.shape[-1] * s), mode='bilinear', align_corners=False)
        k = stride // native
        return F.max_pool2d(f, kernel_size=k, stride=k, ceil_mode=True)

    def extra_repr(self) -> str:
        return (f'model_name={self.model_name!r}, out_indices={self.out_indices}, out_channels={self.out_channels}, '
                f'strides={self.out_strides}, frozen_stages={self.frozen_stages}, norm_eval={self.norm_eval}')
