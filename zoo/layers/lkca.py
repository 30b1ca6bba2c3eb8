"""Large Kernel Convolutional Attention (LKCA).

Li et al., arXiv:2401.05738.
Author's code: https://github.com/CatworldLee/LKCA-MiniViTsTrainer-Pytorch-CIFAR-TinyImageNet

One learnable (2n-1) x (2n-1) kernel, shared by channels and heads, cross-correlated with the values of an n x n token
grid (no softmax, no scale). Two exact views: ``conv`` (a depthwise convolution) and ``matrix`` (an N x N matrix
gathered from the kernel); ``auto`` picks the one with fewer multiply-adds. On other grids the kernel is zero-extended
or cropped. Measurements: docs/models.md.
"""
from typing import Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F
from timm.layers import register_notrace_function

__all__ = [
    'LargeKernelConvAttention', 'lkca_fit_kernel', 'lkca_attention_matrix', 'lkca_use_matrix', 'lkca_aggregate',
    'lkca_aggregate_conv', 'lkca_aggregate_matrix',
]

_VIEWS = ('auto', 'conv', 'matrix')


def lkca_fit_kernel(kernel: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Zero-pad or centre-crop a (kh, kw) kernel to (2*height - 1, 2*width - 1), the offsets of an H x W grid."""
    kh, kw = kernel.shape[-2], kernel.shape[-1]
    th, tw = 2 * height - 1, 2 * width - 1
    # F.pad with negative amounts crops; kernels are odd-sized so both sides change by the same amount
    ph, pw = (th - kh) // 2, (tw - kw) // 2
    if ph != 0 or pw != 0:
        kernel = F.pad(kernel, [pw, pw, ph, ph])
    return kernel


def lkca_attention_matrix(kernel: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """The N x N (N = H*W, row-major tokens) attention matrix equivalent to the LKCA kernel on an H x W grid.

    A[i*W + j, p*W + q] = K'[p - i + H - 1, q - j + W - 1] with K' the kernel fitted to (2H-1) x (2W-1).
    """
    k = lkca_fit_kernel(kernel.reshape(kernel.shape[-2], kernel.shape[-1]), height, width)
    rows = torch.arange(height, device=kernel.device)
    cols = torch.arange(width, device=kernel.device)
    idx_h = rows[None, :] - rows[:, None] + (height - 1)  # [i, p]
    idx_w = cols[None, :] - cols[:, None] + (width - 1)  # [j, q]
    a = k[idx_h[:, None, :, None], idx_w[None, :, None, :]]  # (i, j, p, q)
    return a.reshape(height * width, height * width)


def lkca_use_matrix(kernel: torch.Tensor, height: int, width: int, view: str = 'auto') -> bool:
    """Whether ``view`` on an H x W grid takes the matrix view ('auto': the one with fewer multiply-adds)."""
    if view == 'matrix':
        return True
    if view == 'conv':
        return False
    kh = min(kernel.shape[-2], 2 * height - 1)
    kw = min(kernel.shape[-1], 2 * width - 1)
    return height * width <= kh * kw


def lkca_aggregate_conv(v: torch.Tensor, kernel: torch.Tensor) -> torch.Tensor:
    """Convolution view. v: (B, H, W, C), kernel: (1, 1, kh, kw) -> (B, H, W, C)."""
    B, H, W, C = v.shape
    kh = min(kernel.shape[-2], 2 * H - 1)
    kw = min(kernel.shape[-1], 2 * W - 1)
    # crop offsets that cannot occur on this grid (pure saving, same result); larger grids zero-extend implicitly
    k = lkca_fit_kernel(kernel, (kh + 1) // 2, (kw + 1) // 2)
    weight = k.expand(C, 1, kh, kw)
    x = v.permute(0, 3, 1, 2)
    x = F.conv2d(x, weight, padding=(kh // 2, kw // 2), groups=C)
    return x.permute(0, 2, 3, 1)


def lkca_aggregate_matrix(v: torch.Tensor, kernel: torch.Tensor) -> torch.Tensor:
    """Attention-matrix view. v: (B, H, W, C), kernel: (1, 1, kh, kw) -> (B, H, W, C)."""
    B, H, W, C = v.shape
    attn = lkca_attention_matrix(kernel, H, W).to(v.dtype)  # (N, N)
    x = attn @ v.reshape(B, H * W, C)
    return x.reshape(B, H, W, C)


@register_notrace_function  # the view is chosen from the grid size: a leaf under FX, traced graphs keep 'auto'
def lkca_aggregate(v: torch.Tensor, kernel: torch.Tensor, view: str = 'auto') -> torch.Tensor:
    """LKCA aggregation of the value tokens v (B, H, W, C) with the shared kernel, in the view ``view`` picks."""
    if lkca_use_matrix(kernel, v.shape[1], v.shape[2], view):
        return lkca_aggregate_matrix(v, kernel)
    return lkca_aggregate_conv(v, kernel)


class LargeKernelConvAttention(nn.Module):
    """LKCA token mixer on an NHWC token grid: value projection, shared large-kernel aggregation, output projection.

    Args:
        dim: token channels.
        num_heads, head_dim: only set the inner width ``num_heads * head_dim`` (the kernel is shared by all heads).
        kernel_size: (kh, kw) of the shared kernel, (2n-1) for the n x n training grid.
        proj_drop: dropout after the output projection.
        view: 'auto' | 'conv' | 'matrix' (see the module docstring).
    """

    def __init__(
            self,
            dim: int,
            num_heads: int = 8,
            head_dim: int = 64,
            kernel_size: Tuple[int, int] = (15, 15),
            proj_drop: float = 0.,
            view: str = 'auto',
            device=None,
            dtype=None,
    ):
        super().__init__()
        dd = {'device': device, 'dtype': dtype}
        assert view in _VIEWS, f'view must be one of {_VIEWS}, got {view!r}'
        assert kernel_size[0] % 2 == 1 and kernel_size[1] % 2 == 1, 'kernel size must be odd'
        inner_dim = num_heads * head_dim
        self.inner_dim = inner_dim
        self.view = view
        self.v = nn.Linear(dim, inner_dim, bias=False, **dd)
        # one kernel shared by all channels; zero init as in the author's code (the block starts as identity + bias)
        self.kernel = nn.Parameter(torch.zeros(1, 1, kernel_size[0], kernel_size[1], **dd))
        self.proj = nn.Linear(inner_dim, dim, **dd)
        self.proj_drop = nn.Dropout(proj_drop)

    def aggregate_conv(self, v: torch.Tensor) -> torch.Tensor:
        """Convolution view. v: (B, H, W, C) -> (B, H, W, C)."""
        return lkca_aggregate_conv(v, self.kernel)

    def aggregate_matrix(self, v: torch.Tensor) -> torch.Tensor:
        """Attention-matrix view. v: (B, H, W, C) -> (B, H, W, C)."""
        return lkca_aggregate_matrix(v, self.kernel)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # x: (B, H, W, dim) tokens on their grid
        x = lkca_aggregate(self.v(x), self.kernel, self.view)
        x = self.proj(x)
        return self.proj_drop(x)
