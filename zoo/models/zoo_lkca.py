"""ViT-LKCA: Vision Transformers whose attention is a Large Kernel Convolutional Attention (LKCA).

Li et al., "LKCA: Large Kernel Convolutional Attention", arXiv:2401.05738. Author's code (no weights, no licence file):
https://github.com/CatworldLee/LKCA-MiniViTsTrainer-Pytorch-CIFAR-TinyImageNet

Patches (img_size / 8) -> Linear -> absolute position embedding -> pre-norm blocks [LKCA, GELU MLP] -> token mean ->
LayerNorm -> Linear, as the author's code. Any input size (padding, resampled position embedding, kernel extended or
cropped), ``attn_view`` 'auto' / 'conv' / 'matrix', and a parameter-free simple pyramid for dense features.
Details: docs/models.md.
"""
import math
import re
from typing import Any, Dict, List, Optional, Tuple, Union

import torch
import torch.nn as nn
from timm.layers import DropPath, Mlp, PatchEmbed, resample_abs_pos_embed_nhwc, to_2tuple
from timm.models import checkpoint_seq, generate_default_cfgs, register_model

from zoo.manifest import pretrained_cfgs
from zoo.layers.lkca import LargeKernelConvAttention, lkca_fit_kernel
from zoo.layers.pyramid import SimpleFeaturePyramid, simple_pyramid_level, simple_pyramid_reductions
from zoo.models._helpers import ZooModel, build_zoo_model, imagenet_cfg, linear_head
from zoo.models._helpers import CheckpointError, check_input, key_filter, strip_prefix, unwrap_state_dict
from zoo.models.spec import FamilySpec, MapReader

__all__ = ['LkcaVit']

# the trainer's Tiny-ImageNet normalisation (utils/dataloader.py)
TINY_IMAGENET_MEAN = (0.4802, 0.4481, 0.3975)
TINY_IMAGENET_STD = (0.2770, 0.2691, 0.2821)

NUM_PYRAMID_LEVELS = 4  # stride p/2, p, 2p, 4p


class LkcaBlock(nn.Module):
    """Pre-norm transformer block with the LKCA token mixer; tokens stay on their grid (B, H, W, C)."""

    def __init__(
            self,
            dim: int,
            num_heads: int,
            head_dim: int,
            kernel_size: Tuple[int, int],
            mlp_ratio: float = 2.,
            proj_drop: float = 0.,
            drop_path: float = 0.,
            attn_view: str = 'auto',
            device=None,
            dtype=None,
    ):
        super().__init__()
        dd = {'device': device, 'dtype': dtype}
        self.norm1 = nn.LayerNorm(dim, **dd)
        self.attn = LargeKernelConvAttention(
            dim, num_heads=num_heads, head_dim=head_dim, kernel_size=kernel_size, proj_drop=proj_drop, view=attn_view,
            **dd)
        self.drop_path1 = DropPath(drop_path) if drop_path > 0. else nn.Identity()
        self.norm2 = nn.LayerNorm(dim, **dd)
        self.mlp = Mlp(dim, hidden_features=int(dim * mlp_ratio), act_layer=nn.GELU, drop=proj_drop, **dd)
        self.drop_path2 = DropPath(drop_path) if drop_path > 0. else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.drop_path1(self.attn(self.norm1(x)))
        x = x + self.drop_path2(self.mlp(self.norm2(x)))
        return x


