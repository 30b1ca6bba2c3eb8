"""OverLoCK: An Overview-first-Look-Closely-next ConvNet with Context-Mixing Dynamic Kernels.

Lou & Yu, CVPR 2025 (arXiv:2502.20087). Official code and weights (Apache-2.0): https://github.com/LMMMEng/OverLoCK

Base-Net (stem and stages 0-2 of RepConv blocks), Overview-Net (stage 3, the global context) and Focus-Net (two stages
of DynamicConv blocks whose ContMix kernels come from the context stream). No compiled extensions; eval-mode outputs
equal the official code's. ``deploy=True`` / ``reparameterize()``, ``aux_head=True`` and ``dense_outputs`` build the
official variants. Details: docs/models.md.
"""
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import torch
import torch.nn as nn
import torch.nn.functional as F
import torch.utils.checkpoint
from timm.layers import ClassifierHead, DropPath, LayerNorm2d, SEModule, SelectAdaptivePool2d
from torch.jit import Final
from timm.models import generate_default_cfgs, register_model

from zoo.manifest import pretrained_cfgs
from zoo.layers.contmix import ContMix
from zoo.layers.conv_mlp import ChannelAffine, ConvGrnMlp, GlobalResponseNorm2d, ResDWConv
from zoo.layers.dilated_reparam import DilatedReparamBlock, merge_dilated_reparam_state
from zoo.models._helpers import BlockStage, ZooModel, build_zoo_model, imagenet_cfg, linear_head, stage_group_matcher
from zoo.models._helpers import CheckpointError, check_in_chans, key_filter, strip_prefix, unwrap_state_dict
from zoo.models.spec import FamilySpec, MapReader

__all__ = ['OverLoCK', 'checkpoint_filter_fn']

