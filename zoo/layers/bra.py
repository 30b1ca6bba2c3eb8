"""Bi-Level Routing Attention (BRA), as the released BiFormer weights use it (``ops/bra_legacy.py``).

Zhu et al., CVPR 2023 (arXiv:2303.08810); official code https://github.com/rayleizhu/BiFormer

Region-level routing keeps the ``topk`` key regions of every query region; tokens attend to the tokens of those regions,
plus a 5x5 depthwise LePE on the values. Routed regions are gathered once into the layout of
``F.scaled_dot_product_attention`` (no attention matrix); ``zoo.layers.bra_reference`` keeps the expand + gather
algorithm. ``mask_padding=True`` keeps padded tokens out (a documented deviation). Details: docs/models.md.
"""
from typing import Optional, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F
from timm.layers import register_notrace_module

__all__ = ['BiLevelRoutingAttention', 'pad_amounts', 'valid_region_mask']


def _is_symbolic(size: int) -> bool:
    """True for a symbolic size (``torch.export`` / ``torch.compile`` with dynamic shapes), False for an int."""
    if torch.jit.is_scripting():
        return False
    return not isinstance(size, int)


def _may_be_padded(H: int, W: int, Hp: int, Wp: int) -> bool:
    """Whether the padded/crop path is needed: the sizes differ, or they are symbolic (dynamic-shape export,
    where one graph serves every size and padding amounts may be 0). Never compares symbolic sizes."""
    if _is_symbolic(H) or _is_symbolic(W):
        return True
    return Hp != H or Wp != W


def pad_amounts(size: int, n_win: int) -> int:
    return (n_win - size % n_win) % n_win


def _region_size(size: int, n_win: int) -> int:
    """Tokens per region along one side, ``ceil(size / n_win)``; the padded size is ``n_win`` times it.

    One expression without ``%`` or branches, so that under ``torch.export`` with a dynamic height/width the
    padded size is provably a multiple of ``n_win`` and no guard on the input size is needed."""
    return (size + n_win - 1) // n_win


def _valid_image_mask(H: int, W: int, Hp: int, Wp: int, device: torch.device) -> torch.Tensor:
    """(Hp, Wp) bool, True inside the unpadded H x W image."""
    return (torch.arange(Hp, device=device) < H)[:, None] & (torch.arange(Wp, device=device) < W)[None, :]


def valid_region_mask(H: int, W: int, Hp: int, Wp: int, n_win: int, device: torch.device) -> torch.Tensor:
    """(n_win**2, tokens per region) bool, True where a token lies inside the unpadded H x W image."""
    valid = _valid_image_mask(H, W, Hp, Wp, device)
    rh, rw = Hp // n_win, Wp // n_win
    # (S, rh, S, rw) -> (S, S, rh, rw): region index j * S + i (row-major), tokens row-major inside a region
    return valid.view(n_win, rh, n_win, rw).permute(0, 2, 1, 3).reshape(n_win * n_win, rh * rw)


