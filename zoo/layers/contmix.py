"""ContMix: context-mixing dynamic kernels, and the 2-D neighbourhood aggregation they use, in plain PyTorch.

Lou & Yu, "OverLoCK: An Overview-first-Look-Closely-next ConvNet with Context-Mixing Dynamic Kernels",
CVPR 2025 (arXiv:2502.20087); official code https://github.com/LMMMEng/OverLoCK (Apache-2.0).

ContMix turns the affinity between every pixel (query) and a 7x7 pooled context map (keys) into a
per-pixel, per-group KxK kernel: the 49 affinities are projected to K^2 (and k_s^2 for a second, small
kernel) logits, a relative position bias is added, a softmax over the taps normalises them, and each pixel
aggregates its KxK neighbourhood of the value map with its own kernel.

The official code takes the aggregation from NATTEN (``natten.functional.na2d_av``, a compiled extension,
removed from NATTEN >= 0.20). :func:`na2d_av` reproduces its semantics in plain PyTorch:

* the window of a query at index ``i`` along an axis of length ``L`` starts at
  ``clamp(i - k // 2, 0, L - k)``: near the border the window shifts inward and always holds ``k`` real
  pixels (no zero padding), so ``L >= k`` is required;
* with dilation ``d`` the axis splits into ``d`` interleaved sub-grids (``i mod d``), each handled as above
  with its own length ``ceil((L - i mod d) / d)``;
* taps are ordered row-major (``a * k + b``, ``a`` = row offset inside the window);
* the relative position bias of tap ``a`` is entry ``(k - 1) + (key - query)`` (in sub-grid units) of a
  ``2k - 1`` table per axis, which is what NATTEN's RPB indexing gives for shifted border windows too.

The aggregation is vectorised over all pixels; only the k x k taps are a Python loop, each one an
``index_select`` gather of the value map and a fused multiply-add, so the extra memory is two value-sized
buffers instead of the k^2 copies an unfold needs (:func:`na2d_av_unfold_reference`, kept for benchmarks).
Everything is traceable: it runs under ``torch.compile`` and exports to ONNX.
"""
from typing import List, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F

__all__ = ['na2d_window', 'na2d_av', 'na2d_av_cf', 'na2d_rpb', 'na2d_av_unfold_reference', 'ContMix']


def na2d_window(length: int, kernel_size: int, dilation: int = 1, device=None) -> Tuple[torch.Tensor, torch.Tensor]:
    """NATTEN window along one axis.

    Returns ``(key_index, bias_index)``, both ``(length, kernel_size)`` int64: the input index of tap ``a`` for
    query ``i``, and the index of that tap in a relative position bias table of size ``2 * kernel_size - 1``.
    """
    if length < kernel_size * dilation:
        raise ValueError(f'neighbourhood aggregation needs an axis of at least kernel_size * dilation = '
                         f'{kernel_size * dilation} pixels, got {length}')
    idx = torch.arange(length, device=device)
    taps = torch.arange(kernel_size, device=device)
    half = kernel_size // 2
    if dilation == 1:
        start = (idx - half).clamp(0, length - kernel_size)
        pos = idx - start  # query position inside its window
        key = start.unsqueeze(1) + taps
    else:
        phase = idx % dilation
        sub = idx // dilation  # index inside the sub-grid of this phase
        sub_len = (length - phase + dilation - 1) // dilation
        sub_start = torch.minimum((sub - half).clamp(min=0), sub_len - kernel_size)
        pos = sub - sub_start
        key = (phase + sub_start * dilation).unsqueeze(1) + taps * dilation
    bias = (kernel_size - 1) - pos.unsqueeze(1) + taps
    return key, bias


def na2d_av_cf(attn: torch.Tensor, value: torch.Tensor, kernel_size: int, dilation: int = 1) -> torch.Tensor:
    """Neighbourhood aggregation, channels-first layout.

    Args:
        attn: (B, G, k*k, H, W) weights of each pixel's k x k window (row-major taps).
        value: (B, G, C, H, W).
    Returns:
        (B, G, C, H, W): ``out[..., i, j] = sum_ab attn[:, :, a*k+b, i, j] * value[..., row(i, a), col(j, b)]``.
    """
    H, W = value.shape[-2:]
    k = kernel_size
    rows, _ = na2d_window(H, k, dilation, value.device)
    cols, _ = na2d_window(W, k, dilation, value.device)
    out = torch.zeros_like(value)
    for a in range(k):
        v_row = value.index_select(-2, rows[:, a])  # (B, G, C, H, W): row a of every pixel's window
        for b in range(k):
            out = out.addcmul(v_row.index_select(-1, cols[:, b]), attn[:, :, a * k + b].unsqueeze(2))
    return out


