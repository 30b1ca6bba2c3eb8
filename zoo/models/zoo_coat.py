"""CoaT and CoaT-Lite: Co-Scale Conv-Attentional Image Transformers.

Xu, Xu, Chang, Tu, ICCV 2021 (arXiv:2104.06399).
Official code and weights (Apache-2.0): https://github.com/mlpc-ucsd/CoaT

An independent implementation of the official computation (``src/models/coat.py``): serial stages of factorised
conv-attention with a CPE and a CRPE shared per stage and, for CoaT, parallel blocks mixing scales 2-4. Unlike timm's
``coat.py``: any input size of at least 32 px, ``features_only`` / ``forward_intermediates`` at strides 4-32, and no
aliased duplicates in the state dict. ``forward_features`` returns the token sequences as timm's CoaT does.
Details: docs/models.md.
"""
import re
import warnings
from typing import Dict, List, Optional, Tuple, Union

import torch
import torch.nn as nn
import torch.nn.functional as F
from timm.layers import DropPath, Mlp, trunc_normal_
from timm.models import checkpoint, generate_default_cfgs, register_model

from zoo.manifest import pretrained_cfgs
from zoo.layers.coat_attn import ConvPosEnc, ConvRelPosEnc, FactorAttnConvRelPosEnc
from zoo.models._helpers import ZooModel, build_zoo_model, imagenet_cfg, linear_head
from zoo.models._helpers import check_input, key_filter, strip_prefix, unwrap_state_dict
from zoo.models.spec import FamilySpec, MapReader

__all__ = ['CoaT']

_BLOCK_EPS = 1e-6  # LayerNorm eps of the blocks and final norms; the patch-embedding norm keeps PyTorch's 1e-5

def _tokens_to_map(x: torch.Tensor, size: Tuple[int, int]) -> torch.Tensor:
    """(B, 1 + H * W, C) tokens -> (B, C, H, W) image map without the class token."""
    H, W = size
    return x[:, 1:].transpose(1, 2).reshape(x.shape[0], -1, H, W)


def _resize_tokens(x: torch.Tensor, size: Tuple[int, int], out_size: Tuple[int, int]) -> torch.Tensor:
    """Bilinear resize (align_corners=False) of the image tokens to another grid; the class token is carried over."""
    img = F.interpolate(_tokens_to_map(x, size), size=[out_size[0], out_size[1]], mode='bilinear',
                        align_corners=False)
    return torch.cat((x[:, :1], img.flatten(2).transpose(1, 2)), dim=1)


def _aliases(model: nn.Module) -> List[Tuple[str, str, nn.Module]]:
    """(alias, first name, module) of each module registered under several names: a stage's shared CRPE, first
    registered by the stage, then by the attention layers that use it."""
    first: Dict[int, str] = {}
    out: List[Tuple[str, str, nn.Module]] = []
    for name, m in model.named_modules(remove_duplicate=False):
        if id(m) in first:
            out.append((name, first[id(m)], m))
        else:
            first[id(m)] = name
    return out


def _drop_aliases(model: nn.Module, state_dict, prefix: str, local_metadata) -> None:
    """state_dict post-hook: every shared tensor once, under its first name."""
    metadata = getattr(state_dict, '_metadata', {})
    for alias, _, m in _aliases(model):
        metadata.pop(prefix + alias, None)
        for n, _ in m.named_parameters(recurse=False):
            del state_dict[f'{prefix}{alias}.{n}']


def _fill_aliases(model: nn.Module, state_dict, prefix: str, *args) -> None:
    """load_state_dict pre-hook: the aliases take the tensors of the first names."""
    for alias, name, m in _aliases(model):
        for n, _ in m.named_parameters(recurse=False):
            if f'{prefix}{name}.{n}' in state_dict:
                state_dict[f'{prefix}{alias}.{n}'] = state_dict[f'{prefix}{name}.{n}']


