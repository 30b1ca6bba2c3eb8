"""Dilated re-parameterisable large-kernel depthwise convolution (UniRepLKNet, arXiv:2311.15599; used by OverLoCK).

Training form: a depthwise KxK conv + BN and parallel dilated depthwise convs + BN that fit inside K. Deploy form: one
biased depthwise KxK conv; :meth:`DilatedReparamBlock.reparameterize` and :func:`merge_dilated_reparam_state` fold the
branches into it. In eval mode a training-form block runs the merged kernel. Parameter names follow UniRepLKNet /
OverLoCK. Details: docs/models.md.
"""
import re
from typing import Dict, List, Optional, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F
from timm.layers import register_notrace_module

__all__ = ['DilatedReparamBlock', 'dilated_branches', 'fuse_conv_bn_weights', 'dilated_to_dense_kernel',
           'merge_dilated_reparam_state']

# large kernel K -> (small kernel sizes, dilation rates) of the parallel branches (UniRepLKNet defaults)
_BRANCHES = {
    5: ((3, 3), (1, 2)),
    7: ((5, 3, 3, 3), (1, 1, 2, 3)),
    9: ((5, 7, 5, 3, 3), (1, 1, 2, 3, 4)),
    11: ((5, 7, 5, 3, 3, 3), (1, 1, 2, 3, 4, 5)),
    13: ((5, 7, 7, 3, 3, 3), (1, 1, 2, 3, 4, 5)),
    15: ((5, 7, 7, 3, 3, 3), (1, 1, 2, 3, 5, 7)),
    17: ((5, 7, 9, 3, 3, 3), (1, 1, 2, 4, 5, 7)),
    19: ((5, 7, 9, 9, 3, 3, 3), (1, 1, 1, 2, 4, 5, 7)),
}


def dilated_branches(kernel_size: int) -> List[Tuple[int, int]]:
    """(kernel size, dilation) of each parallel branch for a large kernel of ``kernel_size``."""
    if kernel_size not in _BRANCHES:
        raise ValueError(f'DilatedReparamBlock supports kernel sizes {sorted(_BRANCHES)}, got {kernel_size}')
    ks, rs = _BRANCHES[kernel_size]
    return list(zip(ks, rs))


def fuse_conv_bn_weights(
        weight: torch.Tensor,
        bias: Optional[torch.Tensor],
        bn_weight: torch.Tensor,
        bn_bias: torch.Tensor,
        running_mean: torch.Tensor,
        running_var: torch.Tensor,
        eps: float = 1e-5,
) -> Tuple[torch.Tensor, torch.Tensor]:
    """Conv followed by eval-mode BN -> one conv (weight, bias)."""
    scale = bn_weight / torch.sqrt(running_var + eps)
    conv_bias = bias if bias is not None else torch.zeros_like(running_mean)
    return weight * scale.reshape(-1, 1, 1, 1), bn_bias + (conv_bias - running_mean) * scale


def dilated_to_dense_kernel(weight: torch.Tensor, dilation: int) -> torch.Tensor:
    """A (C, 1, k, k) kernel with dilation r -> the equivalent dense (C, 1, r(k-1)+1, r(k-1)+1) kernel."""
    if dilation == 1:
        return weight
    c, g, kh, kw = weight.shape
    dense = weight.new_zeros(c, g, dilation * (kh - 1) + 1, dilation * (kw - 1) + 1)
    dense[:, :, ::dilation, ::dilation] = weight
    return dense


def _pad_to(kernel: torch.Tensor, size: int) -> torch.Tensor:
    p = (size - kernel.shape[-1]) // 2
    return F.pad(kernel, (p, p, p, p))


def _merge(origin: Tuple[torch.Tensor, torch.Tensor], branches: List[Tuple[torch.Tensor, torch.Tensor, int]]):
    """Sum BN-fused branches (weight, bias, dilation) into the BN-fused large kernel (weight, bias)."""
    weight, bias = origin
    size = weight.shape[-1]
    for w, b, r in branches:
        weight = weight + _pad_to(dilated_to_dense_kernel(w, r), size)
        bias = bias + b
    return weight, bias


