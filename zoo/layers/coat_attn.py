"""CoaT conv-attention: factorised attention with convolutional relative position encoding (CRPE), and the
convolutional position encoding (CPE).

Xu et al., ICCV 2021 (arXiv:2104.06399); official code https://github.com/mlpc-ucsd/CoaT (independent implementation).
The layers take a token sequence ``(B, 1 + H * W, C)`` (class token first) and ``size=(H, W)`` at call time; the class
token is never convolved. One CPE and one CRPE per stage are shared by its blocks. Details: docs/models.md.
"""
from typing import Dict, List, Optional, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F
from timm.layers import register_notrace_function

__all__ = ['ConvPosEnc', 'ConvRelPosEnc', 'FactorAttnConvRelPosEnc', 'DEFAULT_CRPE_WINDOW', 'conv_pos_enc',
           'conv_rel_pos_enc']

# kernel size -> number of heads using it, in head order (heads 0-1: 3x3, heads 2-4: 5x5, heads 5-7: 7x7)
DEFAULT_CRPE_WINDOW = {3: 2, 5: 3, 7: 3}


@register_notrace_function  # the token-count check is shape-dependent control flow: an FX leaf (FX autowraps only
# functions whose name has no leading underscore)
def image_tokens_to_map(tokens: torch.Tensor, size: Tuple[int, int]) -> torch.Tensor:
    """(B, H * W, C) row-major tokens -> (B, C, H, W)."""
    B, N, C = tokens.shape
    H, W = size
    if N != H * W:
        raise ValueError('expected ' + str(H) + 'x' + str(W) + '=' + str(H * W) + ' image tokens, got ' + str(N))
    return tokens.transpose(1, 2).reshape(B, C, H, W)


