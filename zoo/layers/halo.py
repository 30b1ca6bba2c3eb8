"""Halo attention that serves feature maps of any size, vectorised.

Vaswani et al., CVPR 2021 (arXiv:2103.12731); no official code. Parameters and semantics are timm's ``HaloAttn``
(kept as ``self.attn``, state dicts under ``attn.``); :func:`halo_attention` computes it with one window gather, batched
relative logits and fused SDPA. :class:`PaddedHaloAttn` treats the map as zero-padded to a multiple of the block size
and gathers back the real positions, so any H x W works; at sizes that divide by the block it equals timm's up to float
rounding. What the padded positions mean and how stride 2 works: docs/models.md.
"""
from collections import OrderedDict
from typing import Optional, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F
from timm.layers.halo_attn import HaloAttn
from timm.layers import register_notrace_module

__all__ = ['PaddedHaloAttn', 'halo_attention']


def _rel_index(bq: int, w: int, device: torch.device) -> torch.Tensor:
    """(bq, w) rows of the (2w - 1)-row relative table: ``w - 1 + key - query`` (positions local to window/block)."""
    return (w - 1) + torch.arange(w, device=device)[None, :] - torch.arange(bq, device=device)[:, None]


def _block_rows(B: int, nby: int, nbx: int, size: int, step: int, off: int, hs: int, ws: int, stride_b: int,
                fill: int, device: torch.device, dilation: int = 1) -> torch.Tensor:
    """Row indices, in (image, block row, block column, i, j) order, of every block's ``size x size`` window into
    a row-major (H, W) map stored ``stride_b`` rows apart per image: window (by, bx) covers map rows
    ``by * step - off + i * dilation`` and columns ``bx * step - off + j * dilation``; positions off the
    ``hs x ws`` map get row ``fill``
    of their image. Built from one flat ``arange`` (no tensor has a block-count dimension, so that a dynamic-shape
    ``torch.export`` does not specialise on the block counts being 1)."""
    t = torch.arange(B * nby * nbx * size * size, device=device)
    j = t % size
    t = torch.div(t, size, rounding_mode='floor')
    i = t % size
    t = torch.div(t, size, rounding_mode='floor')
    bx = t % nbx
    t = torch.div(t, nbx, rounding_mode='floor')
    by = t % nby
    bi = torch.div(t, nby, rounding_mode='floor')
    r = by * step + (i * dilation - off)
    c = bx * step + (j * dilation - off)
    valid = (r >= 0) & (r < hs) & (c >= 0) & (c < ws)
    return bi * stride_b + torch.where(valid, r * ws + c, fill)


def _grid_rows(B: int, hq: int, wq: int, bq: int, nby: int, nbx: int, device: torch.device) -> torch.Tensor:
    """For every (image, y, x) of the ``hq x wq`` grid, its row in the (image, block row, block column, i, j)
    block layout of ``bq x bq`` blocks (the inverse of the query gather, without the padded positions)."""
    t = torch.arange(B * hq * wq, device=device)
    c = t % wq
    t = torch.div(t, wq, rounding_mode='floor')
    r = t % hq
    bi = torch.div(t, hq, rounding_mode='floor')
    blk = (bi * nby + torch.div(r, bq, rounding_mode='floor')) * nbx + torch.div(c, bq, rounding_mode='floor')
    return (blk * bq + r % bq) * bq + c % bq


