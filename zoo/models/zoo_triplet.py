"""Triplet attention ResNets and MobileNetV2.

Misra et al., "Rotate to Attend: Convolutional Triplet Attention Module", WACV 2021 (arXiv:2010.03045).
Official code and weights: https://github.com/landskape-ai/triplet-attention (MIT; weights downloaded by hand).

ResNets: timm's ``ResNet`` with ``zoo.layers.TripletAttention`` as the block attention. MobileNetV2 is written out
here: the official network appends triplet attention after the projection BN of every inverted residual. ``_k3``
variants use 3x3 gate kernels. Details: docs/models.md.
"""
from functools import partial
from typing import Any, Dict, List, Optional, Tuple

import torch
import torch.nn as nn
from timm.layers import SelectAdaptivePool2d
from timm.models import checkpoint_seq, generate_default_cfgs, register_model
from timm.models.resnet import ResNet

from zoo.manifest import pretrained_cfgs
from zoo.layers.triplet import TripletAttention
from zoo.models._helpers import DILATED_OUTPUT_STRIDES, OutputStrideError, ZooModel, build_attention_resnet
from zoo.models._helpers import build_zoo_model, linear_head, resnet_args
from zoo.models._helpers import check_input, imagenet_cfg, key_filter, strip_prefix, unwrap_state_dict
from zoo.models.spec import FamilySpec, MapReader

__all__ = ['TripletMobileNetV2', 'checkpoint_filter_fn']

_GATE_NAMES = (('ChannelGateH', 'cw'), ('ChannelGateW', 'hc'), ('SpatialGate', 'hw'))


class ConvBnReLU6(nn.Sequential):
    def __init__(self, in_chs: int, out_chs: int, kernel_size: int = 3, stride: int = 1, groups: int = 1,
                 dilation: int = 1, device=None, dtype=None):
        dd = {'device': device, 'dtype': dtype}
        super().__init__(
            nn.Conv2d(in_chs, out_chs, kernel_size, stride, dilation * (kernel_size - 1) // 2, dilation, groups,
                      bias=False, **dd),
            nn.BatchNorm2d(out_chs, **dd),
            nn.ReLU6(inplace=True),
        )


class InvertedResidualTriplet(nn.Module):
    """MobileNetV2 inverted residual with triplet attention after the linear projection (``dilation``: of the
    depthwise conv)."""

    def __init__(self, in_chs: int, out_chs: int, stride: int, expand_ratio: int, attn_kernel_size: int = 7,
                 dilation: int = 1, device=None, dtype=None):
        super().__init__()
        dd = {'device': device, 'dtype': dtype}
        hidden = int(round(in_chs * expand_ratio))
        self.has_skip = stride == 1 and in_chs == out_chs
        self.conv_pw = ConvBnReLU6(in_chs, hidden, 1, **dd) if expand_ratio != 1 else nn.Identity()
        self.conv_dw = ConvBnReLU6(hidden, hidden, 3, stride, groups=hidden, dilation=dilation, **dd)
        self.conv_pwl = nn.Conv2d(hidden, out_chs, 1, bias=False, **dd)
        self.bn_pwl = nn.BatchNorm2d(out_chs, **dd)
        self.attn = TripletAttention(out_chs, kernel_size=attn_kernel_size, **dd)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.attn(self.bn_pwl(self.conv_pwl(self.conv_dw(self.conv_pw(x)))))
        return x + y if self.has_skip else y


# (expand ratio t, channels c, repeats n, stride s) per official row, grouped into 5 feature stages
_MBV2_STAGES = (
    ((1, 16, 1, 1),),                    # stride 2
    ((6, 24, 2, 2),),                    # stride 4
    ((6, 32, 3, 2),),                    # stride 8
    ((6, 64, 4, 2), (6, 96, 3, 1)),      # stride 16
    ((6, 160, 3, 2), (6, 320, 1, 1)),    # stride 32
)