class LkcaVit(ZooModel, nn.Module):
    """Isotropic ViT with LKCA token mixing (ViT-LKCA)."""

    def __init__(
            self,
            img_size: Union[int, Tuple[int, int]] = 64,
            patch_size: Optional[int] = None,
            in_chans: int = 3,
            num_classes: int = 200,
            global_pool: str = 'avg',
            embed_dim: int = 192,
            depth: int = 9,
            num_heads: int = 12,
            head_dim: Optional[int] = None,
            mlp_ratio: float = 2.,
            attn_view: str = 'auto',
            drop_rate: float = 0.,
            pos_drop_rate: float = 0.,
            proj_drop_rate: float = 0.,
            drop_path_rate: float = 0.,
            device=None,
            dtype=None,
    ):
        """
        Args:
            img_size: training resolution; fixes the token grid, the position embedding and the kernel size.
            patch_size: defaults to img_size // 8 (8 x 8 token grid).
            num_heads, head_dim: inner width of the value projection is num_heads * head_dim
                (head_dim defaults to embed_dim // num_heads as in the author's definitions).
            mlp_ratio: MLP hidden width ratio.
            attn_view: 'auto' | 'conv' | 'matrix' (identical results, see zoo.layers.lkca).
            drop_rate: classifier dropout. pos_drop_rate: dropout after the position embedding (author's
                ``emb_dropout``). proj_drop_rate: dropout in the MLP and after the LKCA projection (``dropout``).
            drop_path_rate: stochastic depth, the same rate in every block (author's ``stochastic_depth``).
        """
        super().__init__()
        dd = {'device': device, 'dtype': dtype}
        assert global_pool in ('', 'avg')
        img_size = to_2tuple(img_size)
        if patch_size is None:
            patch_size = max(1, img_size[0] // 8)
        head_dim = head_dim or embed_dim // num_heads
        self.num_classes = num_classes
        self.global_pool = global_pool
        self.in_chans = in_chans
        self.num_features = self.head_hidden_size = self.embed_dim = embed_dim
        self.patch_size = patch_size
        self.grad_checkpointing = False

        self.patch_embed = PatchEmbed(
            img_size=img_size, patch_size=patch_size, in_chans=in_chans, embed_dim=embed_dim,
            output_fmt='NHWC', strict_img_size=False, dynamic_img_pad=True, **dd)
        grid_h, grid_w = self.patch_embed.grid_size
        kernel_size = (2 * grid_h - 1, 2 * grid_w - 1)
        self.pos_embed = nn.Parameter(torch.randn(1, grid_h, grid_w, embed_dim, **dd))  # randn init as the author's
        self.pos_drop = nn.Dropout(pos_drop_rate)
        self.blocks = nn.Sequential(*[
            LkcaBlock(
                embed_dim, num_heads=num_heads, head_dim=head_dim, kernel_size=kernel_size, mlp_ratio=mlp_ratio,
                proj_drop=proj_drop_rate, drop_path=drop_path_rate, attn_view=attn_view, **dd)
            for _ in range(depth)])
        # head: mean over tokens -> LayerNorm -> Linear (the author's mlp_head)
        self.fc_norm = nn.LayerNorm(embed_dim, **dd)
        self.head_drop = nn.Dropout(drop_rate)
        self.head = nn.Identity() if num_classes <= 0 else nn.Linear(embed_dim, num_classes, **dd)

        # dense features: parameter-free pyramid of the final stride-p map; forward_features returns level
        # ``feature_level`` (1 = the map itself; moved to the deepest kept level by prune_intermediate_layers)
        self.pyramid = SimpleFeaturePyramid(NUM_PYRAMID_LEVELS)
        self.feature_level = 1
        self.feature_info = [
            dict(num_chs=embed_dim, reduction=r, module=f'pyramid.{i}')
            for i, r in enumerate(simple_pyramid_reductions(patch_size, NUM_PYRAMID_LEVELS))]

        self.apply(self._init_weights)

    @staticmethod
    def _init_weights(m: nn.Module) -> None:
        # the author's init: xavier-normal for Linear (the patch conv is initialised as its Linear form), LN 1/0
        if isinstance(m, nn.Linear):
            nn.init.xavier_normal_(m.weight)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Conv2d):
            fan_out, fan_in = m.weight.shape[0], m.weight[0].numel()
            nn.init.normal_(m.weight, std=math.sqrt(2.0 / (fan_in + fan_out)))
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.LayerNorm):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)

    @torch.jit.ignore
    def no_weight_decay(self):
        return {'pos_embed'}

    @torch.jit.ignore
    def group_matcher(self, coarse: bool = False) -> Dict[str, Any]:
        return dict(
            stem=r'^pos_embed|^patch_embed',
            blocks=[(r'^blocks\.(\d+)', None), (r'^fc_norm', (99999,))],
        )

    def reset_classifier(self, num_classes: int, global_pool: Optional[str] = None) -> None:
        self.num_classes = num_classes
        if global_pool is not None:
            assert global_pool in ('', 'avg')
            self.global_pool = global_pool
        self.head = linear_head(self, self.embed_dim, num_classes)

    def _pos_embed(self, x: torch.Tensor) -> torch.Tensor:
        # x: (B, H, W, C); resample the training-grid embedding to the current grid (no-op on the training grid)
        pos = resample_abs_pos_embed_nhwc(self.pos_embed, [x.shape[1], x.shape[2]])
        return self.pos_drop(x + pos)

    def _forward_levels(
            self, x: torch.Tensor, take_indices: List[int], max_index: int, norm: bool, stop_early: bool,
            output_fmt: str, final: bool) -> Tuple[torch.Tensor, List[torch.Tensor]]:
        """Final token map and pyramid levels (see docs/models.md); ``indices`` select pyramid levels,
        ``output_fmt`` may also be NHWC.

        All levels derive from the last block, so ``stop_early`` has nothing to skip; ``norm`` is accepted for
        API compatibility (the model's only final norm acts on the pooled vector, inside the head).
        """
        assert output_fmt in ('NCHW', 'NHWC'), 'Output format must be one of NCHW or NHWC.'
        x = self._forward_map(x)
        intermediates = self.pyramid(x, take_indices)
        if output_fmt == 'NHWC':
            intermediates = [y.permute(0, 2, 3, 1) for y in intermediates]
        return simple_pyramid_level(x, self.feature_level), intermediates

    def _num_levels(self) -> int:
        return NUM_PYRAMID_LEVELS

    def _prune_levels(self, max_index: int, prune_norm: bool, prune_head: bool) -> None:
        """Every pyramid level needs all blocks; only the classifier (and its pooled-vector norm) can go.

        With ``prune_head`` the model becomes a feature extractor and ``forward_features`` ends at the deepest
        kept pyramid level (as timm's pruned models end at their last tap).
        """
        if prune_head:
            self.fc_norm = nn.Identity().train(self.training)
            self.reset_classifier(0, '')
            self.feature_level = max_index

    def _forward_map(self, x: torch.Tensor) -> torch.Tensor:
        """The final token map, NCHW at stride p."""
        check_input(x, self.in_chans)
        x = self.patch_embed(x)  # (B, H, W, C), input zero-padded to a patch multiple
        x = self._pos_embed(x)
        if self.grad_checkpointing and not torch.jit.is_scripting():
            x = checkpoint_seq(self.blocks, x)
        else:
            x = self.blocks(x)
        return x.permute(0, 3, 1, 2)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return simple_pyramid_level(self._forward_map(x), self.feature_level)

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        if self.global_pool == 'avg':
            x = x.mean(dim=(2, 3))
            x = self.head_drop(self.fc_norm(x))
            return x if pre_logits else self.head(x)
        # unpooled: norm and classifier per position
        x = self.head_drop(self.fc_norm(x.permute(0, 2, 3, 1)))
        if not pre_logits:
            x = self.head(x)
        return x.permute(0, 3, 1, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))