class PatchEmbed(nn.Module):
    """Non-overlapping patch embedding: Conv2d(kernel = stride = patch) -> tokens -> LayerNorm (eps 1e-5)."""

    def __init__(self, in_chs: int, dim: int, patch_size: int, device=None, dtype=None):
        dd = {'device': device, 'dtype': dtype}
        super().__init__()
        self.proj = nn.Conv2d(in_chs, dim, kernel_size=patch_size, stride=patch_size, **dd)
        self.norm = nn.LayerNorm(dim, **dd)

    def forward(self, x: torch.Tensor) -> Tuple[torch.Tensor, Tuple[int, int]]:
        x = self.proj(x)  # the grid is floor(H / patch) x floor(W / patch), as in the official model
        size = (x.shape[-2], x.shape[-1])
        return self.norm(x.flatten(2).transpose(1, 2)), size


class SerialBlock(nn.Module):
    """x + FactorAttn-CRPE(LN(x)) -> x + MLP(LN(x)); the attention uses the stage's shared CRPE.

    The stage applies its shared CPE to the input of every block (the official block's first step).
    """

    def __init__(
            self,
            dim: int,
            num_heads: int,
            mlp_ratio: float,
            crpe: ConvRelPosEnc,
            qkv_bias: bool = True,
            proj_drop: float = 0.,
            drop_path: float = 0.,
            device=None,
            dtype=None,
    ):
        dd = {'device': device, 'dtype': dtype}
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=_BLOCK_EPS, **dd)
        self.attn = FactorAttnConvRelPosEnc(
            dim, num_heads=num_heads, qkv_bias=qkv_bias, proj_drop=proj_drop, crpe=crpe, **dd)
        self.drop_path = DropPath(drop_path) if drop_path > 0. else nn.Identity()
        self.norm2 = nn.LayerNorm(dim, eps=_BLOCK_EPS, **dd)
        self.mlp = Mlp(dim, int(dim * mlp_ratio), act_layer=nn.GELU, drop=proj_drop, **dd)

    def forward(self, x: torch.Tensor, size: Tuple[int, int]) -> torch.Tensor:
        x = x + self.drop_path(self.attn(self.norm1(x), size))
        x = x + self.drop_path(self.mlp(self.norm2(x)))
        return x


class ParallelBlock(nn.Module):
    """Joint block over scales 2-4 with co-scale attention mixing and one MLP shared by the three scales.

    Each scale applies its own attention (with its stage's CRPE) to its own LayerNorm (the caller applies the
    stage's CPE first). Every attention output is then summed with the others resized to its grid (bilinear,
    align_corners=False, to the other scale's actual size; class-token rows are summed as they are) before the
    residual add.
    """

    def __init__(
            self,
            dim: int,
            num_heads: int,
            mlp_ratio: float,
            crpes: List[ConvRelPosEnc],
            qkv_bias: bool = True,
            proj_drop: float = 0.,
            drop_path: float = 0.,
            device=None,
            dtype=None,
    ):
        dd = {'device': device, 'dtype': dtype}
        super().__init__()
        num_scales = len(crpes)
        self.norm1 = nn.ModuleList([nn.LayerNorm(dim, eps=_BLOCK_EPS, **dd) for _ in range(num_scales)])
        self.attn = nn.ModuleList([
            FactorAttnConvRelPosEnc(dim, num_heads=num_heads, qkv_bias=qkv_bias, proj_drop=proj_drop, crpe=crpe, **dd)
            for crpe in crpes])
        self.drop_path = DropPath(drop_path) if drop_path > 0. else nn.Identity()
        self.norm2 = nn.ModuleList([nn.LayerNorm(dim, eps=_BLOCK_EPS, **dd) for _ in range(num_scales)])
        self.mlp = Mlp(dim, int(dim * mlp_ratio), act_layer=nn.GELU, drop=proj_drop, **dd)
        # for each scale, the other scales in the official summation order: nearest first, the coarser of two
        # equally near ones first
        self.mix_order: List[List[int]] = [
            sorted((j for j in range(num_scales) if j != i), key=lambda j, i=i: (abs(j - i), -j))
            for i in range(num_scales)]

    def forward(self, xs: List[torch.Tensor], sizes: List[Tuple[int, int]]) -> List[torch.Tensor]:
        att: List[torch.Tensor] = []
        for i, (norm, attn) in enumerate(zip(self.norm1, self.attn)):
            att.append(attn(norm(xs[i]), sizes[i]))
        out: List[torch.Tensor] = []
        for i, others in enumerate(self.mix_order):
            a = att[i]
            for j in others:
                a = a + _resize_tokens(att[j], sizes[j], sizes[i])
            out.append(xs[i] + self.drop_path(a))
        ys: List[torch.Tensor] = []
        for i, norm in enumerate(self.norm2):
            ys.append(out[i] + self.drop_path(self.mlp(norm(out[i]))))
        return ys


