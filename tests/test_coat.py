"""CoaT specifics: parity with the official code and with timm on the same weights, both checkpoint layouts
(aliased shared modules), strict loading, any input size, dense features, sizes and compute vs the paper."""
import copy
import re
import warnings

import pytest
import timm
import torch
from timm.models.coat import checkpoint_filter_fn as timm_coat_filter
from torch.utils.flop_counter import FlopCounterMode

import zoo  # noqa: F401
from zoo.layers.coat_attn import ConvRelPosEnc, FactorAttnConvRelPosEnc
from zoo.checkpoint import convert_and_check
from zoo.checkpoint import CheckpointError
from zoo.models.zoo_coat import checkpoint_filter_fn

from helpers import (assert_formulas_agree, fp32_spread, golden_spread, load_pretrained, max_diff, max_diffs, n_params,
                     randn, save_checkpoint, tol_from_spread)
from official import load_golden, official_state_dict

# zoo name -> (timm name, params in M as printed in the official README, GFLOPs (MACs) at 224 from
# architectures.md section 5.5, stage channels from section 5.9)
VARIANTS = {
    'zoo_coat_lite_tiny': ('coat_lite_tiny', '5.7', 1.6, (64, 128, 256, 320)),
    'zoo_coat_lite_mini': ('coat_lite_mini', '11', 2.0, (64, 128, 320, 512)),
    'zoo_coat_lite_small': ('coat_lite_small', '20', 4.0, (64, 128, 320, 512)),
    'zoo_coat_lite_medium': ('coat_lite_medium', '45', 9.8, (128, 256, 320, 512)),
    'zoo_coat_tiny': ('coat_tiny', '5.5', 4.4, (152, 152, 152, 152)),
    'zoo_coat_mini': ('coat_mini', '10', 6.8, (152, 216, 216, 216)),
    'zoo_coat_small': ('coat_small', '22', 12.6, (152, 320, 320, 320)),
}
PARITY = {'coat_lite_tiny': 'zoo_coat_lite_tiny', 'coat_tiny': 'zoo_coat_tiny'}


def _timm_model(timm_name, seed=0, **kwargs):
    """timm's CoaT with non-trivial weights: the official-layout random checkpoint through timm's own filter."""
    model = timm.create_model(timm_name, **kwargs).eval()
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        model.load_state_dict(timm_coat_filter(official_state_dict(timm_name, seed=seed), model), strict=True)
    return model


def _x(h, w=None, batch=1, seed=1):
    return randn(batch, 3, h, w or h, seed=seed)


def _timm_outputs(model, x):
    """timm CoaT's logits, raw and normed intermediates from one pass (its final norms act on each token alone)."""
    final, raw = model.forward_intermediates(x)
    norms = [None, model.norm2, model.norm3, model.norm4]
    normed = [t if n is None else n(t.flatten(2).transpose(1, 2)).transpose(1, 2).reshape(t.shape)
              for n, t in zip(norms, raw)]
    return model.forward_head(final), raw, normed


# ---------------------------------------------------------------------------------------------- parity

@pytest.mark.parity
@pytest.mark.parametrize('json_name', list(PARITY))
def test_parity_with_official_code(json_name, tmp_path):
    golden = load_golden(json_name)
    assert golden is not None, f'missing golden tests/data/parity/{json_name}.pt'
    # the official file as distributed: weights under 'model', aliased shared modules, unused norm1 (and norm2/3)
    path = save_checkpoint({'model': official_state_dict(json_name, seed=0), 'epoch': 299}, tmp_path)
    # the random checkpoint's aliases differ; the official model keeps the one it loads last, so does the filter
    with pytest.warns(UserWarning, match='aliases of .* shared tensors differ'):
        model = load_pretrained(PARITY[json_name], path)
    with torch.no_grad():
        out = model(golden['input'])
        out_odd = model(golden['input_odd'])
    for key, y in (('logits', out), ('logits_odd', out_odd)):
        torch.testing.assert_close(y, golden[key], rtol=0, atol=tol_from_spread(golden_spread(golden, json_name, key)))


