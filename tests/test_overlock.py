"""OverLoCK: NATTEN-exact neighbourhood aggregation, ContMix export/compile, parity with the official code,
re-parameterisation, checkpoint layouts, parameter / GMAC counts, small and odd inputs, dense features."""
import io
import itertools
import math
import warnings

import pytest
import timm
import torch
import torch.nn as nn
from torch.utils.flop_counter import FlopCounterMode

import zoo  # noqa: F401
from zoo.layers.na2d_reference import na2d_av_unfold_reference
from zoo.layers.contmix import ContMix
from zoo.layers.na2d import na2d_av, na2d_av_cf, na2d_rpb
from zoo.layers.dilated_reparam import DilatedReparamBlock
from zoo.checkpoint import convert_and_check
from zoo.checkpoint import CheckpointError
from zoo.models.zoo_overlock import _convert_official, checkpoint_filter_fn

from helpers import (assert_formulas_agree, bf16_tol, fp32_and_fp64, fp32_spread, fp64_tol, golden_spread,
                     load_pretrained, max_diff, n_params, randn, save_checkpoint, tol_from_spread, with_grads)
from official import load_golden, official_keys, official_state_dict, parity_input

VARIANTS = ('xt', 't', 's', 'b')


# ---------------------------------------------------------------------------------------------------------------
# neighbourhood aggregation vs an explicit per-pixel reference of NATTEN's CPU kernel

