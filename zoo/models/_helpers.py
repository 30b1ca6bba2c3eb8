"""What the family files share: the input check, the pretrained cfg base, model building, and the timm model surface
(:class:`ZooModel`, :class:`StagedModel`).

The checkpoint helpers live in :mod:`zoo.checkpoint`; they are re-exported here for the family files.

FX and TorchScript: ``check_input`` is an FX leaf. torch.fx wraps a leaf only in the module globals of the traced
``forward`` (and of the submodules' ``forward``), so every family keeps ``forward`` and ``forward_features`` (which
runs the check) in its own file; the shared methods here never run the check on the traced path. The methods a
scripted ``forward`` reaches (``forward_head``) and ``forward_intermediates`` are TorchScript-compatible; the others
are ``@torch.jit.ignore``.
"""
import inspect
import sys
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple, Union

import torch
import torch.nn as nn
from torch import Tensor
from timm.layers import ClassifierHead, get_device_dtype, register_notrace_function
from timm.models import build_model_with_cfg, checkpoint_seq
from timm.models._features import FeatureGetterNet, feature_take_indices
from timm.models.resnet import BasicBlock, Bottleneck, ResNet

from ..checkpoint import CheckpointError, KeyFilter, check_state_dict, key_filter, strip_prefix, unwrap_state_dict
from ..errors import UserError

__all__ = [
    'CheckpointError', 'unwrap_state_dict', 'strip_prefix', 'check_state_dict', 'key_filter', 'checkpoint_filter',
    'check_in_chans', 'check_input',
    'OutputStrideError', 'DILATED_OUTPUT_STRIDES', 'imagenet_cfg', 'build_zoo_model', 'use_pretrained_builder',
    'resnet_args', 'build_attention_resnet', 'stage_group_matcher', 'linear_head', 'BlockStage', 'ZooFeatureGetter',
    'ZooModel', 'StagedModel',
]


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


def checkpoint_filter(model: Union[nn.Module, str]) -> Optional[KeyFilter]:
    """The family's key filter ``checkpoint_filter_fn(state_dict, model)`` of a model or an architecture name, found
    in the module that registers the architecture (a model's ``pretrained_cfg['architecture']``), else in the model
    class's module; None when there is none."""
    from timm.models import is_model, model_entrypoint
    arch = model if isinstance(model, str) else (getattr(model, 'pretrained_cfg', None) or {}).get('architecture')
    modules = [model_entrypoint(arch).__module__] if arch and is_model(arch) else []
    if not isinstance(model, str):
        modules.append(type(model).__module__)
    for name in modules:
        fn = getattr(sys.modules.get(name), 'checkpoint_filter_fn', None)
        if callable(fn):
            return fn
    return None


class OutputStrideError(UserError, ValueError):
    """An ``output_stride`` the model cannot run at (a ValueError, as segmentation_models_pytorch expects)."""


DILATED_OUTPUT_STRIDES = (8, 16, 32)  # those of timm's ResNet, for every family that dilates


def _output_stride_builder(model_cls: Callable[..., nn.Module], variant: str, kwargs: Dict[str, Any]) -> Callable:
    """``model_cls``, checking the caller's ``output_stride`` (timm's dilation argument, popped from ``kwargs``
    where the class does not take it): a class that takes it runs at :data:`DILATED_OUTPUT_STRIDES`; any other
    only at its native output stride, the reduction of its last feature level."""
    if 'output_stride' not in kwargs:
        return model_cls
    output_stride = kwargs['output_stride']
    if 'output_stride' in inspect.signature(model_cls).parameters:
        if output_stride not in DILATED_OUTPUT_STRIDES:
            raise OutputStrideError(f'{variant} supports output_stride 8, 16 or 32; got {output_stride}')
        return model_cls
    del kwargs['output_stride']

    def build(**model_kwargs) -> nn.Module:
        model = model_cls(**model_kwargs)
        native = int(model.feature_info[-1]['reduction'])
        if output_stride != native:
            raise OutputStrideError(f'{variant} supports output_stride {native} only; got {output_stride}')
        return model
    return build


