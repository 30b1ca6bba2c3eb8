"""CBAM and triplet attention as drop-in attention layers of timm's own CNN families.

For every family claimed in docs/training.md: build a small model with ``zoo.layers.CBAM`` and with
``zoo.layers.TripletAttention``, check that the module fills every attention slot the family has (counted with a
placeholder layer built the same way) and none of timm's own attention modules remain, and run forward + backward.
The families that do not take an attention layer are checked to refuse it (TypeError), so that page's list
stays true when timm changes.
"""
from dataclasses import replace
from functools import partial

import pytest
import timm
import torch
import torch.nn as nn
from timm.layers import SEModule, create_attn, get_attn
from timm.models._efficientnet_blocks import SqueezeExcite
from timm.models.byobnet import ByobNet, model_cfgs as byob_cfgs

from zoo.layers import CBAM, TripletAttention


class _Slot(nn.Module):
    """Placeholder attention layer: accepts what a family passes (channels, SE kwargs, device/dtype); identity."""

    def __init__(self, channels, *args, **kwargs):
        super().__init__()

    def forward(self, x):
        return x


# family -> builder(attn_layer): a small model of the family with ``attn_layer`` in its attention slot
FAMILIES = {
    'resnet (resnet18)': lambda a: timm.create_model('resnet18', num_classes=5, block_args=dict(attn_layer=a)),
    'resnet-d (test_resnet: deep stem, avg-down)': lambda a: timm.create_model(
        'test_resnet', num_classes=5, block_args=dict(attn_layer=a)),
    'sk-resnet (skresnet18)': lambda a: timm.create_model('skresnet18', num_classes=5, block_args=dict(attn_layer=a)),
    'byobnet (test_byobnet: edge/dark/basic/bottle blocks)': lambda a: ByobNet(
        replace(byob_cfgs['test_byobnet'], attn_layer=a, attn_kwargs=_kw(a, byob_cfgs['test_byobnet'].attn_kwargs)),
        num_classes=5),
    'byobnet regnet-z (regnetz_b16)': lambda a: ByobNet(
        replace(byob_cfgs['regnetz_b16'], attn_layer=a, attn_kwargs=_kw(a, byob_cfgs['regnetz_b16'].attn_kwargs)),
        num_classes=5),
    'nfnet (test_nfnet)': lambda a: timm.create_model(
        'test_nfnet', num_classes=5, attn_layer=a, attn_kwargs=_kw(a, dict(rd_ratio=0.5))),
    'efficientnet (test_efficientnet)': lambda a: timm.create_model('test_efficientnet', num_classes=5, se_layer=a),
    'efficientnet (efficientnet_b0)': lambda a: timm.create_model('efficientnet_b0', num_classes=5, se_layer=a),
}


def _kw(attn_layer, se_kwargs):
    """The family's SE kwargs for CBAM (rd_ratio sets its MLP width), none for triplet attention."""
    return {} if _base(attn_layer) is TripletAttention else dict(se_kwargs or {})


def _base(attn_layer):
    return attn_layer.func if isinstance(attn_layer, partial) else attn_layer


def _count(model, cls):
    return sum(type(m) is cls for m in model.modules())


@pytest.mark.parametrize('layer', [CBAM, partial(TripletAttention, kernel_size=3)], ids=['cbam', 'triplet_k3'])
@pytest.mark.parametrize('family', list(FAMILIES))
def test_dropin_fills_every_attention_slot_and_trains(family, layer):
    torch.manual_seed(0)
    build = FAMILIES[family]
    slots = _count(build(_Slot), _Slot)
    assert slots > 0, f'{family}: no attention slot'
    model = build(layer)
    cls = _base(layer)
    assert _count(model, cls) == slots, f'{family}: {_count(model, cls)} {cls.__name__} modules for {slots} slots'
    assert _count(model, SEModule) == 0 and _count(model, SqueezeExcite) == 0, 'a timm SE module is left'
    if cls is TripletAttention:
        assert all(m.cw.conv.kernel_size == (3, 3) for m in model.modules() if isinstance(m, TripletAttention))

    model.train()
    y = model(torch.randn(2, 3, 64, 64))
    assert y.shape == (2, 5) and torch.isfinite(y).all()
    y.square().mean().backward()
    attn_params = [(n, p) for n, p in model.named_parameters()
                   if any(isinstance(m, cls) for m in _owners(model, n))]
    assert attn_params, 'attention modules without parameters'
    assert all(p.grad is not None for _, p in attn_params), 'attention parameters without gradient'


