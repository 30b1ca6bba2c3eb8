"""Triplet attention.

Misra et al., "Rotate to Attend: Convolutional Triplet Attention Module", WACV 2021 (arXiv:2010.03045).
Official code: https://github.com/landskape-ai/triplet-attention

Three Z-pool gates (``cw`` pools H, ``hc`` pools W, ``hw`` pools C; official legacy names ChannelGateH / ChannelGateW /
SpatialGate) scale the input; the output is their mean. Only the pooled maps are permuted, so the kernels keep the
official weights' orientation.
"""
from typing import Optional

import torch
import torch.nn as nn
from timm.layers import LayerType

from .gates import AttentionGate, zpool

__all__ = ['AttentionGate', 'TripletAttention']


class TripletAttention(nn.Module):
    """Triplet attention; ``channels`` and ``act_layer`` are accepted (and ignored: the module has neither a width
    nor an activation) so it can be the attention layer of timm's CNN families (``attn_layer`` / ``se_layer``).
    ``identity_init``: every branch gate is 2 * sigmoid(...) with its BN scale at 0, so the module starts as the
    exact identity (how ``zoo.add_attention`` inserts it into a pretrained network); the state dict is the same."""

    def __init__(self, channels: int = 0, kernel_size: int = 7, no_spatial: bool = False,
                 act_layer: Optional[LayerType] = None, identity_init: bool = False, device=None, dtype=None):
        # each branch: the shared Z-pool + conv-BN-sigmoid gate (zoo.layers.gates), BN scale at its default 1
        super().__init__()
        dd = {'device': device, 'dtype': dtype, 'identity_init': identity_init}
        self.identity_init = identity_init
        self.cw = AttentionGate(kernel_size, **dd)
        self.hc = AttentionGate(kernel_size, **dd)
        self.no_spatial = no_spatial
        self.hw = AttentionGate(kernel_size, **dd) if not no_spatial else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # x: (B, C, H, W)
        s_cw = self.cw(zpool(x, 2)).permute(0, 2, 1, 3)                   # (B,2,C,W) -> (B,1,C,W) -> (B,C,1,W)
        # (B,2,C,H)^T -> (B,1,H,C) -> (B,C,H,1), made contiguous (small) so the broadcast sums below vectorise
        s_hc = self.hc(zpool(x, 3).transpose(2, 3)).permute(0, 3, 2, 1).contiguous()
        scale = s_cw + s_hc                                               # (B,C,H,W)
        if self.identity_init:
            # the mean of the gates before the product: exactly 1 at init (1 + 1 (+ 1) is exact, and so is its
            # product with the rounded 1/2 or 1/3), so x passes unchanged
            if not self.no_spatial:
                scale = scale.add_(self.hw(zpool(x, 1)))
            return x * scale.mul_(0.5 if self.no_spatial else 1.0 / 3.0)
        if self.no_spatial:
            return (x * scale).mul_(0.5)
        # the same sums and products in the same order as x * (scale + s_hw) / 3, in place where autograd allows
        # (the in-place result is used, so an FX graph keeps the op)
        scale = scale.add_(self.hw(zpool(x, 1)))                          # + (B,1,H,W)
        return (x * scale).mul_(1.0 / 3.0)