def conv_pos_enc(x: torch.Tensor, size: Tuple[int, int], weight: torch.Tensor,
                 bias: Optional[torch.Tensor]) -> torch.Tensor:
    """CPE as a function: image tokens += depthwise conv (``weight``: (C, 1, k, k), zero "same" padding)."""
    cls_token, img = x[:, :1], x[:, 1:]
    feat = image_tokens_to_map(img, size)
    feat = F.conv2d(feat, weight, bias, padding=weight.shape[-1] // 2, groups=weight.shape[0]) + feat
    return torch.cat((cls_token, feat.flatten(2).transpose(1, 2)), dim=1)


def conv_rel_pos_enc(q: torch.Tensor, v: torch.Tensor, size: Tuple[int, int], weights: List[torch.Tensor],
                     biases: List[Optional[torch.Tensor]]) -> torch.Tensor:
    """CRPE as a function: ``EV = q_img * DWConv(v_img)``, zero for the class token.

    ``q``, ``v``: (B, heads, 1 + H * W, head_dim). ``weights[i]`` is the depthwise kernel ``(c_i, 1, k_i, k_i)`` of
    the next ``c_i`` channels of ``v_img`` (channels ordered (head, head_dim)), zero "same" padding, ``biases[i]``.
    """
    B, h, N, d = q.shape
    H, W = size
    v_img = v[:, :, 1:].transpose(-1, -2).reshape(B, h * d, H, W)
    convs: List[torch.Tensor] = []
    start = 0
    for w, b in zip(weights, biases):  # channel slices, not torch.split: FX cannot iterate the traced split
        c = w.shape[0]
        convs.append(F.conv2d(v_img[:, start:start + c], w, b, padding=w.shape[-1] // 2, groups=c))
        start += c
    conv_v = torch.cat(convs, dim=1)
    conv_v = conv_v.reshape(B, h, d, H * W).transpose(-1, -2)
    ev = q[:, :, 1:] * conv_v
    return F.pad(ev, (0, 0, 1, 0))  # zero row for the class token -> (B, heads, N, head_dim)


class ConvPosEnc(nn.Module):
    """Convolutional position encoding: image tokens += depthwise conv k x k (zero padding); class token unchanged."""

    def __init__(self, dim: int, kernel_size: int = 3, device=None, dtype=None):
        dd = {'device': device, 'dtype': dtype}
        super().__init__()
        self.proj = nn.Conv2d(dim, dim, kernel_size, stride=1, padding=kernel_size // 2, groups=dim, **dd)

    def forward(self, x: torch.Tensor, size: Tuple[int, int]) -> torch.Tensor:
        return conv_pos_enc(x, size, self.proj.weight, self.proj.bias)


class ConvRelPosEnc(nn.Module):
    """Convolutional relative position encoding: ``EV = q_img * DWConv(v_img)`` per head, zero for the class token.

    The heads are split into groups that use different depthwise kernel sizes (``window``: kernel -> heads,
    in head order), each a zero-padded "same" convolution with bias.
    """

    def __init__(self, head_dim: int, num_heads: int, window: Optional[Dict[int, int]] = None, device=None,
                 dtype=None):
        dd = {'device': device, 'dtype': dtype}
        super().__init__()
        window = dict(DEFAULT_CRPE_WINDOW if window is None else window)
        if sum(window.values()) != num_heads:
            raise ValueError(
                f'CRPE window {window} assigns {sum(window.values())} heads, the attention has {num_heads}')
        self.num_heads = num_heads
        self.head_dim = head_dim
        self.convs = nn.ModuleList()
        splits = []
        for kernel_size, heads in window.items():
            chs = heads * head_dim
            self.convs.append(nn.Conv2d(chs, chs, kernel_size, padding=kernel_size // 2, groups=chs, **dd))
            splits.append(chs)
        self.channel_splits = splits

    def forward(self, q: torch.Tensor, v: torch.Tensor, size: Tuple[int, int]) -> torch.Tensor:
        # q, v: (B, heads, 1 + H * W, head_dim)
        weights: List[torch.Tensor] = []
        biases: List[Optional[torch.Tensor]] = []
        for conv in self.convs:
            weights.append(conv.weight)
            biases.append(conv.bias)
        return conv_rel_pos_enc(q, v, size, weights, biases)


class FactorAttnConvRelPosEnc(nn.Module):
    """Factorised attention plus CRPE: ``proj(scale * q (softmax_N(k)^T v) + q_img * DWConv(v_img))``.

    The softmax normalises the keys over the token axis (class token included) separately for every channel;
    queries are not normalised. ``scale`` applies to the factorised term only, as in the official model.
    """

    def __init__(
            self,
            dim: int,
            num_heads: int = 8,
            qkv_bias: bool = True,
            proj_drop: float = 0.,
            crpe_window: Optional[Dict[int, int]] = None,
            crpe: Optional[ConvRelPosEnc] = None,
            device=None,
            dtype=None,
    ):
        """``crpe``: a CRPE shared with other layers (registered here too); None: one of this layer's own with
        ``crpe_window`` (default :data:`DEFAULT_CRPE_WINDOW`)."""
        dd = {'device': device, 'dtype': dtype}
        super().__init__()
        if dim % num_heads:
            raise ValueError(f'dim {dim} is not divisible by num_heads {num_heads}')
        self.num_heads = num_heads
        head_dim = dim // num_heads
        self.scale = head_dim ** -0.5
        self.qkv = nn.Linear(dim, dim * 3, bias=qkv_bias, **dd)
        self.proj = nn.Linear(dim, dim, **dd)
        self.proj_drop = nn.Dropout(proj_drop)
        self.crpe = ConvRelPosEnc(head_dim, num_heads, crpe_window, **dd) if crpe is None else crpe

    def forward(self, x: torch.Tensor, size: Tuple[int, int]) -> torch.Tensor:
        B, N, C = x.shape
        q, k, v = self.qkv(x).reshape(B, N, 3, self.num_heads, C // self.num_heads).permute(2, 0, 3, 1, 4).unbind(0)
        k = k.softmax(dim=2)  # over the tokens, per channel
        context = k.transpose(-1, -2) @ v  # (B, heads, head_dim, head_dim)
        x = self.scale * (q @ context) + self.crpe(q, v, size)
        x = x.transpose(1, 2).reshape(B, N, C)
        return self.proj_drop(self.proj(x))
