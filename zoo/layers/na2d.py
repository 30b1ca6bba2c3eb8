"""NATTEN-style 2-D neighbourhood aggregation (``na2d_av``) and relative position bias, in plain PyTorch.

Reproduces the semantics of ``natten.functional.na2d_av`` that the official OverLoCK code uses (border windows shift
inward, dilation splits the axis into sub-grids, taps row-major, NATTEN's RPB indexing) as a matmul over taps: per
query row, one banded-matrix product built with a single ``scatter`` and ``index_select``, tiled over columns for wide
maps. Plain tensor ops (autograd, autocast, ``torch.compile``, ONNX); ``zoo.layers.na2d_reference`` is the unfold
reference. Details: docs/models.md.
"""
from typing import Optional, Tuple

import torch
import torch.nn as nn
from timm.layers import register_notrace_function

__all__ = ['na2d_window', 'na2d_av', 'na2d_av_cf', 'na2d_av_nhwc', 'na2d_rpb', 'NeighbourhoodAggregation']

@register_notrace_function
def na2d_window(length: int, kernel_size: int, dilation: int = 1,
                device: Optional[torch.device] = None) -> Tuple[torch.Tensor, torch.Tensor]:
    """NATTEN window along one axis.

    Returns ``(key_index, bias_index)``, both ``(length, kernel_size)`` int64: the input index of tap ``a`` for
    query ``i``, and the index of that tap in a relative position bias table of size ``2 * kernel_size - 1``.
    """
    if length < kernel_size * dilation:
        raise ValueError('neighbourhood aggregation needs an axis of at least kernel_size * dilation = '
                         + str(kernel_size * dilation) + ' pixels, got ' + str(length))
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


def _column_tiles(width: int, kernel_size: int, dilation: int, device: Optional[torch.device],
                  max_tile: int = 32) -> Tuple[torch.Tensor, torch.Tensor, int, int]:
    """Column tiling of the banded matrices.

    Returns ``(span_index, local_cols, tile, span)``: the ``(n_tiles * span,)`` input columns the tiles read
    (tile ``t`` reads ``span_index[t * span:(t + 1) * span]``, clamped to the image, so the last tiles may
    overlap their neighbours), the ``(n_tiles * tile, k)`` column of tap ``b`` of query ``j`` inside its
    tile's span (queries past the image repeat the last one), the tile and the span width. One tile (the
    whole row) when the row is at most ``max_tile`` plus twice the window reach.
    """
    cols, _ = na2d_window(width, kernel_size, dilation, device)  # (W, k)
    reach = (kernel_size - 1) * dilation  # a query's window lies within [j - reach, j + reach]
    if width <= max_tile + 2 * reach:
        tile, span = width, width
    else:
        tile = max_tile
        span = min(width, tile + (reach if dilation == 1 else 2 * reach))
    n_tiles = (width + tile - 1) // tile
    j = torch.arange(n_tiles * tile, device=device).clamp(max=width - 1)
    j0 = torch.arange(n_tiles, device=device) * tile
    if dilation == 1:
        first = cols[j0, 0]  # window starts grow with j: the first query of a tile reads its leftmost column
    else:
        first = (j0 - reach).clamp(min=0)
    start = first.clamp(max=width - span)  # (n_tiles,)
    span_index = (start.unsqueeze(1) + torch.arange(span, device=device)).flatten()
    local = cols[j] - start.repeat_interleave(tile).unsqueeze(1)  # (n_tiles * tile, k)
    return span_index, local, tile, span


