"""HaloNet: the paper's H0-H7 family, at any input size.

Vaswani et al., "Scaling Local Self-Attention for Parameter Efficient Visual Backbones", CVPR 2021
(arXiv:2103.12731). No official code and no official weights were released.

timm's ``ByobNet`` and ``SelfAttnBlock`` with halo attention computed by ``zoo.layers.halo`` (any H x W), plus the
paper's value multiplier r_v. The knobs b, h, r_v, r_b, l_3 and d_f reproduce the paper's eight parameter counts;
``zoo_halonet_h1`` is timm's ``halonet_h1``. The mapping, what is confirmed and what is not: docs/models.md.
"""
import re
from dataclasses import replace
from functools import partial

import torch
import torch.nn as nn
from timm.layers import make_divisible
from timm.layers.halo_attn import HaloAttn
from timm.models import checkpoint_seq, generate_default_cfgs, register_model
from timm.models.byobnet import ByoBlockCfg, ByoModelCfg, ByobNet, SelfAttnBlock

from zoo.manifest import pretrained_cfgs
from zoo.layers.halo import PaddedHaloAttn
from zoo.models._helpers import build_zoo_model, imagenet_cfg
from zoo.models._helpers import check_input, key_filter, strip_prefix, unwrap_state_dict
from zoo.models.spec import FamilySpec, MapReader

__all__ = ['HaloBlock', 'HaloNet']

class HaloBlock(SelfAttnBlock):
    """timm's ``SelfAttnBlock`` with HaloNet's value multiplier r_v (``value_ratio``).

    The 1x1 input conv and the queries/keys are d_qk = ``out_chs * bottle_ratio`` wide; the attention output
    (values), the post-attention BN-act and the 1x1 output conv's input are ``r_v * d_qk`` wide.
    """

    def __init__(self, in_chs: int, out_chs: int, bottle_ratio: float = 1., value_ratio: float = 1., layers=None,
                 **kwargs):
        qk_chs = make_divisible(out_chs * bottle_ratio)
        v_chs = make_divisible(qk_chs * value_ratio)
        self_attn = partial(layers.self_attn, dim_out=v_chs, qk_ratio=qk_chs / v_chs)
        super().__init__(in_chs, out_chs, bottle_ratio=bottle_ratio, layers=replace(layers, self_attn=self_attn),
                         **kwargs)
        if v_chs != qk_chs:
            dd = {'device': kwargs.get('device'), 'dtype': kwargs.get('dtype')}
            if not isinstance(self.post_attn, nn.Identity):
                self.post_attn = layers.norm_act(v_chs, **dd)
            self.conv3_1x1 = layers.conv_norm_act(v_chs, out_chs, 1, apply_act=False, **dd)


class HaloNet(ByobNet):
    """ByobNet built from :class:`HaloBlock` stages (see ``_halonet_cfg``).

    The standard surface (``group_matcher``, ``set_grad_checkpointing``, ``get_classifier``, ``reset_classifier``,
    ``forward_intermediates``, ``prune_intermediate_layers``, ``forward_head``) is ByobNet's; this class adds the
    input check (an FX leaf) and defines ``forward`` here so that torch.fx wraps that check (FX patches leaf
    functions in the traced ``forward``'s module globals).
    """

    def forward_intermediates(self, x: torch.Tensor, *args, **kwargs):
        """ByobNet's (same arguments), after the input check: features of the stem (stride 2), stages 1-3 and
        stage 4 + final conv (stride 32)."""
        check_input(x, self.in_chans)
        return super().forward_intermediates(x, *args, **kwargs)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        check_input(x, self.in_chans)
        x = self.stem(x)
        if self.grad_checkpointing and not torch.jit.is_scripting():
            x = checkpoint_seq(self.stages, x)
        else:
            x = self.stages(x)
        return self.final_conv(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))


SPEC = FamilySpec(name='halonet', attention=(PaddedHaloAttn, HaloAttn),
    maps=MapReader('halo_window', outermost=True),
    counterparts=('halonet_h1', 'halonet26t'),
    parity=dict(
        {f'zoo_halonet_h{i}': 'no official code; paper param counts match' for i in range(8)},
        zoo_halonet_h1='= timm halonet_h1 (same weights, logits within 1e-5); paper params match',
    ),
)


@key_filter()
def checkpoint_filter_fn(state_dict, model: HaloNet):
    """Accept the zoo layout, or timm's ByobNet layout (``HaloAttn`` directly under ``self_attn``, e.g. a
    ``halonet_h1`` state dict for ``zoo_halonet_h1``); wrappers (``state_dict``/``model``...) and ``module.``
    prefixes are removed."""
    state_dict = strip_prefix(unwrap_state_dict(state_dict), 'module.')
    out = {}
    for k, v in state_dict.items():
        k = re.sub(r'\.self_attn\.(q|kv|pos_embed)\.', r'.self_attn.attn.\1.', k)
        out[k] = v
    return out


def _halonet_cfg(b: int, h: int, rv: float, rb: float, l3: int, df: int = 0) -> ByoModelCfg:
    """The paper's knobs -> ByobNet config (b block, h halo, r_v value and r_b output multipliers, l_3 stage-3
    depth, d_f final conv width)."""
    block = partial(HaloBlock, value_ratio=rv)
    stages = zip((3, 3, l3, 3), (64, 128, 256, 512), (1, 2, 2, 2))
    return ByoModelCfg(
        blocks=tuple(ByoBlockCfg(type=block, d=d, c=int(w * rb), s=s, gs=0, br=1. / rb) for d, w, s in stages),
        stem_chs=64,
        stem_type='7x7',
        stem_pool='maxpool',
        num_features=df,
        self_attn_layer=PaddedHaloAttn,
        self_attn_kwargs=dict(block_size=b, halo_size=h),
    )