def _natten_window_start(i, length, k, dilation):
    """NATTEN get_window_start (natten_cpu_commons.h), written out branch by branch."""
    ns = k // 2
    if dilation <= 1:
        return max(i - ns, 0) + (i + ns >= length) * (length - i - ns - 1)
    if i - ns * dilation < 0:
        return i % dilation
    if i + ns * dilation >= length:
        imodd = i % dilation
        a = (length // dilation) * dilation
        b = length - a
        if imodd < b:
            return length - b + imodd - 2 * ns * dilation
        return a + imodd - k * dilation
    return i - ns * dilation


def _natten_pb_start(i, length, k, dilation):
    """NATTEN get_pb_start: relative-position-bias row of the first tap."""
    ns = k // 2
    if dilation <= 1:
        return ns + (i < ns) * (ns - i) + (i + ns >= length) * (length - i - 1 - ns)
    if i - ns * dilation < 0:
        return k - 1 - i // dilation
    if i + ns * dilation >= length:
        return (length - i - 1) // dilation
    return ns


def _taps(H, W, k, dilation, start):
    """``(i, j, a, b, start row, start column)`` for every pixel (i, j) and kernel tap (a, b), the starts given by
    ``start(i, length, k, dilation)``."""
    for i, j in itertools.product(range(H), range(W)):
        si, sj = start(i, H, k, dilation), start(j, W, k, dilation)
        for a, b in itertools.product(range(k), range(k)):
            yield i, j, a, b, si, sj


def _reference_av(attn, value, k, dilation):
    """Pixel by pixel: the attention-weighted sum over the k x k window of taps NATTEN's window start gives."""
    B, G, H, W, D = value.shape
    out = torch.zeros_like(value)
    for i, j in itertools.product(range(H), range(W)):
        si, sj = _natten_window_start(i, H, k, dilation), _natten_window_start(j, W, k, dilation)
        window = value[:, :, si:si + k * dilation:dilation, sj:sj + k * dilation:dilation]  # (B, G, k, k, D)
        out[:, :, i, j] = (attn[:, :, i, j].view(B, G, k, k, 1) * window).sum((2, 3))
    return out


def _reference_rpb(rpb, H, W, k, dilation):
    out = torch.zeros(rpb.shape[0], k * k, H, W)
    for i, j, a, b, pi, pj in _taps(H, W, k, dilation, _natten_pb_start):
        out[:, a * k + b, i, j] = rpb[:, pi + a, pj + b]
    return out


NA_CASES = [  # H, W, kernel, dilation: borders, minimal sizes, non-square, dilation with remainders
    (7, 9, 3, 1), (5, 5, 5, 1), (13, 14, 13, 1), (8, 6, 5, 1), (11, 10, 3, 2), (13, 9, 3, 3), (12, 12, 3, 4),
    (10, 15, 5, 2), (7, 7, 7, 1),
]


@pytest.mark.parametrize('H,W,k,d', NA_CASES)
def test_na2d_av_matches_natten_reference(H, W, k, d):
    g = torch.Generator().manual_seed(H * 100 + W * 10 + k + d)
    attn = torch.randn(2, 3, H, W, k * k, generator=g).softmax(-1)
    value = torch.randn(2, 3, H, W, 4, generator=g)
    assert_formulas_agree(na2d_av, _reference_av, attn, value, k, d)
    rpb = torch.randn(3, 2 * k - 1, 2 * k - 1, generator=g)
    assert torch.equal(na2d_rpb(rpb, H, W, k, d), _reference_rpb(rpb, H, W, k, d))
    if d == 1:
        assert_formulas_agree(na2d_av, na2d_av_unfold_reference, attn, value, k)


def test_na2d_windows_shift_inward_not_zero_padded():
    # constant value map: every window holds real pixels, so a normalised kernel returns the constant everywhere
    attn = torch.rand(1, 1, 6, 6, 25).softmax(-1)
    out = na2d_av(attn, torch.full((1, 1, 6, 6, 2), 3.0), 5)
    torch.testing.assert_close(out, torch.full_like(out, 3.0))
    with pytest.raises(ValueError, match='at least'):
        na2d_av(torch.rand(1, 1, 4, 6, 25), torch.rand(1, 1, 4, 6, 2), 5)
    with pytest.raises(ValueError, match='at least'):
        na2d_av(torch.rand(1, 1, 8, 8, 9), torch.rand(1, 1, 8, 8, 2), 3, dilation=3)


# ---------------------------------------------------------------------------------------------------------------
# ContMix: torch.compile and ONNX

def _small_contmix():
    m = ContMix(16, 8, kernel_size=5, small_kernel_size=3, num_groups=2).eval()
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in m.parameters():
            p.normal_(0, 0.2, generator=g)
    return m


def _contmix_inputs(H, W):
    g = torch.Generator().manual_seed(1)
    return tuple(torch.randn(1, c, H, W, generator=g) for c in (16, 16, 8))


def test_contmix_torch_compile_fullgraph():
    torch._dynamo.reset()
    m = _small_contmix()
    cm = torch.compile(m, backend='aot_eager', fullgraph=True, dynamic=False)
    for H, W in ((9, 11), (3, 4)):  # regular and small-input (resize) paths
        args = _contmix_inputs(H, W)
        ref, ref64 = fp32_and_fp64(m, *args)
        with torch.no_grad():
            torch.testing.assert_close(cm(*args), ref, rtol=0, atol=tol_from_spread(max_diff(ref, ref64)))


@pytest.mark.slow
def test_contmix_torch_compile_inductor():
    torch._dynamo.reset()
    m = _small_contmix()
    args = _contmix_inputs(9, 11)
    ref, ref64 = fp32_and_fp64(m, *args)
    with torch.no_grad():
        torch.testing.assert_close(torch.compile(m, dynamic=False)(*args), ref, rtol=0,
                                   atol=tol_from_spread(max_diff(ref, ref64)))


def test_contmix_onnx_export():
    onnx = pytest.importorskip('onnx')
    from onnx.reference import ReferenceEvaluator
    m = _small_contmix()
    args = _contmix_inputs(3, 4)  # small-input path: resize, aggregation, adaptive pooling back
    f = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        torch.onnx.export(m, args, f, dynamo=True, input_names=['value', 'x', 'ctx'], verbose=False)
    model = onnx.load_from_string(f.getvalue())
    onnx.checker.check_model(model)
    out = ReferenceEvaluator(model).run(None, {n: a.numpy() for n, a in zip(('value', 'x', 'ctx'), args)})[0]
    ref, ref64 = fp32_and_fp64(m, *args)
    torch.testing.assert_close(torch.from_numpy(out), ref, rtol=0, atol=tol_from_spread(max_diff(ref, ref64)))


# ---------------------------------------------------------------------------------------------------------------
# parity with the official code (goldens: tests/data/parity/README.md)

def _wrapped(sd, wrap):
    """A state dict as the official checkpoint files hold it: 'bare', under 'state_dict' (with 'meta'), or 'module'
    (the same with DataParallel's prefix)."""
    if wrap == 'module':
        sd = {'module.' + k: v for k, v in sd.items()}
    return {'state_dict': sd, 'meta': {'epoch': 300}} if wrap in ('state_dict', 'module') else sd


PARITY = [  # golden, model name (tag), checkpoint wrapping, kwargs
    ('overlock_xt', 'zoo_overlock_xt', 'bare', {}),
    ('overlock_xt_reparam', 'zoo_overlock_xt.in1k_reparam', 'state_dict', {}),
    ('overlock_xt_64', 'zoo_overlock_xt', 'module', {}),
    ('overlock_xt_48x80', 'zoo_overlock_xt', 'state_dict', {}),
    ('overlock_xt_reparam_80x48', 'zoo_overlock_xt', 'bare', dict(deploy=True)),
]


@pytest.mark.parity
@pytest.mark.parametrize('golden,name,wrap,kwargs', PARITY)
def test_parity_with_official(golden, name, wrap, kwargs, tmp_path):
    ref = load_golden(golden)
    assert ref is not None, f'missing golden {golden}'
    x = ref['input']
    assert torch.equal(x, parity_input(tuple(x.shape), seed=1))
    json_name = 'overlock_xt_reparam' if 'reparam' in golden else 'overlock_xt'
    model = load_pretrained(name, save_checkpoint(_wrapped(official_state_dict(json_name, seed=0), wrap), tmp_path),
                            **kwargs)
    assert model.stages[0].blocks[0].lk_conv.deploy == ('reparam' in golden)
    with torch.no_grad():
        y32 = model(x)
        y64 = model.double()(x.double())
    # |logits| reach ~350 with these random weights: the official float32 run is 2e-4 from its float64 one
    spread = golden_spread(ref, golden)
    assert (y64 - ref['logits']).abs().max().item() < fp64_tol(spread)
    assert (y32.double() - ref['logits_fp32'].double()).abs().max().item() < tol_from_spread(spread)


@pytest.mark.parity
def test_deploy_model_merges_training_checkpoint(tmp_path):
    ref = load_golden('overlock_xt_64')
    model = load_pretrained('zoo_overlock_xt', save_checkpoint(official_state_dict('overlock_xt', seed=0), tmp_path),
                            deploy=True)
    assert not any(k.endswith('origin_bn.weight') for k in model.state_dict())
    with torch.no_grad():
        y = model.double()(ref['input'].double())
    # the merge ran in float32 (the model's dtype at loading): its weights carry float32 rounding
    assert (y - ref['logits']).abs().max().item() < tol_from_spread(golden_spread(ref, 'overlock_xt_64'))


def test_training_form_refuses_reparam_checkpoint(tmp_path):
    path = save_checkpoint(official_state_dict('overlock_xt_reparam', seed=0), tmp_path)
    with pytest.raises(CheckpointError, match='deploy=True'):
        load_pretrained('zoo_overlock_xt', path)


@pytest.mark.parametrize('kernel_size', [7, 17])
def test_eval_mode_merged_kernel_equals_the_branches(kernel_size):
    """In eval mode a training-form block runs one conv with the merged kernel; it must equal the sum of its
    BN'd branches (computed here module by module), in value and in the gradient of every parameter."""
    torch.manual_seed(0)
    block = DilatedReparamBlock(8, kernel_size)
    for m in block.modules():
        if isinstance(m, nn.BatchNorm2d):  # non-trivial running statistics and affine parameters
            m.running_mean.uniform_(-1, 1), m.running_var.uniform_(0.5, 2), m.weight.data.uniform_(0.5, 2)
            m.bias.data.uniform_(-1, 1)
    block.double().eval()
    x = torch.randn(2, 8, 23, 19, dtype=torch.float64)

    def branches(block, x):
        out = block.origin_bn(block.lk_origin(x))
        for k, r in block.branches:
            out = out + getattr(block, f'dil_bn_k{k}_{r}')(getattr(block, f'dil_conv_k{k}_{r}')(x))
        return out

    merged = with_grads(lambda b, x: b(x))  # the value and every parameter's gradient
    assert_formulas_agree(merged, with_grads(branches), block, x, dtypes=(torch.float64,))
    assert block.train()(x).shape == x.shape  # training mode: the branches, on batch statistics


def test_reparameterize_keeps_outputs_and_gives_official_deploy_layout():
    model = timm.create_model('zoo_overlock_xt', aux_head=True)
    model.load_state_dict(checkpoint_filter_fn(official_state_dict('overlock_xt', seed=3), model))
    model.eval()
    x = torch.randn(2, 3, 64, 96)
    with torch.no_grad():
        before32 = model(x)
        before = model.double()(x.double())
        model.reparameterize()
        after = model(x.double())
        after32 = model.float()(x)
    # the merge re-associates sums: the two forms agree to the sum of their float32 rounding spreads (float64 too)
    spread = max_diff(before32, before) + max_diff(after32, after)
    torch.testing.assert_close(after, before, rtol=0, atol=fp64_tol(spread))
    torch.testing.assert_close(after32, before32, rtol=0, atol=tol_from_spread(spread))
    reparam = [m for m in model.modules() if isinstance(m, DilatedReparamBlock)]
    assert reparam and all(m.deploy for m in reparam)
    # the merged model has exactly the layout of the official _reparam checkpoint
    official_deploy = _convert_official(official_state_dict('overlock_xt_reparam'))
    assert set(model.state_dict()) == set(official_deploy)


def test_strict_loading_names_bad_tensors():
    model = timm.create_model('zoo_overlock_xt')
    sd = official_state_dict('overlock_xt')
    sd.pop('sub_blocks3.2.rpb2')
    sd['blocks2.1.proj.4.weight'] = torch.zeros(1, 1, 1, 1)
    sd['extra_head.weight'] = torch.zeros(1)
    with pytest.raises(CheckpointError) as e:
        convert_and_check({'state_dict': sd}, model, checkpoint_filter_fn)
    msg = str(e.value)
    assert 'focus_stages.0.blocks.2.contmix.rpb_large' in msg  # missing
    assert 'stages.1.blocks.1.mlp.fc1.weight' in msg  # wrongly shaped
    assert 'extra_head.weight' in msg  # unexpected


def test_zoo_layout_passes_through_and_aux_head_is_optional(tmp_path):
    official = official_state_dict('overlock_xt')
    with_aux = timm.create_model('zoo_overlock_xt', aux_head=True)
    sd = checkpoint_filter_fn(official, with_aux)
    assert torch.equal(sd['aux_head.fc.weight'], official['aux_head.2.weight'].flatten(1))
    with_aux.load_state_dict(sd)
    plain = timm.create_model('zoo_overlock_xt')
    plain.load_state_dict(checkpoint_filter_fn(with_aux.state_dict(), plain))  # zoo layout, aux tensors dropped
    assert plain.aux_head is None
    x = torch.randn(1, 3, 64, 64)
    with_aux.eval()
    plain.eval()
    with torch.no_grad():
        logits, aux = with_aux.forward_with_aux(x)
        torch.testing.assert_close(logits, plain(x))
        ctx = with_aux.stages[3](with_aux.stages[2](with_aux.stages[1](with_aux.stages[0](with_aux.stem(x)))))
        manual = with_aux.aux_head.fc(with_aux.aux_head.norm(ctx).mean((2, 3)))
        torch.testing.assert_close(aux, manual)
    # a new class count keeps a fresh auxiliary classifier instead of failing on its shape
    path = save_checkpoint(official, tmp_path)
    m7 = timm.create_model('zoo_overlock_xt', aux_head=True, num_classes=7, pretrained=True,
                           pretrained_cfg_overlay=dict(file=path))
    assert [t.shape for t in m7.forward_with_aux(x)] == [(1, 7), (1, 7)]
    assert torch.equal(m7.stem[0].weight, official['patch_embed1.0.weight'])


# ---------------------------------------------------------------------------------------------------------------
# sizes: params exactly as the official definitions, GMACs within 1%

def _official_param_count(json_name):
    return sum(math.prod(shape) for k, (shape, _) in official_keys(json_name).items()
               if not k.endswith(('running_mean', 'running_var', 'num_batches_tracked')))


@pytest.mark.parametrize('variant', VARIANTS)
def test_param_counts_match_official(variant):
    for deploy in (False, True):
        json_name = f'overlock_{variant}' + ('_reparam' if deploy else '')
        model = timm.create_model(f'zoo_overlock_{variant}', aux_head=True, deploy=deploy, device='meta')
        n = n_params(model)
        assert n == _official_param_count(json_name)
        aux = n_params(model.aux_head)
        if deploy:  # the paper's params (16 / 33 / 56 / 95 M) are those of the deploy form without the aux head
            assert round((n - aux) / 1e6) == {'xt': 16, 't': 33, 's': 56, 'b': 95}[variant]


# GMACs at 224 of the official models/overlock.py definitions (training form, deploy form), measured with
# torch.utils.flop_counter.FlopCounterMode (GMACs = FLOPs / 2; natten's na2d_av is not counted there). The zoo's
# aggregation is a banded matrix product that the counter does see, so it is subtracted here by module name.
# The paper's 2.6 / 5.5 / 9.7 / 16.7 G match the deploy form.
OFFICIAL_GMACS = {'xt': (2.8322, 2.6708), 't': (5.9324, 5.5854), 's': (10.3370, 9.7939), 'b': (17.8124, 16.9462)}


def _gmacs_without_aggregation(model):
    with torch.no_grad(), FlopCounterMode(display=False) as fc:
        model(torch.empty(1, 3, 224, 224, device='meta'))
    per_module = fc.get_flop_counts()
    agg = sum(sum(v.values()) for k, v in per_module.items() if k.endswith(('.aggregate_small', '.aggregate_large')))
    n_agg = sum(1 for k in per_module if k.endswith(('.aggregate_small', '.aggregate_large')))
    assert n_agg == 2 * sum(len(s.blocks) for s in model.focus_stages)
    return (fc.get_total_flops() - agg) / 2e9


@pytest.mark.parametrize('variant', VARIANTS)
def test_gmacs_match_official(variant):
    train_form, deploy_form = OFFICIAL_GMACS[variant]
    model = timm.create_model(f'zoo_overlock_{variant}', device='meta')
    # the training form runs every dilated branch while training ...
    assert _gmacs_without_aggregation(model.train()) == pytest.approx(train_form, rel=0.01)
    # ... and in eval mode the merged kernel of each DilatedReparamBlock: the deploy form's cost
    assert _gmacs_without_aggregation(model.eval()) == pytest.approx(deploy_form, rel=0.01)
    deploy = timm.create_model(f'zoo_overlock_{variant}', deploy=True, device='meta').eval()
    assert _gmacs_without_aggregation(deploy) == pytest.approx(deploy_form, rel=0.01)


# ---------------------------------------------------------------------------------------------------------------
# any input size, features

@pytest.mark.parametrize('size', [(20, 36), (97, 61), (225, 161)])
def test_any_input_size(size):
    model = timm.create_model('zoo_overlock_xt', num_classes=3).eval()
    with torch.no_grad():
        feats = model.forward_intermediates(torch.randn(1, 3, *size), intermediates_only=True)
    for f, r in zip(feats, (4, 8, 16, 32)):
        assert f.shape[-2:] == tuple(math.ceil(s / r) for s in size)
        assert torch.isfinite(f).all()


def test_features_and_dense_outputs():
    channels = {'xt': [56, 112, 340, 420], 't': [64, 128, 384, 640], 's': [64, 128, 448, 640], 'b': [80, 160, 528, 720]}
    for v, chans in channels.items():
        info = timm.create_model(f'zoo_overlock_{v}', features_only=True, device='meta').feature_info
        assert info.channels() == chans and info.reduction() == [4, 8, 16, 32]
    model = timm.create_model('zoo_overlock_xt', dense_outputs=True).eval()
    with torch.no_grad():
        for p in model.dense_ctx_proj.parameters():
            p.normal_(0, 0.1)
        x = torch.randn(1, 3, 64, 64)
        feats = model.forward_intermediates(x, intermediates_only=True)
        plain = timm.create_model('zoo_overlock_xt').eval()
        plain.load_state_dict(checkpoint_filter_fn(model.state_dict(), plain))
        raw = plain.forward_intermediates(x, intermediates_only=True)
        # the official dense backbone feeds the normed stride-8 map to stage 2
        s16 = plain.stages[2](model.dense_norms[1](raw[1]))
        ctx = plain.stages[3](s16)
        focus = plain._focus(s16, ctx)
        seg = timm.create_model('zoo_overlock_xt', dense_outputs='norms').eval()
        seg.load_state_dict({k: v for k, v in model.state_dict().items() if not k.startswith('dense_ctx')})
        seg_feats = seg.forward_intermediates(x, intermediates_only=True)
    for i in range(2):
        torch.testing.assert_close(feats[i], model.dense_norms[i](raw[i]))
    torch.testing.assert_close(feats[2], model.dense_norms[2](focus[0]))
    torch.testing.assert_close(feats[3], model.dense_norms[3](focus[1]) + model.dense_ctx_proj(model.dense_ctx_norm(ctx)))
    torch.testing.assert_close(seg_feats[3], model.dense_norms[3](focus[1]))
    assert all(torch.equal(a, b) for a, b in zip(seg_feats[:3], feats[:3]))
    # the official dense-backbone names (extra_norm.*, h_proj.*) load into the dense modules
    renames = (('dense_norms.', 'extra_norm.'), ('dense_ctx_norm.', 'extra_norm.4.'), ('dense_ctx_proj.', 'h_proj.'))
    official = {}
    for k, v in model.state_dict().items():
        for new, old in renames:
            if k.startswith(new):
                official[old + k[len(new):]] = v
    sd = checkpoint_filter_fn({**official_state_dict('overlock_xt'), **official}, model)
    assert torch.equal(sd['dense_ctx_proj.1.weight'], model.dense_ctx_proj[1].weight)


# ---------------------------------------------------------------------------------------------------------------
# bfloat16 autocast

def test_na2d_bf16_stays_bf16_and_matches_fp32():
    g = torch.Generator().manual_seed(5)
    for H, W, k in ((14, 14, 13), (20, 70, 5)):  # one tile, several column tiles
        attn = torch.randn(2, 3, H, W, k * k, generator=g).softmax(-1)
        value = torch.randn(2, 3, H, W, 8, generator=g)
        out = na2d_av(attn, value.bfloat16(), k)
        assert out.dtype == torch.bfloat16
        spread = fp32_spread(na2d_av_unfold_reference, attn, value, k)
        torch.testing.assert_close(out.float(), na2d_av(attn, value, k), rtol=0, atol=bf16_tol(spread))
    m = _small_contmix()
    args = _contmix_inputs(9, 11)
    with torch.no_grad(), torch.autocast('cpu', dtype=torch.bfloat16):
        y16 = m(*args)
    assert y16.dtype == torch.bfloat16


def test_autocast_bf16_forward_backward_finite():
    model = timm.create_model('zoo_overlock_xt')
    model.load_state_dict(checkpoint_filter_fn(official_state_dict('overlock_xt', seed=3), model))
    x = randn(2, 3, 64, 80, seed=2)
    model.eval()
    y32, y64 = fp32_and_fp64(model, x)
    with torch.no_grad(), torch.autocast('cpu', dtype=torch.bfloat16):
        y16 = model(x)
    assert y16.dtype == torch.bfloat16 and torch.isfinite(y16).all()
    torch.testing.assert_close(y16.float(), y32, rtol=0, atol=bf16_tol(max_diff(y32, y64)))
    model.train()
    with torch.autocast('cpu', dtype=torch.bfloat16):
        loss = model(x).float().logsumexp(1).mean()
    loss.backward()
    assert torch.isfinite(loss)
    grads = [p.grad for p in model.parameters() if p.requires_grad]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