@register_notrace_function
def na2d_av_nhwc(attn: torch.Tensor, value: torch.Tensor, kernel_size: int, dilation: int) -> torch.Tensor:
    """The aggregation on flattened batch x heads, channels-last: attn (N, H, W, k, k), value (N, H, W, C) ->
    (N, H, W, C) in the dtype of ``value``. An FX leaf (its tiling depends on the input size)."""
    N, H, W, C = value.shape
    k = kernel_size
    rows, _ = na2d_window(H, k, dilation, value.device)  # (H, k)
    span_index, local, tile, span = _column_tiles(W, k, dilation, value.device)
    n_tiles = local.shape[0] // tile
    # key rows of every window, restricted to each tile's columns: (N, H, n_tiles, k * span, C)
    v = value.index_select(1, rows.flatten()).reshape(N, H, k, W, C).index_select(3, span_index)
    v = v.reshape(N, H, k, n_tiles, span, C).permute(0, 1, 3, 2, 4, 5).reshape(N, H, n_tiles, k * span, C)
    # banded weights: m[n, i, t, q, a, local[t * tile + q, b]] = attn[n, i, t * tile + q, a, b]
    a = attn.to(value.dtype)
    pad = n_tiles * tile - W
    if pad > 0:
        a = torch.cat([a, a[:, :, -1:].expand(-1, -1, pad, -1, -1)], dim=2)
    a = a.reshape(N, H, n_tiles, tile, k, k)
    idx = local.reshape(n_tiles, tile, 1, k).expand(N, H, n_tiles, tile, k, k)
    m = torch.zeros(N, H, n_tiles, tile, k, span, dtype=a.dtype, device=a.device).scatter_(5, idx, a)
    out = (m.reshape(N, H, n_tiles, tile, k * span) @ v).reshape(N, H, n_tiles * tile, C)
    if pad > 0:
        out = out[:, :, :W]
    return out


def na2d_av(attn: torch.Tensor, value: torch.Tensor, kernel_size: int, dilation: int = 1) -> torch.Tensor:
    """Drop-in for ``natten.functional.na2d_av`` (NATTEN <= 0.17, non-causal).

    Args:
        attn: (B, heads, H, W, k*k) weights of each pixel's k x k window (row-major taps).
        value: (B, heads, H, W, D).
    Returns:
        (B, heads, H, W, D): ``out[..., i, j, :] = sum_ab attn[..., i, j, a*k+b] * value[..., row(i, a), col(j, b), :]``
        in the dtype of ``value``.
    """
    B, G, H, W, D = value.shape
    k = kernel_size
    out = na2d_av_nhwc(attn.reshape(B * G, H, W, k, k), value.reshape(B * G, H, W, D), k, dilation)
    return out.reshape(B, G, H, W, D)


def na2d_av_cf(attn: torch.Tensor, value: torch.Tensor, kernel_size: int, dilation: int = 1) -> torch.Tensor:
    """Neighbourhood aggregation, channels-first layout.

    Args:
        attn: (B, G, k*k, H, W).
        value: (B, G, C, H, W).
    Returns:
        (B, G, C, H, W), the same aggregation as :func:`na2d_av`.
    """
    B, G, C, H, W = value.shape
    k = kernel_size
    a = attn.reshape(B * G, k, k, H, W).permute(0, 3, 4, 1, 2)
    v = value.reshape(B * G, C, H, W).permute(0, 2, 3, 1)
    return na2d_av_nhwc(a, v, k, dilation).permute(0, 3, 1, 2).reshape(B, G, C, H, W)


@register_notrace_function
def na2d_rpb(rpb: torch.Tensor, height: int, width: int, kernel_size: int, dilation: int = 1) -> torch.Tensor:
    """Relative position bias of every tap of every pixel, NATTEN indexing.

    Args:
        rpb: (G, 2k-1, 2k-1) bias table.
    Returns:
        (G, k*k, H, W), to be added to the logits before the softmax over taps. An FX leaf.
    """
    k = kernel_size
    _, bias_h = na2d_window(height, k, dilation, rpb.device)
    _, bias_w = na2d_window(width, k, dilation, rpb.device)
    flat = bias_h[:, :, None, None] * (2 * k - 1) + bias_w[None, None]  # (H, k, W, k)
    out = rpb.flatten(1).index_select(1, flat.flatten())
    return out.reshape(-1, height, k, width, k).permute(0, 2, 4, 1, 3).reshape(-1, k * k, height, width)


class NeighbourhoodAggregation(nn.Module):
    """Parameter-free module form of the aggregation, channels-last: ``(attn (N, H, W, k*k), value (N, H, W, C))
    -> (N, H, W, C)``. A module so that profilers and FLOP counters can attribute its cost by name."""

    def __init__(self, kernel_size: int, dilation: int = 1):
        super().__init__()
        self.kernel_size = kernel_size
        self.dilation = dilation

    def forward(self, attn: torch.Tensor, value: torch.Tensor) -> torch.Tensor:
        N, H, W = attn.shape[0], attn.shape[1], attn.shape[2]
        k = self.kernel_size
        return na2d_av_nhwc(attn.reshape(N, H, W, k, k), value, k, self.dilation)

    def extra_repr(self) -> str:
        return f'kernel_size={self.kernel_size}, dilation={self.dilation}'