class TripletMobileNetV2(ZooModel, nn.Module):
    def __init__(
            self,
            num_classes: int = 1000,
            in_chans: int = 3,
            attn_kernel_size: int = 7,
            stem_chs: int = 32,
            num_features: int = 1280,
            drop_rate: float = 0.25,
            global_pool: str = 'avg',
            output_stride: int = 32,
            device=None,
            dtype=None,
    ):
        """``output_stride`` 8, 16 or 32 (as timm's MobileNetV2): past that stride, the blocks' strides become
        dilation of their depthwise convs (the first block of a row keeps the previous dilation)."""
        super().__init__()
        dd = {'device': device, 'dtype': dtype}
        if output_stride not in DILATED_OUTPUT_STRIDES:
            raise OutputStrideError(f'TripletMobileNetV2 supports output_stride 8, 16 or 32; got {output_stride}')
        self.num_classes = num_classes
        self.in_chans = in_chans
        self.drop_rate = drop_rate
        self.grad_checkpointing = False
        self.conv_stem = ConvBnReLU6(in_chans, stem_chs, 3, 2, **dd)
        stages, self.feature_info = [], []
        chs, stride, dilation = stem_chs, 2, 1
        for rows in _MBV2_STAGES:
            blocks = []
            for t, c, n, s in rows:
                first_dilation = dilation
                if s > 1 and stride >= output_stride:
                    dilation, s = dilation * s, 1
                for i in range(n):
                    blocks.append(InvertedResidualTriplet(
                        chs, c, s if i == 0 else 1, t, attn_kernel_size, first_dilation if i == 0 else dilation, **dd))
                    chs = c
                stride *= s
            stages.append(nn.Sequential(*blocks))
            self.feature_info.append(dict(num_chs=chs, reduction=stride, module=f'stages.{len(stages) - 1}'))
        self.stages = nn.Sequential(*stages)
        self.conv_head = ConvBnReLU6(chs, num_features, 1, **dd)
        self.num_features = self.head_hidden_size = num_features
        self.global_pool = SelectAdaptivePool2d(pool_type=global_pool, flatten=bool(global_pool))
        self.head_drop = nn.Dropout(drop_rate)
        self.classifier = nn.Linear(num_features, num_classes, **dd) if num_classes > 0 else nn.Identity()
        self._init_weights()

    def _init_weights(self):
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode='fan_out')
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, 0, 0.01)
                nn.init.zeros_(m.bias)

    @torch.jit.ignore
    def group_matcher(self, coarse: bool = False) -> Dict[str, Any]:
        return dict(stem=r'^conv_stem', blocks=r'^stages\.(\d+)' if coarse else r'^stages\.(\d+)\.(\d+)')

    @torch.jit.ignore
    def get_classifier(self) -> nn.Module:
        return self.classifier

    def reset_classifier(self, num_classes: int, global_pool: Optional[str] = None):
        self.num_classes = num_classes
        if global_pool is not None:
            self.global_pool = SelectAdaptivePool2d(pool_type=global_pool, flatten=bool(global_pool))
            self.global_pool.train(self.training)
        self.classifier = linear_head(self, self.num_features, num_classes)

    def _forward_levels(
            self, x: torch.Tensor, take_indices: List[int], max_index: int, norm: bool, stop_early: bool,
            output_fmt: str, final: bool) -> Tuple[torch.Tensor, List[torch.Tensor]]:
        """Stage outputs (strides 2-32); the final features add ``conv_head`` once all stages ran."""
        assert output_fmt == 'NCHW', 'forward_intermediates: only output_fmt=NCHW is supported'
        check_input(x, self.in_chans)
        intermediates = []
        x = self.conv_stem(x)
        stages = self.stages if not stop_early else self.stages[:max_index + 1]
        for i, stage in enumerate(stages):
            x = checkpoint_seq(stage, x) if self.grad_checkpointing and not torch.jit.is_scripting() else stage(x)
            if i in take_indices:
                intermediates.append(x)
        if final and len(stages) == len(self.stages):
            x = self.conv_head(x)
        return x, intermediates

    def _prune_levels(self, max_index: int, prune_norm: bool, prune_head: bool) -> None:
        self.stages = self.stages[:max_index + 1]
        if prune_head:
            self.conv_head = nn.Identity().train(self.training)
            self.reset_classifier(0, '')

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        check_input(x, self.in_chans)
        x = self.conv_stem(x)
        if self.grad_checkpointing and not torch.jit.is_scripting():
            x = checkpoint_seq(self.stages, x, flatten=True)
        else:
            x = self.stages(x)
        return self.conv_head(x)

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = self.global_pool(x)
        x = self.head_drop(x)
        return x if pre_logits else self.classifier(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))


