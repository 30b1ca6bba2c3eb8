"""Residual Attention Network (Attention-56 / -92 for ImageNet, Attention-92 / -164 for CIFAR).

Wang et al., "Residual Attention Network for Image Classification", CVPR 2017 (arXiv:1704.06904). Official definition:
Caffe deploy prototxts at https://github.com/fwang91/residual-attention-network (no official weights).

The ImageNet networks follow the prototxts (Attention Modules in stages 1-3, pre-activation bottlenecks); the CIFAR
networks are reconstructed from the paper. Checkpoints of the popular PyTorch re-implementation (a different network)
are rejected with an explanation. Parameter counts, conventions and the CIFAR channel plan: docs/models.md.
"""
from collections import OrderedDict
from typing import Any, Dict, List, Sequence

import torch
import torch.nn as nn
from timm.layers import BatchNormAct2d, ClassifierHead
from timm.models import checkpoint_seq, generate_default_cfgs, register_model

from zoo.manifest import pretrained_cfgs
from zoo.layers.residual_attention import PreActBottleneck, ResidualAttentionModule, SoftMaskBranch
from zoo.models._helpers import DILATED_OUTPUT_STRIDES, OutputStrideError, StagedModel, build_zoo_model, imagenet_cfg
from zoo.models._helpers import stage_group_matcher
from zoo.models._helpers import CheckpointError, check_input, key_filter, strip_prefix, unwrap_state_dict
from zoo.models.spec import FamilySpec, MapReader

__all__ = ['ResidualAttentionNet']

CIFAR10_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR10_STD = (0.2470, 0.2435, 0.2616)


class ResAttStage(nn.Module):
    """One resolution: a transition unit (may change width / stride), attention modules, then plain units.

    In a dilated stage (``dilation`` > 1, stride 1) the transition unit's 3x3 conv takes ``first_dilation`` (the
    previous stage's dilation), every later unit and module ``dilation``, as timm's ResNet.
    """

    def __init__(
            self,
            in_chs: int,
            out_chs: int,
            stride: int,
            num_modules: int,
            mask_levels: int,
            num_post_units: int = 0,
            dilation: int = 1,
            first_dilation: int = 1,
            device=None,
            dtype=None,
    ):
        super().__init__()
        dd = {'device': device, 'dtype': dtype}
        self.grad_checkpointing = False
        blocks: List[nn.Module] = [PreActBottleneck(in_chs, out_chs, stride=stride, dilation=first_dilation, **dd)]
        blocks += [ResidualAttentionModule(out_chs, mask_levels, dilation=dilation, **dd) for _ in range(num_modules)]
        blocks += [PreActBottleneck(out_chs, out_chs, dilation=dilation, **dd) for _ in range(num_post_units)]
        self.blocks = nn.Sequential(*blocks)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.grad_checkpointing and not torch.jit.is_scripting():
            x = checkpoint_seq(self.blocks, x)
        else:
            x = self.blocks(x)
        return x


