"""CBAM ResNets: ResNet-18/34/50/101 and ResNeXt-50 32x4d with a CBAM block in every residual block.

Woo et al., "CBAM: Convolutional Block Attention Module", ECCV 2018 (arXiv:1807.06521).
Official code and weights: https://github.com/Jongchan/attention-module (MIT; the checkpoint is downloaded by hand).

timm's ``ResNet`` with ``zoo.layers.CBAM`` as its ``attn_layer`` (after the last BN of the residual branch, before the
shortcut addition, as the official code); any input size. Details: docs/models.md.
"""
from functools import partial
from typing import Any, Dict

import torch
from timm.models import generate_default_cfgs, register_model
from timm.models.resnet import ResNet

from zoo.manifest import pretrained_cfgs
from zoo.layers.cbam import CBAM
from zoo.models._helpers import build_attention_resnet, imagenet_cfg, resnet_args
from zoo.models._helpers import key_filter, strip_prefix, unwrap_state_dict
from zoo.models.spec import FamilySpec, MapReader

__all__ = ['checkpoint_filter_fn']

# official module names inside one residual block -> zoo (timm ResNet attn slot ``se``)
_OFFICIAL_RENAMES = (
    ('.cbam.ChannelGate.mlp.1.', '.se.channel.fc1.'),
    ('.cbam.ChannelGate.mlp.3.', '.se.channel.fc2.'),
    ('.cbam.SpatialGate.spatial.conv.', '.se.spatial.conv.'),
    ('.cbam.SpatialGate.spatial.bn.', '.se.spatial.bn.'),
)


SPEC = FamilySpec(name='cbam', attention=(CBAM,), maps=MapReader('channel_spatial_gates'),
    parity={
        'zoo_resnet18_cbam': 'yes: logits = official code (golden)',
        'zoo_resnet50_cbam': 'yes: logits = official code (golden)',
        'zoo_resnet34_cbam': 'layout: strict load of official keys',
        'zoo_resnet101_cbam': 'layout: strict load of official keys',
        'zoo_resnext50_32x4d_cbam': 'no official code/weights (paper params match)',
    },
    pairs=(('zoo_resnet50_cbam', "MODELS/model_resnet.py:ResidualNet('ImageNet', 50, 1000, 'CBAM')"),),
)


@key_filter('CBAM checkpoint')
def checkpoint_filter_fn(state_dict: Dict[str, Any], model: ResNet) -> Dict[str, torch.Tensor]:
    """Official Jongchan/attention-module checkpoint (``.pth.tar`` dict with ``state_dict``, keys
    prefixed ``module.``) or a zoo-layout state dict -> zoo layout."""
    sd = strip_prefix(unwrap_state_dict(state_dict), 'module.')
    out = {}
    for k, v in sd.items():
        for old, new in _OFFICIAL_RENAMES:
            if old in k:
                k = k.replace(old, new)
                break
        out[k] = v
    return out


# each variant's ResNet layout: zoo_<arch>_cbam
model_args = {f'zoo_{arch}_cbam': resnet_args(arch)
              for arch in ('resnet18', 'resnet34', 'resnet50', 'resnet101', 'resnext50_32x4d')}


def _create_cbam_resnet(variant: str, pretrained: bool = False, **kwargs) -> ResNet:
    kwargs = dict(model_args[variant], **kwargs)
    attn_layer = partial(
        CBAM, reduction=kwargs.pop('attn_reduction', 16), kernel_size=kwargs.pop('attn_kernel_size', 7))
    return build_attention_resnet(variant, pretrained, checkpoint_filter_fn, attn_layer, kwargs)


default_cfgs = generate_default_cfgs(pretrained_cfgs(dict.fromkeys(
    model_args,
    imagenet_cfg('conv1', 'fc', 'arXiv:1807.06521', 'https://github.com/Jongchan/attention-module', license='mit',
                 interpolation='bilinear'))))


@register_model
def zoo_resnet18_cbam(pretrained: bool = False, **kwargs) -> ResNet:
    """ResNet-18 + CBAM (paper: 11.78M params)."""
    return _create_cbam_resnet('zoo_resnet18_cbam', pretrained, **kwargs)


@register_model
def zoo_resnet34_cbam(pretrained: bool = False, **kwargs) -> ResNet:
    """ResNet-34 + CBAM (paper: 21.96M params)."""
    return _create_cbam_resnet('zoo_resnet34_cbam', pretrained, **kwargs)


@register_model
def zoo_resnet50_cbam(pretrained: bool = False, **kwargs) -> ResNet:
    """ResNet-50 + CBAM (paper: 28.09M params; official weights 77.622 top-1)."""
    return _create_cbam_resnet('zoo_resnet50_cbam', pretrained, **kwargs)


@register_model
def zoo_resnet101_cbam(pretrained: bool = False, **kwargs) -> ResNet:
    """ResNet-101 + CBAM (paper: 49.33M params)."""
    return _create_cbam_resnet('zoo_resnet101_cbam', pretrained, **kwargs)


@register_model
def zoo_resnext50_32x4d_cbam(pretrained: bool = False, **kwargs) -> ResNet:
    """ResNeXt-50 32x4d + CBAM (paper: 27.56M params)."""
    return _create_cbam_resnet('zoo_resnext50_32x4d_cbam', pretrained, **kwargs)
