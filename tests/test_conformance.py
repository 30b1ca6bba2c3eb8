"""timm conformance suite: every registered zoo model is held to the checks timm's own tests/test_models.py
applies to timm models. A family joins this suite by registering its models; nothing here names a family.

Small inputs keep it fast (64 px, or the model's own smaller/minimum size); the full-resolution
default-cfg check is in the slow tier.
"""
import importlib
import math

import pytest
import timm
import torch

import zoo

MODELS = zoo.list_models()
FAMILIES = zoo.model_families()
MODULE_OF = {name: mod for mod, names in FAMILIES.items() for name in names}


def _family_module(name):
    return importlib.import_module(f'zoo.models.{MODULE_OF[name]}')


def _cfg(name):
    return timm.models.get_pretrained_cfg(name).to_dict()


def _size(name):
    """Test input size: the model's default size capped at 64, raised to its min_input_size."""
    cfg = _cfg(name)
    s = min(cfg['input_size'][-1], 64)
    if cfg.get('min_input_size'):
        s = max(s, cfg['min_input_size'][-1])
    return s


def _x(name, batch=2, chans=3, size=None):
    s = size or _size(name)
    return torch.randn(batch, chans, s, s, generator=torch.Generator().manual_seed(0))


def _create(name, **kwargs):
    torch.manual_seed(0)
    return timm.create_model(name, **kwargs)


def test_registry_not_empty():
    assert len(MODELS) > 0
    assert all(n.startswith('zoo_') for n in MODELS)


@pytest.mark.parametrize('name', MODELS)
def test_forward_backward(name):
    """timm test_model_backward: train mode, new class count, every parameter receives a gradient."""
    model = _create(name, num_classes=7)
    model.train()
    out = model(_x(name))
    assert out.shape == (2, 7)
    assert torch.isfinite(out).all()
    out.mean().backward()
    no_grad = [n for n, p in model.named_parameters() if p.requires_grad and p.grad is None]
    assert not no_grad, f'parameters without gradient: {no_grad[:10]}'