model_cfgs = dict(
    zoo_halonet_h0=_halonet_cfg(b=8, h=3, rv=1.0, rb=0.5, l3=7),
    zoo_halonet_h1=_halonet_cfg(b=8, h=3, rv=1.0, rb=1.0, l3=10),
    zoo_halonet_h2=_halonet_cfg(b=8, h=3, rv=1.0, rb=1.25, l3=11),
    zoo_halonet_h3=_halonet_cfg(b=10, h=3, rv=1.0, rb=1.5, l3=12, df=1024),
    zoo_halonet_h4=_halonet_cfg(b=12, h=2, rv=1.0, rb=3.0, l3=12, df=1280),
    zoo_halonet_h5=_halonet_cfg(b=14, h=2, rv=2.5, rb=2.0, l3=23, df=1536),
    zoo_halonet_h6=_halonet_cfg(b=8, h=4, rv=3.0, rb=2.75, l3=24, df=1536),
    zoo_halonet_h7=_halonet_cfg(b=10, h=3, rv=4.0, rb=3.5, l3=26, df=2048),
)


def _create_halonet(variant: str, pretrained: bool = False, **kwargs) -> HaloNet:
    # features_only default: every level, the stride-2 stem first (as timm's byobnet HaloNets and ResNet's act1), so
    # plain smp's universal encoder sees strides 2..32
    return build_zoo_model(HaloNet, variant, pretrained, checkpoint_filter_fn, {}, kwargs, out_indices=(0, 1, 2, 3, 4),
                           feature_cls=None, model_cfg=model_cfgs[variant])


def _cfg(size: int) -> dict:
    pool = -(-size // 32)
    return imagenet_cfg('stem.conv1.conv', 'head.fc', 'arXiv:2103.12731',
                        'https://github.com/huggingface/pytorch-image-models',
                        input_size=(3, size, size), pool_size=(pool, pool), crop_pct=0.95,
                        paper_name='Scaling Local Self-Attention for Parameter Efficient Visual Backbones')


# the paper's image size of each model
default_cfgs = generate_default_cfgs(pretrained_cfgs({name: _cfg(size) for name, size in dict(
    zoo_halonet_h0=256, zoo_halonet_h1=256, zoo_halonet_h2=256, zoo_halonet_h3=320, zoo_halonet_h4=384,
    zoo_halonet_h5=448, zoo_halonet_h6=512, zoo_halonet_h7=600).items()}))


@register_model
def zoo_halonet_h0(pretrained: bool = False, **kwargs) -> HaloNet:
    """HaloNet-H0 (5.5M, 256 px): b 8, h 3, r_v 1, r_b 0.5, l_3 7."""
    return _create_halonet('zoo_halonet_h0', pretrained, **kwargs)


@register_model
def zoo_halonet_h1(pretrained: bool = False, **kwargs) -> HaloNet:
    """HaloNet-H1 (8.1M, 256 px): b 8, h 3, r_v 1, r_b 1, l_3 10 (= timm's halonet_h1)."""
    return _create_halonet('zoo_halonet_h1', pretrained, **kwargs)


@register_model
def zoo_halonet_h2(pretrained: bool = False, **kwargs) -> HaloNet:
    """HaloNet-H2 (9.4M, 256 px): b 8, h 3, r_v 1, r_b 1.25, l_3 11."""
    return _create_halonet('zoo_halonet_h2', pretrained, **kwargs)


@register_model
def zoo_halonet_h3(pretrained: bool = False, **kwargs) -> HaloNet:
    """HaloNet-H3 (11.8M, 320 px): b 10, h 3, r_v 1, r_b 1.5, l_3 12, d_f 1024."""
    return _create_halonet('zoo_halonet_h3', pretrained, **kwargs)


@register_model
def zoo_halonet_h4(pretrained: bool = False, **kwargs) -> HaloNet:
    """HaloNet-H4 (19.1M, 384 px): b 12, h 2, r_v 1, r_b 3, l_3 12, d_f 1280."""
    return _create_halonet('zoo_halonet_h4', pretrained, **kwargs)


@register_model
def zoo_halonet_h5(pretrained: bool = False, **kwargs) -> HaloNet:
    """HaloNet-H5 (30.7M, 448 px): b 14, h 2, r_v 2.5, r_b 2, l_3 23, d_f 1536."""
    return _create_halonet('zoo_halonet_h5', pretrained, **kwargs)


@register_model
def zoo_halonet_h6(pretrained: bool = False, **kwargs) -> HaloNet:
    """HaloNet-H6 (43.4M, 512 px): b 8, h 4, r_v 3, r_b 2.75, l_3 24, d_f 1536."""
    return _create_halonet('zoo_halonet_h6', pretrained, **kwargs)


@register_model
def zoo_halonet_h7(pretrained: bool = False, **kwargs) -> HaloNet:
    """HaloNet-H7 (67.4M, 600 px): b 10, h 3, r_v 4, r_b 3.5, l_3 26, d_f 2048."""
    return _create_halonet('zoo_halonet_h7', pretrained, **kwargs)