class CoaTStage(nn.Module):
    """Patch embedding, class token, the stage's shared CPE and CRPE, and its serial blocks."""

    def __init__(
            self,
            in_chs: int,
            dim: int,
            patch_size: int,
            depth: int,
            num_heads: int,
            mlp_ratio: float,
            crpe_window: Optional[Dict[int, int]] = None,
            qkv_bias: bool = True,
            proj_drop: float = 0.,
            drop_path: float = 0.,
            device=None,
            dtype=None,
    ):
        dd = {'device': device, 'dtype': dtype}
        super().__init__()
        self.patch_embed = PatchEmbed(in_chs, dim, patch_size, **dd)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim, **dd))
        self.cpe = ConvPosEnc(dim, kernel_size=3, **dd)
        self.crpe = ConvRelPosEnc(dim // num_heads, num_heads, crpe_window, **dd)
        self.blocks = nn.ModuleList([
            SerialBlock(
                dim, num_heads, mlp_ratio, self.crpe, qkv_bias=qkv_bias, proj_drop=proj_drop, drop_path=drop_path, **dd)
            for _ in range(depth)])
        self.grad_checkpointing = False

    def forward(self, x: torch.Tensor) -> Tuple[torch.Tensor, Tuple[int, int]]:
        x, size = self.patch_embed(x)
        x = torch.cat((self.cls_token.expand(x.shape[0], -1, -1), x), dim=1)
        for blk in self.blocks:
            x = self.cpe(x, size)
            if self.grad_checkpointing and not torch.jit.is_scripting():
                x = checkpoint(blk, x, size)
            else:
                x = blk(x, size)
        return x, size


class CoaT(ZooModel, nn.Module):
    """CoaT (with parallel blocks) and CoaT-Lite (serial only)."""

    def __init__(
            self,
            embed_dims: Tuple[int, ...] = (64, 128, 320, 512),
            serial_depths: Tuple[int, ...] = (3, 4, 6, 3),
            parallel_depth: int = 0,
            num_heads: int = 8,
            mlp_ratios: Tuple[float, ...] = (8, 8, 4, 4),
            patch_size: int = 4,
            crpe_window: Optional[Dict[int, int]] = None,
            in_chans: int = 3,
            num_classes: int = 1000,
            global_pool: str = 'token',
            qkv_bias: bool = True,
            drop_rate: float = 0.,
            proj_drop_rate: float = 0.,
            drop_path_rate: float = 0.,
            device=None,
            dtype=None,
    ):
        """
        Args:
            embed_dims, serial_depths, mlp_ratios: per stage (4 stages).
            parallel_depth: number of parallel blocks over scales 2-4 (CoaT: 6; CoaT-Lite: 0).
            num_heads: attention heads in every stage.
            patch_size: stride of the first patch embedding (later stages downsample by 2).
            crpe_window: CRPE kernel size -> number of heads (default {3: 2, 5: 3, 7: 3}).
            global_pool: 'token' (class tokens, official) or 'avg' (mean of image tokens, timm's extension).
            drop_rate: classifier dropout; proj_drop_rate: dropout after attention / MLP projections.
            drop_path_rate: stochastic depth rate, the same for every block (official behaviour).
            device, dtype: where and in which dtype the parameters are created (timm's factory arguments).
        """
        dd = {'device': device, 'dtype': dtype}
        super().__init__()
        assert global_pool in ('token', 'avg'), f'CoaT global_pool must be token or avg, got {global_pool!r}'
        num_stages = len(embed_dims)
        self.num_classes = num_classes
        self.global_pool = global_pool
        self.in_chans = in_chans
        self.embed_dims = tuple(embed_dims)
        self.num_features = self.head_hidden_size = embed_dims[-1]
        self.min_input_size = patch_size * 2 ** (num_stages - 1)  # every stage grid needs at least one token
        self.grad_checkpointing = False

        self.stages = nn.ModuleList()
        in_chs = in_chans
        for i in range(num_stages):
            self.stages.append(CoaTStage(
                in_chs, embed_dims[i], patch_size if i == 0 else 2, serial_depths[i], num_heads, mlp_ratios[i],
                crpe_window=crpe_window, qkv_bias=qkv_bias, proj_drop=proj_drop_rate, drop_path=drop_path_rate,
                **dd))
            in_chs = embed_dims[i]

        if parallel_depth > 0:
            if len(set(embed_dims[1:])) != 1 or len(set(mlp_ratios[1:])) != 1:
                raise ValueError('parallel blocks need equal embed_dims and mlp_ratios for scales 2-4, '
                                 f'got {embed_dims} and {mlp_ratios}')
            self.parallel_blocks = nn.ModuleList([
                ParallelBlock(embed_dims[1], num_heads, mlp_ratios[1], [s.crpe for s in self.stages[1:]],
                              qkv_bias=qkv_bias, proj_drop=proj_drop_rate, drop_path=drop_path_rate, **dd)
                for _ in range(parallel_depth)])
            head_scales = list(range(1, num_stages))
        else:
            self.parallel_blocks = None
            head_scales = [num_stages - 1]

        self.feature_info = [
            dict(num_chs=embed_dims[i], reduction=patch_size * 2 ** i,
                 module='parallel_blocks' if i > 0 and parallel_depth > 0 else f'stages.{i}')
            for i in range(num_stages)]

        # head: final norms of the scales it reads; CoaT mixes their class tokens (or means) with a Conv1d
        self.norms = nn.ModuleList([nn.LayerNorm(embed_dims[i], eps=_BLOCK_EPS, **dd) for i in head_scales])
        self.aggregate = nn.Conv1d(len(head_scales), 1, kernel_size=1, **dd) if len(head_scales) > 1 else None
        self.head_drop = nn.Dropout(drop_rate)
        self.head = nn.Linear(self.num_features, num_classes, **dd) if num_classes > 0 else nn.Identity()

        self.register_state_dict_post_hook(_drop_aliases)
        self.register_load_state_dict_pre_hook(_fill_aliases)
        self._init_weights()

    def _init_weights(self):
        for stage in self.stages:
            trunc_normal_(stage.cls_token, std=.02)
        for m in self.modules():
            if isinstance(m, nn.Linear):
                trunc_normal_(m.weight, std=.02)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.LayerNorm):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    @torch.jit.ignore
    def no_weight_decay(self):
        return {f'stages.{i}.cls_token' for i in range(len(self.stages))}

    @torch.jit.ignore
    def group_matcher(self, coarse: bool = False):
        return dict(
            stem=r'^stages\.0\.(?:patch_embed|cls_token)',
            blocks=r'^stages\.(\d+)' if coarse else [
                (r'^stages\.(\d+)\.(?:patch_embed|cls_token|cpe|crpe)', (-1,)),  # before the stage's blocks
                (r'^stages\.(\d+)\.blocks\.(\d+)', None),
            ],
            parallel=r'^parallel_blocks' if coarse else r'^parallel_blocks\.(\d+)',
        )

    def reset_classifier(self, num_classes: int, global_pool: Optional[str] = None):
        self.num_classes = num_classes
        if global_pool is not None:
            assert global_pool in ('token', 'avg'), f'CoaT global_pool must be token or avg, got {global_pool!r}'
            self.global_pool = global_pool
        self.head = linear_head(self, self.num_features, num_classes)

    def _forward_stages(
            self, x: torch.Tensor, num_stages: int) -> Tuple[List[torch.Tensor], List[Tuple[int, int]]]:
        """Serial stages 1..num_stages, then the parallel blocks if all stages ran. Returns tokens and grid sizes."""
        xs: List[torch.Tensor] = []
        sizes: List[Tuple[int, int]] = []
        for i, stage in enumerate(self.stages):
            if i < num_stages:
                if i > 0:
                    x = _tokens_to_map(xs[-1], sizes[-1])
                t, size = stage(x)
                xs.append(t)
                sizes.append(size)
        if self.parallel_blocks is not None and len(xs) == len(self.stages):
            ys, ysizes = xs[1:], sizes[1:]
            for blk in self.parallel_blocks:
                cpe_ys: List[torch.Tensor] = []
                for s, cpe_stage in enumerate(self.stages):  # each scale's shared CPE first, as officially
                    if s > 0:
                        cpe_ys.append(cpe_stage.cpe(ys[s - 1], ysizes[s - 1]))
                if self.grad_checkpointing and not torch.jit.is_scripting():
                    ys = checkpoint(blk, cpe_ys, ysizes)
                else:
                    ys = blk(cpe_ys, ysizes)
            xs = xs[:1] + ys
        return xs, sizes

    def _final_tokens(self, xs: List[torch.Tensor], use_norms: bool = True) -> Union[torch.Tensor, List[torch.Tensor]]:
        """The token sequences the head reads, after their final norms: one tensor (B, 1 + N, C) for a single
        scale (CoaT-Lite), a list of them for scales 2-4 (CoaT).

        ``use_norms=False`` (stages stopped early): the last computed scale alone, without norm.
        """
        if not use_norms:
            return xs[-1]
        out: List[torch.Tensor] = []
        first = len(xs) - len(self.norms)
        for i, norm in enumerate(self.norms):
            out.append(norm(xs[first + i]))
        if len(out) == 1:
            return out[0]
        return out

    @torch.jit.ignore
    def _forward_levels(
            self, x: torch.Tensor, take_indices: List[int], max_index: int, norm: bool, stop_early: bool,
            output_fmt: str, final: bool) -> Tuple[Union[torch.Tensor, List[torch.Tensor]], List[torch.Tensor]]:
        """Stage maps without class tokens (NCHW, strides 4/8/16/32).

        For CoaT, stages 2-4 (indices 1-3) are taken after the parallel blocks, so ``stop_early`` only saves work
        for index 0. ``norm`` applies the final norm of the matching scale (CoaT-Lite: index 3 only; CoaT: indices
        1-3). The final features are ``forward_features``' output; when stopped early, the token sequence of the
        last computed stage, without norm.
        """
        assert output_fmt == 'NCHW', 'forward_intermediates: only output_fmt=NCHW is supported'
        check_input(x, self.in_chans, self.min_input_size, 'CoaT')
        num_stages = len(self.stages)
        run = num_stages
        if stop_early and (self.parallel_blocks is None or max_index == 0):
            run = max_index + 1
        xs, sizes = self._forward_stages(x, run)

        first_head_scale = num_stages - len(self.norms)
        intermediates = []
        for i in take_indices:
            t = xs[i]
            if norm and i >= first_head_scale:
                t = self.norms[i - first_head_scale](t)
            intermediates.append(_tokens_to_map(t, sizes[i]).contiguous())
        if not final:
            return xs[-1], intermediates
        return self._final_tokens(xs, use_norms=run == num_stages), intermediates

    @torch.jit.ignore
    def _prune_levels(self, max_index: int, prune_norm: bool, prune_head: bool) -> None:
        """Drop what the requested intermediates do not need.

        CoaT's parallel blocks need every stage, so only a request for stage 1 alone removes later stages there.
        When stages are removed the final features become the last kept stage (no norm, no head).
        """
        if max_index + 1 < len(self.stages) and (self.parallel_blocks is None or max_index == 0):
            self.stages = self.stages[:max_index + 1]
            self.parallel_blocks = None
            self.num_features = self.head_hidden_size = self.embed_dims[max_index]
            self.norms = nn.ModuleList([nn.Identity()]).train(self.training)
            self.aggregate = None
            prune_head = True
        elif prune_norm:
            self.norms = nn.ModuleList([nn.Identity() for _ in self.norms]).train(self.training)
        if prune_head:
            self.aggregate = None  # part of the classifier; forward_head then reads the last scale only
            self.reset_classifier(0)

    def forward_features(self, x: torch.Tensor) -> Union[torch.Tensor, List[torch.Tensor]]:
        """Normed token sequences with class token: (B, 1 + N, C) for CoaT-Lite, a list of scales 2-4 for CoaT."""
        check_input(x, self.in_chans, self.min_input_size, 'CoaT')
        xs, _ = self._forward_stages(x, len(self.stages))
        return self._final_tokens(xs)

    def forward_head(self, x: Union[torch.Tensor, List[torch.Tensor]], pre_logits: bool = False) -> torch.Tensor:
        if isinstance(x, (list, tuple)):  # not isinstance(x, Tensor): FX proxies are not tensors
            xs = x
        else:
            xs = [x]
        pooled: List[torch.Tensor] = []
        for t in xs:
            pooled.append(t[:, 0] if self.global_pool == 'token' else t[:, 1:].mean(dim=1))
        x = torch.stack(pooled, dim=1)  # (B, S, C)
        if self.aggregate is not None:
            x = self.aggregate(x).squeeze(1)
        else:
            x = x[:, -1]  # head pruned (aggregate removed): the last scale
        x = self.head_drop(x)
        return x if pre_logits else self.head(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))