class ResidualAttentionNet(StagedModel, nn.Module):
    """Residual Attention Network with pre-activation bottleneck units.

    Feature levels are the stage outputs, raw pre-activation sums (``forward_intermediates(norm=True)`` applies the
    final BN-ReLU to the last one).
    """

    def __init__(
            self,
            stage_chs: Sequence[int] = (256, 512, 1024, 2048),
            stage_strides: Sequence[int] = (1, 2, 2, 2),
            stage_modules: Sequence[int] = (1, 1, 1, 0),
            mask_levels: Sequence[int] = (3, 2, 1, 0),
            stage_post_units: Sequence[int] = (0, 0, 0, 2),
            stem_type: str = 'imagenet',
            stem_chs: int = 64,
            output_stride: int = 32,
            in_chans: int = 3,
            num_classes: int = 1000,
            global_pool: str = 'avg',
            drop_rate: float = 0.,
            zero_init_last: bool = True,
            device=None,
            dtype=None,
    ):
        """
        Args:
            stage_chs, stage_strides: output width and stride of each stage's transition unit.
            stage_modules: Attention Modules per stage; mask_levels: max-pool levels of their soft masks.
            stage_post_units: plain units after the modules.
            stem_type: 'imagenet' (7x7/2 conv, BN-ReLU, 3x3/2 max-pool) or 'cifar' (3x3 conv, BN-ReLU).
            output_stride: 8, 16 or 32 (timm's ResNet): the stages past that stride keep their resolution, their
                strides become dilation (Attention Modules included: see ``SoftMaskBranch``).
            drop_rate: dropout before the classifier (none in the paper's networks).
            zero_init_last: zero-initialise the last convolution of every residual branch (as timm's ResNetV2),
                so that the untrained network starts as its shortcuts and stays numerically tame in eval mode
                (activations otherwise grow ~5x per Attention Module at initialisation).
        """
        super().__init__()
        dd = {'device': device, 'dtype': dtype}
        assert stem_type in ('imagenet', 'cifar')
        if output_stride not in DILATED_OUTPUT_STRIDES:
            raise OutputStrideError(f'ResidualAttentionNet supports output_stride 8, 16 or 32; got {output_stride}')
        self.num_classes = num_classes
        self.in_chans = in_chans
        self.drop_rate = drop_rate

        if stem_type == 'imagenet':
            self.stem = nn.Sequential(OrderedDict([
                ('conv', nn.Conv2d(in_chans, stem_chs, 7, stride=2, padding=3, bias=False, **dd)),
                ('norm', BatchNormAct2d(stem_chs, **dd)),
                ('pool', nn.MaxPool2d(3, stride=2, padding=1)),
            ]))
            reduction = 4
        else:
            self.stem = nn.Sequential(OrderedDict([
                ('conv', nn.Conv2d(in_chans, stem_chs, 3, stride=1, padding=1, bias=False, **dd)),
                ('norm', BatchNormAct2d(stem_chs, **dd)),
            ]))
            reduction = 1

        stages = []
        self.feature_info = []
        prev_chs = stem_chs
        dilation = 1
        for i, (chs, stride, n_mod, levels, n_post) in enumerate(
                zip(stage_chs, stage_strides, stage_modules, mask_levels, stage_post_units)):
            first_dilation = dilation
            if stride > 1 and reduction >= output_stride:
                dilation, stride = dilation * stride, 1
            stages.append(ResAttStage(prev_chs, chs, stride, n_mod, levels, n_post, dilation, first_dilation, **dd))
            reduction *= stride
            self.feature_info.append(dict(num_chs=chs, reduction=reduction, module=f'stages.{i}'))
            prev_chs = chs
        self.stages = nn.Sequential(*stages)
        self.num_features = self.head_hidden_size = prev_chs
        self.norm = BatchNormAct2d(prev_chs, **dd)  # the last unit's output is a raw sum: final BN-ReLU
        self.head = ClassifierHead(prev_chs, num_classes, pool_type=global_pool, drop_rate=drop_rate, **dd)

        self._init_weights(zero_init_last)

    def _init_weights(self, zero_init_last: bool = True) -> None:
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode='fan_out', nonlinearity='relu')
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, std=0.01)
                nn.init.zeros_(m.bias)
        if zero_init_last:
            for m in self.modules():
                if isinstance(m, PreActBottleneck):
                    nn.init.zeros_(m.conv3.weight)

    @torch.jit.ignore
    def group_matcher(self, coarse: bool = False) -> Dict[str, Any]:
        return stage_group_matcher(coarse)

    def _check_input(self, x: torch.Tensor) -> None:
        check_input(x, self.in_chans)  # an FX leaf: traced graphs keep the check

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        self._check_input(x)
        x = self.stem(x)
        x = self.stages(x)
        return self.norm(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))


SPEC = FamilySpec(name='resattnet', attention=(SoftMaskBranch,), maps=MapReader('soft_mask'),
    parity=dict(
        zoo_resattnet56='structure = official Caffe prototxt (no official weights or runnable code)',
        zoo_resattnet92='structure = official Caffe prototxt (no official weights or runnable code)',
        zoo_resattnet92_cifar='reconstructed from the paper (no official definition)',
        zoo_resattnet164_cifar='reconstructed from the paper (no official definition)',
    ),
)