_pretrained_builder: Callable[..., nn.Module] = build_model_with_cfg


def use_pretrained_builder(build: Callable[..., nn.Module]) -> None:
    """Install the builder that ``pretrained=True`` goes through (``build_model_with_cfg``'s signature). ``import
    zoo`` installs :func:`zoo.hub.pretrained.build_model` (the Hub first, the URL fallback, checksums, one error),
    so the model files never import the hub."""
    global _pretrained_builder
    _pretrained_builder = build


def build_zoo_model(
        model_cls: Callable[..., nn.Module],
        variant: str,
        pretrained: bool,
        filter_fn: Callable,
        model_args: Dict[str, Any],
        kwargs: Dict[str, Any],
        out_indices: Optional[Sequence[int]] = (0, 1, 2, 3),
        feature_cls: Optional[Union[str, type]] = 'getter',
        **build_args,
) -> nn.Module:
    """``build_model_with_cfg`` as every family calls it: the variant's ``model_args`` overridden by the caller's
    ``kwargs``, the family's checkpoint filter ``filter_fn``, and ``features_only`` at ``out_indices`` (the
    caller's ``out_indices`` win) through :class:`ZooFeatureGetter` (``feature_cls='getter'``), or with
    ``feature_cls=None`` through timm's hooks on the flattened stages. ``out_indices=None``: timm's default feature
    extraction. An ``output_stride`` the model cannot run at raises :class:`OutputStrideError` naming the ones
    it can."""
    kwargs = dict(model_args, **kwargs)
    model_cls = _output_stride_builder(model_cls, variant, kwargs)
    feature_cfg = None
    if out_indices is not None:
        feature_cfg = dict(out_indices=kwargs.pop('out_indices', tuple(out_indices)))
        if feature_cls:
            feature_cfg['feature_cls'] = ZooFeatureGetter if feature_cls == 'getter' else feature_cls
        else:
            feature_cfg['flatten_sequential'] = True
    build = _pretrained_builder if pretrained else build_model_with_cfg
    return build(model_cls, variant, pretrained, pretrained_filter_fn=filter_fn, feature_cfg=feature_cfg, **build_args,
                 **kwargs)


_RESNET_LAYOUTS = dict(
    resnet18=dict(block=BasicBlock, layers=(2, 2, 2, 2)),
    resnet34=dict(block=BasicBlock, layers=(3, 4, 6, 3)),
    resnet50=dict(block=Bottleneck, layers=(3, 4, 6, 3)),
    resnet101=dict(block=Bottleneck, layers=(3, 4, 23, 3)),
    resnext50_32x4d=dict(block=Bottleneck, layers=(3, 4, 6, 3), cardinality=32, base_width=4),
)


def resnet_args(arch: str, **extra) -> Dict[str, Any]:
    """timm ``ResNet`` arguments of the standard layout ``arch`` (resnet18/34/50/101, resnext50_32x4d) + ``extra``."""
    return dict(_RESNET_LAYOUTS[arch], **extra)


def build_attention_resnet(
        variant: str, pretrained: bool, filter_fn: Callable, attn_layer: Callable, kwargs: Dict[str, Any]) -> nn.Module:
    """timm's ``ResNet`` with ``attn_layer`` in every residual block (after the last BN of the branch, before the
    shortcut addition), initialised as the official CBAM and triplet-attention code (no zero-init of the last BN
    unless ``zero_init_last``), with timm's ResNet feature extraction."""
    return build_zoo_model(ResNet, variant, pretrained, filter_fn, dict(zero_init_last=False), kwargs, out_indices=None,
                           block_args=dict(attn_layer=attn_layer))