# official / timm layout -> zoo layout. Each rule gives the zoo key and a rank: shared modules appear under
# several keys, and the official model (loading with load_state_dict) ends up with the alias loaded last in its
# module order, i.e. the highest rank.
_RULES = [
    (r'patch_embed(\d)\.(proj|norm)\.(\w+)', lambda m: (f'stages.{int(m[1]) - 1}.patch_embed.{m[2]}.{m[3]}', 0)),
    (r'cls_token(\d)', lambda m: (f'stages.{int(m[1]) - 1}.cls_token', 0)),
    (r'cpe(\d)\.proj\.(\w+)', lambda m: (f'stages.{int(m[1]) - 1}.cpe.proj.{m[2]}', 0)),
    (r'serial_blocks(\d)\.(\d+)\.cpe\.proj\.(\w+)',
     lambda m: (f'stages.{int(m[1]) - 1}.cpe.proj.{m[3]}', 1 + int(m[2]))),
    (r'crpe(\d)\.conv_list\.(\d+)\.(\w+)', lambda m: (f'stages.{int(m[1]) - 1}.crpe.convs.{m[2]}.{m[3]}', 0)),
    (r'serial_blocks(\d)\.(\d+)\.factoratt_crpe\.crpe\.conv_list\.(\d+)\.(\w+)',
     lambda m: (f'stages.{int(m[1]) - 1}.crpe.convs.{m[3]}.{m[4]}', 1 + int(m[2]))),
    (r'parallel_blocks\.(\d+)\.factoratt_crpe(\d)\.crpe\.conv_list\.(\d+)\.(\w+)',
     lambda m: (f'stages.{int(m[2]) - 1}.crpe.convs.{m[3]}.{m[4]}', 100000 + int(m[1]))),
    (r'serial_blocks(\d)\.(\d+)\.factoratt_crpe\.(qkv|proj)\.(\w+)',
     lambda m: (f'stages.{int(m[1]) - 1}.blocks.{m[2]}.attn.{m[3]}.{m[4]}', 0)),
    (r'serial_blocks(\d)\.(\d+)\.(norm1|norm2|mlp\.fc1|mlp\.fc2)\.(\w+)',
     lambda m: (f'stages.{int(m[1]) - 1}.blocks.{m[2]}.{m[3]}.{m[4]}', 0)),
    (r'parallel_blocks\.(\d+)\.norm([12])(\d)\.(\w+)',
     lambda m: (f'parallel_blocks.{m[1]}.norm{m[2]}.{int(m[3]) - 2}.{m[4]}', 0)),
    (r'parallel_blocks\.(\d+)\.factoratt_crpe(\d)\.(qkv|proj)\.(\w+)',
     lambda m: (f'parallel_blocks.{m[1]}.attn.{int(m[2]) - 2}.{m[3]}.{m[4]}', 0)),
    (r'parallel_blocks\.(\d+)\.mlp(\d)\.(fc1|fc2)\.(\w+)',
     lambda m: (f'parallel_blocks.{m[1]}.mlp.{m[3]}.{m[4]}', int(m[2]))),
]
_RULES = [(re.compile(p + '$'), fn) for p, fn in _RULES]


