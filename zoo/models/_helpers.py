"""Checkpoint plumbing shared by the family files: unwrap, validate, report clearly.

The checkpoint helpers live in :mod:`zoo.checkpoint`; they are re-exported here for the family files.
"""
from typing import Dict

import torch
from timm.layers import register_notrace_function

from ..checkpoint import CheckpointError, check_state_dict, strip_prefix, unwrap_state_dict

__all__ = ['CheckpointError', 'unwrap_state_dict', 'strip_prefix', 'check_state_dict', 'check_in_chans', 'check_input']


@register_notrace_function  # a leaf under FX: the checks run when the traced graph runs
def check_in_chans(x: torch.Tensor, in_chans: int) -> None:
    """Clear error for an NCHW input with the wrong channel count (call at the top of forward_features).

    Written with string concatenation so that it also compiles under TorchScript.
    """
    if x.dim() != 4:
        raise ValueError('expected a 4-D NCHW input, got a ' + str(x.dim()) + '-D tensor')
    if x.shape[1] != in_chans:
        raise ValueError('expected ' + str(in_chans) + ' input channels, got ' + str(x.shape[1]) + ' channels')


@register_notrace_function
def check_input(x: torch.Tensor, in_chans: int, min_size: int = 0, family: str = 'this model') -> None:
    """The one input check of every zoo model: 4-D NCHW, ``in_chans`` channels, and at least ``min_size`` pixels
    on each side where the architecture has a minimum (``min_size=0``: none). A leaf under FX tracing, and
    TorchScript-compatible, so models stay traceable and scriptable with the check in place."""
    check_in_chans(x, in_chans)
    if min_size > 0 and (x.shape[2] < min_size or x.shape[3] < min_size):
        raise ValueError(family + ' needs inputs of at least ' + str(min_size) + 'x' + str(min_size) + ' pixels, got '
                         + str(x.shape[2]) + 'x' + str(x.shape[3]))


def imagenet_cfg(first_conv: str, classifier: str, paper: str, origin_url: str, license: str = 'apache-2.0',
                 **overrides) -> Dict:
    """Base timm pretrained cfg shared by the zoo families: ImageNet-1k, 224 px, 7x7 final map, bicubic 0.875
    crop, ImageNet mean/std; a family passes its module names, paper and source, and whatever differs."""
    from timm.data import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD
    cfg = dict(num_classes=1000, input_size=(3, 224, 224), pool_size=(7, 7), crop_pct=0.875,
               interpolation='bicubic', mean=IMAGENET_DEFAULT_MEAN, std=IMAGENET_DEFAULT_STD,
               first_conv=first_conv, classifier=classifier, license=license, paper_ids=paper, origin_url=origin_url)
    cfg.update(overrides)
    return cfg