def na2d_av(attn: torch.Tensor, value: torch.Tensor, kernel_size: int, dilation: int = 1) -> torch.Tensor:
    """Drop-in for ``natten.functional.na2d_av`` (NATTEN <= 0.17, non-causal).

    Args:
        attn: (B, heads, H, W, k*k).
        value: (B, heads, H, W, D).
    Returns:
        (B, heads, H, W, D).
    """
    out = na2d_av_cf(attn.permute(0, 1, 4, 2, 3), value.permute(0, 1, 4, 2, 3), kernel_size, dilation)
    return out.permute(0, 1, 3, 4, 2)


def na2d_rpb(rpb: torch.Tensor, height: int, width: int, kernel_size: int, dilation: int = 1) -> torch.Tensor:
    """Relative position bias of every tap of every pixel, NATTEN indexing.

    Args:
        rpb: (G, 2k-1, 2k-1) bias table.
    Returns:
        (G, k*k, H, W), to be added to the logits before the softmax over taps.
    """
    k = kernel_size
    _, bias_h = na2d_window(height, k, dilation, rpb.device)
    _, bias_w = na2d_window(width, k, dilation, rpb.device)
    flat = bias_h[:, :, None, None] * (2 * k - 1) + bias_w[None, None]  # (H, k, W, k)
    out = rpb.flatten(1).index_select(1, flat.flatten())
    return out.reshape(-1, height, k, width, k).permute(0, 2, 4, 1, 3).reshape(-1, k * k, height, width)


def na2d_av_unfold_reference(attn: torch.Tensor, value: torch.Tensor, kernel_size: int) -> torch.Tensor:
    """Straightforward unfold-based neighbourhood aggregation (dilation 1), same layout as :func:`na2d_av`.

    ``F.unfold`` without padding gives every valid k x k window; replicate-padding that window map by k // 2
    hands border pixels the nearest valid window, which is NATTEN's inward shift. Memory: k^2 value copies.
    """
    B, G, H, W, D = value.shape
    k = kernel_size
    p = k // 2
    if H < k or W < k:
        raise ValueError(f'neighbourhood aggregation needs at least {k} x {k} pixels, got {H} x {W}')
    v = value.permute(0, 1, 4, 2, 3).reshape(B, G * D, H, W)
    win = F.unfold(v, k).reshape(B, G * D * k * k, H - k + 1, W - k + 1)
    win = F.pad(win, (p, p, p, p), mode='replicate').reshape(B, G, D, k * k, H, W)
    out = (win * attn.permute(0, 1, 4, 2, 3).unsqueeze(2)).sum(3)  # (B, G, D, H, W)
    return out.permute(0, 1, 3, 4, 2)


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
        dd = dict(device=device, dtype=dtype)
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
        self.proj = nn.Sequential(nn.Conv2d(dim, dim, 1, bias=False, **dd), nn.BatchNorm2d(dim, **dd))

    def _kernels(self, x: torch.Tensor, ctx: torch.Tensor) -> List[torch.Tensor]:
        B, _, H, W = x.shape
        G = self.num_groups
        q = (self.query(x) * self.scale).reshape(B, G, -1, H * W)  # (B, G, c, HW), channels split group-major
        k = self.key(ctx).flatten(2).reshape(B, G, q.shape[2], -1)  # (B, G, c, P)
        affinity = k.transpose(-1, -2) @ q  # (B, G, P, HW)
        w = self.kernel_proj.weight.flatten(1)  # (ks^2 + K^2, P)
        logits = (w @ affinity + self.kernel_proj.bias[:, None]).reshape(B, G, -1, H, W)
        out = []
        for size, rpb, logit in zip(
                (self.small_kernel_size, self.kernel_size), (self.rpb_small, self.rpb_large),
                logits.split([self.small_kernel_size ** 2, self.kernel_size ** 2], dim=2)):
            out.append((logit + na2d_rpb(rpb, H, W, size)).softmax(dim=2))
        return out

    def forward(self, value: torch.Tensor, x: torch.Tensor, ctx: torch.Tensor) -> torch.Tensor:
        B, C, H, W = value.shape
        K = self.kernel_size
        resized = min(H, W) < K
        if resized:
            if H < W:
                size = (K, int(K / H * W))
            else:
                size = (int(K / W * H), K)
            value = F.interpolate(value, size=size, mode='bilinear', align_corners=False)
            x = F.interpolate(x, size=size, mode='bilinear', align_corners=False)
            ctx = F.interpolate(ctx, size=size, mode='bilinear', align_corners=False)
        attn_small, attn_large = self._kernels(x, ctx)
        h, w = value.shape[-2:]
        v = value.reshape(B, 2, self.num_groups, -1, h, w)  # (half, group, channel) order
        out = torch.stack([
            na2d_av_cf(attn_small, v[:, 0], self.small_kernel_size),
            na2d_av_cf(attn_large, v[:, 1], K),
        ], dim=1).reshape(B, C, h, w)
        if resized:
            out = F.adaptive_avg_pool2d(out, (H, W))
        return self.proj(out)