def _convert_official(state_dict: Dict[str, torch.Tensor], model: CoaT) -> Dict[str, torch.Tensor]:
    first_head_scale = len(model.stages) - len(model.norms)
    chosen: Dict[str, Tuple[int, str]] = {}
    aliases: Dict[str, List[str]] = {}
    out: Dict[str, torch.Tensor] = {}
    for k, v in state_dict.items():
        m = re.match(r'norm(\d)\.(\w+)$', k)
        if m:
            # official norm1 is never used, nor are CoaT-Lite's norm2/norm3; norm<s> of a head scale is kept
            s = int(m[1]) - 1
            if s >= first_head_scale:
                out[f'norms.{s - first_head_scale}.{m[2]}'] = v
            continue
        for pattern, fn in _RULES:
            m = pattern.match(k)
            if m:
                target, rank = fn(m)
                aliases.setdefault(target, []).append(k)
                if target not in chosen or rank > chosen[target][0]:
                    chosen[target] = (rank, k)
                break
        else:
            out[k] = v  # aggregate.*, head.*, or unknown keys that check_state_dict reports
    differing = []
    for target, (_, src) in chosen.items():
        out[target] = state_dict[src]
        if any(not torch.equal(state_dict[a], state_dict[src]) for a in aliases[target] if a != src):
            differing.append(target)
    if differing:
        warnings.warn(
            f'CoaT checkpoint: aliases of {len(differing)} shared tensors differ (e.g. {sorted(differing)[:3]}); '
            'using the alias the official model loads last, as its load_state_dict does')
    return out


