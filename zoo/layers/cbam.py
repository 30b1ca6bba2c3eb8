"""CBAM: Convolutional Block Attention Module.

Woo et al., "CBAM: Convolutional Block Attention Module", ECCV 2018 (arXiv:1807.06521).
Official code: https://github.com/Jongchan/attention-module

Computed as the official code does (which differs from timm's ``CbamModule`` in three ways that matter
for loading the released weights): the channel MLP has biases, the two pooled MLP outputs (logits,
each including the second bias) are summed before the sigmoid, and the spatial gate pools
[max, mean] over channels in that order, then applies a 7x7 conv without bias followed by BatchNorm.
"""
from typing import Optional

import torch
import torch.nn as nn
from timm.layers import LayerType, get_act_layer

from .gates import AttentionGate, global_max, global_mean, zpool

__all__ = ['ChannelGate', 'SpatialGate', 'CBAM']


class ChannelGate(nn.Module):
    """sigmoid(MLP(avgpool(x)) + MLP(maxpool(x))) * x, with a biased two-layer MLP (hidden = C // reduction,
    or round(C * rd_ratio) when ``rd_ratio`` is given, timm's SE convention) and a ReLU (or ``act_layer``).
    ``identity_init``: 2 * sigmoid(...) with the last layer zero-initialised, so the gate starts at exactly 1."""

    def __init__(self, channels: int, reduction: int = 16, rd_ratio: Optional[float] = None,
                 act_layer: Optional[LayerType] = None, identity_init: bool = False, device=None, dtype=None):
        super().__init__()
        dd = {'device': device, 'dtype': dtype}
        hidden = channels // reduction if rd_ratio is None else max(1, int(round(channels * rd_ratio)))
        self.identity_init = identity_init
        self.fc1 = nn.Linear(channels, hidden, **dd)
        self.act = get_act_layer(act_layer or 'relu')()
        self.fc2 = nn.Linear(hidden, channels, **dd)
        if identity_init:
            nn.init.zeros_(self.fc2.weight)
            nn.init.zeros_(self.fc2.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b = x.shape[0]
        pooled = torch.cat([global_mean(x), global_max(x)], dim=0)  # (2B, C): one MLP pass for both
        logits = self.fc2(self.act(self.fc1(pooled)))
        scale = torch.sigmoid(logits[:b] + logits[b:])
        if self.identity_init:
            scale = scale * 2.0
        return x * scale[:, :, None, None]


class SpatialGate(AttentionGate):
    """sigmoid(BN(conv_kxk([max_C(x), mean_C(x)]))) * x: the shared :class:`~zoo.layers.gates.AttentionGate` on the
    channel Z-pool, BN scale zero-initialised as the official code (gate = 0.5 everywhere at start; 1 with
    ``identity_init``, the 2 * sigmoid form)."""

    def __init__(self, kernel_size: int = 7, identity_init: bool = False, device=None, dtype=None):
        super().__init__(kernel_size, zero_init=True, identity_init=identity_init, device=device, dtype=dtype)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.gate(zpool(x, 1))


class CBAM(nn.Module):
    """Channel gate then spatial gate, applied sequentially.

    The signature ``CBAM(channels, ...)`` makes it usable as the attention layer of timm's CNN families
    (``attn_layer`` / ``se_layer``: they call ``attn_layer(channels, **kwargs)``). timm's ResNet places it after
    the last BN, before the residual add, exactly where the official code puts it. ``rd_ratio`` and
    ``act_layer`` follow timm's SE interface (passed by EfficientNet and by ByobNet ``attn_kwargs``): the channel
    MLP width ``round(channels * rd_ratio)`` instead of ``channels // reduction``, and its activation.
    ``identity_init``: both gates are 2 * sigmoid(...) of a zero-initialised last layer, so the module starts as the
    exact identity (how ``zoo.add_attention`` inserts it into a pretrained network); the state dict is the same.
    """

    def __init__(self, channels: int, reduction: int = 16, kernel_size: int = 7, spatial: bool = True,
                 rd_ratio: Optional[float] = None, act_layer: Optional[LayerType] = None,
                 identity_init: bool = False, device=None, dtype=None):
        super().__init__()
        dd = {'device': device, 'dtype': dtype}
        self.channel = ChannelGate(channels, reduction, rd_ratio=rd_ratio, act_layer=act_layer,
                                   identity_init=identity_init, **dd)
        self.spatial = SpatialGate(kernel_size, identity_init=identity_init, **dd) if spatial else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.spatial(self.channel(x))
