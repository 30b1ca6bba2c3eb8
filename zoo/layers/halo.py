"""Halo attention that serves feature maps of any size, vectorised.

Paper: `Scaling Local Self-Attention for Parameter Efficient Visual Backbones` (Vaswani et al., CVPR 2021),
arXiv:2103.12731. No official code was released. The parameters, their initialisation and the semantics are timm's
``HaloAttn`` (``timm.layers.halo_attn``): blocked local self-attention, b x b query blocks, each attending to its
(b + 2h) x (b + 2h) haloed window (zero border), 2-D relative position logits, strided queries for stride 2. A timm
``HaloAttn`` is kept as ``self.attn`` to hold those parameters (state dicts are timm's under the prefix ``attn.``);
its forward is not used.

The computation (:func:`halo_attention`) is written here instead of timm's:

* the 1x1 projections run as channels-last matmuls; the key/value map gets its zero halo border once and every
  block's window is gathered ONCE, straight into the layout attention takes (window rows of ``w * channels``
  contiguous floats); keys and values are strided views of that one copy (timm makes an unfold copy, then
  permuted/split copies per block and expanded relative-logit copies);
* the relative position logits are computed as timm's ``PosEmbedRel`` defines them (query . height table row
  ``w - 1 + key_row - query_row`` plus the same along the width), batched in one einsum against a gathered table,
  and enter ``F.scaled_dot_product_attention`` as its additive mask; the fused kernel never materialises the
  attention probabilities.
At sizes that divide by b the result equals timm's ``HaloAttn`` up to float rounding (summation order).

timm's ``HaloAttn`` asserts that H and W divide by the block size b. :class:`PaddedHaloAttn` removes that limit:

1. the input is zero-padded at the bottom and right to the next multiple of b,
2. halo attention runs on the padded map,
3. the output is cropped back to ``ceil(H / stride) x ceil(W / stride)`` (the size a strided 1x1 shortcut gives).

What the padded positions mean: the query and key/value projections are bias-free 1x1 convolutions, so a zero
input position yields a zero key and a zero value - exactly what the halo border holds (the projected keys/values
are zero-padded by h on every side). Real queries near the bottom/right edge therefore see the block padding as a
wider stretch of that same border: a logit made of the relative-position term alone and a zero value. Queries at
padded positions are computed and discarded by the crop. (With ``qkv_bias=True`` the padded keys/values would carry
the biases, i.e. behave like zero-valued *features* rather than like the zero halo border; no zoo model uses that
option.)

Downsampling (stride 2): with b divisible by 2, queries are subsampled (every second row/column, as timm's strided
1x1 convolution); the padded map still divides by b, and the crop keeps the first ``ceil(H / 2)`` rows, the
positions the strided shortcut samples. With an odd b (or ``avg_down=True``) attention runs at stride 1 and is
average-pooled 2x2 after the crop, with ``ceil_mode=True``, so an odd-sized map's last row/column is averaged over
its real positions only (identical to ``HaloAttn`` at even sizes).
"""
from typing import Optional

import torch
import torch.nn as nn
import torch.nn.functional as F
from timm.layers.halo_attn import HaloAttn
from timm.layers import register_notrace_module

__all__ = ['PaddedHaloAttn', 'halo_attention']