def _owners(model, param_name):
    """The modules on the path to a parameter."""
    mods, m = [], model
    for part in param_name.split('.')[:-1]:
        m = getattr(m, part)
        mods.append(m)
    return mods


def test_efficientnet_se_ratio_sets_cbam_width():
    """EfficientNet passes its per-block SE ratio (rd_ratio): CBAM's channel MLP gets timm's SE width."""
    ref = timm.create_model('test_efficientnet')
    ses = [m for m in ref.modules() if isinstance(m, SqueezeExcite)]
    model = timm.create_model('test_efficientnet', se_layer=CBAM)
    cbams = [m for m in model.modules() if isinstance(m, CBAM)]
    assert len(ses) == len(cbams) > 0
    for se, cb in zip(ses, cbams):
        assert cb.channel.fc1.in_features == se.conv_reduce.in_channels
        assert cb.channel.fc1.out_features == se.conv_reduce.out_channels


def test_dropin_follows_device_and_dtype():
    """timm passes device/dtype to the attention layer: nothing is created elsewhere."""
    for layer in (CBAM, TripletAttention):
        model = timm.create_model('test_resnet', block_args=dict(attn_layer=layer), device='meta', dtype=torch.float64)
        assert _count(model, layer) > 0
        assert all(t.device.type == 'meta' for t in [*model.parameters(), *model.buffers()])
        assert all(p.dtype == torch.float64 for p in model.parameters())


def test_create_attn_takes_the_class_not_a_name():
    """timm's create_attn resolves a fixed list of names ('cbam' is timm's own CbamModule); a class or partial
    passes straight through, which is how the zoo modules are used."""
    assert type(create_attn(CBAM, 32)) is CBAM
    assert type(create_attn(partial(TripletAttention, kernel_size=3), 32)) is TripletAttention
    assert get_attn('cbam') is not CBAM
    with pytest.raises(AssertionError):
        get_attn('triplet')


@pytest.mark.parametrize('name,kwargs', [
    ('regnetx_002', dict(attn_layer=CBAM)),           # timm's RegNet: SE hard-wired (se_ratio), no attn_layer
    ('mobilenetv3_small_050', dict(se_layer=CBAM)),   # MobileNetV3 sets its own se_layer
])
def test_families_without_an_attention_argument_refuse_it(name, kwargs):
    with pytest.raises(TypeError):
        timm.create_model(name, **kwargs)


def test_cbam_and_triplet_share_one_gate_and_zpool():
    """One Z-pool and one conv-BN-sigmoid gate serve both modules; parameter names stay the official layouts'."""
    from zoo.layers import AttentionGate, ZPool, zpool
    cbam, trip = CBAM(32), TripletAttention(32)
    assert isinstance(cbam.spatial, AttentionGate)
    assert all(type(g) is AttentionGate for g in (trip.cw, trip.hc, trip.hw))
    assert sorted(k for k in cbam.state_dict() if k.startswith('spatial.')) == [
        'spatial.bn.bias', 'spatial.bn.num_batches_tracked', 'spatial.bn.running_mean', 'spatial.bn.running_var',
        'spatial.bn.weight', 'spatial.conv.weight']
    assert {k.split('.', 1)[1] for k in trip.state_dict()} == {
        'bn.bias', 'bn.num_batches_tracked', 'bn.running_mean', 'bn.running_var', 'bn.weight', 'conv.weight'}
    assert (cbam.spatial.bn.weight == 0).all() and (trip.hw.bn.weight == 1).all()  # the two official inits
    x = torch.randn(2, 5, 6, 7)
    torch.testing.assert_close(ZPool(2)(x), torch.stack([x.amax(2), x.mean(2)], 1))
    torch.testing.assert_close(zpool(x, 1), torch.cat([x.amax(1, keepdim=True), x.mean(1, keepdim=True)], 1))