@register_notrace_module  # shape-dependent padding / region sizes: an FX leaf
class BiLevelRoutingAttention(nn.Module):
    """Bi-level routing attention on NHWC feature maps (input already normalised).

    Args:
        dim: Channels of the input and of the values / output.
        num_heads: Attention heads (the released models use ``qk_dim // 32``).
        n_win: Regions per side; the map is split into ``n_win x n_win`` regions.
        topk: Key regions every query region attends to (``1 <= topk <= n_win ** 2``).
        qk_dim: Width of queries and keys (defaults to ``dim``).
        qk_scale: Attention scale; defaults to ``qk_dim ** -0.5`` (full qk width, as the released models).
        lepe_kernel: Kernel of the depthwise LePE conv on the values (0 disables LePE).
        mask_padding: Keep tokens added by padding out of routing, attention and LePE (deviation, see module doc).
    """

    def __init__(
            self,
            dim: int,
            num_heads: int = 8,
            n_win: int = 7,
            topk: int = 4,
            qk_dim: Optional[int] = None,
            qk_scale: Optional[float] = None,
            lepe_kernel: int = 5,
            mask_padding: bool = False,
            device=None,
            dtype=None,
    ):
        super().__init__()
        dd = {'device': device, 'dtype': dtype}
        qk_dim = qk_dim or dim
        if qk_dim % num_heads or dim % num_heads:
            raise ValueError(f'qk_dim ({qk_dim}) and dim ({dim}) must be divisible by num_heads ({num_heads})')
        if not 1 <= topk <= n_win * n_win:
            raise ValueError(f'topk must be in [1, n_win**2 = {n_win * n_win}], got {topk}')
        self.dim = dim
        self.qk_dim = qk_dim
        self.num_heads = num_heads
        self.n_win = n_win
        self.topk = topk
        self.scale = qk_scale or qk_dim ** -0.5
        self.mask_padding = mask_padding

        self.qkv = nn.Linear(dim, 2 * qk_dim + dim, **dd)  # [q | k | v]
        self.lepe = nn.Conv2d(
            dim, dim, lepe_kernel, padding=lepe_kernel // 2, groups=dim, **dd) if lepe_kernel > 0 else None
        self.proj = nn.Linear(dim, dim, **dd)

    def extra_repr(self) -> str:
        return (f'num_heads={self.num_heads}, n_win={self.n_win}, topk={self.topk}, qk_dim={self.qk_dim}, '
                f'scale={self.scale:.4g}, mask_padding={self.mask_padding}')

    def _qkv_regions(self, x: torch.Tensor) -> Tuple[torch.Tensor, int, int, int, int]:
        """Pad (official auto_pad), project; returns qkv (N, Hp, Wp, D), the unpadded size and the region size.

        With symbolic sizes (``torch.export`` with a dynamic height/width) the zero-padding is unconditional (the
        amounts may be 0), so one graph serves every input size; eager skips it where nothing is to be padded."""
        N, H, W, C = x.shape
        rh, rw = _region_size(H, self.n_win), _region_size(W, self.n_win)
        if _may_be_padded(H, W, rh * self.n_win, rw * self.n_win):
            # zero-pad the normalised input right/bottom before the projection, as the official auto_pad mode
            x = F.pad(x, (0, 0, 0, rw * self.n_win - W, 0, rh * self.n_win - H))
        return self.qkv(x), H, W, rh, rw

    def _lepe(self, qkv: torch.Tensor, valid_img: Optional[torch.Tensor]) -> Optional[torch.Tensor]:
        """LePE on the values laid out as the full (padded) image; NHWC, padded size (cropped with the output).

        With ``valid_img`` ((Hp, Wp), padding masked) the padded values are zeroed first, so the conv sees zeros
        beyond the image, as if it ran on the unpadded values."""
        if self.lepe is None:
            return None
        v = qkv[..., 2 * self.qk_dim:].permute(0, 3, 1, 2)
        if valid_img is not None:
            v = v * valid_img.to(v.dtype)
        return self.lepe(v).permute(0, 2, 3, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (N, H, W, C) -> (N, H, W, C)."""
        qkv, H, W, rh, rw = self._qkv_regions(x)
        N = qkv.shape[0]
        S, m, qk_dim, C = self.n_win, self.num_heads, self.qk_dim, self.dim
        R = S * S
        Hp, Wp = S * rh, S * rw
        T = rh * rw
        k_top = self.topk
        # masks only where tokens were added; a symbolic size (torch.export, dynamic H/W) takes the masked path for
        # every size, which computes the same as the unmasked one when nothing was padded (all tokens valid)
        padded = _may_be_padded(H, W, Hp, Wp)
        use_mask = self.mask_padding and padded

        lepe = self._lepe(qkv, _valid_image_mask(H, W, Hp, Wp, qkv.device) if use_mask else None)

        # region-major copies (one pass over the projection output): q (N, R, T, qk), [k | v] (N * R, T, qk + C);
        # rows of a region are contiguous, so gathering a routed region below copies one contiguous block
        qkv_r = qkv.view(N, S, rh, S, rw, 2 * qk_dim + C).permute(0, 1, 3, 2, 4, 5)
        q = qkv_r[..., :qk_dim].reshape(N, R, T, qk_dim)
        kv = qkv_r[..., qk_dim:].reshape(N * R, T, qk_dim + C)
        del qkv, qkv_r

        # region-level routing on detached region means of q and k (full qk width, all heads together)
        q_d, k_d = q.detach(), kv.view(N, R, T, -1)[..., :qk_dim].detach()
        valid: Optional[torch.Tensor] = None
        if use_mask:
            valid = valid_region_mask(H, W, Hp, Wp, S, q.device)  # (R, T)
            w_tok = valid.view(1, R, T, 1).to(q.dtype)
            count = valid.sum(1).view(1, R, 1).to(q.dtype).clamp(min=1.)
            q_mean = (q_d * w_tok).sum(2) / count
            k_mean = (k_d * w_tok).sum(2) / count
        else:
            q_mean, k_mean = q_d.mean(2), k_d.mean(2)  # (N, R, qk)
        logits = (q_mean * self.scale) @ k_mean.transpose(-2, -1)  # (N, R, R)
        if valid is not None:
            empty = ~valid.any(1)  # key regions made only of padding
            logits = logits.masked_fill(empty.view(1, 1, R), float('-inf'))
        r_idx = torch.topk(logits, k=k_top, dim=-1).indices  # (N, R, k), best first

        # gather the routed key/value regions once (index_select of whole contiguous regions) straight into the
        # layout attention takes: (N * R, k * T, qk + C); heads and the k/v split are strided views of it
        flat_idx = (r_idx + torch.arange(N, device=r_idx.device).view(N, 1, 1) * R).reshape(-1)
        kv_sel = kv.index_select(0, flat_idx).view(N * R, k_top * T, qk_dim + C)
        del kv
        k_sel = kv_sel[..., :qk_dim].reshape(N * R, k_top * T, m, -1).transpose(1, 2)  # (N*R, m, k*T, d)
        v_sel = kv_sel[..., qk_dim:].reshape(N * R, k_top * T, m, -1).transpose(1, 2)
        q = q.view(N * R, T, m, -1).transpose(1, 2)  # (N*R, m, T, d)

        attn_mask: Optional[torch.Tensor] = None
        if valid is not None:
            # (N, R, k, T) key validity, broadcast over heads and queries: (N * R, 1, 1, k * T)
            attn_mask = valid[r_idx].view(N * R, 1, 1, k_top * T)

        out = F.scaled_dot_product_attention(q, k_sel, v_sel, attn_mask=attn_mask, scale=self.scale)  # (N*R, m, T, d)
        del q, k_sel, v_sel, kv_sel
        # (N, S, S, rh, rw, m * d) -> (N, S, rh, S, rw, C) -> (N, Hp, Wp, C), channel = head * d + c
        out = out.transpose(1, 2).reshape(N, S, S, rh, rw, C).permute(0, 1, 3, 2, 4, 5).reshape(N, Hp, Wp, C)
        if lepe is not None:
            out = out + lepe
        # the projection is per token: project the padded map, then crop once, as a copy (F.pad with negative
        # amounts) rather than a strided view, so that a dynamic-shape export does not depend on whether it padded
        out = self.proj(out)
        if padded:
            out = F.pad(out, (0, 0, 0, W - Wp, 0, H - Hp))
        return out
