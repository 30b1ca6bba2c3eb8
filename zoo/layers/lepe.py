"""Dense multi-head self-attention with LePE (locally-enhanced positional encoding), BiFormer's stage-4 attention.

Paper: `BiFormer: Vision Transformer with Bi-Level Routing Attention` - Zhu et al., CVPR 2023,
https://arxiv.org/abs/2303.08810. Official code: https://github.com/rayleizhu/BiFormer (``models/biformer.py``,
``AttentionLePE``, selected by ``topk=-2``).
"""
import torch
import torch.nn as nn
import torch.nn.functional as F

__all__ = ['AttentionLePE']


class AttentionLePE(nn.Module):
    """Dense multi-head attention with LePE, as the official stage-4 attention (``topk=-2``).

    LePE is a depthwise conv on the attention *input* (not on v), added before the output projection;
    qkv has no bias and the scale is ``head_dim ** -0.5``. NHWC in and out; fused scaled-dot-product attention.
    """

    def __init__(self, dim: int, num_heads: int = 8, lepe_kernel: int = 5, device=None, dtype=None):
        super().__init__()
        dd = {'device': device, 'dtype': dtype}
        if dim % num_heads:
            raise ValueError(f'dim ({dim}) must be divisible by num_heads ({num_heads})')
        self.num_heads = num_heads
        self.scale = (dim // num_heads) ** -0.5
        self.qkv = nn.Linear(dim, dim * 3, bias=False, **dd)
        self.lepe = nn.Conv2d(dim, dim, lepe_kernel, padding=lepe_kernel // 2, groups=dim, **dd)
        self.proj = nn.Linear(dim, dim, **dd)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        N, H, W, C = x.shape
        # (N, H*W, 3, heads, head_dim) -> (3, N, heads, H*W, head_dim)
        q, k, v = self.qkv(x).reshape(N, H * W, 3, self.num_heads, -1).permute(2, 0, 3, 1, 4).unbind(0)
        out = F.scaled_dot_product_attention(q, k, v, scale=self.scale)
        out = out.transpose(1, 2).reshape(N, H, W, C)
        out = out + self.lepe(x.permute(0, 3, 1, 2)).permute(0, 2, 3, 1)
        return self.proj(out)