def _rel_index(bq: int, w: int, device: torch.device) -> torch.Tensor:
    """(bq, w) rows of the (2w - 1)-row relative table: ``w - 1 + key - query`` (positions local to window/block)."""
    return (w - 1) + torch.arange(w, device=device)[None, :] - torch.arange(bq, device=device)[:, None]


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
    """Blocked halo attention on an NCHW map whose H and W divide by ``block_size``; returns NCHW
    ``(B, num_heads * dim_head_v, H / stride, W / stride)`` (heads-major channels, as timm's ``HaloAttn``).

    ``q_weight`` / ``kv_weight``: the 1x1 projections (``(out, in[, 1, 1])``, channels head-major; within a head
    of ``kv`` the key channels come first), ``height_rel`` / ``width_rel``: ``(2 * win - 1, dim_head_qk)`` tables.
    """
    B, C, H, W = x.shape
    b, h, s = block_size, halo_size, stride
    w = b + 2 * h
    bq = b // s
    nh, dqk = num_heads, dim_head_qk
    nby, nbx = H // b, W // b
    n = B * nby * nbx  # blocks in the batch
    scale = dqk ** -0.5

    # 1x1 projections as channels-last matmuls: (B, H*W, out); strided queries = queries at every s-th position
    xs = x[:, :, ::s, ::s] if s > 1 else x
    q = torch.matmul(xs.flatten(2).transpose(1, 2), q_weight.reshape(q_weight.shape[0], C).t())
    kv = torch.matmul(x.flatten(2).transpose(1, 2), kv_weight.reshape(kv_weight.shape[0], C).t())
    if q_bias is not None:
        q = q + q_bias
    if kv_bias is not None:
        kv = kv + kv_bias
    dch = kv.shape[-1] // nh  # dqk + dv per head
    dv = dch - dqk

    # key/value windows: zero halo border on the channels-last map, then ONE gather of every block's (w x w)
    # window (rows of w * channels contiguous), laid out (blocks, w*w, heads, dch); k and v are views of it
    kv = F.pad(kv.reshape(B, H, W, -1), (0, 0, h, h, h, h))
    kv = kv.unfold(1, w, b).unfold(2, w, b).permute(0, 1, 2, 4, 5, 3).reshape(n, w * w, nh, dch)
    k = kv[..., :dqk].transpose(1, 2)  # (n, heads, w*w, dqk), last dim contiguous
    v = kv[..., dqk:].transpose(1, 2)

    # query blocks: (n, heads, bq, bq, dqk)
    q = q.reshape(B, nby, bq, nbx, bq, nh, dqk).permute(0, 1, 3, 2, 4, 5, 6).reshape(n, bq, bq, nh, dqk)
    q = q.permute(0, 3, 1, 2, 4)

    # relative logits, batched: a[..., i, j, :w] = q . height_rel[w-1 + kr - i], a[..., i, j, w:] = q . width_rel[..]
    idx = _rel_index(bq, w, x.device)
    rh = height_rel[idx].to(q.dtype)  # (i, kr, d)
    rw = width_rel[idx].to(q.dtype)  # (j, kc, d)
    table = torch.cat([rh[:, None].expand(bq, bq, w, dqk), rw[None].expand(bq, bq, w, dqk)], 2)  # (i, j, 2w, d)
    a = torch.einsum('nhijd,ijkd->nhijk', q, table).reshape(n, nh, bq * bq, 2, w)
    # logit bias of query t for key (kr, kc): a_h[t, kr] + a_w[t, kc]; a broadcast add in float32, a product with
    # the constant (w*w, 2w) one-hot pair matrix in reduced precision (bf16 elementwise ops are slow on CPU, its
    # matmuls fast; the product adds the same two terms, accumulated in float32)
    if a.dtype == torch.float32 or a.dtype == torch.float64:
        bias = (a[..., 0, :, None] + a[..., 1, None, :]).reshape(n, nh, bq * bq, w * w)
    else:
        eye = torch.eye(w, dtype=a.dtype, device=a.device)
        pairs = torch.cat([eye[:, None, :].expand(w, w, w), eye[None, :, :].expand(w, w, w)], -1)
        bias = torch.matmul(a.reshape(n, nh, bq * bq, 2 * w), pairs.reshape(w * w, 2 * w).t())
    q = q.reshape(n, nh, bq * bq, dqk)
    if scale_pos_embed:
        bias = bias * scale
    out = F.scaled_dot_product_attention(q, k, v, attn_mask=bias, scale=scale)  # (n, heads, bq*bq, dv)

    # (B, nby, nbx, bq, bq, heads, dv) -> (B, heads * dv, nby * bq, nbx * bq)
    # an explicit copy: the eager SDPA output is already in this layout, but exporters (ONNX dynamo) decompose SDPA
    # into a standard-layout result that a plain view of the transposed strides cannot reshape
    out = out.transpose(1, 2).clone(memory_format=torch.contiguous_format)
    out = out.reshape(B, nby, nbx, bq, bq, nh * dv).permute(0, 5, 1, 3, 2, 4)
    return out.reshape(B, nh * dv, nby * bq, nbx * bq)


@register_notrace_module  # shape-dependent padding: a leaf for torch.fx feature extraction
class PaddedHaloAttn(nn.Module):
    """Halo attention for any H x W: pad to a multiple of the block size, attend (:func:`halo_attention`), crop.

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
        x = halo_attention(
            x, self.attn.q.weight, self.attn.kv.weight, self.attn.pos_embed.height_rel,
            self.attn.pos_embed.width_rel, self.num_heads, self.dim_head_qk, self.block_size, self.halo_size,
            stride=self.attn_stride, scale_pos_embed=self.scale_pos_embed,
            q_bias=self.attn.q.bias, kv_bias=self.attn.kv.bias)
        if pad_h > 0 or pad_w > 0:
            s = self.attn_stride
            x = x[:, :, :(H + s - 1) // s, :(W + s - 1) // s]
        return self.pool(x)