@key_filter()
def checkpoint_filter_fn(state_dict: Dict[str, torch.Tensor], model: ResidualAttentionNet) -> Dict[str, torch.Tensor]:
    """Zoo-layout state dicts (bare or wrapped, optional ``module.`` prefix); no official weights exist."""
    state_dict = strip_prefix(unwrap_state_dict(state_dict), 'module.')
    if any(k.startswith(('residual_block1.', 'attention_module1.')) for k in state_dict):
        raise CheckpointError(
            'this is a tengshaofeng/ResidualAttentionNetwork-pytorch checkpoint: that re-implementation is a '
            'different network (extra terms in the soft-mask branch, other widths and head) and cannot be '
            'converted to the official Caffe graph that zoo_resattnet implements')
    return state_dict


def _cfg(**kwargs) -> Dict[str, Any]:
    return imagenet_cfg('stem.conv', 'head.fc', 'arXiv:1704.06904',
                        'https://github.com/fwang91/residual-attention-network', **{'interpolation': 'bilinear', **kwargs})


default_cfgs = generate_default_cfgs(pretrained_cfgs({
    **dict.fromkeys(('zoo_resattnet56', 'zoo_resattnet92'), _cfg()),
    **dict.fromkeys(('zoo_resattnet92_cifar', 'zoo_resattnet164_cifar'), _cfg(
        num_classes=10, input_size=(3, 32, 32), pool_size=(8, 8), crop_pct=1.0, mean=CIFAR10_MEAN, std=CIFAR10_STD)),
}))


def _cifar_args(m: int) -> Dict[str, Any]:
    return dict(
        stage_chs=(64, 128, 256), stage_strides=(1, 2, 2), stage_modules=(m, m, m), mask_levels=(3, 2, 1),
        stage_post_units=(0, 0, 3), stem_type='cifar', stem_chs=16)


# each variant's stage plan
model_args = dict(
    zoo_resattnet56=dict(stage_modules=(1, 1, 1, 0)),
    zoo_resattnet92=dict(stage_modules=(1, 2, 3, 0)),
    zoo_resattnet92_cifar=_cifar_args(2),
    zoo_resattnet164_cifar=_cifar_args(4),
)


def _create_resattnet(variant: str, pretrained: bool = False, **kwargs) -> ResidualAttentionNet:
    num_stages = len(dict(model_args[variant], **kwargs).get('stage_chs', (0,) * 4))
    return build_zoo_model(ResidualAttentionNet, variant, pretrained, checkpoint_filter_fn, model_args[variant], kwargs,
                           out_indices=range(num_stages))


@register_model
def zoo_resattnet56(pretrained: bool = False, **kwargs) -> ResidualAttentionNet:
    """Attention-56 (ImageNet, official prototxt): 31.81M params, 6.27 GMACs at 224."""
    return _create_resattnet('zoo_resattnet56', pretrained, **kwargs)


@register_model
def zoo_resattnet92(pretrained: bool = False, **kwargs) -> ResidualAttentionNet:
    """Attention-92 (ImageNet, official prototxt): 52.47M params, 10.53 GMACs at 224 (paper: 51.3M / 10.4)."""
    return _create_resattnet('zoo_resattnet92', pretrained, **kwargs)


@register_model
def zoo_resattnet92_cifar(pretrained: bool = False, **kwargs) -> ResidualAttentionNet:
    """Attention-92 for 32 px CIFAR input (2 modules per stage): 1.96M params (paper: 1.9M)."""
    return _create_resattnet('zoo_resattnet92_cifar', pretrained, **kwargs)


@register_model
def zoo_resattnet164_cifar(pretrained: bool = False, **kwargs) -> ResidualAttentionNet:
    """Attention-164 for 32 px CIFAR input (4 modules per stage): 3.58M params."""
    return _create_resattnet('zoo_resattnet164_cifar', pretrained, **kwargs)