@pytest.mark.parametrize('zoo_name', ['zoo_coat_lite_tiny', 'zoo_coat_tiny'])
@pytest.mark.parametrize('pool', ['token', 'avg'])
def test_timm_checkpoint_matches_timm(zoo_name, pool, tmp_path):
    """timm's coat_* state dict (timm/coat_*.in1k layout) loads; logits equal timm's on the same weights."""
    ref = _timm_model(VARIANTS[zoo_name][0], global_pool=pool)
    sd = ref.state_dict()
    path = save_checkpoint(sd, tmp_path)
    with warnings.catch_warnings():
        warnings.simplefilter('error')  # timm's aliases are the same tensors: nothing to warn about
        model = load_pretrained(zoo_name, path, global_pool=pool)
    x = _x(224, batch=2)
    with torch.no_grad():
        ref64 = _timm_outputs(copy.deepcopy(ref).double(), x.double())  # timm's float64 side, in one pass
        expected = ref(x)
        tol = tol_from_spread(max_diff(expected, ref64[0]))
        torch.testing.assert_close(model(x), expected, rtol=0, atol=tol)
        # intermediates (no class token; CoaT scales 2-4 after the parallel blocks), raw and normed
        for norm in (False, True):
            ours = model.forward_intermediates(x, norm=norm, intermediates_only=True)
            theirs = ref.forward_intermediates(x, norm=norm, intermediates_only=True)
            # raw maps reach ~1e5 with random weights: each map's own spread
            for a, b, spread in zip(ours, theirs, max_diffs(theirs, ref64[1 + norm]), strict=True):
                assert a.shape == b.shape
                torch.testing.assert_close(a, b, rtol=0, atol=tol_from_spread(spread))

    # a copy with the aliases de-duplicated (as a safetensors export keeps one name per shared tensor)
    by_storage = {}
    for k, v in sd.items():
        by_storage.setdefault(v.untyped_storage().data_ptr(), []).append(k)
    groups = [keys for keys in by_storage.values() if len(keys) > 1]
    assert groups, 'timm model should have aliased shared modules'
    for keep in (0, -1):
        dedup = {k: v for k, v in sd.items()}
        for keys in groups:
            for k in keys:
                if k != keys[keep]:
                    del dedup[k]
        model = load_pretrained(zoo_name, save_checkpoint(dedup, tmp_path, f'dedup{keep}.pth'), global_pool=pool)
        with torch.no_grad():
            torch.testing.assert_close(model(x), expected, rtol=0, atol=tol)


def test_official_file_with_identical_aliases_loads_silently(tmp_path):
    """A real official file: every alias of a shared module holds the same tensor, plus the unused norms."""
    ref = _timm_model('coat_lite_tiny')
    sd = {k: v.clone() for k, v in ref.state_dict().items()}
    g = torch.Generator().manual_seed(3)
    for n, dim in (('norm1', 64), ('norm2', 128), ('norm3', 256)):  # present in the official Lite files, never used
        sd[f'{n}.weight'], sd[f'{n}.bias'] = torch.randn(dim, generator=g), torch.randn(dim, generator=g)
    path = save_checkpoint({'model': sd, 'optimizer': {'state': {}}, 'epoch': 299}, tmp_path)
    with warnings.catch_warnings():
        warnings.simplefilter('error')
        model = load_pretrained('zoo_coat_lite_tiny', path)
    x = _x(96)
    with torch.no_grad():
        # timm needs its size fixed at build time; rebuild it at 96 px with the same weights
        ref96 = timm.create_model('coat_lite_tiny', img_size=96).eval()
        ref96.load_state_dict(ref.state_dict())
        torch.testing.assert_close(model(x), ref96(x), rtol=0, atol=tol_from_spread(fp32_spread(ref96, x)))


def test_zoo_layout_has_no_aliases_and_round_trips(tmp_path):
    model = timm.create_model('zoo_coat_tiny').eval()
    sd = model.state_dict()
    ptrs = [v.untyped_storage().data_ptr() for v in sd.values()]
    assert len(set(ptrs)) == len(ptrs), 'state dict holds aliased tensors'
    assert not [k for k in sd if re.search(r'blocks\.\d+\.(cpe|attn\.crpe|attn\.\d\.crpe)\.', k)]
    assert [k for k in sd if k.startswith('parallel_blocks.0.mlp')] == [
        f'parallel_blocks.0.mlp.fc{i}.{p}' for i in (1, 2) for p in ('weight', 'bias')]
    assert sum(v.numel() for v in sd.values()) == n_params(model)
    path = save_checkpoint({'state_dict': sd}, tmp_path)
    loaded = load_pretrained('zoo_coat_tiny', path)
    x = _x(64)
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), model(x), rtol=0, atol=0)


# ---------------------------------------------------------------------------------------------- strict loading