def _rename_gates(key: str) -> str:
    """Triplet-attention gate names (legacy or root-file) -> zoo ``{cw,hc,hw}.{conv,bn}``."""
    for legacy, new in _GATE_NAMES:
        key = key.replace(f'.{legacy}.spatial.', f'.{new}.')   # MODELS/ (training-time) layout
    for new in ('cw', 'hc', 'hw'):
        key = key.replace(f'.{new}.conv.conv.', f'.{new}.conv.').replace(f'.{new}.conv.bn.', f'.{new}.bn.')
    return key


def _mbv2_official_map(model: TripletMobileNetV2) -> Dict[str, str]:
    """Official ``features.{i}`` / ``classifier.1`` module prefixes -> zoo prefixes."""
    mapping = {'features.0.': 'conv_stem.'}
    i = 1
    for s, stage in enumerate(model.stages):
        for b, block in enumerate(stage):
            expand = not isinstance(block.conv_pw, nn.Identity)
            seq = (['conv_pw'] if expand else []) + ['conv_dw', 'conv_pwl', 'bn_pwl', 'attn']
            for j, name in enumerate(seq):
                mapping[f'features.{i}.conv.{j}.'] = f'stages.{s}.{b}.{name}.'
            i += 1
    mapping[f'features.{i}.'] = 'conv_head.'
    mapping['classifier.1.'] = 'classifier.'
    return mapping


SPEC = FamilySpec(name='triplet', attention=(TripletAttention,), maps=MapReader('branch_gates'),
    parity={
        'zoo_resnet18_triplet': 'yes: logits = official code (golden)',
        'zoo_resnet50_triplet': 'yes: logits = official code (golden)',
        'zoo_mobilenetv2_triplet': 'yes: logits = official code (golden)',
        'zoo_resnet34_triplet': 'layout: strict load of official keys',
        'zoo_resnet101_triplet': 'layout: strict load of official keys',
        'zoo_resnet18_triplet_k3': 'layout: strict load (3x3 gates)',
        'zoo_resnet50_triplet_k3': 'layout: strict load (3x3 gates)',
        'zoo_mobilenetv2_triplet_k3': 'layout: strict load (3x3 gates)',
    },
    pairs=(('zoo_resnet50_triplet', "MODELS/resnet.py:ResidualNet('ImageNet', 50, 1000, 'TripletAttention')"),),
)


@key_filter('triplet attention checkpoint')
def checkpoint_filter_fn(state_dict: Dict[str, Any], model: nn.Module) -> Dict[str, torch.Tensor]:
    """Official triplet-attention checkpoint (dict with ``state_dict``, keys prefixed ``module.``, gate names
    ``ChannelGateH/ChannelGateW/SpatialGate`` or ``cw/hc/hw``) or a zoo-layout state dict -> zoo layout."""
    sd = strip_prefix(unwrap_state_dict(state_dict), 'module.')
    prefix_map = _mbv2_official_map(model) if isinstance(model, TripletMobileNetV2) else {'': ''}
    out = {}
    for k, v in sd.items():
        if isinstance(model, TripletMobileNetV2):
            for old in sorted(prefix_map, key=len, reverse=True):
                if k.startswith(old):
                    k = prefix_map[old] + k[len(old):]
                    break
        else:
            k = k.replace('.triplet_attention.', '.se.')
        out[_rename_gates(k)] = v
    return out


# each variant's network arguments (ResNet layout; the gate kernel where it is not 7x7)
model_args = dict(
    zoo_resnet18_triplet=resnet_args('resnet18'),
    zoo_resnet34_triplet=resnet_args('resnet34'),
    zoo_resnet50_triplet=resnet_args('resnet50'),
    zoo_resnet101_triplet=resnet_args('resnet101'),
    zoo_mobilenetv2_triplet={},
    zoo_resnet18_triplet_k3=resnet_args('resnet18', attn_kernel_size=3),
    zoo_resnet50_triplet_k3=resnet_args('resnet50', attn_kernel_size=3),
    zoo_mobilenetv2_triplet_k3=dict(attn_kernel_size=3),
)


