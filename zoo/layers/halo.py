"""Halo attention that serves feature maps of any size.

Paper: `Scaling Local Self-Attention for Parameter Efficient Visual Backbones` (Vaswani et al., CVPR 2021),
arXiv:2103.12731. No official code was released; the attention itself is timm's ``HaloAttn``
(``timm.layers.halo_attn``), reused unchanged: blocked local self-attention, b x b query blocks, each attending to
its (b + 2h) x (b + 2h) haloed window, 2-D relative position logits, strided queries for stride 2.

timm's ``HaloAttn`` asserts that H and W divide by the block size b. :class:`PaddedHaloAttn` removes that limit:

1. the input is zero-padded at the bottom and right to the next multiple of b,
2. ``HaloAttn`` runs on the padded map,
3. the output is cropped back to ``ceil(H / stride) x ceil(W / stride)`` (the size a strided 1x1 shortcut gives).

What the padded positions mean: ``HaloAttn``'s query and key/value projections are bias-free 1x1 convolutions, so a
zero input position yields a zero key and a zero value - exactly what the halo border holds (``HaloAttn`` zero-pads
the projected keys/values by h on every side). Real queries near the bottom/right edge therefore see the block padding
as a wider stretch of that same border: a logit made of the relative-position term alone and a zero value. Queries at
padded positions are computed and discarded by the crop. At sizes that divide by b nothing is padded and the output
equals ``HaloAttn``'s exactly. (With ``qkv_bias=True`` the padded keys/values would carry the biases, i.e. behave like
zero-valued *features* rather than like the zero halo border; no zoo model uses that option.)

Downsampling (stride 2): with b divisible by 2, ``HaloAttn`` subsamples the queries with a strided 1x1 convolution;
the padded map still divides by b, and the crop keeps the first ``ceil(H / 2)`` rows, the positions the strided
shortcut samples. With an odd b (or ``avg_down=True``) ``HaloAttn`` attends at stride 1 and average-pools 2x2; here
that pooling runs after the crop, with ``ceil_mode=True``, so an odd-sized map's last row/column is averaged over its
real positions only (identical to ``HaloAttn`` at even sizes).
"""
from typing import Optional

import torch
import torch.nn as nn
import torch.nn.functional as F
from timm.layers.halo_attn import HaloAttn
from timm.layers import register_notrace_module

__all__ = ['PaddedHaloAttn']


@register_notrace_module  # shape-dependent padding: a leaf for torch.fx feature extraction
class PaddedHaloAttn(nn.Module):
    """timm ``HaloAttn`` for any H x W: pad to a multiple of the block size, attend, crop back.

    Args:
        dim: input channels.
        dim_out: output (value) channels; ``dim`` if not set.
        stride: 1, or 2 to downsample (strided queries, or 2x2 average pooling for odd block sizes).
        **kwargs: the other ``HaloAttn`` arguments (``num_heads``, ``dim_head``, ``block_size``, ``halo_size``,
            ``qk_ratio``, ``qkv_bias``, ``avg_down``, ``scale_pos_embed``, ``feat_size``, ``device``, ``dtype``).

    The parameters live in ``self.attn`` (a plain ``HaloAttn``), so its weights are timm's under the prefix ``attn.``.
    """

    def __init__(self, dim: int, dim_out: Optional[int] = None, stride: int = 1, **kwargs):
        super().__init__()
        self.attn = HaloAttn(dim, dim_out=dim_out, stride=stride, **kwargs)
        self.block_size = self.attn.block_size
        self.stride = stride
        self.dim_out = self.attn.dim_out_v
        if isinstance(self.attn.pool, nn.AvgPool2d):
            # pool after the crop instead, so odd sizes average real positions only
            self.attn.pool = nn.Identity()
            self.pool = nn.AvgPool2d(2, 2, ceil_mode=True)
            self.attn_stride = 1
        else:
            self.pool = nn.Identity()
            self.attn_stride = self.attn.block_stride

    def reset_parameters(self):
        self.attn.reset_parameters()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        H, W = x.shape[-2], x.shape[-1]
        pad_h = (self.block_size - H % self.block_size) % self.block_size
        pad_w = (self.block_size - W % self.block_size) % self.block_size
        if pad_h > 0 or pad_w > 0:
            x = F.pad(x, [0, pad_w, 0, pad_h])
        x = self.attn(x)  # B, dim_out, (H + pad_h) / s, (W + pad_w) / s
        if pad_h > 0 or pad_w > 0:
            s = self.attn_stride
            x = x[:, :, :(H + s - 1) // s, :(W + s - 1) // s]
        return self.pool(x)