def test_strict_loading_names_offending_tensors(tmp_path):
    model = timm.create_model('zoo_coat_tiny')
    sd = official_state_dict('coat_tiny')
    del sd['serial_blocks2.1.norm1.weight']
    del sd['parallel_blocks.3.factoratt_crpe4.qkv.bias']
    sd['patch_embed3.proj.weight'] = torch.zeros(152, 152, 3, 3)
    sd['extra.thing'] = torch.zeros(1)
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        with pytest.raises(CheckpointError) as e:
            convert_and_check({'model': sd}, model, checkpoint_filter_fn)
    msg = str(e.value)
    for name in ('stages.1.blocks.1.norm1.weight', 'parallel_blocks.3.attn.2.qkv.bias', 'extra.thing',
                 'stages.2.patch_embed.proj.weight'):
        assert name in msg, (name, msg)
    # the same through timm's pretrained path
    path = save_checkpoint({'model': sd}, tmp_path)
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        with pytest.raises(CheckpointError, match='stages.1.blocks.1.norm1.weight'):
            load_pretrained('zoo_coat_tiny', path)


def test_wrong_family_member_is_rejected():
    lite = timm.create_model('zoo_coat_lite_tiny')
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        with pytest.raises(CheckpointError, match='parallel_blocks'):
            convert_and_check(official_state_dict('coat_tiny'), lite, checkpoint_filter_fn)


def test_new_head_and_in_chans(tmp_path):
    path = save_checkpoint({'model': official_state_dict('coat_lite_tiny')}, tmp_path)
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        for kwargs, shape in ((dict(num_classes=10), (1, 10)), (dict(num_classes=0), (1, 320))):
            assert load_pretrained('zoo_coat_lite_tiny', path, **kwargs)(_x(64)).shape == shape
        m1 = load_pretrained('zoo_coat_lite_tiny', path, in_chans=1)
    assert m1(torch.randn(1, 1, 64, 64)).shape == (1, 1000)


# ---------------------------------------------------------------------------------------------- sizes