SPEC = FamilySpec(name='coat', attention=(FactorAttnConvRelPosEnc, ConvPosEnc, ConvRelPosEnc),
    maps=MapReader('factorized_attention', grid_arg=True),
    cam='last_attention_norm',
    counterparts=('coat_lite_tiny', 'coat_lite_mini', 'coat_lite_small'),
    parity=dict(
        {n: 'official-code path; = timm coat weights (exact)' for n in (
            'zoo_coat_lite_mini', 'zoo_coat_lite_small', 'zoo_coat_lite_medium', 'zoo_coat_mini', 'zoo_coat_small')},
        zoo_coat_lite_tiny='yes: logits = official code, 224 and 72x108 (golden)',
        zoo_coat_tiny='yes: logits = official code, 224 and 72x108 (golden)',
    ),
    pairs=(('zoo_coat_lite_tiny', 'src/models/coat.py:coat_lite_tiny'),),
)


@key_filter('CoaT checkpoint')
def checkpoint_filter_fn(state_dict, model: CoaT) -> Dict[str, torch.Tensor]:
    """Official CoaT files (weights under ``model``, shared modules under several keys, unused ``norm1`` etc.),
    timm's ``coat_*`` state dicts, and zoo-layout state dicts -> zoo layout."""
    sd = strip_prefix(unwrap_state_dict(state_dict, keys=('model', 'state_dict_ema', 'model_ema', 'state_dict')))
    if not any(k.startswith('stages.') for k in sd):
        sd = _convert_official(sd, model)
    if isinstance(model.head, nn.Identity):  # num_classes=0: the checkpoint's classifier has no place
        sd = {k: v for k, v in sd.items() if not k.startswith('head.')}
    return sd