def _create_triplet_resnet(variant: str, pretrained: bool = False, **kwargs) -> ResNet:
    kwargs = dict(model_args[variant], **kwargs)
    attn_layer = partial(TripletAttention, kernel_size=kwargs.pop('attn_kernel_size', 7))
    return build_attention_resnet(variant, pretrained, checkpoint_filter_fn, attn_layer, kwargs)


def _create_triplet_mobilenetv2(variant: str, pretrained: bool = False, **kwargs) -> TripletMobileNetV2:
    return build_zoo_model(TripletMobileNetV2, variant, pretrained, checkpoint_filter_fn, model_args[variant], kwargs,
                           out_indices=(0, 1, 2, 3, 4), feature_cls=None)


def _cfg(**kwargs) -> Dict[str, Any]:
    cfg = dict(first_conv='conv1', classifier='fc', interpolation='bilinear', license='mit')
    cfg.update(kwargs)  # MobileNetV2 names its own first conv / classifier
    return imagenet_cfg(paper='arXiv:2010.03045', origin_url='https://github.com/landskape-ai/triplet-attention', **cfg)


_MBV2 = _cfg(first_conv='conv_stem.0', classifier='classifier')

default_cfgs = generate_default_cfgs(pretrained_cfgs({
    **dict.fromkeys(('zoo_resnet18_triplet', 'zoo_resnet34_triplet', 'zoo_resnet50_triplet', 'zoo_resnet101_triplet'),
                    _cfg()),
    'zoo_mobilenetv2_triplet': _MBV2,
    **dict.fromkeys(('zoo_resnet18_triplet_k3', 'zoo_resnet50_triplet_k3'), _cfg()),
    'zoo_mobilenetv2_triplet_k3': _MBV2,
}))


@register_model
def zoo_resnet18_triplet(pretrained: bool = False, **kwargs) -> ResNet:
    """ResNet-18 + triplet attention, 7x7 gates (official: 11.69M params, 71.09 top-1)."""
    return _create_triplet_resnet('zoo_resnet18_triplet', pretrained, **kwargs)


@register_model
def zoo_resnet34_triplet(pretrained: bool = False, **kwargs) -> ResNet:
    """ResNet-34 + triplet attention, 7x7 gates."""
    return _create_triplet_resnet('zoo_resnet34_triplet', pretrained, **kwargs)


@register_model
def zoo_resnet50_triplet(pretrained: bool = False, **kwargs) -> ResNet:
    """ResNet-50 + triplet attention, 7x7 gates (official: 25.56M params, 77.48 top-1)."""
    return _create_triplet_resnet('zoo_resnet50_triplet', pretrained, **kwargs)


@register_model
def zoo_resnet101_triplet(pretrained: bool = False, **kwargs) -> ResNet:
    """ResNet-101 + triplet attention, 7x7 gates."""
    return _create_triplet_resnet('zoo_resnet101_triplet', pretrained, **kwargs)


@register_model
def zoo_mobilenetv2_triplet(pretrained: bool = False, **kwargs) -> TripletMobileNetV2:
    """MobileNetV2 + triplet attention, 7x7 gates (official: 3.51M params, 71.99 top-1)."""
    return _create_triplet_mobilenetv2('zoo_mobilenetv2_triplet', pretrained, **kwargs)


@register_model
def zoo_resnet18_triplet_k3(pretrained: bool = False, **kwargs) -> ResNet:
    """ResNet-18 + triplet attention, 3x3 gates (official: 11.69M params, 70.33 top-1)."""
    return _create_triplet_resnet('zoo_resnet18_triplet_k3', pretrained, **kwargs)


@register_model
def zoo_resnet50_triplet_k3(pretrained: bool = False, **kwargs) -> ResNet:
    """ResNet-50 + triplet attention, 3x3 gates (official: 25.56M params, 76.12 top-1)."""
    return _create_triplet_resnet('zoo_resnet50_triplet_k3', pretrained, **kwargs)


@register_model
def zoo_mobilenetv2_triplet_k3(pretrained: bool = False, **kwargs) -> TripletMobileNetV2:
    """MobileNetV2 + triplet attention, 3x3 gates (official: 3.506M params, 72.62 top-1)."""
    return _create_triplet_mobilenetv2('zoo_mobilenetv2_triplet_k3', pretrained, **kwargs)