_OFFICIAL_BLOCK_KEYS = {
    '0.norm': 'norm1',
    '0.fn.dynamicqk': 'attn.kernel',
    '0.fn.to_v': 'attn.v',
    '0.fn.to_out.0': 'attn.proj',
    '1.norm': 'norm2',
    '1.fn.net.0': 'mlp.fc1',
    '1.fn.net.3': 'mlp.fc2',
}


def _convert_official(state_dict: Dict[str, torch.Tensor], model: LkcaVit) -> Dict[str, torch.Tensor]:
    """Author's Large_ViT_cnn / Large_ViT_vit layout -> zoo layout."""
    ph, pw = model.patch_embed.patch_size
    out = {}
    for k, v in state_dict.items():
        if k == 'cls_token':
            continue  # created but never used by the author's forward
        if k == 'pos_embedding':  # (1, N, D), row-major square grid
            n = v.shape[1]
            g = int(round(math.sqrt(n)))
            if g * g != n:
                raise CheckpointError(f'pos_embedding has {n} tokens, not a square grid')
            out['pos_embed'] = v.reshape(1, g, g, v.shape[-1])
            continue
        if k == 'to_patch_embedding.1.weight':  # Linear over (p1 p2 c)-ordered patch pixels -> conv weight
            dim, patch_dim = v.shape
            if patch_dim % (ph * pw):
                raise CheckpointError(
                    f'to_patch_embedding.1.weight has {patch_dim} inputs, not a multiple of the model patch '
                    f'area {ph}x{pw}: the checkpoint was trained with another patch size')
            out['patch_embed.proj.weight'] = v.reshape(dim, ph, pw, patch_dim // (ph * pw)).permute(0, 3, 1, 2)
            continue
        if k == 'to_patch_embedding.1.bias':
            out['patch_embed.proj.bias'] = v
            continue
        m = re.match(
            r'^transformer\.layers\.(\d+)\.(\d\.(?:norm|fn\.dynamicqk|fn\.to_v|fn\.to_out\.0|fn\.net\.\d))(.*)$', k)
        if m and m.group(2) in _OFFICIAL_BLOCK_KEYS:
            out[f'blocks.{m.group(1)}.{_OFFICIAL_BLOCK_KEYS[m.group(2)]}{m.group(3)}'] = v
            continue
        m = re.match(r'^mlp_head\.([01])\.(.*)$', k)
        if m:
            out[('fc_norm.' if m.group(1) == '0' else 'head.') + m.group(2)] = v
            continue
        out[k] = v  # unknown: reported by check_state_dict
    return out


SPEC = FamilySpec(name='lkca', attention=(LargeKernelConvAttention,), maps=MapReader('shared_kernel'),
    cam='last_block_nhwc',
    parity=dict(
        {n: "same code path as golden-checked configs (author's definition)" for n in (
            'zoo_lkca_vit_1m', 'zoo_lkca_vit_4m', 'zoo_lkca_vit_8m')},
        **{n: "yes: logits = author's code, both views (golden)" for n in (
            'zoo_lkca_vit_05m', 'zoo_lkca_vit_2m', 'zoo_lkca_vit', 'zoo_lkca_vit_12m')},
    ),
    pairs=(('zoo_lkca_vit_05m', 'models/largevit_cnn.py:Large_ViT_cnn(img_size=64, patch_size=8, num_classes=200, '
                                'dim=100, depth=8, heads=4, dim_head=25, mlp_dim_ratio=2)'),),
)


@key_filter()
def checkpoint_filter_fn(state_dict: Dict[str, torch.Tensor], model: LkcaVit) -> Dict[str, torch.Tensor]:
    """Load the author's trainer checkpoints (``{'model_state_dict': ...}`` or bare) or zoo-layout state dicts.

    A checkpoint trained on another token grid (same patch size) is adapted like the forward pass adapts:
    position embedding resampled bicubically, kernel zero-padded / centre-cropped.
    """
    state_dict = unwrap_state_dict(
        state_dict, keys=('model_state_dict', 'state_dict_ema', 'model_ema', 'state_dict', 'model'))
    state_dict = strip_prefix(state_dict, 'module.')
    if 'patch_embed.proj.weight' not in state_dict:
        state_dict = _convert_official(state_dict, model)
    else:
        state_dict = dict(state_dict)

    pos = state_dict.get('pos_embed')
    grid = list(model.pos_embed.shape[1:3])
    if pos is not None and pos.dim() == 4 and list(pos.shape[1:3]) != grid:
        state_dict['pos_embed'] = resample_abs_pos_embed_nhwc(pos, grid)
    kh, kw = model.pos_embed.shape[1] * 2 - 1, model.pos_embed.shape[2] * 2 - 1
    for k, v in list(state_dict.items()):
        if k.endswith('attn.kernel') and v.dim() == 4 and tuple(v.shape[-2:]) != (kh, kw):
            state_dict[k] = lkca_fit_kernel(v, (kh + 1) // 2, (kw + 1) // 2)
    return state_dict


# each variant's hyper-parameters (the author's models/create_model.py)
model_args = dict(
    zoo_lkca_vit_05m=dict(embed_dim=100, depth=8, num_heads=4, mlp_ratio=2),
    zoo_lkca_vit_1m=dict(embed_dim=136, depth=9, num_heads=8, mlp_ratio=2),
    zoo_lkca_vit_2m=dict(embed_dim=192, depth=9, num_heads=12, mlp_ratio=2),
    zoo_lkca_vit_4m=dict(embed_dim=246, depth=11, num_heads=6, mlp_ratio=2),
    zoo_lkca_vit_8m=dict(embed_dim=306, depth=14, num_heads=6, mlp_ratio=2),
    zoo_lkca_vit_12m=dict(embed_dim=360, depth=12, num_heads=8, mlp_ratio=3),
    zoo_lkca_vit=dict(embed_dim=210, depth=10, num_heads=10, mlp_ratio=2),
)


def _create_lkca(variant: str, pretrained: bool = False, **kwargs) -> LkcaVit:
    return build_zoo_model(LkcaVit, variant, pretrained, checkpoint_filter_fn, model_args[variant], kwargs,
                           out_indices=range(NUM_PYRAMID_LEVELS))


# Tiny-ImageNet (64 px, 200 classes, 8x8 token grid) is the author's largest setting
default_cfgs = generate_default_cfgs(pretrained_cfgs(dict.fromkeys(
    ('zoo_lkca_vit_05m', 'zoo_lkca_vit_1m', 'zoo_lkca_vit_2m', 'zoo_lkca_vit_4m', 'zoo_lkca_vit_8m', 'zoo_lkca_vit_12m',
     'zoo_lkca_vit'),
    imagenet_cfg('patch_embed.proj', 'head', 'arXiv:2401.05738',
                 'https://github.com/CatworldLee/LKCA-MiniViTsTrainer-Pytorch-CIFAR-TinyImageNet',
                 num_classes=200, input_size=(3, 64, 64), pool_size=(8, 8), crop_pct=1.0, interpolation='bilinear',
                 mean=TINY_IMAGENET_MEAN, std=TINY_IMAGENET_STD))))


@register_model
def zoo_lkca_vit_05m(pretrained: bool = False, **kwargs) -> LkcaVit:
    """ViT-LKCA 0.5M (author's ``vit-05m-lkca``): 0.53M params at 64 px / 200 classes."""
    return _create_lkca('zoo_lkca_vit_05m', pretrained, **kwargs)


@register_model
def zoo_lkca_vit_1m(pretrained: bool = False, **kwargs) -> LkcaVit:
    """ViT-LKCA 1M (``vit-1m-lkca``)."""
    return _create_lkca('zoo_lkca_vit_1m', pretrained, **kwargs)


@register_model
def zoo_lkca_vit_2m(pretrained: bool = False, **kwargs) -> LkcaVit:
    """ViT-LKCA 2M (``vit-2m-lkca`` = ``largevit-cnn`` / ``largevit-vit``)."""
    return _create_lkca('zoo_lkca_vit_2m', pretrained, **kwargs)


@register_model
def zoo_lkca_vit_4m(pretrained: bool = False, **kwargs) -> LkcaVit:
    """ViT-LKCA 4M (``vit-4m-lkca``)."""
    return _create_lkca('zoo_lkca_vit_4m', pretrained, **kwargs)


@register_model
def zoo_lkca_vit_8m(pretrained: bool = False, **kwargs) -> LkcaVit:
    """ViT-LKCA 8M (``vit-8m-lkca``)."""
    return _create_lkca('zoo_lkca_vit_8m', pretrained, **kwargs)


@register_model
def zoo_lkca_vit_12m(pretrained: bool = False, **kwargs) -> LkcaVit:
    """ViT-LKCA 12M (``vit-12m-lkca``)."""
    return _create_lkca('zoo_lkca_vit_12m', pretrained, **kwargs)


@register_model
def zoo_lkca_vit(pretrained: bool = False, **kwargs) -> LkcaVit:
    """ViT-LKCA, the author's ``vit-lkca`` configuration (2.7M params)."""
    return _create_lkca('zoo_lkca_vit', pretrained, **kwargs)