# each variant's hyper-parameters (official src/models/coat.py)
model_args = dict(
    zoo_coat_lite_tiny=dict(embed_dims=(64, 128, 256, 320), serial_depths=(2, 2, 2, 2), mlp_ratios=(8, 8, 4, 4)),
    zoo_coat_lite_mini=dict(embed_dims=(64, 128, 320, 512), serial_depths=(2, 2, 2, 2), mlp_ratios=(8, 8, 4, 4)),
    zoo_coat_lite_small=dict(embed_dims=(64, 128, 320, 512), serial_depths=(3, 4, 6, 3), mlp_ratios=(8, 8, 4, 4)),
    zoo_coat_lite_medium=dict(embed_dims=(128, 256, 320, 512), serial_depths=(3, 6, 10, 8), mlp_ratios=(4, 4, 4, 4)),
    zoo_coat_tiny=dict(
        embed_dims=(152, 152, 152, 152), serial_depths=(2, 2, 2, 2), parallel_depth=6, mlp_ratios=(4, 4, 4, 4)),
    zoo_coat_mini=dict(
        embed_dims=(152, 216, 216, 216), serial_depths=(2, 2, 2, 2), parallel_depth=6, mlp_ratios=(4, 4, 4, 4)),
    zoo_coat_small=dict(
        embed_dims=(152, 320, 320, 320), serial_depths=(2, 2, 2, 2), parallel_depth=6, mlp_ratios=(4, 4, 4, 4)),
)