def stage_group_matcher(coarse: bool, stem: str = r'^stem', norm: Optional[str] = r'^norm', **groups) -> Dict[str, Any]:
    """timm ``group_matcher`` of ``stages.<i>`` holding an optional ``downsample`` and ``blocks.<j>``, the final
    ``norm`` last (``norm=None``: none), plus the family's own ``groups``."""
    stage = r'^stages\.(\d+)'
    fine: List[Tuple[str, Optional[Tuple[int, ...]]]] = [
        (stage + r'\.downsample', (0,)),
        (stage + r'\.blocks\.(\d+)', None),  # a block's group is its (stage, block) pair
    ]
    if norm:
        fine.append((norm, (99999,)))
    return dict(stem=stem, blocks=stage if coarse else fine, **groups)


def linear_head(model: nn.Module, in_features: int, num_classes: int) -> nn.Module:
    """A new linear classifier (``nn.Identity`` for ``num_classes=0``) on ``model``'s device and dtype (also when
    the current classifier holds no parameter), in ``model``'s train/eval mode."""
    head = nn.Linear(in_features, num_classes, **get_device_dtype(model)) if num_classes > 0 else nn.Identity()
    return head.train(model.training)


class BlockStage(nn.Module):
    """A stage ``downsample -> blocks`` with timm's grad checkpointing over ``blocks`` (an ``nn.Sequential``); the
    subclass builds both after ``super().__init__()`` (``downsample``: ``nn.Identity`` where the stage has none)."""

    def __init__(self):
        super().__init__()
        self.grad_checkpointing = False

    def forward(self, x: Tensor) -> Tensor:
        x = self.downsample(x)
        if self.grad_checkpointing and not torch.jit.is_scripting():
            return checkpoint_seq(self.blocks, x)
        return self.blocks(x)


class ZooFeatureGetter(FeatureGetterNet):
    """timm's ``FeatureGetterNet`` for :class:`ZooModel` families, with a TorchScript-typed ``forward`` (a
    ``List[Tensor]``). timm's calls ``forward_intermediates``, whose return type is the ``Union`` of its two
    forms (intermediates only, or the final features with them), which TorchScript cannot iterate; here the
    feature indices are resolved once (after pruning) and ``forward`` runs the model's ``_forward_levels``."""

    def __init__(self, model: nn.Module, *args, **kwargs):
        super().__init__(model, *args, **kwargs)
        self.take_indices, self.max_index = feature_take_indices(model._num_levels(), self.out_indices)
        self.fmt = str(self.output_fmt.value)

    def forward(self, x: Tensor) -> List[Tensor]:
        _, features = self.model._forward_levels(
            x, self.take_indices, self.max_index, self.norm, False, self.fmt, False)
        return features


