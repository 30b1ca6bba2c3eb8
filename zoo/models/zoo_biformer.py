"""BiFormer: Vision Transformer with Bi-Level Routing Attention.

Zhu et al., CVPR 2023 (arXiv:2303.08810). Official code and ImageNet-1k weights (MIT):
https://github.com/rayleizhu/BiFormer

Follows the released models (``models/biformer.py`` + ``ops/bra_legacy.py``): conv stem and downsampling, blocks of
depthwise-conv position encoding, bi-level routing attention in stages 1-3 and dense attention with LePE in stage 4,
BatchNorm + average pooling head. Any input size of at least 32 px (padded as the official ``auto_pad`` mode, or
masked with ``mask_padding=True``). Details: docs/models.md.
"""
from dataclasses import dataclass
from typing import Dict, Optional, Sequence, Tuple, Union

import torch
import torch.nn as nn
from timm.layers import ClassifierHead, DropPath, Mlp, calculate_drop_path_rates, to_ntuple, trunc_normal_
from timm.models import generate_default_cfgs, register_model

from zoo.manifest import pretrained_cfgs
from zoo.layers.bra import BiLevelRoutingAttention
from zoo.layers.lepe import AttentionLePE
from zoo.models._helpers import BlockStage, StagedModel, build_zoo_model, imagenet_cfg, stage_group_matcher
from zoo.models._helpers import check_input, key_filter, strip_prefix, unwrap_state_dict
from zoo.models.spec import FamilySpec, MapReader

__all__ = ['BiFormer']