def _gather_indices(B: int, H: int, W: int, b: int, h: int, s: int,
                    device: torch.device) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The three index vectors of :func:`halo_attention` for a (B, ., H, W) input: key/value window rows, query
    rows (stride 1) or input columns (stride s), output rows. They depend on the shape only."""
    w, bq = b + 2 * h, b // s
    nby, nbx = (H + b - 1) // b, (W + b - 1) // b
    hq, wq = (H + s - 1) // s, (W + s - 1) // s
    kv_rows = _block_rows(B, nby, nbx, w, b, h, H, W, H * W + 1, H * W, device)
    if s == 1:
        q_idx = _block_rows(B, nby, nbx, bq, bq, 0, H, W, H * W, 0, device)
    else:
        q_idx = _block_rows(1, nby, nbx, bq, bq * s, 0, H, W, 0, 0, device, s)
    return kv_rows, q_idx, _grid_rows(B, hq, wq, bq, nby, nbx, device)


_INDEX_CACHE: 'OrderedDict[Tuple, Tuple[torch.Tensor, torch.Tensor, torch.Tensor]]' = OrderedDict()
_INDEX_CACHE_SIZE = 64


@torch.jit.unused
def _cached_gather_indices(B: int, H: int, W: int, b: int, h: int, s: int,
                           device: torch.device) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """:func:`_gather_indices`, memoised per shape and device in eager mode (building them costs about as much
    as a key/value gather). Traced / exported / compiled calls (symbolic or traced sizes) build them in the graph."""
    if torch.compiler.is_compiling() or not all(type(v) is int for v in (B, H, W)):
        return _gather_indices(B, H, W, b, h, s, device)
    key = (B, H, W, b, h, s, str(device))
    hit = _INDEX_CACHE.get(key)
    if hit is None:
        with torch.inference_mode(False):  # normal tensors, usable later with autograd even if built in inference
            hit = _INDEX_CACHE[key] = _gather_indices(B, H, W, b, h, s, device)
        if len(_INDEX_CACHE) > _INDEX_CACHE_SIZE:
            _INDEX_CACHE.popitem(last=False)
    else:
        _INDEX_CACHE.move_to_end(key)
    return hit


def halo_attention(
        x: torch.Tensor,
        q_weight: torch.Tensor,
        kv_weight: torch.Tensor,
        height_rel: torch.Tensor,
        width_rel: torch.Tensor,
        num_heads: int,
        dim_head_qk: int,
        block_size: int,
        halo_size: int,
        stride: int = 1,
        scale_pos_embed: bool = False,
        q_bias: Optional[torch.Tensor] = None,
        kv_bias: Optional[torch.Tensor] = None,
) -> torch.Tensor:
    """Blocked halo attention on an NCHW map of any size; returns NCHW
    ``(B, num_heads * dim_head_v, ceil(H / stride), ceil(W / stride))`` (heads-major channels, as timm's
    ``HaloAttn``). The map is treated as zero-padded at the bottom/right to a multiple of ``block_size`` (see
    docs/models.md); ``stride`` must divide ``block_size``.

    ``q_weight`` / ``kv_weight``: the 1x1 projections (``(out, in[, 1, 1])``, channels head-major; within a head
    of ``kv`` the key channels come first), ``height_rel`` / ``width_rel``: ``(2 * win - 1, dim_head_qk)`` tables.
    """
    B, C, H, W = x.shape
    b, h, s = block_size, halo_size, stride
    w = b + 2 * h
    bq = b // s
    nh, dqk = num_heads, dim_head_qk
    nby, nbx = (H + b - 1) // b, (W + b - 1) // b
    hq, wq = (H + s - 1) // s, (W + s - 1) // s  # the query grid (strided queries)
    n = B * nby * nbx  # blocks in the batch
    scale = dqk ** -0.5
    dev = x.device

    # key/value projection (channels-last rows) with one zero row per image after its H*W pixels: the zero halo
    # border and the block padding; every block's (w x w) window is then ONE row gather into attention's layout
    # (the zero pixel is appended to the input, half as wide as the keys/values; with a bias, to the output)
    kvw = kv_weight.reshape(kv_weight.shape[0], C).t()
    if kv_bias is None:
        kv = torch.matmul(F.pad(x.reshape(B, C, H * W), (0, 1)).transpose(1, 2), kvw)
    else:
        kv = F.pad(torch.matmul(x.reshape(B, C, H * W).transpose(1, 2), kvw) + kv_bias, (0, 0, 0, 1))
    kv = kv.reshape(B * (H * W + 1), kv.shape[-1])
    dch = kv.shape[-1] // nh  # dqk + dv per head
    dv = dch - dqk
    if torch.jit.is_scripting() or torch.jit.is_tracing():
        kv_rows, q_idx, out_rows = _gather_indices(B, H, W, b, h, s, dev)
    else:
        kv_rows, q_idx, out_rows = _cached_gather_indices(B, H, W, b, h, s, dev)
    kv = kv.index_select(0, kv_rows).reshape(n, w * w, nh, dch)
    k = kv[..., :dqk].transpose(1, 2)  # (n, heads, w*w, dqk), last dim contiguous
    v = kv[..., dqk:].transpose(1, 2)

    # queries in block order (n, heads, bq*bq, dqk); padded queries take pixel 0 and are dropped at the end.
    # Stride 1: project, then gather rows; stride s: gather every s-th input pixel in block order, then project
    qw = q_weight.reshape(q_weight.shape[0], C).t()
    if s == 1:
        q = torch.matmul(x.reshape(B, C, H * W).transpose(1, 2), qw).reshape(B * H * W, qw.shape[1])
        q = q.index_select(0, q_idx)
    else:
        q = torch.matmul(x.reshape(B, C, H * W).index_select(2, q_idx).transpose(1, 2), qw)
        q = q.reshape(B * nby * nbx * bq * bq, qw.shape[1])
    if q_bias is not None:
        q = q + q_bias
    q = q.reshape(n, bq * bq, nh, dqk).transpose(1, 2)

    # relative logits, batched: a[..., i, j, :w] = q . height_rel[w-1 + kr - i], a[..., i, j, w:] = q . width_rel[..]
    idx = _rel_index(bq, w, dev)
    rh = height_rel[idx].to(q.dtype)  # (i, kr, d)
    rw = width_rel[idx].to(q.dtype)  # (j, kc, d)
    table = torch.cat([rh[:, None].expand(bq, bq, w, dqk), rw[None].expand(bq, bq, w, dqk)], 2)  # (i, j, 2w, d)
    a = torch.einsum('nhtd,tkd->nhtk', q, table.reshape(bq * bq, 2 * w, dqk)).reshape(n, nh, bq * bq, 2, w)
    # logit bias of query t for key (kr, kc): a_h[t, kr] + a_w[t, kc]; a broadcast add in float32, a product with
    # the constant (w*w, 2w) one-hot pair matrix in reduced precision (bf16 elementwise ops are slow on CPU, its
    # matmuls fast; the product adds the same two terms, accumulated in float32)
    if a.dtype == torch.float32 or a.dtype == torch.float64:
        bias = (a[..., 0, :, None] + a[..., 1, None, :]).reshape(n, nh, bq * bq, w * w)
    else:
        eye = torch.eye(w, dtype=a.dtype, device=a.device)
        pairs = torch.cat([eye[:, None, :].expand(w, w, w), eye[None, :, :].expand(w, w, w)], -1)
        bias = torch.matmul(a.reshape(n, nh, bq * bq, 2 * w), pairs.reshape(w * w, 2 * w).t())
    if scale_pos_embed:
        bias = bias * scale
    out = F.scaled_dot_product_attention(q, k, v, attn_mask=bias, scale=scale)  # (n, heads, bq*bq, dv)

    # back to the query grid: one row gather (drops the padded queries), then NCHW
    # an explicit copy first: the eager SDPA output is already in (n, bq*bq, heads, dv) layout, but exporters (ONNX
    # dynamo) decompose SDPA into a standard-layout result that a view of the transposed strides cannot flatten
    out = out.transpose(1, 2).clone(memory_format=torch.contiguous_format).reshape(n * bq * bq, nh * dv)
    out = out.index_select(0, out_rows).reshape(B, hq * wq, nh * dv).transpose(1, 2).contiguous()
    return out.reshape(B, nh * dv, hq, wq)


@register_notrace_module  # shape arithmetic on the input size: a leaf for torch.fx feature extraction
class PaddedHaloAttn(nn.Module):
    """Halo attention for any H x W (:func:`halo_attention` treats the map as zero-padded to a multiple of the block
    size and returns only the real query positions).

    Args:
        dim: input channels.
        dim_out: output (value) channels; ``dim`` if not set.
        stride: 1, or 2 to downsample (strided queries, or 2x2 average pooling for odd block sizes).
        **kwargs: the other ``HaloAttn`` arguments (``num_heads``, ``dim_head``, ``block_size``, ``halo_size``,
            ``qk_ratio``, ``qkv_bias``, ``avg_down``, ``scale_pos_embed``, ``feat_size``, ``device``, ``dtype``).

    The parameters live in ``self.attn`` (a timm ``HaloAttn``, used as the parameter holder), so its weights are
    timm's under the prefix ``attn.``.
    """

    def __init__(self, dim: int, dim_out: Optional[int] = None, stride: int = 1, **kwargs):
        super().__init__()
        self.attn = HaloAttn(dim, dim_out=dim_out, stride=stride, **kwargs)
        self.block_size = self.attn.block_size
        self.halo_size = self.attn.halo_size
        self.num_heads = self.attn.num_heads
        self.dim_head_qk = self.attn.dim_head_qk
        self.scale_pos_embed = self.attn.scale_pos_embed
        self.stride = stride
        self.dim_out = self.attn.dim_out_v
        if isinstance(self.attn.pool, nn.AvgPool2d):
            # pool after halo_attention (real positions only), so odd sizes average real positions only
            self.attn.pool = nn.Identity()
            self.pool = nn.AvgPool2d(2, 2, ceil_mode=True)
            self.attn_stride = 1
        else:
            self.pool = nn.Identity()
            self.attn_stride = self.attn.block_stride

    def reset_parameters(self):
        self.attn.reset_parameters()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # halo_attention pads and crops itself (through its gathers, without shape-dependent branches, so that
        # dynamic-shape torch.export does not specialise on H % b or on the block counts)
        x = halo_attention(
            x, self.attn.q.weight, self.attn.kv.weight, self.attn.pos_embed.height_rel,
            self.attn.pos_embed.width_rel, self.num_heads, self.dim_head_qk, self.block_size, self.halo_size,
            stride=self.attn_stride, scale_pos_embed=self.scale_pos_embed,
            q_bias=self.attn.q.bias, kv_bias=self.attn.kv.bias)
        return self.pool(x)