class ZooModel:
    """The timm model surface the zoo families share (a mixin: list it before ``nn.Module``).

    A family defines ``_forward_levels`` (the work of ``forward_intermediates``), ``_prune_levels`` (of
    ``prune_intermediate_layers``), ``forward_features`` and ``forward``; its feature levels are its ``stages``
    unless it overrides ``_num_levels``. The defaults here fit a timm ``ClassifierHead`` named ``head``; a family
    with another head overrides ``reset_classifier`` and ``forward_head``.
    """

    def _num_levels(self) -> int:
        return len(self.stages)

    @torch.jit.ignore
    def set_grad_checkpointing(self, enable: bool = True) -> None:
        """Every ``grad_checkpointing`` flag in the model: the model's own and its stages'."""
        for m in self.modules():
            if hasattr(m, 'grad_checkpointing'):
                m.grad_checkpointing = enable

    @torch.jit.ignore
    def get_classifier(self) -> nn.Module:
        return self.head.fc if isinstance(self.head, ClassifierHead) else self.head

    def reset_classifier(self, num_classes: int, global_pool: Optional[str] = None):
        self.num_classes = num_classes
        # the new classifier takes the model's device/dtype (the head may hold no parameter to infer them from)
        self.head.reset(num_classes, global_pool, **get_device_dtype(self))

    def forward_intermediates(
            self,
            x: torch.Tensor,
            indices: Optional[Union[int, List[int]]] = None,
            norm: bool = False,
            stop_early: bool = False,
            output_fmt: str = 'NCHW',
            intermediates_only: bool = False,
    ) -> Union[List[Tensor], Tuple[Tensor, List[Tensor]]]:
        """timm's feature API: the feature maps of the levels ``indices`` selects (``feature_info`` order; all if
        None, the last n if an int) and, unless ``intermediates_only``, the final features.

        ``stop_early`` skips what only later levels need (the final features are then those of the last level
        run), ``norm`` applies the final norm to the level it fits; the family's ``_forward_levels`` documents
        its levels.
        """
        take_indices, max_index = feature_take_indices(self._num_levels(), indices)
        final, intermediates = self._forward_levels(
            x, take_indices, max_index, norm, stop_early, output_fmt, not intermediates_only)
        if intermediates_only:
            return intermediates
        return final, intermediates

    def prune_intermediate_layers(
            self,
            indices: Union[int, List[int]] = 1,
            prune_norm: bool = False,
            prune_head: bool = True,
    ) -> List[int]:
        """timm's feature API: remove what the levels ``indices`` selects do not need (``prune_norm``: the final
        norm too, ``prune_head``: the classifier); returns the selected level indices. The family's
        ``_prune_levels`` documents what goes."""
        take_indices, max_index = feature_take_indices(self._num_levels(), indices)
        self._prune_levels(max_index, prune_norm, prune_head)
        return take_indices

    def forward_head(self, x: Tensor, pre_logits: bool = False) -> Tensor:
        return self.head(x, pre_logits=pre_logits)


class StagedModel(ZooModel):
    """A model ``stem -> stages -> norm -> head``: ``stages`` an ``nn.Sequential`` whose stage ``i`` gives feature
    level ``i``, ``norm`` the final norm (of the last stage only), ``head`` a timm ``ClassifierHead``.

    The family defines ``_check_input(x)`` (its input check), ``forward_features`` and ``forward``.
    """

    def _forward_levels(
            self, x: torch.Tensor, take_indices: List[int], max_index: int, norm: bool, stop_early: bool,
            output_fmt: str, final: bool) -> Tuple[torch.Tensor, List[torch.Tensor]]:
        """Stage outputs; ``norm`` applies the final norm to the last stage's output."""
        assert output_fmt == 'NCHW', 'forward_intermediates: only output_fmt=NCHW is supported'
        self._check_input(x)
        last_idx = len(self.stages) - 1
        x = self.stem(x)
        if torch.jit.is_scripting() or not stop_early:
            stages = self.stages
        else:
            stages = self.stages[:max_index + 1]
        intermediates = []
        feat_idx = 0
        for feat_idx, stage in enumerate(stages):
            x = stage(x)
            if feat_idx in take_indices:
                intermediates.append(self.norm(x) if norm and feat_idx == last_idx else x)
        if feat_idx == last_idx:
            x = self.norm(x)
        return x, intermediates

    def _prune_levels(self, max_index: int, prune_norm: bool, prune_head: bool) -> None:
        """Keep the stages up to ``max_index``. The final norm (sized for the last stage) goes with ``prune_norm``
        or when stages are removed; then the features end at the last kept stage and the head becomes a
        pass-through (pooling and classifier removed)."""
        prune_end = max_index < len(self.stages) - 1
        self.stages = self.stages[:max_index + 1]
        if prune_norm or prune_end:
            self.norm = nn.Identity().train(self.training)
        if prune_end:
            self.num_features = self.head_hidden_size = self.feature_info[max_index]['num_chs']
            self.head.reset(0, '', in_features=self.num_features)
            self.num_classes = 0
        elif prune_head:
            self.reset_classifier(0, '')
