"""Attention maps (zoo.viz): for each family the maps come from the real modules (they reproduce the module's own
output where that is checkable), have the right shapes and ranges, change with the input; the PNG is written."""
import pytest
import timm
import torch

import zoo  # noqa: F401
from zoo.viz import collect_maps, find_attention_modules, load_image

# one small model per family, small inputs
FAMILIES = {
    'cbam': ('zoo_resnet18_cbam', 64),
    'triplet': ('zoo_resnet18_triplet', 64),
    'biformer': ('zoo_biformer_tiny', 112),
    'halonet': ('zoo_halonet_h0', 64),
    'coat': ('zoo_coat_lite_tiny', 64),
    'lkca': ('zoo_lkca_vit_05m', 64),
    'resattnet': ('zoo_resattnet92_cifar', 32),
    'overlock': ('zoo_overlock_xt', 64),
}
# kinds every family must produce (prefix match)
KINDS = {
    'cbam': ['channel gate', 'spatial gate'],
    'triplet': ['C-W gate', 'H-C gate', 'H-W gate'],
    'biformer': ['routed regions', 'token attention'],
    'halonet': ['halo attention'],
    'coat': ['conv pos. encoding', 'conv rel. pos. enc.', 'factorized attn'],
    'lkca': ['kernel', 'attention row', '|output|'],
    'resattnet': ['soft mask'],
    'overlock': ['dynamic 5x5 kernel', 'dynamic 13x13 kernel', '5x5 kernel peak'],
}


def _trained_like(model: torch.nn.Module) -> torch.nn.Module:
    """Random init leaves some gates constant (CBAM's spatial BN starts at gamma = 0, LKCA's kernel and ContMix's
    position biases at 0); perturb every constant parameter so that the maps depend on the input."""
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in model.parameters():
            if p.numel() > 1 and float(p.std()) == 0. or p.numel() == 1:
                p.add_(torch.randn(p.shape, generator=g) * 0.2)
        for m in model.modules():  # ContMix: its small trunc-normal init makes the kernels nearly input-independent
            if hasattr(m, 'kernel_proj'):
                m.kernel_proj.weight.mul_(50.)
    return model.eval()


_CACHE = {}


def _model(fam):
    if fam not in _CACHE:
        name, size = FAMILIES[fam]
        _CACHE[fam] = (_trained_like(timm.create_model(name)), size)
    return _CACHE[fam]


@pytest.mark.parametrize('fam', list(FAMILIES))
def test_maps_shapes_ranges_and_input_dependence(fam):
    model, size = _model(fam)
    x1 = load_image(None, model, size=(size, size), seed=1)
    x2 = load_image(None, model, size=(size, size), seed=2)
    m1, m2 = collect_maps(model, x1), collect_maps(model, x2)
    assert m1 and {m.family for m in m1} == {fam}
    kinds = [m.kind for m in m1]
    for k in KINDS[fam]:
        assert any(kind.startswith(k) for kind in kinds), (k, kinds)
    # one row per feature stage that holds attention modules, named after the stage
    assert len({m.stage for m in m1}) >= 2
    changed = set()
    assert len(m1) == len(m2)
    for a, b in zip(m1, m2):
        assert (a.stage, a.kind) == (b.stage, b.kind) and a.data.shape == b.data.shape
        assert torch.isfinite(a.data).all()
        assert a.data.dim() in (1, 2)
        if a.unit:
            assert float(a.data.min()) >= 0. and float(a.data.max()) <= 1. + 1e-6, (a.kind, a.data.min(), a.data.max())
        if a.input_dependent and not torch.allclose(a.data, b.data):
            changed.add(a.kind.split(' (')[0])
        if not a.input_dependent:
            assert torch.equal(a.data, b.data)
    for a in m1:
        if a.input_dependent:
            assert any(c == a.kind.split(' (')[0] for c in changed), f'{a.kind} does not change with the input'


def _io(model, cls_names, x):
    """Inputs/outputs of the attention modules, taken independently of zoo.viz."""
    rec = []
    hs = [m.register_forward_hook(lambda mod, i, o: rec.append((mod, tuple(t.clone() for t in i), o.clone())))
          for m in model.modules() if type(m).__name__ in cls_names]
    with torch.no_grad():
        model(x)
    for h in hs:
        h.remove()
    return rec


def _module_maps_and_io(fam, cls_name):
    """``(maps, input, output)`` of each attention module of the family's model, in order: its maps from zoo.viz,
    and its input and output recorded independently of zoo.viz."""
    model, size = _model(fam)
    x = load_image(None, model, size=(size, size), seed=3)
    maps = collect_maps(model, x, last_per_stage=False)
    io = _io(model, {cls_name}, x)
    names = [n for n, _, f in find_attention_modules(model)]
    assert names and len(io) == len(names)
    return [([m for m in maps if m.module == name], inp[0][0], out[0]) for name, (mod, inp, out) in zip(names, io)]


def test_cbam_gates_reproduce_module_output():
    for maps, xin, out in _module_maps_and_io('cbam', 'CBAM'):
        ch = next(m.data for m in maps if m.kind == 'channel gate')
        sp = next(m.data for m in maps if m.kind == 'spatial gate')
        assert ch.shape == (xin.shape[0],) and sp.shape == xin.shape[1:]
        torch.testing.assert_close(out, xin * ch[:, None, None] * sp[None], rtol=1e-4, atol=1e-5)


