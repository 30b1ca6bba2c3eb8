"""OverLoCK's convolutional building blocks: per-channel affine LayerScale, residual depthwise conv, and the
conv MLP with GRN (Lou & Yu, CVPR 2025, arXiv:2502.20087; official code https://github.com/LMMMEng/OverLoCK).

Parameter names follow the zoo OverLoCK layout (``weight`` / ``bias`` of the official depthwise 1x1 conv for
:class:`ChannelAffine`, ``fc1`` / ``dwconv`` / ``grn`` / ``fc2`` for :class:`ConvGrnMlp`).
"""
import torch
import torch.nn as nn
from timm.layers import register_notrace_module

__all__ = ['ChannelAffine', 'ResDWConv', 'GlobalResponseNorm2d', 'ConvGrnMlp']


@register_notrace_module  # one node under FX (keeps OverLoCK's traced graph small enough for timm's limits)
class ChannelAffine(nn.Module):
    """OverLoCK's LayerScale: per-channel scale *and* bias (official: a depthwise 1x1 conv, hence the
    (C, 1, 1, 1) weight)."""

    def __init__(self, dim: int, init_value: float = 1.0, device=None, dtype=None):
        super().__init__()
        self.weight = nn.Parameter(torch.full((dim, 1, 1, 1), float(init_value), device=device, dtype=dtype))
        self.bias = nn.Parameter(torch.zeros(dim, device=device, dtype=dtype))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # in the input's dtype (under autocast a bf16 map stays bf16: no mixed-dtype elementwise op)
        w = self.weight.reshape(1, -1, 1, 1).to(x.dtype)
        return torch.addcmul(self.bias.reshape(1, -1, 1, 1).to(x.dtype), x, w)


class ResDWConv(nn.Conv2d):
    """x + depthwise k x k conv(x) (an ``nn.Conv2d``, so its tensors are ``weight`` / ``bias``)."""

    def __init__(self, dim: int, kernel_size: int = 3, device=None, dtype=None):
        super().__init__(dim, dim, kernel_size, padding=kernel_size // 2, groups=dim, device=device, dtype=dtype)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self._conv_forward(x, self.weight, self.bias)


@register_notrace_module  # one node under FX (keeps OverLoCK's traced graph small enough for timm's limits)
class GlobalResponseNorm2d(nn.Module):
    """Global Response Normalization (ConvNeXt-V2) on NCHW maps: the math and ``weight`` / ``bias`` tensors of
    ``timm.layers.GlobalResponseNorm(channels_last=False)``, computed in the input's dtype (under autocast a
    bf16 map stays bf16 instead of being promoted to float32 by the float32 parameters)."""

    def __init__(self, dim: int, eps: float = 1e-6, device=None, dtype=None):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.zeros(dim, device=device, dtype=dtype))
        self.bias = nn.Parameter(torch.zeros(dim, device=device, dtype=dtype))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x_g = x.norm(p=2, dim=(2, 3), keepdim=True)
        x_n = x_g / (x_g.mean(dim=1, keepdim=True) + self.eps)
        w = self.weight.reshape(1, -1, 1, 1).to(x.dtype)
        b = self.bias.reshape(1, -1, 1, 1).to(x.dtype)
        return x + torch.addcmul(b, w, x * x_n)


@register_notrace_module  # one node under FX (keeps OverLoCK's traced graph small enough for timm's limits)
class ConvGrnMlp(nn.Module):
    """1x1 conv -> GELU -> x + DW3x3(x) -> GRN -> 1x1 conv."""

    def __init__(self, dim: int, hidden_dim: int, out_dim: int, device=None, dtype=None):
        dd = {'device': device, 'dtype': dtype}
        super().__init__()
        self.fc1 = nn.Conv2d(dim, hidden_dim, 1, **dd)
        self.act = nn.GELU()
        self.dwconv = ResDWConv(hidden_dim, **dd)
        self.grn = GlobalResponseNorm2d(hidden_dim, eps=1e-6, **dd)
        self.fc2 = nn.Conv2d(hidden_dim, out_dim, 1, **dd)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.grn(self.dwconv(self.act(self.fc1(x)))))
