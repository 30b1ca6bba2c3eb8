"""ContMix: context-mixing dynamic kernels (OverLoCK).

Lou & Yu, CVPR 2025 (arXiv:2502.20087); official code https://github.com/LMMMEng/OverLoCK (Apache-2.0).

The affinities between every pixel and a 7x7 pooled context map become a per-pixel, per-group KxK kernel (plus a
relative position bias, softmax over the taps) with which each pixel aggregates its neighbourhood of the values
(``zoo.layers.na2d``). Kernels are produced channels-last. Details: docs/models.md.
"""
from typing import Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F
from timm.layers import register_notrace_function

from .na2d import NeighbourhoodAggregation, na2d_rpb

__all__ = ['ContMix']


@register_notrace_function
def resize_to_kernel(x: torch.Tensor, kernel_size: int) -> torch.Tensor:
    """Bilinear resize so that the short side equals ``kernel_size`` (long side ``int(k / short * long)``),
    as the official model does for inputs smaller than the kernel; identity otherwise."""
    H, W = x.shape[2], x.shape[3]
    if min(H, W) >= kernel_size:
        return x
    if H < W:
        size = (kernel_size, int(kernel_size / H * W))
    else:
        size = (int(kernel_size / W * H), kernel_size)
    return F.interpolate(x, size=size, mode='bilinear', align_corners=False)


@register_notrace_function
def pool_to_size(x: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Average-pool a resized map back to (height, width); identity at that size already."""
    if x.shape[2] == height and x.shape[3] == width:
        return x
    return F.adaptive_avg_pool2d(x, (height, width))


class ContMix(nn.Module):
    """Context-mixing dynamic convolution (the dynamic-kernel part of OverLoCK's DynamicConvBlock).

    Queries come from ``x`` (``dim`` channels), keys from a context map (``ctx_dim`` channels) pooled to
    ``pool_size`` x ``pool_size`` tokens, values are ``value`` (``dim`` channels): the first half is aggregated
    with the small kernel, the second with the large one, in ``num_groups`` groups each.

    Inputs whose short side is below ``kernel_size`` are bilinearly resized so that it equals
    ``kernel_size`` (long side ``int(kernel_size / short * long)``) and the result is average-pooled back,
    as the official model does.
    """

    def __init__(
            self,
            dim: int,
            ctx_dim: int,
            kernel_size: int = 13,
            small_kernel_size: int = 5,
            num_groups: int = 8,
            pool_size: int = 7,
            device=None,
            dtype=None,
    ):
        dd = {'device': device, 'dtype': dtype}
        super().__init__()
        if dim % (2 * num_groups):
            raise ValueError(f'dim ({dim}) must be divisible by 2 * num_groups ({2 * num_groups})')
        self.dim = dim
        self.kernel_size = kernel_size
        self.small_kernel_size = small_kernel_size
        self.num_groups = num_groups
        # the official scale uses the full channel count per group although each group's query has half
        self.scale = (dim // num_groups) ** -0.5
        self.query = nn.Sequential(nn.Conv2d(dim, dim // 2, 1, bias=False, **dd), nn.BatchNorm2d(dim // 2, **dd))
        self.key = nn.Sequential(
            nn.AdaptiveAvgPool2d(pool_size),
            nn.Conv2d(ctx_dim, dim // 2, 1, bias=False, **dd),
            nn.BatchNorm2d(dim // 2, **dd),
        )
        # the pool_size^2 affinities of a pixel -> small + large kernel logits (shared by all groups)
        self.kernel_proj = nn.Conv2d(pool_size ** 2, small_kernel_size ** 2 + kernel_size ** 2, 1, **dd)
        # relative position bias tables (zero-initialised in OverLoCK)
        s, K = 2 * small_kernel_size - 1, 2 * kernel_size - 1
        self.rpb_small = nn.Parameter(torch.zeros(num_groups, s, s, **dd))
        self.rpb_large = nn.Parameter(torch.zeros(num_groups, K, K, **dd))
        self.aggregate_small = NeighbourhoodAggregation(small_kernel_size)
        self.aggregate_large = NeighbourhoodAggregation(kernel_size)
        self.proj = nn.Sequential(nn.Conv2d(dim, dim, 1, bias=False, **dd), nn.BatchNorm2d(dim, **dd))

    def _kernels(self, x: torch.Tensor, ctx: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """-> (small, large) kernels, (B, G, H, W, k^2) each, softmax-normalised over the taps."""
        B, H, W = x.shape[0], x.shape[2], x.shape[3]
        G = self.num_groups
        ks, K = self.small_kernel_size, self.kernel_size
        q = (self.query(x) * self.scale).reshape(B, G, -1, H * W)  # (B, G, c, HW), channels split group-major
        k = self.key(ctx).reshape(B, G, q.shape[2], -1)  # (B, G, c, P)
        affinity = q.transpose(-1, -2) @ k  # (B, G, HW, P)
        logits = F.linear(affinity, self.kernel_proj.weight.flatten(1), self.kernel_proj.bias)
        logits = logits.reshape(B, G, H, W, ks * ks + K * K)
        rpb_small = na2d_rpb(self.rpb_small, H, W, ks).permute(0, 2, 3, 1).to(logits.dtype)
        rpb_large = na2d_rpb(self.rpb_large, H, W, K).permute(0, 2, 3, 1).to(logits.dtype)
        small = (logits[..., :ks * ks] + rpb_small).softmax(dim=-1)
        large = (logits[..., ks * ks:] + rpb_large).softmax(dim=-1)
        return small, large

    def forward(self, value: torch.Tensor, x: torch.Tensor, ctx: torch.Tensor) -> torch.Tensor:
        B, C, H, W = value.shape[0], value.shape[1], value.shape[2], value.shape[3]
        K, G = self.kernel_size, self.num_groups
        value = resize_to_kernel(value, K)
        x = resize_to_kernel(x, K)
        ctx = resize_to_kernel(ctx, K)
        attn_small, attn_large = self._kernels(x, ctx)
        h, w = value.shape[2], value.shape[3]
        # (B, half, group, c, h, w) -> channels-last (B * G, h, w, c) per half
        v = value.reshape(B, 2, G, C // (2 * G), h, w).permute(1, 0, 2, 4, 5, 3)
        out_small = self.aggregate_small(attn_small.reshape(B * G, h, w, -1), v[0].reshape(B * G, h, w, -1))
        out_large = self.aggregate_large(attn_large.reshape(B * G, h, w, -1), v[1].reshape(B * G, h, w, -1))
        out = torch.stack([out_small, out_large], dim=1)  # (B * G, 2, h, w, c)
        out = out.reshape(B, G, 2, h, w, -1).permute(0, 2, 1, 5, 3, 4).reshape(B, C, h, w)
        return self.proj(pool_to_size(out, H, W))
