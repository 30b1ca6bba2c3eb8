"""CBAM: Convolutional Block Attention Module.

Woo et al., "CBAM: Convolutional Block Attention Module", ECCV 2018 (arXiv:1807.06521).
Official code: https://github.com/Jongchan/attention-module

Computed as the official code does (which differs from timm's ``CbamModule`` in three ways that matter
for loading the released weights): the channel MLP has biases, the two pooled MLP outputs (logits,
each including the second bias) are summed before the sigmoid, and the spatial gate pools
[max, mean] over channels in that order, then applies a 7x7 conv without bias followed by BatchNorm.
"""
import torch
import torch.nn as nn

__all__ = ['ZPool', 'ChannelGate', 'SpatialGate', 'CBAM']


class ZPool(nn.Module):
    """Concatenate max and mean over ``dim`` (max first, as the official CBAM / triplet code)."""

    def __init__(self, dim: int = 1):
        super().__init__()
        self.dim = dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([x.amax(dim=self.dim, keepdim=True), x.mean(dim=self.dim, keepdim=True)], dim=self.dim)


class ChannelGate(nn.Module):
    """sigmoid(MLP(avgpool(x)) + MLP(maxpool(x))) * x, with a biased two-layer MLP (hidden = C // reduction)."""

    def __init__(self, channels: int, reduction: int = 16, device=None, dtype=None):
        super().__init__()
        dd = dict(device=device, dtype=dtype)
        hidden = channels // reduction
        self.fc1 = nn.Linear(channels, hidden, **dd)
        self.act = nn.ReLU()
        self.fc2 = nn.Linear(hidden, channels, **dd)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b = x.shape[0]
        pooled = torch.cat([x.mean(dim=(2, 3)), x.amax(dim=(2, 3))], dim=0)  # (2B, C): one MLP pass for both
        logits = self.fc2(self.act(self.fc1(pooled)))
        scale = torch.sigmoid(logits[:b] + logits[b:])
        return x * scale[:, :, None, None]


class SpatialGate(nn.Module):
    """sigmoid(BN(conv_kxk([max_C(x), mean_C(x)]))) * x."""

    def __init__(self, kernel_size: int = 7, device=None, dtype=None):
        super().__init__()
        dd = dict(device=device, dtype=dtype)
        self.pool = ZPool(dim=1)
        self.conv = nn.Conv2d(2, 1, kernel_size, padding=(kernel_size - 1) // 2, bias=False, **dd)
        self.bn = nn.BatchNorm2d(1, eps=1e-5, momentum=0.01, **dd)
        # official init: the spatial gate's BN starts at gamma = 0 (gate = 0.5 everywhere)
        nn.init.zeros_(self.bn.weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.sigmoid(self.bn(self.conv(self.pool(x))))


class CBAM(nn.Module):
    """Channel gate then spatial gate, applied sequentially.

    The signature ``CBAM(channels, ...)`` makes it usable as ``attn_layer`` of timm's ResNet blocks
    (which call ``attn_layer(channels)`` and place it after the last BN, before the residual add,
    exactly where the official code puts it).
    """

    def __init__(self, channels: int, reduction: int = 16, kernel_size: int = 7, spatial: bool = True,
                 device=None, dtype=None):
        super().__init__()
        dd = dict(device=device, dtype=dtype)
        self.channel = ChannelGate(channels, reduction, **dd)
        self.spatial = SpatialGate(kernel_size, **dd) if spatial else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.spatial(self.channel(x))
