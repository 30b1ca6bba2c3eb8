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
import torch.nn.functional as F
from timm.layers import register_notrace_function

__all__ = ['zpool', 'global_max', 'global_mean', 'ZPool', 'AttentionGate']


def _grad_needed(x: torch.Tensor) -> bool:
    """Whether autograd will need the gradient of an op on ``x`` (then the pools take their index / sum forms)."""
    return x.requires_grad and torch.is_grad_enabled()


def _halving_amax(x: torch.Tensor, dim: int) -> torch.Tensor:
    """``x.amax(dim)`` by repeatedly taking the elementwise maximum of the axis's two (overlapping) halves: exact
    (the maximum is idempotent, so the shared middle element of an odd length does no harm) and as NaN-propagating
    as ``amax``, and vectorised on CPU, where PyTorch's single-axis max over a spatial axis is a strided
    reduction costing several elementwise passes (more in bf16). log2(length) steps, not a loop over elements."""
    n = x.shape[dim]
    while n > 1:
        k = (n + 1) // 2
        x = torch.maximum(x.narrow(dim, 0, k), x.narrow(dim, n - k, k))
        n = k
    return x.squeeze(dim)


@register_notrace_function  # one node under FX (the choice of path reads the input's device and grad mode)
def zpool(x: torch.Tensor, dim: int) -> torch.Tensor:
    """Max and mean of ``x`` over ``dim``, stacked as a new axis 1 (max first).

    (B, C, H, W) with dim=1 -> (B, 2, H, W); dim=2 -> (B, 2, C, W); dim=3 -> (B, 2, C, H).
    Same values on every path (on CPU). When a gradient is needed the max is ``max(dim)`` (its backward routes
    the gradient through the argmax indices, as both official codes do; ``amax``'s backward compares the whole
    input with the maximum and costs several times the forward). Otherwise eager CPU pools a spatial axis by
    :func:`_halving_amax`; scripted, traced or compiled graphs and other devices use ``amax``.
    """
    if _grad_needed(x):
        # the mean as sum / n, which is how CPU computes mean (same values), but whose backward is a broadcast view
        # where mean's materialises the whole divided gradient
        return torch.stack([x.max(dim=dim).values, x.sum(dim=dim) / x.shape[dim]], dim=1)
    if dim >= 2 and x.dim() == 4 and x.device.type == 'cpu' and not (
            torch.jit.is_scripting() or torch.jit.is_tracing() or torch.compiler.is_compiling()):
        x_max = _halving_amax(x, dim)
    else:
        x_max = x.amax(dim=dim)
    return torch.stack([x_max, x.mean(dim=dim)], dim=1)


@register_notrace_function  # one node under FX (the choice of path reads whether a gradient is needed)
def global_max(x: torch.Tensor) -> torch.Tensor:
    """(B, C, H, W) -> (B, C): the max over the spatial axes. Index-based (``adaptive_max_pool2d``, the official
    CBAM's ``max_pool2d`` over the whole map) when a gradient is needed, whose backward is a scatter; ``amax``
    otherwise, the faster forward. Same values."""
    if _grad_needed(x):
        return F.adaptive_max_pool2d(x, 1).flatten(1)
    return x.amax(dim=(2, 3))


@register_notrace_function  # one node under FX (the choice of path reads whether a gradient is needed)
def global_mean(x: torch.Tensor) -> torch.Tensor:
    """(B, C, H, W) -> (B, C): the mean over the spatial axes; as sum / (H * W) when a gradient is needed (the same
    values on CPU, and a backward that broadcasts instead of materialising the divided gradient)."""
    if _grad_needed(x):
        return x.sum(dim=(2, 3)) / (x.shape[2] * x.shape[3])
    return x.mean(dim=(2, 3))


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
        identity_init: the gate is 2 * sigmoid(...) with the BN scale at 0, so it starts at exactly 1 (the identity
            when inserted into a pretrained network; see ``zoo.add_attention``) and still ranges over (0, 2).
    """

    def __init__(self, kernel_size: int = 7, zero_init: bool = False, identity_init: bool = False, device=None,
                 dtype=None):
        super().__init__()
        dd = {'device': device, 'dtype': dtype}
        self.identity_init = identity_init
        self.conv = nn.Conv2d(2, 1, kernel_size, padding=(kernel_size - 1) // 2, bias=False, **dd)
        self.bn = nn.BatchNorm2d(1, eps=1e-5, momentum=0.01, **dd)
        if zero_init or identity_init:
            nn.init.zeros_(self.bn.weight)

    def gate(self, pooled: torch.Tensor) -> torch.Tensor:
        g = torch.sigmoid(self.bn(self.conv(pooled)))
        return g * 2.0 if self.identity_init else g

    def forward(self, pooled: torch.Tensor) -> torch.Tensor:
        return self.gate(pooled)