def test_triplet_gates_reproduce_module_output():
    for maps, xin, out in _module_maps_and_io('triplet', 'TripletAttention'):
        g = {m.kind.split(' ')[0]: m.data for m in maps}
        C, H, W = xin.shape
        assert g['C-W'].shape == (C, W) and g['H-C'].shape == (H, C) and g['H-W'].shape == (H, W)
        scale = (g['C-W'][:, None, :] + g['H-C'].t()[:, :, None] + g['H-W'][None]) / 3
        torch.testing.assert_close(out, xin * scale, rtol=1e-4, atol=1e-5)


def test_biformer_routing_and_token_attention():
    model, size = _model('biformer')
    x = load_image(None, model, size=(size, size), seed=4)
    maps = collect_maps(model, x)
    bras = {n: m for n, m, f in find_attention_modules(model)}
    assert {m.kind.split(' ')[0] for m in maps} == {'routed', 'token'}
    for m in maps:
        bra = bras[m.module]
        if m.kind.startswith('routed'):
            assert m.data.shape == (bra.n_win, bra.n_win)
            assert int(m.data.sum()) == bra.topk and set(m.data.unique().tolist()) <= {0., 1.}
        else:
            # probabilities of one query token over its routed tokens: sum to 1 where nothing is cropped
            s = float(m.data.sum())
            assert 0. < s <= 1. + 1e-5
            if size % (bra.n_win * (size // m.data.shape[0])) == 0:
                assert abs(s - 1.) < 1e-4


def test_halo_and_kernels_are_distributions():
    model, size = _model('halonet')
    maps = collect_maps(model, load_image(None, model, size=(size, size)))
    assert maps
    for m in maps:
        s = float(m.data.sum())
        assert 0. < s <= 1. + 1e-5
    model, size = _model('overlock')
    kernels = [m for m in collect_maps(model, load_image(None, model, size=(size, size)))
               if m.kind.startswith('dynamic')]
    assert kernels
    for m in kernels:
        k = m.data.shape[0]
        assert m.data.shape == (k, k) and abs(float(m.data.sum()) - 1.) < 1e-4


def test_resattnet_masks_match_stages():
    model, size = _model('resattnet')
    feats = timm.create_model('zoo_resattnet92_cifar', features_only=True).feature_info.reduction()
    maps = collect_maps(model, load_image(None, model, size=(size, size)))
    assert [tuple(m.data.shape) for m in maps] == [(size // r, size // r) for r in feats]
    for m in maps:
        assert 0. < float(m.data.min()) and float(m.data.max()) < 1.


@pytest.mark.parametrize('fam', list(FAMILIES))
def test_visualize_cli_with_grad_cam(fam, tmp_path, capsys):
    """zoo-visualize, Grad-CAM panel included, for one model per family (every model's maps and Grad-CAM:
    tests/test_conformance.py)."""
    pytest.importorskip('pytorch_grad_cam')
    pytest.importorskip('matplotlib')
    from zoo.cli.visualize import main
    name, size = FAMILIES[fam]
    out = tmp_path / 'maps.png'
    assert main([name, '--size', str(size), str(size), '--out', str(out)]) == 0
    data = out.read_bytes()
    assert data[:8] == b'\x89PNG\r\n\x1a\n' and len(data) > 10_000
    assert 'maps from' in capsys.readouterr().out


def test_grad_cam_nhwc_model():
    pytest.importorskip('pytorch_grad_cam')
    from zoo.viz import grad_cam
    model, size = _model('biformer')
    cam = grad_cam(model, load_image(None, model, size=(size, size)))
    assert cam.shape == (size, size) and 0. <= cam.min() and cam.max() <= 1.


def test_visualize_user_errors(tmp_path, capsys):
    from zoo.cli.visualize import main
    assert main(['zoo_resnet18_cbamm', '--out', str(tmp_path / 'a.png')]) == 2
    assert 'unknown model' in capsys.readouterr().err
    assert main(['zoo_resnet18_cbam', '--image', str(tmp_path / 'missing.jpg'), '--out',
                 str(tmp_path / 'a.png')]) == 2
    assert 'missing.jpg' in capsys.readouterr().err


def test_missing_grad_cam_names_the_extra(monkeypatch):
    import sys
    from zoo.errors import UserError
    from zoo.viz import grad_cam
    monkeypatch.setitem(sys.modules, 'pytorch_grad_cam', None)
    model, size = _model('cbam')
    with pytest.raises(UserError, match=r'pip install "timm-attention-zoo\[viz\]"'):
        grad_cam(model, load_image(None, model, size=(size, size)))


def test_family_specs_are_consistent():
    """Every family file ends with a spec that names its own architectures, a map reader and a CAM target that
    zoo.viz knows, and attention classes that a model of the family contains."""
    from zoo.models.spec import family_specs, spec_of
    from zoo.viz.figure import CAM_TARGETS
    from zoo.viz.hooks import READERS
    specs = family_specs()
    assert list(specs) == [m.rsplit('_', 1)[-1] for m in zoo.models.FAMILY_MODULES]
    for name, spec in specs.items():
        archs = set(timm.list_models(module=spec.module))
        assert archs and set(spec.parity) <= archs and {z for z, _ in spec.pairs} <= archs, name
        assert all(spec_of(a) is spec for a in archs)
        assert spec.maps.reader in READERS and spec.cam in CAM_TARGETS, name
        assert not set(spec.counterparts) & archs and all(timm.is_model(c) for c in spec.counterparts), name
    with pytest.raises(KeyError):
        spec_of('resnet50')