def _stem(in_chans: int, dim: int, device=None, dtype=None) -> nn.Sequential:
    dd = {'device': device, 'dtype': dtype}

    def conv(i, o, s):
        return nn.Conv2d(i, o, 3, stride=s, padding=1, bias=False, **dd)

    return nn.Sequential(
        conv(in_chans, dim // 2, 2), nn.BatchNorm2d(dim // 2, **dd), nn.GELU(),
        conv(dim // 2, dim // 2, 1), nn.BatchNorm2d(dim // 2, **dd), nn.GELU(),
        conv(dim // 2, dim, 2), nn.BatchNorm2d(dim, **dd), nn.GELU(),
        conv(dim, dim, 1), nn.BatchNorm2d(dim, **dd),
    )


def _downsample(in_dim: int, out_dim: int, device=None, dtype=None) -> nn.Sequential:
    dd = {'device': device, 'dtype': dtype}
    return nn.Sequential(nn.Conv2d(in_dim, out_dim, 3, stride=2, padding=1, bias=False, **dd),
                         nn.BatchNorm2d(out_dim, **dd))


class RepConvBlock(nn.Module):
    """Base-/Overview-Net block: x = x + DW3x3(x); x = LS(x) + DropPath(F(x)) with
    F = LN -> DilatedReparam(K) -> BN -> SE -> ConvGrnMlp."""

    def __init__(
            self,
            dim: int,
            kernel_size: int,
            mlp_ratio: float = 4.,
            ls_init_value: Optional[float] = None,
            drop_path: float = 0.,
            deploy: bool = False,
            device=None,
            dtype=None,
    ):
        dd = {'device': device, 'dtype': dtype}
        super().__init__()
        self.dwconv = ResDWConv(dim, **dd)
        self.norm = LayerNorm2d(dim, eps=1e-6, **dd)
        self.lk_conv = DilatedReparamBlock(dim, kernel_size, deploy=deploy, **dd)
        self.bn = nn.BatchNorm2d(dim, **dd)
        self.se = SEModule(dim, rd_channels=max(16, dim // 8), act_layer=nn.GELU, **dd)
        self.mlp = ConvGrnMlp(dim, int(dim * mlp_ratio), dim, **dd)
        self.ls = ChannelAffine(dim, ls_init_value, **dd) if ls_init_value is not None else nn.Identity()
        self.drop_path = DropPath(drop_path) if drop_path > 0. else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.dwconv(x)
        return self.ls(x) + self.drop_path(self.mlp(self.se(self.bn(self.lk_conv(self.norm(x))))))


class DynamicConvBlock(nn.Module):
    """Focus-Net block on features x (C) and context h (C_h): ContMix dynamic kernels from the context.

    h <- LS(h) + LS(prior) (except the very first block); z = x + DW3x3(x) for x = [x, h]; f = fusion(LN(z))
    (C channels); y = (ContMix(f | LN(z)) + LePE(f)) -> SE -> * gate(f) -> BN -> 1x1 (C + C_h);
    z = LS(z) + DropPath(y); z = z + DW3x3(z); z = LS(z) + DropPath(MLP(LN(z))). Returns the fused z.
    """
    mix_prior: Final[bool]

    def __init__(
            self,
            dim: int,
            ctx_dim: int,
            kernel_size: int,
            small_kernel_size: int = 5,
            num_heads: int = 4,
            mlp_ratio: float = 3.,
            ls_init_value: Optional[float] = 1.,
            drop_path: float = 0.,
            mix_prior: bool = True,
            deploy: bool = False,
            device=None,
            dtype=None,
    ):
        dd = {'device': device, 'dtype': dtype}
        super().__init__()
        out_dim = dim + ctx_dim
        self.mix_prior = mix_prior
        if mix_prior:
            self.ctx_scale = ChannelAffine(ctx_dim, 1., **dd)
            self.prior_scale = ChannelAffine(ctx_dim, 1., **dd)
        self.dwconv1 = ResDWConv(out_dim, **dd)
        self.norm1 = LayerNorm2d(out_dim, eps=1e-6, **dd)
        self.fusion = nn.Sequential(
            nn.Conv2d(out_dim, out_dim, 3, padding=1, groups=out_dim, **dd),
            nn.BatchNorm2d(out_dim, **dd),
            nn.GELU(),
            nn.Conv2d(out_dim, dim, 1, **dd),
            GlobalResponseNorm2d(dim, eps=1e-6, **dd),
        )
        # ContMix groups: the official ``num_heads`` doubled
        self.contmix = ContMix(dim, ctx_dim, kernel_size, small_kernel_size, num_groups=2 * num_heads, **dd)
        self.lepe = nn.Sequential(DilatedReparamBlock(dim, kernel_size, deploy=deploy, **dd), nn.BatchNorm2d(dim, **dd))
        self.se = SEModule(dim, rd_channels=max(16, dim // 8), act_layer=nn.GELU, **dd)
        self.gate = nn.Sequential(nn.Conv2d(dim, dim, 1, bias=False, **dd), nn.BatchNorm2d(dim, **dd), nn.SiLU())
        self.proj = nn.Sequential(nn.BatchNorm2d(dim, **dd), nn.Conv2d(dim, out_dim, 1, **dd))
        self.dwconv2 = ResDWConv(out_dim, **dd)
        self.norm2 = LayerNorm2d(out_dim, eps=1e-6, **dd)
        # hidden width from the feature channels only, as in the official code
        self.mlp = ConvGrnMlp(out_dim, int(dim * mlp_ratio), out_dim, **dd)
        self.ls1 = ChannelAffine(out_dim, ls_init_value, **dd) if ls_init_value is not None else nn.Identity()
        self.ls2 = ChannelAffine(out_dim, ls_init_value, **dd) if ls_init_value is not None else nn.Identity()
        self.drop_path = DropPath(drop_path) if drop_path > 0. else nn.Identity()

    def forward(self, x: torch.Tensor, ctx: torch.Tensor, prior: torch.Tensor) -> torch.Tensor:
        C = x.shape[1]
        if self.mix_prior:
            ctx = self.ctx_scale(ctx) + self.prior_scale(prior)
        z = self.dwconv1(torch.cat([x, ctx], dim=1))
        shortcut = z
        z = self.norm1(z)
        f = self.fusion(z)
        gate = self.gate(f)
        y = self.contmix(f, z[:, :C], z[:, C:]) + self.lepe(f)
        y = self.proj(self.se(y) * gate)
        z = self.ls1(shortcut) + self.drop_path(y)
        z = self.dwconv2(z)
        return self.ls2(z) + self.drop_path(self.mlp(self.norm2(z)))


class OverLoCKStage(BlockStage):
    """Base-/Overview-Net stage: optional stride-2 downsample + RepConv blocks."""

    def __init__(
            self,
            in_dim: int,
            dim: int,
            depth: int,
            kernel_size: int,
            downsample: bool,
            mlp_ratio: float,
            ls_init_value: Optional[float],
            drop_path: Sequence[float],
            deploy: bool,
            device=None,
            dtype=None,
    ):
        super().__init__()
        dd = {'device': device, 'dtype': dtype}
        self.downsample = _downsample(in_dim, dim, **dd) if downsample else nn.Identity()
        self.blocks = nn.Sequential(*[
            RepConvBlock(dim, kernel_size, mlp_ratio, ls_init_value, drop_path[i], deploy, **dd)
            for i in range(depth)])


class CtxDownsample(nn.Module):
    """Stride-2 conv + BN of the features and, separately, of the context stream."""

    def __init__(self, in_dim: int, dim: int, ctx_dim: int, device=None, dtype=None):
        super().__init__()
        dd = {'device': device, 'dtype': dtype}
        self.x_proj = _downsample(in_dim, dim, **dd)
        self.h_proj = _downsample(ctx_dim, ctx_dim, **dd)

    def forward(self, x: torch.Tensor, ctx: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        return self.x_proj(x), self.h_proj(ctx)


class FocusStage(nn.Module):
    """Focus-Net stage: (optional CtxDownsample) + DynamicConv blocks; returns the fused [x, ctx] map."""

    def __init__(
            self,
            in_dim: int,
            dim: int,
            ctx_dim: int,
            depth: int,
            kernel_size: int,
            small_kernel_size: int,
            num_heads: int,
            downsample: bool,
            mlp_ratio: float,
            ls_init_value: Optional[float],
            drop_path: Sequence[float],
            deploy: bool,
            device=None,
            dtype=None,
    ):
        super().__init__()
        dd = {'device': device, 'dtype': dtype}
        self.grad_checkpointing = False
        self.dim = dim
        self.in_dim = in_dim  # channels of the fused input map that are features (the rest is context)
        self.downsample = CtxDownsample(in_dim, dim, ctx_dim, **dd) if downsample else None
        self.blocks = nn.ModuleList([
            DynamicConvBlock(
                dim, ctx_dim, kernel_size, small_kernel_size, num_heads, mlp_ratio, ls_init_value, drop_path[i],
                # the first block of the first Focus stage starts from the prior itself
                mix_prior=downsample or i > 0, deploy=deploy, **dd)
            for i in range(depth)])

    def forward(self, x: torch.Tensor, ctx: torch.Tensor, prior: torch.Tensor) -> torch.Tensor:
        if self.downsample is not None:
            x, ctx = self.downsample(x, ctx)
        z = x
        for i, blk in enumerate(self.blocks):
            if i > 0:
                x, ctx = z[:, :self.dim], z[:, self.dim:]
            if self.grad_checkpointing and not torch.jit.is_scripting():
                z = torch.utils.checkpoint.checkpoint(blk, x, ctx, prior, use_reentrant=False)
            else:
                z = blk(x, ctx, prior)
        return z


class AuxHead(nn.Module):
    """Official auxiliary (deep supervision) classifier on the Overview-Net output: BN -> pool -> linear."""

    def __init__(self, dim: int, num_classes: int, pool_type: str = 'avg', device=None, dtype=None):
        super().__init__()
        dd = {'device': device, 'dtype': dtype}
        self.norm = nn.BatchNorm2d(dim, **dd)
        self.global_pool = SelectAdaptivePool2d(pool_type=pool_type or 'avg', flatten=True)
        self.fc = nn.Linear(dim, num_classes, **dd) if num_classes > 0 else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.global_pool(self.norm(x)))


class OverLoCK(ZooModel, nn.Module):
    """OverLoCK: Base-Net + Overview-Net + Focus-Net with ContMix (see the module docstring)."""

    def __init__(
            self,
            depths: Tuple[int, ...] = (2, 2, 3, 2),
            sub_depths: Tuple[int, int] = (6, 2),
            embed_dims: Tuple[int, ...] = (56, 112, 256, 336),
            kernel_sizes: Tuple[int, ...] = (17, 15, 13, 7),
            sub_num_heads: Tuple[int, int] = (4, 6),
            small_kernel_size: int = 5,
            mlp_ratio: float = 4.,
            sub_mlp_ratio: float = 3.,
            ls_init_value: Tuple[Optional[float], ...] = (None, None, 1., 1.),
            head_hidden_size: int = 1024,
            in_chans: int = 3,
            num_classes: int = 1000,
            global_pool: str = 'avg',
            drop_rate: float = 0.,
            drop_path_rate: float = 0.,
            deploy: bool = False,
            aux_head: bool = False,
            dense_outputs: Union[bool, str] = False,
            device=None,
            dtype=None,
    ):
        """
        Args:
            depths: RepConv blocks of Base-Net stages 0-2 and of the Overview-Net (stage 3).
            sub_depths: DynamicConv blocks of the Focus-Net at strides 16 and 32.
            embed_dims: channels C1..C4; the context stream has C4 // 4 channels.
            kernel_sizes: large kernels per stage (DilatedReparam; ContMix and LePE use those of stages 2, 3).
            sub_num_heads: official ``sub_num_heads``; ContMix uses twice as many groups.
            small_kernel_size: ContMix second (small) kernel.
            ls_init_value: LayerScale init per stage (None: no LayerScale).
            head_hidden_size: channels of the 1x1 conv before pooling.
            deploy: build the re-parameterised (inference) form of the DilatedReparam blocks.
            aux_head: add the official auxiliary classifier (for training with deep supervision).
            dense_outputs: add the dense-prediction output norms and context projection of the official
                detection backbone (True), or the four output norms only of its segmentation backbone ('norms').
        """
        super().__init__()
        dd = {'device': device, 'dtype': dtype}
        self.num_classes = num_classes
        self.in_chans = in_chans
        self.drop_rate = drop_rate
        self.global_pool = global_pool
        self.grad_checkpointing = False
        C1, C2, C3, C4 = embed_dims
        ctx_dim = C4 // 4
        self.embed_dims = tuple(embed_dims)
        self.ctx_dim = ctx_dim
        n_blocks = sum(depths) + sum(sub_depths)
        dpr = [drop_path_rate * i / max(n_blocks - 1, 1) for i in range(n_blocks)]  # no tensor: meta-safe
        dpr_stages, start = [], 0
        for d in tuple(depths) + tuple(sub_depths):
            dpr_stages.append(dpr[start:start + d])
            start += d

        # Base-Net (stages 0-2) and Overview-Net (stage 3)
        self.stem = _stem(in_chans, C1, **dd)
        self.stages = nn.ModuleList([
            OverLoCKStage(
                embed_dims[max(i - 1, 0)], embed_dims[i], depths[i], kernel_sizes[i], downsample=i > 0,
                mlp_ratio=mlp_ratio, ls_init_value=ls_init_value[i], drop_path=dpr_stages[i], deploy=deploy, **dd)
            for i in range(4)])
        # Focus-Net
        self.ctx_proj = nn.Conv2d(C4, ctx_dim, 1, **dd)
        self.focus_stages = nn.ModuleList([
            FocusStage(
                embed_dims[2 + i - 1], embed_dims[2 + i], ctx_dim, sub_depths[i], kernel_sizes[2 + i],
                small_kernel_size, sub_num_heads[i], downsample=i > 0, mlp_ratio=sub_mlp_ratio,
                ls_init_value=ls_init_value[2 + i], drop_path=dpr_stages[4 + i], deploy=deploy, **dd)
            for i in range(2)])
        fused_dim = C4 + ctx_dim
        self.feature_info = [
            dict(num_chs=C1, reduction=4, module='stages.0'),
            dict(num_chs=C2, reduction=8, module='stages.1'),
            dict(num_chs=C3 + ctx_dim, reduction=16, module='focus_stages.0'),
            dict(num_chs=fused_dim, reduction=32, module='focus_stages.1'),
        ]

        if dense_outputs not in (False, True, 'norms'):
            raise ValueError(f"dense_outputs must be False, True or 'norms', got {dense_outputs!r}")
        self.dense_norms = self.dense_ctx_norm = self.dense_ctx_proj = None
        if dense_outputs:
            self.dense_norms = nn.ModuleList([LayerNorm2d(f['num_chs'], eps=1e-6, **dd) for f in self.feature_info])
        if dense_outputs is True:
            self.dense_ctx_norm = LayerNorm2d(C4, eps=1e-6, **dd)
            self.dense_ctx_proj = nn.Sequential(nn.Conv2d(C4, fused_dim, 1, **dd), ChannelAffine(fused_dim, 1e-5, **dd))

        # classifier: 1x1 conv + BN + SiLU (part of forward_features), pooling, linear
        self.conv_head = nn.Conv2d(fused_dim, head_hidden_size, 1, bias=False, **dd)
        self.norm_head = nn.BatchNorm2d(head_hidden_size, **dd)
        self.act_head = nn.SiLU()
        self.num_features = self.head_hidden_size = head_hidden_size
        self.head = ClassifierHead(head_hidden_size, num_classes, pool_type=global_pool, drop_rate=drop_rate, **dd)
        self.aux_head = AuxHead(C4, num_classes, global_pool, **dd) if aux_head else None

        self.apply(self._init_weights)

    def _init_weights(self, m: nn.Module) -> None:
        # official init: truncated normal(0.02) for conv / linear weights, zero biases (norms keep 1 / 0)
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            nn.init.trunc_normal_(m.weight, std=.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)

    @torch.jit.ignore
    def no_weight_decay(self) -> set:
        return {n for n, _ in self.named_parameters() if n.endswith(('rpb_small', 'rpb_large'))}

    @torch.jit.ignore
    def group_matcher(self, coarse: bool = False) -> Dict[str, Any]:
        return stage_group_matcher(
            coarse, norm=None,
            focus_blocks=[(r'^ctx_proj', (0,)), (r'^focus_stages\.(\d+)', None)] if coarse else [
                (r'^ctx_proj', (0, 0)),
                (r'^focus_stages\.(\d+)\.downsample', (0,)),
                (r'^focus_stages\.(\d+)\.blocks\.(\d+)', None),
            ],
        )

    def reset_classifier(self, num_classes: int, global_pool: Optional[str] = None) -> None:
        super().reset_classifier(num_classes, global_pool)
        if global_pool is not None:
            self.global_pool = global_pool
        if self.aux_head is not None:
            self.aux_head.fc = linear_head(self, self.embed_dims[-1], num_classes)

    @torch.no_grad()
    def reparameterize(self) -> None:
        """Merge every DilatedReparamBlock into its deploy form (one biased depthwise conv), in place.

        Equivalent to the official ``OverLoCK.reparam()``; eval-mode outputs are unchanged (up to float rounding)
        and the state dict then has the layout of the official ``_reparam.pth`` files.
        """
        for m in self.modules():
            if isinstance(m, DilatedReparamBlock):
                m.reparameterize()

    def _focus(self, x: torch.Tensor, ctx: torch.Tensor, num_stages: int = 2) -> List[torch.Tensor]:
        """Focus-Net on the stride-16 features x and the Overview-Net context -> fused maps of the first
        ``num_stages`` Focus stages (s16[, s32])."""
        prior = self.ctx_proj(ctx)
        prior_up = F.interpolate(prior, size=x.shape[-2:], mode='bilinear', align_corners=False)
        outs: List[torch.Tensor] = []
        z = x
        for i, stage in enumerate(self.focus_stages):
            if i < num_stages:
                if i == 0:
                    z = stage(x, prior_up, prior_up)
                else:
                    z = stage(z[:, :stage.in_dim], z[:, stage.in_dim:], prior)
                outs.append(z)
        return outs

    def _dense_out(self, idx: int, feat: torch.Tensor, ctx: torch.Tensor) -> torch.Tensor:
        if self.dense_norms is None:
            return feat
        for i, dense_norm in enumerate(self.dense_norms):  # TorchScript indexes a ModuleList by literals only
            if i == idx:
                feat = dense_norm(feat)
        if idx == 3 and self.dense_ctx_proj is not None and self.dense_ctx_norm is not None:
            feat = feat + self.dense_ctx_proj(self.dense_ctx_norm(ctx))
        return feat

    def _forward_levels(
            self, x: torch.Tensor, take_indices: List[int], max_index: int, norm: bool, stop_early: bool,
            output_fmt: str, final: bool) -> Tuple[torch.Tensor, List[torch.Tensor]]:
        """Features at strides 4, 8, 16, 32 (indices 0-3; see ``feature_info``).

        Levels 2 and 3 are Focus-Net maps including the context stream. With ``dense_outputs=True`` the dense
        output modules are applied (``norm`` is not needed for that). The final features (not intermediates-only)
        are ``forward_features(x)``.
        """
        assert output_fmt == 'NCHW', 'forward_intermediates: only output_fmt=NCHW is supported'
        check_in_chans(x, self.in_chans)
        last = max_index if stop_early or not final else 3
        # levels left after prune_intermediate_layers
        last = min(last, (1 + len(self.focus_stages)) if len(self.focus_stages) > 0 else len(self.stages) - 1)
        intermediates = []
        x = self.stem(x)
        ctx = x
        for i, stage in enumerate(self.stages):  # (TorchScript indexes a ModuleList by literals only)
            if i <= min(last, 1):  # Base-Net, strides 4 and 8
                x = stage(x)
                out = self._dense_out(i, x, x)
                if i == 1:
                    x = out  # the official dense backbones carry the normed stride-8 map on
                if i in take_indices:
                    intermediates.append(out)
            elif i == 2 and last >= 2:
                x = stage(x)
            elif i == 3 and last >= 2:
                ctx = stage(x)  # Overview-Net
        if last >= 2:
            zs = self._focus(x, ctx, last - 1)
            for i, z in enumerate(zs, start=2):
                if i in take_indices:
                    intermediates.append(self._dense_out(i, z, ctx))
            x = zs[-1]
        if not final:
            return x, intermediates
        return self.act_head(self.norm_head(self.conv_head(x))), intermediates

    def _num_levels(self) -> int:
        return len(self.feature_info)

    def _prune_levels(self, max_index: int, prune_norm: bool, prune_head: bool) -> None:
        """Drop the modules not needed for the requested intermediates (conv_head too, unless the last level
        is kept and ``prune_norm`` is False)."""
        if max_index < 2:
            self.stages = self.stages[:max_index + 1]
            self.ctx_proj = nn.Identity()
            self.focus_stages = nn.ModuleList()
            if self.dense_ctx_norm is not None:
                self.dense_ctx_norm = self.dense_ctx_proj = None
        elif max_index < 3:
            self.focus_stages = self.focus_stages[:1]
            if self.dense_ctx_norm is not None:
                self.dense_ctx_norm = self.dense_ctx_proj = None
        if self.dense_norms is not None:
            self.dense_norms = self.dense_norms[:max_index + 1]
        if prune_norm or max_index < 3:
            self.conv_head = nn.Identity()
            self.norm_head = nn.Identity()
            self.act_head = nn.Identity()
        if prune_head:
            self.reset_classifier(0, '')
            self.aux_head = None

    def _forward_trunk(self, x: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """-> (last Focus-Net map, Overview-Net context); after ``prune_intermediate_layers`` the output of the
        last kept stage."""
        check_in_chans(x, self.in_chans)
        x = self.stem(x)
        ctx = x
        for i, stage in enumerate(self.stages):  # Base-Net stages 0-2, then the Overview-Net
            if i < 3:
                x = stage(x)
                if i == 1:
                    x = self._dense_out(1, x, x)
            else:
                ctx = stage(x)
        if len(self.focus_stages) > 0:
            x = self._focus(x, ctx, len(self.focus_stages))[-1]
        return x, ctx

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        x, _ = self._forward_trunk(x)
        return self.act_head(self.norm_head(self.conv_head(x)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))

    def forward_with_aux(self, x: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """(main logits, auxiliary logits) for deep-supervised training (needs ``aux_head=True``).

        The official recipe weights the auxiliary loss by 0.4.
        """
        if self.aux_head is None:
            raise RuntimeError('forward_with_aux needs a model created with aux_head=True')
        x, ctx = self._forward_trunk(x)
        x = self.act_head(self.norm_head(self.conv_head(x)))
        return self.forward_head(x), self.aux_head(ctx)


# official key prefixes inside one RepConvBlock / DynamicConvBlock -> zoo (first match wins)
_REPCONV_RENAMES = (
    ('proj.0.', 'norm.'), ('proj.1.', 'lk_conv.'), ('proj.2.', 'bn.'),
    ('proj.3.proj.1.', 'se.fc1.'), ('proj.3.proj.3.', 'se.fc2.'),
    ('proj.4.', 'mlp.fc1.'), ('proj.6.', 'mlp.dwconv.'), ('proj.7.', 'mlp.grn.'), ('proj.8.', 'mlp.fc2.'),
)
_DYCONV_RENAMES = (
    ('x_scale.', 'ctx_scale.'), ('h_scale.', 'prior_scale.'),
    ('weight_query.', 'contmix.query.'), ('weight_key.', 'contmix.key.'),
    ('weight_proj.', 'contmix.kernel_proj.'), ('dyconv_proj.', 'contmix.proj.'),
    ('rpb1', 'contmix.rpb_small'), ('rpb2', 'contmix.rpb_large'),
    ('se_layer.proj.1.', 'se.fc1.'), ('se_layer.proj.3.', 'se.fc2.'),
    ('mlp.0.', 'mlp.fc1.'), ('mlp.2.', 'mlp.dwconv.'), ('mlp.3.', 'mlp.grn.'), ('mlp.4.', 'mlp.fc2.'),
)
_TOP_RENAMES = (
    ('patch_embed1.', 'stem.'), ('patch_embed2.', 'stages.1.downsample.'),
    ('patch_embed3.', 'stages.2.downsample.'), ('patch_embed4.', 'stages.3.downsample.'),
    ('high_level_proj.', 'ctx_proj.'), ('patch_embedx.', 'focus_stages.1.downsample.'),
    ('head.0.', 'conv_head.'), ('head.1.', 'norm_head.'), ('head.4.', 'head.fc.'),
    ('aux_head.0.', 'aux_head.norm.'), ('aux_head.2.', 'aux_head.fc.'),
    ('extra_norm.4.', 'dense_ctx_norm.'), ('extra_norm.', 'dense_norms.'), ('h_proj.', 'dense_ctx_proj.'),
)


def _rename(rest: str, table) -> str:
    for old, new in table:
        if rest.startswith(old):
            return new + rest[len(old):]
    return rest


def _convert_official(sd: Dict[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
    out = {}
    for k, v in sd.items():
        head, _, rest = k.partition('.')
        if head.startswith('blocks') and head[6:].isdigit():
            idx, _, rest = rest.partition('.')
            k = f'stages.{int(head[6:]) - 1}.blocks.{idx}.' + _rename(rest, _REPCONV_RENAMES)
        elif head.startswith('sub_blocks') and head[10:].isdigit():
            idx, _, rest = rest.partition('.')
            k = f'focus_stages.{int(head[10:]) - 3}.blocks.{idx}.' + _rename(rest, _DYCONV_RENAMES)
        else:
            k = _rename(k, _TOP_RENAMES)
        if k.endswith(('.grn.gamma', '.grn.beta', 'fusion.4.gamma', 'fusion.4.beta')):
            # GRN: (1, C, 1, 1) gamma / beta -> GlobalResponseNorm2d (C,) weight / bias
            k = k[:-len('gamma')] + 'weight' if k.endswith('gamma') else k[:-len('beta')] + 'bias'
            v = v.reshape(-1)
        elif k in ('head.fc.weight', 'aux_head.fc.weight'):
            v = v.flatten(1)  # 1x1 conv -> linear
        out[k] = v
    return out


SPEC = FamilySpec(name='overlock', attention=(ContMix,), maps=MapReader('dynamic_kernels'),
    parity=dict(
        zoo_overlock_xt='yes: official code, natten op replaced (golden; fp64 1e-13, fp32 1e-5 rel), both forms',
        zoo_overlock_t='same code path as XT (official key layout, params/GMACs match)',
        zoo_overlock_s='same code path as XT (official key layout, params/GMACs match)',
        zoo_overlock_b='same code path as XT (official key layout, params/GMACs match)',
    ),
    pairs=(('zoo_overlock_xt', 'models/overlock.py:overlock_xt(use_ds=False)'),),
)


@key_filter('OverLoCK checkpoint')
def checkpoint_filter_fn(state_dict: Dict[str, Any], model: OverLoCK) -> Dict[str, torch.Tensor]:
    """Official OverLoCK checkpoint (bare or under ``state_dict``, optional ``module.`` prefix; training or
    re-parameterised form; classification or dense backbone keys) or a zoo-layout state dict -> ``model``."""
    sd = strip_prefix(unwrap_state_dict(state_dict), 'module.')
    if not any(k.startswith('stem.') for k in sd):
        sd = _convert_official(sd)
    model_sd = model.state_dict()

    ckpt_deploy = not any('.origin_bn.' in k for k in sd) and any(k.endswith('.lk_origin.bias') for k in sd)
    model_deploy = not any('.origin_bn.' in k for k in model_sd)
    if model_deploy and not ckpt_deploy:
        sd = merge_dilated_reparam_state(sd)
    elif ckpt_deploy and not model_deploy:
        raise CheckpointError(
            'the checkpoint is re-parameterised (deploy form: DilatedReparam branches merged into one biased '
            'conv); create the model with deploy=True (e.g. the .in1k_reparam tag) to load it')

    # optional modules: drop their tensors when the model has none, keep the model's own when new / resized
    for prefix in ('aux_head.', 'dense_'):
        if not any(k.startswith(prefix) for k in model_sd):
            sd = {k: v for k, v in sd.items() if not k.startswith(prefix)}
            continue
        for k, v in model_sd.items():
            if k.startswith(prefix) and (k not in sd or sd[k].shape != v.shape):
                sd[k] = v
    return sd


# each variant's hyper-parameters (official models/overlock.py)
model_args = dict(
    zoo_overlock_xt=dict(depths=(2, 2, 3, 2), sub_depths=(6, 2), embed_dims=(56, 112, 256, 336), sub_num_heads=(4, 6)),
    zoo_overlock_t=dict(depths=(4, 4, 6, 2), sub_depths=(12, 2), embed_dims=(64, 128, 256, 512), sub_num_heads=(4, 8)),
    zoo_overlock_s=dict(depths=(6, 6, 8, 3), sub_depths=(16, 3), embed_dims=(64, 128, 320, 512), sub_num_heads=(8, 16)),
    zoo_overlock_b=dict(depths=(8, 8, 10, 4), sub_depths=(20, 4), embed_dims=(80, 160, 384, 576), sub_num_heads=(6, 9)),
)


def _create_overlock(variant: str, pretrained: bool = False, **kwargs) -> OverLoCK:
    cfg = kwargs.get('pretrained_cfg')
    tag = cfg.get('tag') if isinstance(cfg, dict) else getattr(cfg, 'tag', cfg)
    if isinstance(tag, str) and tag.endswith('reparam'):
        # the official re-parameterised weights need the deploy form
        kwargs.setdefault('deploy', True)
    return build_zoo_model(OverLoCK, variant, pretrained, checkpoint_filter_fn, model_args[variant], kwargs)


def _cfg(**kwargs) -> Dict[str, Any]:
    return imagenet_cfg('stem.0', 'head.fc', 'arXiv:2502.20087', 'https://github.com/LMMMEng/OverLoCK',
                        **{'crop_pct': 0.95, **kwargs})


default_cfgs = generate_default_cfgs(pretrained_cfgs({
    'zoo_overlock_xt': _cfg(crop_pct=0.925),
    'zoo_overlock_t': _cfg(crop_pct=0.95),
    'zoo_overlock_s': _cfg(crop_pct=0.95),
    'zoo_overlock_b': _cfg(crop_pct=0.975),
}))


@register_model
def zoo_overlock_xt(pretrained: bool = False, **kwargs) -> OverLoCK:
    """OverLoCK-XT (paper: 16M params, 2.6G FLOPs, 82.7 top-1)."""
    return _create_overlock('zoo_overlock_xt', pretrained, **kwargs)


@register_model
def zoo_overlock_t(pretrained: bool = False, **kwargs) -> OverLoCK:
    """OverLoCK-T (paper: 33M params, 5.5G FLOPs, 84.2 top-1)."""
    return _create_overlock('zoo_overlock_t', pretrained, **kwargs)


@register_model
def zoo_overlock_s(pretrained: bool = False, **kwargs) -> OverLoCK:
    """OverLoCK-S (paper: 56M params, 9.7G FLOPs, 84.8 top-1)."""
    return _create_overlock('zoo_overlock_s', pretrained, **kwargs)


@register_model
def zoo_overlock_b(pretrained: bool = False, **kwargs) -> OverLoCK:
    """OverLoCK-B (paper: 95M params, 16.7G FLOPs, 85.1 top-1)."""
    return _create_overlock('zoo_overlock_b', pretrained, **kwargs)
