"""CBAM or triplet attention added to an already-built (pretrained) timm CNN, in place, keeping its function.

``add_attention(model, 'cbam' | 'triplet', **kwargs)`` puts a gate in each residual block's attention slot (the slots
the drop-in layers fill). Gates are built with ``identity_init=True``, so at insertion each is exactly the identity
and the model computes its previous function; a slot that already holds SE / ECA keeps it, followed by the gate. A
retrofitted checkpoint reloads into ``add_attention(<the same fresh model>, <the same arguments>)``. Which slot each
family uses, and the training and reload recipe: docs/training.md, "Attention added to a pretrained CNN".
"""
import inspect
from typing import Any, Dict, List, Mapping, Optional, Tuple

import torch
import torch.nn as nn

from .errors import UserError
from .layers import CBAM, TripletAttention

__all__ = ['ATTENTIONS', 'RetrofitError', 'add_attention', 'attention_record', 'gate_parameters']

ATTENTIONS = {'cbam': CBAM, 'triplet': TripletAttention}


class RetrofitError(UserError, ValueError):
    """The model or the arguments do not allow adding attention."""


def _slots() -> Dict[type, Tuple[str, ...]]:
    """Block class -> its attention slots, the preferred (empty) one first."""
    from timm.models import _efficientnet_blocks as eff, byobnet, nfnet, resnet, sknet
    last = ('attn_last', 'attn')
    return {
        resnet.BasicBlock: ('se',), resnet.Bottleneck: ('se',),
        sknet.SelectiveKernelBasic: ('se',), sknet.SelectiveKernelBottleneck: ('se',),
        eff.DepthwiseSeparableConv: ('se',), eff.InvertedResidual: ('se',), eff.EdgeResidual: ('se',),
        byobnet.BasicBlock: last, byobnet.BottleneckBlock: last, byobnet.DarkBlock: last, byobnet.EdgeBlock: last,
        byobnet.RepVggBlock: ('attn',), byobnet.MobileOneBlock: ('attn',),
        nfnet.NormFreeBlock: last,
    }


def _empty(slot: Optional[nn.Module]) -> bool:
    return slot is None or type(slot) is nn.Identity


class _Probe(nn.Module):
    """Identity that records the channels, device and dtype of what reaches the slot."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.seen = (x.shape[1], x.device, x.dtype)
        return x


def _check_kwargs(attention: str, kwargs: Mapping[str, Any]) -> type:
    if attention not in ATTENTIONS:
        raise RetrofitError(f'unknown attention {attention!r}; choose one of {sorted(ATTENTIONS)}')
    cls = ATTENTIONS[attention]
    params = [p for p in inspect.signature(cls).parameters if p not in ('channels', 'identity_init', 'device', 'dtype')]
    bad = sorted(set(kwargs) - set(params))
    if bad:
        raise RetrofitError(f'{attention} does not take {bad}; its options are {params}')
    return cls


def add_attention(model: nn.Module, attention: str, **kwargs) -> nn.Module:
    """Insert identity-initialised ``attention`` gates ('cbam' or 'triplet', built with ``kwargs``, e.g.
    ``reduction=16, kernel_size=7``) into every supported block of ``model``, in place; returns ``model``.

    One small forward pass (batch 1, no gradient, eval mode; the modes are restored) finds the channels, device and
    dtype at each slot. Raises :class:`RetrofitError` when the model has no supported block or already has
    CBAM / triplet modules.
    """
    from timm.models.nfnet import NormFreeBlock
    cls = _check_kwargs(attention, kwargs)
    if any(isinstance(m, tuple(ATTENTIONS.values())) for m in model.modules()):
        raise RetrofitError(f'{type(model).__name__} already has CBAM / triplet attention modules')
    table = _slots()
    probes: List[Tuple[nn.Module, str, Optional[nn.Sequential], _Probe]] = []
    for block in list(model.modules()):
        names = next((v for k, v in table.items() if isinstance(block, k)), None)
        if names is None:
            continue
        name = next((n for n in names if not _empty(getattr(block, n, None))), names[0])
        old, probe = getattr(block, name, None), _Probe()
        seq = None if _empty(old) else nn.Sequential(old, probe)
        if isinstance(block, NormFreeBlock) and all(_empty(getattr(block, n, None)) for n in names):
            block.attn_gain = 1.0  # NFNet scales the attention output by attn_gain (2, made for SE's 0.5 average)
        setattr(block, name, probe if seq is None else seq)
        probes.append((block, name, seq, probe))
    if not probes:
        raise RetrofitError(f'{type(model).__name__} has no block with an attention slot (ResNet / SK-ResNet, '
                            f'EfficientNet-family, ByobNet and NFNet blocks have one)')
    _probe_forward(model)
    for block, name, seq, probe in probes:
        if not hasattr(probe, 'seen'):
            raise RetrofitError(f'the forward pass of {type(model).__name__} does not reach {type(block).__name__}.'
                                f'{name}')
        channels, device, dtype = probe.seen
        gate = cls(channels, identity_init=True, device=device, dtype=dtype, **kwargs)
        if seq is None:
            setattr(block, name, gate)
        else:
            seq[1] = gate
    return model


def _probe_forward(model: nn.Module) -> None:
    """One forward pass of a zero image (the model's fixed input size, else 64 px) in eval mode, modes restored."""
    first = next(m for m in model.modules() if isinstance(m, nn.Conv2d))
    cfg = getattr(model, 'pretrained_cfg', None) or {}
    size = tuple(cfg['input_size'][-2:]) if cfg.get('fixed_input_size') and cfg.get('input_size') else (64, 64)
    x = torch.zeros(1, first.in_channels, *size, device=first.weight.device, dtype=first.weight.dtype)
    modes = [(m, m.training) for m in model.modules()]
    model.eval()
    try:
        with torch.no_grad():
            model(x)
    finally:
        for m, mode in modes:
            m.training = mode


def attention_record(checkpoint: Any) -> Optional[Tuple[str, Dict[str, Any]]]:
    """``(attention, kwargs)`` recorded by a zoo-train checkpoint of a retrofitted run, else None."""
    cfg = checkpoint.get('config') if isinstance(checkpoint, Mapping) else None
    if not isinstance(cfg, Mapping) or not cfg.get('add_attention'):
        return None
    return cfg['add_attention'], dict(cfg.get('add_attention_kwargs') or {})


def gate_parameters(model: nn.Module) -> List[nn.Parameter]:
    """The parameters of the model's CBAM / triplet modules (those ``add_attention`` inserted, or a zoo model's)."""
    gates = [m for m in model.modules() if isinstance(m, tuple(ATTENTIONS.values()))]
    return list({id(p): p for m in gates for p in m.parameters()}.values())