@register_notrace_module  # one node under FX (no shape-dependent Python inside; keeps traced graphs small)
class DilatedReparamBlock(nn.Module):
    """Depthwise large-kernel conv with parallel dilated small-kernel branches (UniRepLKNet)."""

    def __init__(self, channels: int, kernel_size: int, deploy: bool = False, device=None, dtype=None):
        dd = {'device': device, 'dtype': dtype}
        super().__init__()
        self.kernel_size = kernel_size
        self.branches = dilated_branches(kernel_size)
        self.lk_origin = nn.Conv2d(
            channels, channels, kernel_size, padding=kernel_size // 2, groups=channels, bias=deploy, **dd)
        self.deploy = deploy
        if not deploy:
            self.origin_bn = nn.BatchNorm2d(channels, **dd)
            for k, r in self.branches:
                # padding r (k - 1) / 2 keeps the size; the dilated field is centred like the large kernel
                self.add_module(f'dil_conv_k{k}_{r}', nn.Conv2d(
                    channels, channels, k, padding=r * (k - 1) // 2, dilation=r, groups=channels, bias=False, **dd))
                self.add_module(f'dil_bn_k{k}_{r}', nn.BatchNorm2d(channels, **dd))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.deploy:
            return self.lk_origin(x)
        if not self.training and not torch.jit.is_scripting():
            # eval mode: every BN uses its running statistics, so the block is one biased KxK depthwise conv; merge
            # the kernel from the current parameters per call (what reparameterize() makes permanent). One large
            # conv instead of 1 + len(branches) convs, BNs and sums; a dilated conv is often far slower than
            # the dense conv of its whole receptive field (e.g. 9x9 dilation 2 vs 17x17 at 56 channels on CPU)
            weight, bias = self.merged_kernel()
            return F.conv2d(x, weight.to(x.dtype), bias.to(x.dtype), padding=self.kernel_size // 2,
                            groups=self.lk_origin.groups)
        out = self.lk_origin(x)
        y = x
        # children in registration order: lk_origin, origin_bn, then each branch's conv followed by its BN
        # (a loop over the modules, so that TorchScript unrolls it)
        for name, module in self.named_children():
            if name == 'origin_bn':
                out = module(out)
            elif name.startswith('dil_conv_'):
                y = module(x)
            elif name.startswith('dil_bn_'):
                out = out + module(y)
        return out

    @torch.jit.unused
    def merged_kernel(self) -> Tuple[torch.Tensor, torch.Tensor]:
        """The (weight, bias) of the one biased KxK depthwise conv that equals this block in eval mode (BNs folded,
        dilated kernels spread to dense ones and summed into the large kernel); differentiable in the parameters.
        Computed in at least float32 (float64 parameters stay float64)."""
        branches = [(*_fuse(getattr(self, f'dil_conv_k{k}_{r}'), getattr(self, f'dil_bn_k{k}_{r}')), r)
                    for k, r in self.branches]
        return _merge(_fuse(self.lk_origin, self.origin_bn), branches)

    @torch.no_grad()
    def reparameterize(self) -> None:
        """Merge the branches and BNs into a single biased KxK depthwise conv (exact in eval mode)."""
        if self.deploy:
            return
        weight, bias = self.merged_kernel()
        old = self.lk_origin
        merged = nn.Conv2d(old.in_channels, old.out_channels, self.kernel_size, padding=self.kernel_size // 2,
                           groups=old.groups, bias=True, device=weight.device, dtype=old.weight.dtype)
        merged.weight.copy_(weight)
        merged.bias.copy_(bias)
        self.lk_origin = merged
        del self.origin_bn
        for k, r in self.branches:
            delattr(self, f'dil_conv_k{k}_{r}')
            delattr(self, f'dil_bn_k{k}_{r}')
        self.deploy = True


def _fuse(conv: nn.Conv2d, bn: nn.BatchNorm2d) -> Tuple[torch.Tensor, torch.Tensor]:
    """A bias-free conv and its BN -> one conv's (weight, bias), in at least float32."""
    dt = torch.promote_types(conv.weight.dtype, torch.float32)
    bias = None if conv.bias is None else conv.bias.to(dt)
    return fuse_conv_bn_weights(conv.weight.to(dt), bias, bn.weight.to(dt), bn.bias.to(dt), bn.running_mean.to(dt),
                                bn.running_var.to(dt), bn.eps)


_BRANCH_KEY = re.compile(r'^(?P<prefix>.*\.|)dil_conv_k(?P<k>\d+)_(?P<r>\d+)\.weight$')


def merge_dilated_reparam_state(state_dict: Dict[str, torch.Tensor], eps: float = 1e-5) -> Dict[str, torch.Tensor]:
    """Training-form DilatedReparamBlock tensors in a state dict -> deploy form (``lk_origin.{weight,bias}``).

    Every block is found by its ``origin_bn`` keys; other entries pass through unchanged. ``eps`` is the
    BatchNorm eps (PyTorch default, as in the official code).
    """
    sd = dict(state_dict)
    prefixes = [k[:-len('origin_bn.running_var')] for k in sd if k.endswith('origin_bn.running_var')]
    for p in prefixes:
        def bn(name):
            return [sd.pop(f'{p}{name}.{t}') for t in ('weight', 'bias', 'running_mean', 'running_var')]

        origin = fuse_conv_bn_weights(sd[f'{p}lk_origin.weight'], sd.pop(f'{p}lk_origin.bias', None), *bn('origin_bn'),
                                      eps=eps)
        sd.pop(f'{p}origin_bn.num_batches_tracked', None)
        branches = []
        for key in [k for k in sd if k.startswith(p)]:
            m = _BRANCH_KEY.match(key)
            if m is None or m.group('prefix') != p:
                continue
            k, r = int(m.group('k')), int(m.group('r'))
            w = sd.pop(key)
            branches.append((*fuse_conv_bn_weights(w, None, *bn(f'dil_bn_k{k}_{r}'), eps=eps), r))
            sd.pop(f'{p}dil_bn_k{k}_{r}.num_batches_tracked', None)
        sd[f'{p}lk_origin.weight'], sd[f'{p}lk_origin.bias'] = _merge(origin, branches)
    return sd