class Stem(nn.Module):
    """Two stride-2 3x3 convs (stride 4 in total): conv-BN-GELU-conv-BN."""

    def __init__(self, in_chans: int, out_chs: int, device=None, dtype=None):
        super().__init__()
        dd = {'device': device, 'dtype': dtype}
        self.conv1 = nn.Conv2d(in_chans, out_chs // 2, 3, stride=2, padding=1, **dd)
        self.norm1 = nn.BatchNorm2d(out_chs // 2, **dd)
        self.act = nn.GELU()
        self.conv2 = nn.Conv2d(out_chs // 2, out_chs, 3, stride=2, padding=1, **dd)
        self.norm2 = nn.BatchNorm2d(out_chs, **dd)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm2(self.conv2(self.act(self.norm1(self.conv1(x)))))


class Downsample(nn.Module):
    """Stride-2 3x3 conv + BN between stages."""

    def __init__(self, in_chs: int, out_chs: int, device=None, dtype=None):
        super().__init__()
        dd = {'device': device, 'dtype': dtype}
        self.conv = nn.Conv2d(in_chs, out_chs, 3, stride=2, padding=1, **dd)
        self.norm = nn.BatchNorm2d(out_chs, **dd)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(self.conv(x))


@dataclass(frozen=True)
class BiFormerBlockCfg:
    """What every block of a BiFormer shares: the model arguments of the same names (see :class:`BiFormer`)."""
    mlp_ratio: float = 3.
    lepe_kernel: int = 5
    cpe_kernel: int = 3
    dense_heads: int = 8
    mask_padding: bool = False


class BiFormerBlock(nn.Module):
    """x + DWConv(x) (conditional position encoding), then pre-norm attention and MLP; NCHW in and out.
    ``topk`` None or <= 0 selects dense attention (``cfg.dense_heads`` heads) instead of BRA."""

    def __init__(
            self,
            dim: int,
            num_heads: int,
            n_win: int = 7,
            topk: Optional[int] = 4,
            drop_path: float = 0.,
            cfg: BiFormerBlockCfg = BiFormerBlockCfg(),
            device=None,
            dtype=None,
    ):
        super().__init__()
        dd = {'device': device, 'dtype': dtype}
        self.pos_embed = nn.Conv2d(dim, dim, cfg.cpe_kernel, padding=cfg.cpe_kernel // 2, groups=dim, **dd)
        self.norm1 = nn.LayerNorm(dim, eps=1e-6, **dd)
        if topk is not None and topk > 0:
            self.attn = BiLevelRoutingAttention(
                dim, num_heads=num_heads, n_win=n_win, topk=topk, lepe_kernel=cfg.lepe_kernel,
                mask_padding=cfg.mask_padding, **dd)
        else:
            # the released models pass no head count here: the dense stage always uses 8 heads
            self.attn = AttentionLePE(dim, num_heads=cfg.dense_heads, lepe_kernel=cfg.lepe_kernel, **dd)
        self.drop_path1 = DropPath(drop_path) if drop_path > 0. else nn.Identity()
        self.norm2 = nn.LayerNorm(dim, eps=1e-6, **dd)
        self.mlp = Mlp(dim, int(cfg.mlp_ratio * dim), act_layer=nn.GELU, **dd)
        self.drop_path2 = DropPath(drop_path) if drop_path > 0. else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.pos_embed(x)
        x = x.permute(0, 2, 3, 1)  # NHWC for attention and MLP
        x = x + self.drop_path1(self.attn(self.norm1(x)))
        x = x + self.drop_path2(self.mlp(self.norm2(x)))
        return x.permute(0, 3, 1, 2)


class BiFormerStage(BlockStage):
    def __init__(
            self,
            in_chs: int,
            dim: int,
            depth: int,
            downsample: bool,
            num_heads: int,
            n_win: int,
            topk: Optional[int],
            drop_path: Sequence[float],
            cfg: BiFormerBlockCfg,
            device=None,
            dtype=None,
    ):
        super().__init__()
        dd = {'device': device, 'dtype': dtype}
        self.downsample = Downsample(in_chs, dim, **dd) if downsample else nn.Identity()
        self.blocks = nn.Sequential(*[
            BiFormerBlock(dim, num_heads=num_heads, n_win=n_win, topk=topk, drop_path=drop_path[i], cfg=cfg, **dd)
            for i in range(depth)])


class BiFormer(StagedModel, nn.Module):
    """BiFormer backbone + classifier.

    Args:
        in_chans: Input channels.
        num_classes: Classifier classes (0: no classifier).
        global_pool: Head pooling type ('' keeps the map).
        depths: Blocks per stage.
        embed_dims: Channels per stage (also the qk width of BRA).
        head_dim: Channels per BRA head (heads = embed_dim // head_dim).
        n_win: Regions per side for BRA (int or one per stage); the dense-task configs use 8 or 16.
        topks: Routed regions per stage; ``None`` or a value <= 0 (official: -2) selects dense attention.
        mlp_ratio: MLP hidden width ratio.
        lepe_kernel: Depthwise LePE kernel of the attention.
        cpe_kernel: Depthwise conv position-encoding kernel before every block.
        dense_heads: Heads of the dense attention stages (8 in the released models).
        mask_padding: BRA keeps padded tokens out of routing and attention (deviation; default = official auto_pad).
        drop_rate: Dropout before the classifier.
        drop_path_rate: Stochastic depth rate (linear over all blocks).

    Feature levels are the stage outputs at strides 4/8/16/32 (``forward_intermediates(norm=True)`` applies the
    final BatchNorm to the last one).
    """

    def __init__(
            self,
            in_chans: int = 3,
            num_classes: int = 1000,
            global_pool: str = 'avg',
            depths: Tuple[int, ...] = (2, 2, 8, 2),
            embed_dims: Tuple[int, ...] = (64, 128, 256, 512),
            head_dim: int = 32,
            n_win: Union[int, Tuple[int, ...]] = 7,
            topks: Tuple[Optional[int], ...] = (1, 4, 16, -2),
            mlp_ratio: float = 3.,
            lepe_kernel: int = 5,
            cpe_kernel: int = 3,
            dense_heads: int = 8,
            mask_padding: bool = False,
            drop_rate: float = 0.,
            drop_path_rate: float = 0.,
            device=None,
            dtype=None,
    ):
        super().__init__()
        dd = {'device': device, 'dtype': dtype}
        num_stages = len(depths)
        n_wins = to_ntuple(num_stages)(n_win)
        block_cfg = BiFormerBlockCfg(mlp_ratio=mlp_ratio, lepe_kernel=lepe_kernel, cpe_kernel=cpe_kernel,
                                     dense_heads=dense_heads, mask_padding=mask_padding)
        self.num_classes = num_classes
        self.in_chans = in_chans
        self.drop_rate = drop_rate

        self.stem = Stem(in_chans, embed_dims[0], **dd)
        dpr = calculate_drop_path_rates(drop_path_rate, list(depths), stagewise=True)
        self.feature_info = []
        stages = []
        prev_chs = embed_dims[0]
        stride = 4
        for i in range(num_stages):
            if i > 0:
                stride *= 2
            stages.append(BiFormerStage(
                prev_chs, embed_dims[i], depth=depths[i], downsample=i > 0, num_heads=embed_dims[i] // head_dim,
                n_win=n_wins[i], topk=topks[i], drop_path=dpr[i], cfg=block_cfg, **dd))
            prev_chs = embed_dims[i]
            self.feature_info.append(dict(num_chs=prev_chs, reduction=stride, module=f'stages.{i}'))
        self.stages = nn.Sequential(*stages)
        self.min_input_size = stride  # a map smaller than the total stride cannot be served
        self.num_features = self.head_hidden_size = prev_chs

        self.norm = nn.BatchNorm2d(prev_chs, **dd)
        self.head = ClassifierHead(prev_chs, num_classes, pool_type=global_pool, drop_rate=drop_rate, **dd)
        self.apply(self._init_weights)

    @staticmethod
    def _init_weights(m: nn.Module) -> None:
        if isinstance(m, nn.Linear):
            trunc_normal_(m.weight, std=.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)

    @torch.jit.ignore
    def group_matcher(self, coarse: bool = False) -> Dict:
        return stage_group_matcher(coarse)

    def _check_input(self, x: torch.Tensor) -> None:
        # an FX leaf: traced graphs keep the check; a map smaller than the total stride cannot be served
        check_input(x, self.in_chans, self.min_input_size, 'BiFormer')

    def _prune_levels(self, max_index: int, prune_norm: bool, prune_head: bool) -> None:
        super()._prune_levels(max_index, prune_norm, prune_head)
        self.min_input_size = self.feature_info[max_index]['reduction']

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        self._check_input(x)
        x = self.stem(x)
        x = self.stages(x)
        x = self.norm(x)
        return x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))


def _official_key(k: str) -> str:
    """Official (models/biformer.py) parameter name -> zoo name."""
    parts = k.split('.')
    if parts[0] == 'downsample_layers':
        i, j, rest = parts[1], parts[2], '.'.join(parts[3:])
        if i == '0':
            return 'stem.' + {'0': 'conv1', '1': 'norm1', '3': 'conv2', '4': 'norm2'}.get(j, j) + '.' + rest
        return f'stages.{i}.downsample.' + {'0': 'conv', '1': 'norm'}.get(j, j) + '.' + rest
    if parts[0] == 'stages':
        rest = '.'.join(parts[3:])
        rest = rest.replace('attn.qkv.qkv.', 'attn.qkv.').replace('attn.wo.', 'attn.proj.')
        rest = rest.replace('mlp.0.', 'mlp.fc1.').replace('mlp.3.', 'mlp.fc2.')
        return f'stages.{parts[1]}.blocks.{parts[2]}.{rest}'
    if parts[0] == 'head':
        return 'head.fc.' + '.'.join(parts[1:])
    return k


SPEC = FamilySpec(name='biformer', attention=(BiLevelRoutingAttention,), maps=MapReader('routed_regions'),
    parity=dict(
        zoo_biformer_tiny='yes: logits = official code, 224 and padded 96x136 (golden)',
        zoo_biformer_small='yes: official code (golden; fp64 1e-7, fp32 2e-6 relative)',
        zoo_biformer_base='yes: official code (golden; fp64 1e-7, fp32 2e-6 relative)',
    ),
    pairs=(('zoo_biformer_tiny', 'models/biformer.py:biformer_tiny(auto_pad=True)'),),
)


@key_filter()
def checkpoint_filter_fn(state_dict: Dict[str, torch.Tensor], model: BiFormer) -> Dict[str, torch.Tensor]:
    """Official BiFormer checkpoint (``{'model': {...}}``, or bare) or zoo-layout state dict -> zoo layout."""
    sd = strip_prefix(unwrap_state_dict(state_dict), 'module.')
    if not any(k.startswith('stem.') for k in sd):
        sd = {_official_key(k): v for k, v in sd.items()}
    return sd


# each variant's hyper-parameters (official models/biformer.py)
model_args = dict(
    zoo_biformer_tiny=dict(
        depths=(2, 2, 8, 2), embed_dims=(64, 128, 256, 512), head_dim=32, n_win=7, topks=(1, 4, 16, -2)),
    zoo_biformer_small=dict(
        depths=(4, 4, 18, 4), embed_dims=(64, 128, 256, 512), head_dim=32, n_win=7, topks=(1, 4, 16, -2)),
    zoo_biformer_base=dict(
        depths=(4, 4, 18, 4), embed_dims=(96, 192, 384, 768), head_dim=32, n_win=7, topks=(1, 4, 16, -2)),
)


def _create_biformer(variant: str, pretrained: bool = False, **kwargs) -> BiFormer:
    return build_zoo_model(BiFormer, variant, pretrained, checkpoint_filter_fn, model_args[variant], kwargs)


default_cfgs = generate_default_cfgs(pretrained_cfgs(dict.fromkeys(
    ('zoo_biformer_tiny', 'zoo_biformer_small', 'zoo_biformer_base'),
    imagenet_cfg('stem.conv1', 'head.fc', 'arXiv:2303.08810', 'https://github.com/rayleizhu/BiFormer', license='mit',
                 min_input_size=(3, 32, 32)))))


@register_model
def zoo_biformer_tiny(pretrained: bool = False, **kwargs) -> BiFormer:
    """BiFormer-T: 13.1M params, 2.2 GFLOPs, 81.4% IN-1k top-1."""
    return _create_biformer('zoo_biformer_tiny', pretrained, **kwargs)


@register_model
def zoo_biformer_small(pretrained: bool = False, **kwargs) -> BiFormer:
    """BiFormer-S: 25.5M params, 4.5 GFLOPs, 83.8% IN-1k top-1."""
    return _create_biformer('zoo_biformer_small', pretrained, **kwargs)


@register_model
def zoo_biformer_base(pretrained: bool = False, **kwargs) -> BiFormer:
    """BiFormer-B: 56.8M params, 9.8 GFLOPs, 84.3% IN-1k top-1."""
    return _create_biformer('zoo_biformer_base', pretrained, **kwargs)
