"""Reference bi-level routing attention for tests and benchmarks (not public API).

The straightforward algorithm of the official ``ops/bra_legacy.py`` (https://github.com/rayleizhu/BiFormer):
expand + gather of key/value regions and an explicit softmax, run with a
:class:`zoo.layers.bra.BiLevelRoutingAttention`'s parameters. ``zoo.bench`` swaps it in for the BRA benchmark
(``tools/benchmark.py --reference bra``); tests/test_biformer.py checks BRA against it.
"""
import torch
import torch.nn.functional as F

from .bra import BiLevelRoutingAttention, pad_amounts, valid_region_mask

__all__ = ['bra_gather_reference']


def bra_gather_reference(attn: BiLevelRoutingAttention, x: torch.Tensor) -> torch.Tensor:
    """Straightforward BRA with ``attn``'s parameters: the official expand + gather + explicit softmax algorithm.

    Expands the key/value tensor to (N, R, R, T, D) (a view), gathers ``topk`` key/value regions per query region
    (a copy, ``topk`` times the key/value size), then builds the full (N*R, heads, T, topk*T) attention matrix.
    Numerically equivalent to ``attn(x)`` (same padding / ``mask_padding`` semantics); meant for benchmarks and
    tests. To run a whole model on it: ``m.forward = types.MethodType(bra_gather_reference, m)`` for every
    :class:`BiLevelRoutingAttention` ``m``.
    """
    N, H, W, C = x.shape
    S, m, qk_dim = attn.n_win, attn.num_heads, attn.qk_dim
    pad_b, pad_r = pad_amounts(H, S), pad_amounts(W, S)
    x = F.pad(x, (0, 0, 0, pad_r, 0, pad_b))
    Hp, Wp = H + pad_b, W + pad_r
    rh, rw = Hp // S, Wp // S
    R, T = S * S, rh * rw
    use_mask = attn.mask_padding and (pad_b > 0 or pad_r > 0)

    # regions: (N, R, rh, rw, C) then projection
    xr = x.view(N, S, rh, S, rw, C).permute(0, 1, 3, 2, 4, 5).reshape(N, R, rh, rw, C)
    qkv = attn.qkv(xr)
    q, kv = qkv[..., :qk_dim], qkv[..., qk_dim:]
    valid = valid_region_mask(H, W, Hp, Wp, S, x.device).view(1, R, rh, rw, 1).to(x.dtype)
    if use_mask:
        cnt = valid.sum((2, 3)).clamp(min=1.)
        q_win = (q * valid).sum((2, 3)) / cnt
        k_win = (kv[..., :qk_dim] * valid).sum((2, 3)) / cnt
    else:
        q_win, k_win = q.mean((2, 3)), kv[..., :qk_dim].mean((2, 3))
    logit = (q_win.detach() * attn.scale) @ k_win.detach().transpose(-2, -1)
    if use_mask:
        logit = logit.masked_fill(valid.sum((2, 3, 4)).view(1, 1, R) == 0, float('-inf'))
    r_idx = torch.topk(logit, k=attn.topk, dim=-1).indices  # (N, R, k)

    kv = kv.reshape(N, R, T, -1)
    D = kv.shape[-1]
    kv_sel = torch.gather(
        kv.view(N, 1, R, T, D).expand(-1, R, -1, -1, -1), dim=2,
        index=r_idx.view(N, R, attn.topk, 1, 1).expand(-1, -1, -1, T, D))  # (N, R, k, T, D)
    k_sel, v_sel = kv_sel.split([qk_dim, attn.dim], dim=-1)
    k_sel = k_sel.reshape(N * R, attn.topk * T, m, -1).permute(0, 2, 3, 1)  # (N*R, m, d, k*T)
    v_sel = v_sel.reshape(N * R, attn.topk * T, m, -1).permute(0, 2, 1, 3)  # (N*R, m, k*T, d)
    q_pix = q.reshape(N * R, T, m, -1).permute(0, 2, 1, 3)  # (N*R, m, T, d)
    a = (q_pix * attn.scale) @ k_sel
    if use_mask:
        key_valid = valid.view(R, T)[r_idx]  # (N, R, k, T)
        a = a.masked_fill(key_valid.reshape(N * R, 1, 1, attn.topk * T) == 0, float('-inf'))
    a = a.softmax(dim=-1)
    out = a @ v_sel  # (N*R, m, T, d)
    out = out.view(N, S, S, m, rh, rw, -1).permute(0, 1, 4, 2, 5, 3, 6).reshape(N, Hp, Wp, attn.dim)

    if attn.lepe is not None:
        v_img = kv[..., qk_dim:].view(N, S, S, rh, rw, attn.dim).permute(0, 5, 1, 3, 2, 4).reshape(N, -1, Hp, Wp)
        if use_mask:
            v_img = v_img * valid.view(R, rh, rw).view(S, S, rh, rw).permute(0, 2, 1, 3).reshape(1, 1, Hp, Wp)
        out = out + attn.lepe(v_img).permute(0, 2, 3, 1)
    out = attn.proj(out)
    return out[:, :H, :W].contiguous()
