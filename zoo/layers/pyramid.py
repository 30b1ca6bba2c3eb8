"""Parameter-free simple feature pyramid from one stride-s map of an isotropic (ViT-like) backbone.

ViTDet-style (Li et al., "Exploring Plain Vision Transformer Backbones for Object Detection", arXiv:2203.16527)
but without learnable layers: level 0 = bilinear x2 up-sampling (stride s/2; no finer detail than the input, it
only lets standard 4-level necks attach), level 1 = the map itself (s), level k >= 2 = (2^(k-1))x(2^(k-1)) max
pooling with ceil rounding (stride 2^(k-1) s, so any map size works). Learnable deconvolutions belong to the neck.
"""
from typing import List, Union

import torch
import torch.nn as nn
import torch.nn.functional as F

__all__ = ['SimpleFeaturePyramid', 'simple_pyramid_level', 'simple_pyramid_reductions']


def simple_pyramid_level(x: torch.Tensor, level: int) -> torch.Tensor:
    """Pyramid level ``level`` (0: x2 up, 1: identity, k >= 2: /2^(k-1) max pool) of the NCHW map ``x``."""
    if level == 0:
        return F.interpolate(x, scale_factor=2., mode='bilinear', align_corners=False)
    if level == 1:
        return x
    k = 1 << (level - 1)
    return F.max_pool2d(x, kernel_size=[k, k], stride=[k, k], ceil_mode=True)  # lists: TorchScript


def simple_pyramid_reductions(stride: int, num_levels: int = 4) -> List[Union[int, float]]:
    """Feature strides of the levels for an input map of stride ``stride`` (level 0 may be fractional)."""
    out: List[Union[int, float]] = []
    for i in range(num_levels):
        r = stride * 2. ** (i - 1)
        out.append(int(r) if float(r).is_integer() else r)
    return out


class SimpleFeaturePyramid(nn.Module):
    """``num_levels`` pyramid levels (see the module docstring) of an NCHW map; no parameters."""

    def __init__(self, num_levels: int = 4):
        super().__init__()
        assert num_levels >= 1
        self.num_levels = num_levels

    def forward(self, x: torch.Tensor, indices: List[int]) -> List[torch.Tensor]:
        return [simple_pyramid_level(x, i) for i in indices]
