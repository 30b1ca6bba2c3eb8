"""Test and benchmark reference for :func:`zoo.layers.na2d.na2d_av` (not part of the public API).

``na2d_av_unfold_reference`` is the straightforward unfold formulation (dilation 1): ``F.unfold`` without
padding gives every valid k x k window; replicate-padding that window map by k // 2 hands border pixels the
nearest valid window, which is NATTEN's inward shift. Memory: k^2 value copies plus the k^2-sized product.
"""
import torch
import torch.nn.functional as F

__all__ = ['na2d_av_unfold_reference']


def na2d_av_unfold_reference(attn: torch.Tensor, value: torch.Tensor, kernel_size: int) -> torch.Tensor:
    """Unfold-based neighbourhood aggregation, layout of :func:`zoo.layers.na2d.na2d_av`:
    attn (B, G, H, W, k*k), value (B, G, H, W, D) -> (B, G, H, W, D)."""
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