@pytest.mark.parametrize('name', ['zoo_coat_lite_tiny', 'zoo_coat_tiny'])
def test_any_input_size_and_minimum(name):
    model = timm.create_model(name).eval()
    with torch.no_grad():
        for h, w in ((333, 517), (64, 64), (32, 32), (32, 71)):
            out = model(_x(h, w))
            assert out.shape == (1, 1000) and torch.isfinite(out).all()
            feats = model.forward_intermediates(_x(h, w), intermediates_only=True)
            # the grids floor as the official strided convolutions do
            sizes, (hh, ww) = [], (h // 4, w // 4)
            for _ in range(4):
                sizes.append((hh, ww))
                hh, ww = hh // 2, ww // 2
            assert [tuple(f.shape[-2:]) for f in feats] == sizes
        for h, w in ((31, 64), (64, 16)):
            with pytest.raises(ValueError, match=r'at least 32x32 pixels'):
                model(_x(h, w))


def test_coscale_mixing_resizes_to_actual_neighbour_size():
    """At 72x108 the grids (9x13 -> 4x6 -> 2x3) are not exact halvings: the parallel blocks resize to the neighbour's
    real grid (the golden above checks the numbers); with timm's fixed factors the sums would not even align."""
    model = timm.create_model('zoo_coat_tiny').eval()
    with torch.no_grad():
        feats = model.forward_intermediates(_x(72, 108), intermediates_only=True)
    assert [tuple(f.shape[-2:]) for f in feats] == [(18, 27), (9, 13), (4, 6), (2, 3)]
    ref = timm.create_model('coat_tiny', img_size=(72, 108)).eval()
    with torch.no_grad(), pytest.raises(RuntimeError):
        ref(_x(72, 108))


# ---------------------------------------------------------------------------------------------- dense features

@pytest.mark.parametrize('name', list(VARIANTS))
def test_features_only_channels_and_strides(name):
    chans = VARIANTS[name][3]
    model = timm.create_model(name, features_only=True).eval()
    assert model.feature_info.channels() == list(chans)
    assert model.feature_info.reduction() == [4, 8, 16, 32]
    with torch.no_grad():
        feats = model(_x(64, 96))
    assert [f.shape[1] for f in feats] == list(chans)
    assert [tuple(f.shape[-2:]) for f in feats] == [(16, 24), (8, 12), (4, 6), (2, 3)]


def test_features_only_matches_full_model_and_prunes():
    full = timm.create_model('zoo_coat_tiny').eval()
    x = _x(64, 96)
    with torch.no_grad():
        ref = full.forward_intermediates(x, intermediates_only=True)
    for out_indices in ((0, 1, 2, 3), (1, 3), (0,)):
        torch.manual_seed(0)
        feat = timm.create_model('zoo_coat_tiny', features_only=True, out_indices=out_indices).eval()
        wanted = feat.state_dict()
        feat.load_state_dict({'model.' + k: v for k, v in full.state_dict().items() if 'model.' + k in wanted})
        with torch.no_grad():
            outs = feat(x)
        for o, i in zip(outs, out_indices):
            torch.testing.assert_close(o, ref[i], rtol=0, atol=0)  # the same ops as the full model
        names = {k.split('.')[1] for k in feat.state_dict()}
        assert 'head' not in names and 'aggregate' not in names and 'norms' not in names
        if out_indices == (0,):  # stage 1 alone needs neither later stages nor the parallel blocks
            assert not any(k.startswith(('model.stages.1', 'model.parallel_blocks')) for k in feat.state_dict())
    lite = timm.create_model('zoo_coat_lite_tiny', features_only=True, out_indices=(1,))
    assert not any(k.startswith('model.stages.2') for k in lite.state_dict())


def test_forward_intermediates_stop_early_and_norm():
    model = timm.create_model('zoo_coat_lite_tiny').eval()
    x = _x(64)
    with torch.no_grad():
        full = model.forward_intermediates(x, intermediates_only=True)
        early = model.forward_intermediates(x, indices=[1], stop_early=True, intermediates_only=True)
        normed = model.forward_intermediates(x, indices=[3], norm=True, intermediates_only=True)
    torch.testing.assert_close(early[0], full[1])
    ln, tokens = model.norms[0], full[3].flatten(2).transpose(1, 2)
    expect = ln(tokens).transpose(1, 2).reshape(full[3].shape)
    torch.testing.assert_close(normed[0], expect, rtol=0, atol=tol_from_spread(fp32_spread(ln, tokens)))


def test_forward_features_tokens_and_pools():
    """forward_features gives timm's CoaT format: normed token sequences with the class token first (a list of
    scales 2-4 for CoaT, one tensor for Lite); the head pools class tokens ('token') or image-token means ('avg')
    and, for CoaT, mixes the scales with the Conv1d."""
    model = timm.create_model('zoo_coat_tiny').eval()
    x = _x(64, batch=2)
    with torch.no_grad():
        feat = model.forward_features(x)
        assert [tuple(f.shape) for f in feat] == [(2, 1 + 8 * 8, 152), (2, 1 + 4 * 4, 152), (2, 1 + 2 * 2, 152)]
        final, maps = model.forward_intermediates(x)
        for f, t, m in zip(feat, final, maps[1:]):  # the same scales as the stage maps, plus the class token
            torch.testing.assert_close(f, t)
            assert f.shape[1] - 1 == m.shape[-2] * m.shape[-1]
        token = model.forward_head(feat, pre_logits=True)
        model.reset_classifier(model.num_classes, global_pool='avg')
        avg = model.forward_head(feat, pre_logits=True)
    w, b = model.aggregate.weight[0, :, 0], model.aggregate.bias[0]
    torch.testing.assert_close(token, sum(f[:, 0] * wi for f, wi in zip(feat, w)) + b)
    torch.testing.assert_close(avg, sum(f[:, 1:].mean(1) * wi for f, wi in zip(feat, w)) + b)
    lite = timm.create_model('zoo_coat_lite_tiny', num_classes=0).eval()
    with torch.no_grad():
        feat = lite.forward_features(x)
        assert feat.shape == (2, 1 + 2 * 2, 320)
        torch.testing.assert_close(lite(x), feat[:, 0])
    with pytest.raises(AssertionError, match='token or avg'):
        timm.create_model('zoo_coat_lite_tiny', global_pool='')


# ---------------------------------------------------------------------------------------------- blocks

def test_factorised_attention_reference():
    """Softmax over the tokens (class token included) per channel, then q (k^T v); CRPE zero on the class row."""
    torch.manual_seed(0)
    attn = FactorAttnConvRelPosEnc(64, num_heads=8, crpe_window={3: 2, 5: 3, 7: 3}).eval()
    H, W = 5, 7
    x = torch.randn(2, 1 + H * W, 64)
    convs = attn.crpe.convs
    assert [c.kernel_size[0] for c in convs] == [3, 5, 7] and [c.in_channels for c in convs] == [16, 24, 24]

    def reference(attn, x):
        qkv = attn.qkv(x).reshape(2, -1, 3, 8, 8).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0], qkv[1], qkv[2]
        kw = torch.exp(k) / torch.exp(k).sum(dim=2, keepdim=True)
        fa = torch.einsum('bhnc,bhcd->bhnd', q, torch.einsum('bhnc,bhnd->bhcd', kw, v))
        # CRPE by hand: heads 0-1 3x3, heads 2-4 5x5, heads 5-7 7x7 depthwise convs on v_img
        v_img = v[:, :, 1:].transpose(-1, -2).reshape(2, 64, H, W)
        conv_v = torch.cat([
            torch.nn.functional.conv2d(v_img[:, a:b], c.weight, c.bias, padding=c.kernel_size[0] // 2, groups=b - a)
            for c, (a, b) in zip(attn.crpe.convs, ((0, 16), (16, 40), (40, 64)))], dim=1)
        ev = q[:, :, 1:] * conv_v.reshape(2, 8, 8, H * W).transpose(-1, -2)
        ev = torch.cat([torch.zeros_like(ev[:, :, :1]), ev], dim=2)
        return attn.proj((8 ** -0.5 * fa + ev).transpose(1, 2).reshape(2, -1, 64))
    assert_formulas_agree(lambda m, x: m(x, (H, W)), reference, attn, x)
    with pytest.raises(ValueError, match='assigns 6 heads'):
        ConvRelPosEnc(8, 8, {3: 2, 5: 4})


def test_shared_modules_are_used_by_every_block():
    """One CPE/CRPE per stage drives all its serial blocks and the parallel blocks; one MLP serves three scales."""
    model = timm.create_model('zoo_coat_tiny', num_classes=5)
    model(_x(64)).sum().backward()
    for name in ('stages.1.cpe.proj.weight', 'stages.3.crpe.convs.2.weight', 'parallel_blocks.0.mlp.fc1.weight'):
        assert model.get_parameter(name).grad is not None and model.get_parameter(name).grad.abs().sum() > 0
    assert len(list(model.parallel_blocks[0].mlp.parameters())) == 4
    # the attention layers register their stage's CRPE (the state dict keeps it once, as stages.<i>.crpe)
    assert model.stages[1].blocks[1].attn.crpe is model.stages[1].crpe
    assert [a.crpe for a in model.parallel_blocks[5].attn] == [s.crpe for s in model.stages[1:]]


def test_drop_path_is_constant():
    model = timm.create_model('zoo_coat_tiny', drop_path_rate=0.1)
    rates = [m.drop_prob for m in model.modules() if m.__class__.__name__ == 'DropPath']
    assert len(rates) == 8 + 6 and all(r == 0.1 for r in rates)


# ---------------------------------------------------------------------------------------------- sizes vs paper

@pytest.mark.parametrize('name', list(VARIANTS))
def test_params_and_flops_match_paper(name):
    timm_name, params_m, gmacs, _ = VARIANTS[name]
    with torch.device('meta'):
        model = timm.create_model(name).eval()
        ref = timm.create_model(timm_name)
        x = torch.empty(1, 3, 224, 224)
    n = n_params(model)
    assert n == n_params(ref), 'parameter count differs from timm (= official without its unused norms)'
    decimals = len(params_m.split('.')[1]) if '.' in params_m else 0
    assert round(n / 1e6, decimals) == float(params_m), (n, params_m)
    with torch.no_grad(), FlopCounterMode(display=False) as fc:
        model(x)
    measured = fc.get_total_flops() / 2e9  # multiply-accumulates
    assert abs(measured - gmacs) / gmacs < 0.02, (measured, gmacs)


def test_lite_medium_384_tag():
    cfg = timm.models.get_pretrained_cfg('zoo_coat_lite_medium.in1k_384').to_dict()
    assert tuple(cfg['input_size']) == (3, 384, 384) and cfg['url'].endswith('coat_lite_medium_384x384_f9129688.pth')
    with torch.device('meta'):
        model = timm.create_model('zoo_coat_lite_medium.in1k_384').eval()
        with torch.no_grad(), FlopCounterMode(display=False) as fc:
            model(torch.empty(1, 3, 384, 384))
    assert abs(fc.get_total_flops() / 2e9 - 28.7) / 28.7 < 0.02


@pytest.mark.slow
def test_torch_compile_fullgraph():
    model = timm.create_model('zoo_coat_tiny').eval()
    compiled = torch.compile(model, backend='aot_eager', fullgraph=True)
    x = _x(64, 96)
    with torch.no_grad():
        torch.testing.assert_close(compiled(x), model(x), rtol=0, atol=tol_from_spread(fp32_spread(model, x)))
