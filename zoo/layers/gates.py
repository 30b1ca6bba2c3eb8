"""Z-pool and the pooled conv-BN-sigmoid gate shared by CBAM's spatial gate and triplet attention's branches.

Both papers build a gate the same way: Z-pool one axis of the input ([max, mean], max first as in both
official codes), convolve the 2-channel map with a kxk conv (2 -> 1, no bias), BatchNorm (eps 1e-5,
momentum 0.01 as the official ``BasicConv``), sigmoid.

* CBAM (Woo et al., ECCV 2018, arXiv:1807.06521): pools the channel axis; its BN starts at gamma = 0.
* Triplet attention (Misra et al., WACV 2021, arXiv:2010.03045): pools C, H or W (one gate each).

The gate modules keep the parameter names ``conv`` / ``bn`` of both official layouts (state dicts unchanged).
"""
import torch
import torch.nn as nn

__all__ = ['zpool', 'ZPool', 'AttentionGate']


def zpool(x: torch.Tensor, dim: int) -> torch.Tensor:
    """Max and mean of ``x`` over ``dim``, stacked as a new axis 1 (max first).

    (B, C, H, W) with dim=1 -> (B, 2, H, W); dim=2 -> (B, 2, C, W); dim=3 -> (B, 2, C, H).
    """
    return torch.stack([x.amax(dim=dim), x.mean(dim=dim)], dim=1)


class ZPool(nn.Module):
    """Module form of :func:`zpool` (pools ``dim``; the pooled [max, mean] pair becomes axis 1)."""

    def __init__(self, dim: int = 1):
        super().__init__()
        self.dim = dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return zpool(x, self.dim)


class AttentionGate(nn.Module):
    """sigmoid(BN(conv_kxk(pooled))) for a 2-channel Z-pooled map -> (B, 1, ...) gate; the caller applies it.

    Args:
        kernel_size: odd kernel size ("same" padding).
        zero_init: start the BN scale at 0 (gate = 0.5 everywhere), CBAM's official init.
    """

    def __init__(self, kernel_size: int = 7, zero_init: bool = False, device=None, dtype=None):
        super().__init__()
        dd = {'device': device, 'dtype': dtype}
        self.conv = nn.Conv2d(2, 1, kernel_size, padding=(kernel_size - 1) // 2, bias=False, **dd)
        self.bn = nn.BatchNorm2d(1, eps=1e-5, momentum=0.01, **dd)
        if zero_init:
            nn.init.zeros_(self.bn.weight)

    def gate(self, pooled: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.bn(self.conv(pooled)))

    def forward(self, pooled: torch.Tensor) -> torch.Tensor:
        return self.gate(pooled)