@pytest.mark.parametrize('name', MODELS)
def test_eval_forward_grad_checkpointing(name):
    """timm test_model_forward: eval output, batch 1, and set_grad_checkpointing() giving the same output."""
    model = _create(name).eval()
    x = _x(name)
    with torch.no_grad():
        out = model(x)
        out1 = model(x[:1])
    assert out.shape == (2, model.num_classes) and torch.isfinite(out).all()
    assert out1.shape == (1, model.num_classes)
    torch.testing.assert_close(out1, out[:1], rtol=1e-4, atol=1e-4)
    model.set_grad_checkpointing(True)
    model.train()
    # BN layers in eval so the comparison is exact; checkpointing is only active in training
    for m in model.modules():
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm) or isinstance(m, torch.nn.Dropout):
            m.eval()
    with torch.no_grad():
        out_ckpt = model(x)
    torch.testing.assert_close(out_ckpt, out, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize('name', MODELS)
def test_pretrained_cfg_sanity(name):
    """timm test_model_default_cfgs (static part): cfg fields present and naming real modules."""
    cfg = _cfg(name)
    for key in ('mean', 'std', 'input_size', 'interpolation', 'crop_pct', 'num_classes'):
        assert cfg.get(key) is not None, f'{key} missing from pretrained cfg'
    assert len(cfg['mean']) == len(cfg['std']) == cfg['input_size'][0]
    model = _create(name)
    sd = model.state_dict()
    for key in ('first_conv', 'classifier'):
        names = cfg.get(key)
        assert names, f'{key} missing from pretrained cfg'
        for n in ([names] if isinstance(names, str) else names):
            assert n + '.weight' in sd, f'{key}={n!r} does not name a module with a weight'
    assert model.num_classes == cfg['num_classes'] and model.num_features > 0 and model.head_hidden_size > 0
    assert model.pretrained_cfg['architecture'] == name


@pytest.mark.parametrize('name', MODELS)
def test_features_head_reset(name):
    """forward_features + forward_head(pre_logits), reset_classifier(0 / 0,'' / new count), num_classes=0."""
    model = _create(name).eval()
    x = _x(name)
    with torch.no_grad():
        feat = model.forward_features(x)
        assert feat.dim() == 4 and feat.shape[1] == model.num_features
        pre = model.forward_head(feat, pre_logits=True)
        assert pre.shape == (2, model.head_hidden_size)
        model.reset_classifier(0)
        assert model.num_classes == 0
        out = model(x)
        assert out.shape == pre.shape
        torch.testing.assert_close(out, pre, rtol=1e-5, atol=1e-5)
        model.reset_classifier(11)
        assert model(x).shape == (2, 11)
        assert model.get_classifier() is not None
        model.reset_classifier(0, '')
        out4 = model(x)
        assert out4.dim() == 4 and out4.shape[1] == model.num_features
        m0 = _create(name, num_classes=0, global_pool='').eval()
        assert m0(x).dim() == 4


@pytest.mark.parametrize('name', MODELS)
def test_features_only(name):
    """timm test_model_forward_features: >=3 levels, channels and reductions as feature_info."""
    x = _x(name)
    s = x.shape[-1]
    model = _create(name, features_only=True).eval()
    info = model.feature_info
    assert len(info.channels()) >= 3
    reds = info.reduction()
    assert all(a <= b for a, b in zip(reds, reds[1:])), f'reductions must not decrease: {reds}'
    with torch.no_grad():
        outs = model(x)
    assert len(outs) == len(info.channels())
    for o, c, r in zip(outs, info.channels(), reds):
        assert o.shape[1] == c
        assert o.shape[-1] <= math.ceil(s / r) + 1 and o.shape[-1] >= s // r - 1, (o.shape, r)
        assert torch.isfinite(o).all()
    # custom out_indices: the two deepest levels of the default set
    custom = tuple(model.feature_info.out_indices)[-2:]
    m2 = _create(name, features_only=True, out_indices=custom).eval()
    with torch.no_grad():
        outs2 = m2(x)
    assert [o.shape[1] for o in outs2] == m2.feature_info.channels() == info.channels()[-2:]


@pytest.mark.parametrize('name', MODELS)
def test_forward_intermediates(name):
    """timm test_model_forward_intermediates: shapes vs feature_info; final == forward_features."""
    model = _create(name).eval()
    x = _x(name)
    s = x.shape[-1]
    feat_info = timm.create_model(name, features_only=True).feature_info
    with torch.no_grad():
        final, inters = model.forward_intermediates(x)
        ref = model.forward_features(x)
        only = model.forward_intermediates(x, indices=1, intermediates_only=True)
    torch.testing.assert_close(final, ref, rtol=1e-5, atol=1e-5)
    assert len(inters) >= len(feat_info.channels())
    chans = [i.shape[1] for i in inters][-len(feat_info.channels()):]
    assert chans == feat_info.channels()
    for t, r in zip(inters[-len(feat_info.channels()):], feat_info.reduction()):
        assert t.shape[-1] <= math.ceil(s / r) + 1
    assert len(only) == 1 and only[0].shape == inters[-1].shape


@pytest.mark.parametrize('name', MODELS)
@pytest.mark.parametrize('chans', [1, 4])
def test_in_chans(name, chans):
    model = _create(name, in_chans=chans, num_classes=3).eval()
    with torch.no_grad():
        out = model(_x(name, chans=chans))
    assert out.shape == (2, 3) and torch.isfinite(out).all()


@pytest.mark.parametrize('name', MODELS)
def test_wrong_in_chans_is_clear(name):
    model = _create(name, num_classes=3).eval()
    with pytest.raises((ValueError, RuntimeError), match=r'(?s)\b3\b.*channels.*\b5\b.*channels'):
        with torch.no_grad():
            model(_x(name, chans=5))


@pytest.mark.parametrize('name', MODELS)
def test_torchscript(name):
    """timm test_model_forward_torchscript, for the families that declare TorchScript support."""
    if not getattr(_family_module(name), 'TORCHSCRIPT', False):
        pytest.skip(f'{MODULE_OF[name]} declares no TorchScript support (torch.compile is tested instead)')
    from timm.layers import set_layer_config
    with set_layer_config(scriptable=True):
        model = _create(name).eval()
    x = _x(name)
    scripted = torch.jit.script(model)
    with torch.no_grad():
        torch.testing.assert_close(scripted(x), model(x), rtol=1e-4, atol=1e-4)


@pytest.mark.slow
@pytest.mark.parametrize('name', MODELS)
def test_default_cfg_full_size(name):
    """timm test_model_default_cfgs at the default input size: forward_features spatial == pool_size."""
    cfg = _cfg(name)
    model = _create(name).eval()
    x = torch.randn(1, *cfg['input_size'])
    with torch.no_grad():
        feat = model.forward_features(x)
    assert feat.shape[1] == model.num_features
    if cfg.get('pool_size'):
        assert tuple(feat.shape[-2:]) == tuple(cfg['pool_size']), (feat.shape, cfg['pool_size'])
    with torch.no_grad():
        assert torch.isfinite(model.forward_head(feat)).all()
