"""Zoo conformance checks that timm's own model tests do not make, over every registered zoo model.

timm's tests/test_models.py runs over every zoo model in tests/test_timm_suite.py (forward, backward with every
parameter receiving a gradient, default cfgs and the head/pooling contract, features_only, forward_intermediates,
pruning, TorchScript, FX). What stays here is what that file does not check: batch consistency and gradient
checkpointing giving the same output in training mode, the logits being the classifier applied to the pre-logits,
custom ``out_indices``, ``forward_intermediates(indices=...)``, odd and non-square input sizes, ``in_chans`` 1 / 4 and
a clear error for a wrong channel count; and every model through the tools that run it: torch's FLOP counter (no_grad
and inference_mode), forward hooks inside ``torch.utils.module_tracker``, the attention maps and Grad-CAM of zoo.viz
(the zoo-visualize CLI itself runs per family in tests/test_viz.py). A family joins by registering its models;
nothing here names a family.

Small inputs keep it fast (64 px, or the model's own smaller / minimum size).
"""
import math
from collections import Counter

import numpy as np
import pytest
import timm
import torch
import torch.nn as nn
from torch.utils.flop_counter import FlopCounterMode
from torch.utils.module_tracker import ModuleTracker

import zoo
from zoo.viz import cam_target, collect_maps, find_attention_modules

from helpers import fp32_and_fp64, max_diff, tol_from_spread

MODELS = zoo.list_models()


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
    h, w = size if isinstance(size, tuple) else (size or _size(name),) * 2
    return torch.randn(batch, chans, h, w, generator=torch.Generator().manual_seed(0))


def _create(name, **kwargs):
    torch.manual_seed(0)
    return timm.create_model(name, **kwargs)


@pytest.mark.parametrize('name', MODELS)
def test_batch_consistency_and_grad_checkpointing(name):
    """Batch 1 equals the first sample of batch 2; with set_grad_checkpointing() in *training* mode (where the
    checkpointed path runs; BN/dropout in eval) the output is unchanged, both within the model's float32 spread on
    that sample (a training-mode form may differ, e.g. OverLoCK's unmerged branches)."""
    model = _create(name).eval()
    x = _x(name)
    out1, out1_64 = fp32_and_fp64(model, x[:1])
    tol = tol_from_spread(max_diff(out1, out1_64))
    with torch.no_grad():
        out = model(x)
    torch.testing.assert_close(out1, out[:1], rtol=0, atol=tol)
    model.set_grad_checkpointing(True)
    model.train()
    for m in model.modules():
        if isinstance(m, (nn.modules.batchnorm._BatchNorm, nn.Dropout)):
            m.eval()
    with torch.no_grad():
        out_ckpt = model(x[:1])
    torch.testing.assert_close(out_ckpt, out1, rtol=0, atol=tol)


@pytest.mark.parametrize('name', MODELS)
def test_pretrained_cfg_fields(name):
    """The cfg fields data pipelines read are present and consistent (timm checks only the module names)."""
    cfg = _cfg(name)
    for key in ('mean', 'std', 'input_size', 'interpolation', 'crop_pct', 'num_classes', 'license'):
        assert cfg.get(key) is not None, f'{key} missing from pretrained cfg'
    assert len(cfg['mean']) == len(cfg['std']) == cfg['input_size'][0]
    assert 0 < cfg['crop_pct'] <= 1 and cfg['interpolation'] in ('bilinear', 'bicubic', 'nearest')
    with torch.device('meta'):
        model = _create(name)
    assert model.pretrained_cfg['architecture'] == name


@pytest.mark.parametrize('name', MODELS)
def test_logits_are_classifier_of_pre_logits(name):
    """forward == classifier(forward_head(pre_logits)); reset_classifier(0) returns exactly the pre-logits, and
    reset_classifier(n) installs an n-way classifier that get_classifier() returns (timm compares only shapes)."""
    model = _create(name).eval()
    x = _x(name)
    with torch.no_grad():
        pre = model.forward_head(model.forward_features(x), pre_logits=True)
        model.reset_classifier(11)
        clf = model.get_classifier()
        assert isinstance(clf, nn.Module) and not isinstance(clf, nn.Identity)
        with torch.no_grad():
            for p in clf.parameters():
                p.normal_(generator=torch.Generator().manual_seed(1))
        out = model(x)
        assert out.shape == (2, 11)
        if isinstance(clf, nn.Linear):
            assert clf.out_features == 11
            torch.testing.assert_close(out, clf(pre), rtol=0, atol=0)  # the same ops: exact
        model.reset_classifier(0)
        torch.testing.assert_close(model(x), pre, rtol=0, atol=0)


@pytest.mark.parametrize('name', MODELS)
def test_features_only_custom_out_indices(name):
    """features_only with the two deepest default levels: those levels' channels, in order, at the same maps."""
    x = _x(name)
    full = _create(name, features_only=True).eval()
    custom = tuple(full.feature_info.out_indices)[-2:]
    model = _create(name, features_only=True, out_indices=custom).eval()
    with torch.no_grad():
        outs = model(x)
    assert [o.shape[1] for o in outs] == model.feature_info.channels() == full.feature_info.channels()[-2:]
    s = x.shape[-1]
    for o, r in zip(outs, model.feature_info.reduction()):
        assert s // r - 1 <= o.shape[-1] <= math.ceil(s / r) + 1, (o.shape, r)


