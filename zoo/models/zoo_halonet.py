"""HaloNet: the paper's H0-H7 family, at any input size.

Paper: `Scaling Local Self-Attention for Parameter Efficient Visual Backbones` (Vaswani, Ramachandran, Srinivas,
Parmar, Hechtman, Shlens; CVPR 2021), arXiv:2103.12731. No official code and no official weights were released.

Built from timm's machinery, reused where it matches the paper: ``ByobNet`` (7x7 stem + max-pool, four stages,
optional final 1x1 conv of width d_f, classifier head), halo attention with timm's ``HaloAttn`` parameters and
semantics computed by ``zoo.layers.halo`` (vectorised: one key/value window gather, batched relative logits,
fused SDPA; pads and crops so that every H x W works) and timm's ``SelfAttnBlock`` (1x1 conv-BN-act -> attention ->
BN-act -> 1x1 conv-BN -> drop-path -> + shortcut -> act), extended by one thing timm lacks: the value multiplier r_v.

Mapping of the paper's knobs (stage base widths w = 64, 128, 256, 512; depths 3, 3, l_3, 3; strides 1, 2, 2, 2):
  * b, h: halo attention block and halo size (all stages; 8 heads; strided queries in the first block of stages 2-4),
  * d_qk = w: the block's 1x1 input conv width and the query/key width,
  * d_v = r_v * w: the attention output (value) width, followed by BN-act and the 1x1 output conv,
  * r_b * w: the block output width,
  * d_f: width of a final 1x1 conv-BN-act before pooling (none for H0-H2).
timm's ``halonet_h1`` is exactly H1 (r_v = r_b = 1). A ByobNet port that reads r_v as a multiplier of the whole
bottleneck width (``br = r_v / r_b``) matches the paper's parameter counts only where r_v = 1 (H5: 71.0M vs 30.7M);
the reading above reproduces all eight of them:

| Model | b  | h | r_v | r_b  | l_3 | d_f  | image | params (paper) | params (zoo)  |
|-------|----|---|-----|------|-----|------|-------|----------------|---------------|
| H0    | 8  | 3 | 1.0 | 0.5  | 7   | -    | 256   | 5.5M           | 5,500,952     |
| H1    | 8  | 3 | 1.0 | 1.0  | 10  | -    | 256   | 8.1M           | 8,100,056     |
| H2    | 8  | 3 | 1.0 | 1.25 | 11  | -    | 256   | 9.4M           | 9,404,312     |
| H3    | 10 | 3 | 1.0 | 1.5  | 12  | 1024 | 320   | 11.8M          | 11,841,304    |
| H4    | 12 | 2 | 1.0 | 3.0  | 12  | 1280 | 384   | 19.1M          | 19,101,976    |
| H5    | 14 | 2 | 2.5 | 2.0  | 23  | 1536 | 448   | 30.7M          | 30,717,272    |
| H6    | 8  | 4 | 3.0 | 2.75 | 24  | 1536 | 512   | 43.4M          | 43,456,792    |
| H7    | 10 | 3 | 4.0 | 3.5  | 26  | 2048 | 600   | 67.4M          | 67,433,240    |

What is confirmed and how (the paper PDF itself could not be read from this environment):
  * b, h, r_v, r_b, l_3, d_f: identical in two independent third-party ports (a timm/ByobNet one and
    leondgarse/keras_cv_attention_models ``halonet.py``); H1 equals timm's ``halonet_h1``.
  * image sizes and parameter counts: keras_cv_attention_models' README quotes the paper's table with the same
    values (256/256/256/320/384/448/512/600; 5.5/8.1/9.4/11.8/19.1/30.7/43.4/67.4M), and the zoo models, built
    from the knobs alone, round to every one of those counts except H6 (43.46M, +0.13%); tested in
    tests/test_halonet.py. zoo_halonet_h1 has exactly the parameters and outputs of timm's halonet_h1.
UNVERIFIED: the activation (ReLU here, as timm's ``halonet_h1``; the keras port uses SiLU - pass
``act_layer='silu'`` to change it), the head count (8 in every stage as timm; the keras port uses 4 in stage 1 - it
changes the parameter count by < 0.05%), whether the paper's strided attention subsamples queries as timm's does,
and the ImageNet top-1 (77.9/79.9/80.4/81.9/83.3-83.5/84.0/84.4-84.6/84.9: the two secondary sources disagree on
H4 and H6).

Any input size: ``PaddedHaloAttn`` zero-pads each attention input to a multiple of b and crops the output (see
zoo/layers/halo.py for what the padded positions mean), so every stage serves any H x W; there is no minimum size
(each stage's output is ceil(input / stride), down to 1 x 1, as for a ResNet). At sizes whose every stage divides by
b (e.g. 256 for H0-H2) the computation is timm's up to float summation order (zoo_halonet_h1 with halonet_h1
weights: logits within 1e-5).

No weights exist; the models are registered untagged and train from scratch (``drop_path_rate`` is ByobNet's
stagewise stochastic depth).
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

from zoo._manifest import pretrained_cfgs
from zoo.layers.halo import PaddedHaloAttn
from zoo.models._helpers import build_zoo_model, imagenet_cfg
from zoo.models._helpers import check_input, check_state_dict, strip_prefix, unwrap_state_dict
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


def checkpoint_filter_fn(state_dict, model: HaloNet):
    """Accept the zoo layout, or timm's ByobNet layout (``HaloAttn`` directly under ``self_attn``, e.g. a
    ``halonet_h1`` state dict for ``zoo_halonet_h1``); wrappers (``state_dict``/``model``...) and ``module.``
    prefixes are removed."""
    state_dict = strip_prefix(unwrap_state_dict(state_dict), 'module.')
    out = {}
    for k, v in state_dict.items():
        k = re.sub(r'\.self_attn\.(q|kv|pos_embed)\.', r'.self_attn.attn.\1.', k)
        out[k] = v
    return check_state_dict(out, model)


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


SPEC = FamilySpec(
    name='halonet',
    attention=(PaddedHaloAttn, HaloAttn),
    maps=MapReader('halo_window', outermost=True),
    counterparts=('halonet_h1', 'halonet26t'),
    parity=dict(
        {f'zoo_halonet_h{i}': 'no official code; paper param counts match' for i in range(8)},
        zoo_halonet_h1='= timm halonet_h1 (same weights, logits within 1e-5); paper params match',
    ),
)