def _create_coat(variant: str, pretrained: bool = False, **kwargs) -> CoaT:
    return build_zoo_model(CoaT, variant, pretrained, checkpoint_filter_fn, model_args[variant], kwargs)


# official eval: resize 256/224 bicubic + centre crop; the class-token head has no fixed pooled map
default_cfgs = generate_default_cfgs(pretrained_cfgs(dict.fromkeys(
    ('zoo_coat_lite_tiny', 'zoo_coat_lite_mini', 'zoo_coat_lite_small', 'zoo_coat_lite_medium', 'zoo_coat_tiny',
     'zoo_coat_mini', 'zoo_coat_small'),
    imagenet_cfg('stages.0.patch_embed.proj', 'head', 'arXiv:2104.06399', 'https://github.com/mlpc-ucsd/CoaT',
                 pool_size=None, min_input_size=(3, 32, 32)))))


@register_model
def zoo_coat_lite_tiny(pretrained: bool = False, **kwargs) -> CoaT:
    """CoaT-Lite Tiny (official ``coat_lite_tiny``)."""
    return _create_coat('zoo_coat_lite_tiny', pretrained, **kwargs)


@register_model
def zoo_coat_lite_mini(pretrained: bool = False, **kwargs) -> CoaT:
    """CoaT-Lite Mini (official ``coat_lite_mini``)."""
    return _create_coat('zoo_coat_lite_mini', pretrained, **kwargs)


@register_model
def zoo_coat_lite_small(pretrained: bool = False, **kwargs) -> CoaT:
    """CoaT-Lite Small (official ``coat_lite_small``)."""
    return _create_coat('zoo_coat_lite_small', pretrained, **kwargs)


@register_model
def zoo_coat_lite_medium(pretrained: bool = False, **kwargs) -> CoaT:
    """CoaT-Lite Medium (official ``coat_lite_medium``)."""
    return _create_coat('zoo_coat_lite_medium', pretrained, **kwargs)


@register_model
def zoo_coat_tiny(pretrained: bool = False, **kwargs) -> CoaT:
    """CoaT Tiny (official ``coat_tiny``)."""
    return _create_coat('zoo_coat_tiny', pretrained, **kwargs)


@register_model
def zoo_coat_mini(pretrained: bool = False, **kwargs) -> CoaT:
    """CoaT Mini (official ``coat_mini``)."""
    return _create_coat('zoo_coat_mini', pretrained, **kwargs)


@register_model
def zoo_coat_small(pretrained: bool = False, **kwargs) -> CoaT:
    """CoaT Small (official ``coat_small``)."""
    return _create_coat('zoo_coat_small', pretrained, **kwargs)