@pytest.mark.parametrize('name', MODELS)
def test_forward_intermediates_indices(name):
    """indices=1 gives the last intermediate alone, equal to the one of the full call."""
    model = _create(name).eval()
    x = _x(name)
    with torch.no_grad():
        _, inters = model.forward_intermediates(x)
        only = model.forward_intermediates(x, indices=1, intermediates_only=True)
    assert len(only) == 1
    torch.testing.assert_close(only[0], inters[-1], rtol=0, atol=0)  # the same ops: exact


@pytest.mark.parametrize('name', MODELS)
def test_odd_input_size(name):
    """Any input size: odd, non-square inputs give finite logits and maps of about size / reduction."""
    model = _create(name, num_classes=3).eval()
    s = _size(name)
    h, w = s + 1 - s % 2, s + 7 - s % 2  # odd, not square
    x = _x(name, batch=1, size=(h, w))
    with torch.no_grad():
        out = model(x)
        inters = model.forward_intermediates(x, intermediates_only=True)
    assert out.shape == (1, 3) and torch.isfinite(out).all()
    reductions = [f['reduction'] for f in model.feature_info][-len(inters):]
    for t, r in zip(inters, reductions):
        assert h // r - 1 <= t.shape[-2] <= math.ceil(h / r) + 1 and w // r - 1 <= t.shape[-1] <= math.ceil(w / r) + 1, (
            tuple(t.shape), r, (h, w))


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


# ---------------------------------------------------------------------------------------------- tools

@pytest.fixture(scope='module', params=MODELS)
def built(request):
    """(model in eval mode, one input image): built once for the tool tests below."""
    return _create(request.param).eval(), _x(request.param, batch=1)


def _tracker_names(model):
    """Every name of each module as ModuleTracker spells it (root class name first; a shared module has several)."""
    names = {}
    for n, m in model.named_modules(remove_duplicate=False):
        names.setdefault(m, set()).add(f'{type(model).__name__}.{n}' if n else type(model).__name__)
    return names


def test_flop_counter_no_grad_and_inference_mode(built):
    """The FLOP counter runs under no_grad and inference_mode and counts the same FLOPs in every module (the op mix
    may differ: aten.matmul folds into mm or bmm depending on the grad mode); the attention modules count FLOPs."""
    model, x = built
    totals = []
    for mode in (torch.no_grad, torch.inference_mode):
        with mode(), FlopCounterMode(display=False) as fc:
            model(x)
        totals.append({m: sum(ops.values()) for m, ops in fc.get_flop_counts().items()})
    assert totals[0] == totals[1]
    assert totals[0]['Global'] > 0
    names = _tracker_names(model)
    for name, m, _ in find_attention_modules(model):
        assert any(totals[0].get(n, 0) > 0 for n in names[m]), f'{name}: no FLOPs counted'


def test_forward_hooks_inside_module_tracker(built):
    """The viz's hooks (pre and post, with kwargs) fire on every attention module inside torch's ModuleTracker under
    no_grad and inference_mode, the same number of times; the tracker places each module in the model."""
    model, x = built
    mods = find_attention_modules(model)
    assert mods
    names = _tracker_names(model)
    calls = []
    with ModuleTracker() as tracker:
        def pre(mod, args, kwargs):
            assert names[mod] & tracker.parents and type(model).__name__ in tracker.parents
            calls[-1][mod] += 1

        def post(mod, args, kwargs, out):
            assert all(torch.isfinite(t).all() for t in (out if isinstance(out, (tuple, list)) else [out]))
        handles = [h for _, m, _ in mods for h in (m.register_forward_pre_hook(pre, with_kwargs=True),
                                                    m.register_forward_hook(post, with_kwargs=True))]
        try:
            for mode in (torch.no_grad, torch.inference_mode):
                calls.append(Counter())
                with mode():
                    model(x)
                assert tracker.parents == {'Global'}
        finally:
            for h in handles:
                h.remove()
    assert calls[0] == calls[1] and set(calls[0]) == {m for _, m, _ in mods}


def test_attention_maps_and_grad_cam(built):
    """zoo.viz on every model: a finite map from every attention module; Grad-CAM's target layers receive the
    gradient of the top-1 logit, and the gradient-weighted activation map (Grad-CAM before its ReLU, which may
    legitimately zero every cell of a random model's small grid) is finite and not constant."""
    pytest.importorskip('pytorch_grad_cam')
    from pytorch_grad_cam import GradCAM
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget
    model, x = built
    maps = collect_maps(model, x, last_per_stage=False)
    assert {m.module for m in maps} == {n for n, _, _ in find_attention_modules(model)}
    assert all(torch.isfinite(m.data).all() for m in maps)

    with torch.no_grad():
        targets = [ClassifierOutputTarget(int(model(x)[0].argmax()))]
    layers, reshape = cam_target(model, x)
    with GradCAM(model=model, target_layers=layers, reshape_transform=reshape) as cam:
        out = cam(input_tensor=x, targets=targets)
        acts, grads = cam.activations_and_grads.activations, cam.activations_and_grads.gradients
        assert len(acts) == len(grads) == len(layers)
        for layer, a, g in zip(layers, acts, grads):
            assert a.dim() == 4 and a.shape == g.shape and g.abs().sum() > 0
            raw = cam.get_cam_image(x, layer, targets, a, g.numpy())
            assert np.isfinite(raw).all() and raw.std() > 0
    model.zero_grad(set_to_none=True)
    assert out.shape == (1,) + tuple(x.shape[-2:]) and np.isfinite(out).all()
    assert 0 <= out.min() and out.max() <= 1
