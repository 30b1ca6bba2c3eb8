"""Attention Module of the Residual Attention Network (p = 1, t = 2, r = 1).

Wang et al., CVPR 2017 (arXiv:1704.06904); official definition: the Caffe deploy prototxts of
https://github.com/fwang91/residual-attention-network

``out = RU((1 + M) * T)`` with the trunk ``T = RU(RU(RU(x)))`` and the bottom-up top-down soft mask ``M`` (L pooling
levels), RU the pre-activation bottleneck unit. Max pooling 3x3/2 with padding 1 and bilinear up-sampling with
``align_corners=True`` to each reference size, so any input size works. The full graph: docs/models.md.
"""
from typing import List, Optional

import torch
import torch.nn as nn
import torch.nn.functional as F
from timm.layers import register_notrace_function

__all__ = ['PreActBottleneck', 'DilatedMaxPool', 'SoftMaskBranch', 'ResidualAttentionModule']


class PreActBottleneck(nn.Module):
    """Pre-activation bottleneck residual unit (He et al. 2016) as in the official prototxts.

    BN-ReLU(x) feeds the 1x1 -> 3x3 (stride) -> 1x1 branch and, when the shape changes, a strided 1x1
    projection shortcut; otherwise the shortcut is the raw input. No activation after the sum.
    All convolutions without bias; bottleneck width = out_chs / 4; ``dilation`` dilates the 3x3 conv.
    """

    def __init__(self, in_chs: int, out_chs: int, stride: int = 1, dilation: int = 1, device=None, dtype=None):
        super().__init__()
        dd = {'device': device, 'dtype': dtype}
        mid_chs = out_chs // 4
        self.norm1 = nn.BatchNorm2d(in_chs, **dd)
        self.conv1 = nn.Conv2d(in_chs, mid_chs, 1, bias=False, **dd)
        self.norm2 = nn.BatchNorm2d(mid_chs, **dd)
        self.conv2 = nn.Conv2d(
            mid_chs, mid_chs, 3, stride=stride, padding=dilation, dilation=dilation, bias=False, **dd)
        self.norm3 = nn.BatchNorm2d(mid_chs, **dd)
        self.conv3 = nn.Conv2d(mid_chs, out_chs, 1, bias=False, **dd)
        if in_chs != out_chs or stride != 1:
            self.downsample: Optional[nn.Module] = nn.Conv2d(in_chs, out_chs, 1, stride=stride, bias=False, **dd)
        else:
            self.downsample = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x_pre = F.relu(self.norm1(x))
        shortcut = x if self.downsample is None else self.downsample(x_pre)
        x = self.conv1(x_pre)
        x = self.conv2(F.relu(self.norm2(x)))
        x = self.conv3(F.relu(self.norm3(x)))
        return x + shortcut


class DilatedMaxPool(nn.Module):
    """3x3 / stride 2 max pool dilated by ``dilation`` with padding ``dilation`` (PyTorch's pools pad at most half
    the kernel, so the input is padded here, with -inf as the pool's own padding)."""

    def __init__(self, dilation: int):
        super().__init__()
        self.dilation = dilation

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        d = self.dilation
        return F.max_pool2d(F.pad(x, [d, d, d, d], value=float('-inf')), 3, stride=2, dilation=d)


@register_notrace_function  # size-dependent skip: a leaf under FX (FX only wraps names without a leading _)
def resize_to_ref(x: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
    """Bilinear resize of x to the spatial size of ref (Caffe Interp with a reference bottom)."""
    if x.shape[-2:] == ref.shape[-2:]:
        return x
    return F.interpolate(x, size=[ref.shape[-2], ref.shape[-1]], mode='bilinear', align_corners=True)


class SoftMaskBranch(nn.Module):
    """Bottom-up top-down soft mask branch with ``num_levels`` max-pool levels and skip connections.

    Returns the mask M in (0, 1), the same shape as ``ref`` (the trunk output).

    ``dilation`` d > 1 serves a stage whose strides became dilation (timm's ``output_stride``), i.e. an input d
    times denser than the undilated network's: every level keeps that density (its max pools and 3x3 convs are
    dilated by d, the pools keep their stride 2), so each unit sees the receptive field it has undilated.
    """

    def __init__(self, chs: int, num_levels: int, dilation: int = 1, device=None, dtype=None):
        super().__init__()
        dd = {'device': device, 'dtype': dtype}
        kw = {'dilation': dilation, **dd}
        assert num_levels >= 1
        self.num_levels = num_levels
        down = []
        for level in range(num_levels):
            units = [PreActBottleneck(chs, chs, **kw)]
            if level == num_levels - 1:
                units.append(PreActBottleneck(chs, chs, **kw))  # 2r units at the lowest resolution (r = 1)
            pool = nn.MaxPool2d(3, stride=2, padding=1) if dilation == 1 else DilatedMaxPool(dilation)
            down.append(nn.Sequential(pool, *units))
        self.down = nn.ModuleList(down)
        # skip[k] and up[k] serve level num_levels - 2 - k (k = 0 is the coarsest level above the bottom,
        # the first one met on the way up)
        self.skip = nn.ModuleList([PreActBottleneck(chs, chs, **kw) for _ in range(num_levels - 1)])
        self.up = nn.ModuleList([PreActBottleneck(chs, chs, **kw) for _ in range(num_levels - 1)])
        self.head = nn.Sequential(
            nn.BatchNorm2d(chs, **dd),
            nn.ReLU(inplace=True),
            nn.Conv2d(chs, chs, 1, bias=False, **dd),
            nn.BatchNorm2d(chs, **dd),
            nn.ReLU(inplace=True),
            nn.Conv2d(chs, chs, 1, bias=False, **dd),
            nn.Sigmoid(),
        )

    def forward(self, x: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
        downs: List[torch.Tensor] = []
        for stage in self.down:
            x = stage(x)
            downs.append(x)
        skips: List[torch.Tensor] = []
        for k, unit in enumerate(self.skip):
            skips.append(unit(downs[self.num_levels - 2 - k]))
        for k, unit in enumerate(self.up):
            level = self.num_levels - 2 - k
            x = unit(resize_to_ref(x, downs[level]) + skips[k])
        return self.head(resize_to_ref(x, ref))


class ResidualAttentionModule(nn.Module):
    """Attention Module: pre unit, trunk (2 units), soft mask, (1 + M) * T, post unit (p = 1, t = 2, r = 1);
    ``dilation`` dilates every unit and the soft mask branch (see :class:`SoftMaskBranch`)."""

    def __init__(self, chs: int, num_levels: int, dilation: int = 1, device=None, dtype=None):
        super().__init__()
        kw = {'dilation': dilation, 'device': device, 'dtype': dtype}
        self.pre = PreActBottleneck(chs, chs, **kw)
        self.trunk = nn.Sequential(PreActBottleneck(chs, chs, **kw), PreActBottleneck(chs, chs, **kw))
        self.mask = SoftMaskBranch(chs, num_levels, **kw)
        self.post = PreActBottleneck(chs, chs, **kw)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pre(x)
        trunk = self.trunk(x)
        mask = self.mask(x, trunk)
        return self.post((1. + mask) * trunk)
