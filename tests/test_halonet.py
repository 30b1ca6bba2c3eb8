"""HaloNet specifics: the paper table (parameter counts, widths), padded halo attention (exact equality with timm's
HaloAttn where it applies, a from-the-definition reference elsewhere), any input size, features at detection size,
loading timm-layout and zoo-layout state dicts, strict-loading errors, stochastic depth, TorchScript at odd sizes.

No official HaloNet code or weights exist, so there is no official-parity golden; timm's ``halonet_h1`` (= H1) and
a reference written from the attention's definition serve as the references.
"""
import math

import pytest
import timm
import torch
import torch.nn.functional as F
from timm.layers.halo_attn import HaloAttn

import zoo  # noqa: F401  (registers the models)
from zoo.layers.halo import PaddedHaloAttn
from zoo.checkpoint import convert_and_check
from zoo.checkpoint import CheckpointError
from zoo.models.zoo_halonet import checkpoint_filter_fn

from helpers import (assert_formulas_agree, check_bf16_autocast, fp32_and_fp64, fp32_spread, load_pretrained, max_diff,
                     n_params, randn, save_checkpoint, tol_from_spread)

# paper (arXiv:2103.12731) parameter counts in millions, and the zoo's exact counts (module docstring table)
PARAMS = {
    'zoo_halonet_h0': (5.5, 5_500_952),
    'zoo_halonet_h1': (8.1, 8_100_056),
    'zoo_halonet_h2': (9.4, 9_404_312),
    'zoo_halonet_h3': (11.8, 11_841_304),
    'zoo_halonet_h4': (19.1, 19_101_976),
    'zoo_halonet_h5': (30.7, 30_717_272),
    'zoo_halonet_h6': (43.4, 43_456_792),
    'zoo_halonet_h7': (67.4, 67_433_240),
}
# paper default image sizes
IMAGE_SIZE = {'zoo_halonet_h0': 256, 'zoo_halonet_h1': 256, 'zoo_halonet_h2': 256, 'zoo_halonet_h3': 320,
              'zoo_halonet_h4': 384, 'zoo_halonet_h5': 448, 'zoo_halonet_h6': 512, 'zoo_halonet_h7': 600}


def _eval_model(name, **kwargs):
    torch.manual_seed(0)
    return timm.create_model(name, **kwargs).eval()


# ---------------------------------------------------------------------------------------------------------------
# the paper table

@pytest.mark.parametrize('name', sorted(PARAMS))
def test_param_count_and_cfg(name):
    paper_m, exact = PARAMS[name]
    model = timm.create_model(name, device='meta')
    n = n_params(model)
    assert n == exact, f'{name}: {n} parameters, the recorded table says {exact}'
    assert abs(n / 1e6 / paper_m - 1) < 0.004, f'{name}: {n / 1e6:.2f}M vs the paper\'s {paper_m}M'
    cfg = model.pretrained_cfg
    s = IMAGE_SIZE[name]
    assert cfg['input_size'] == (3, s, s)
    assert cfg['pool_size'] == (math.ceil(s / 32),) * 2
    assert cfg['paper_ids'] == 'arXiv:2103.12731' and cfg['license'] == 'apache-2.0'
    assert not timm.is_model_pretrained(name)  # no weights exist anywhere


@pytest.mark.parametrize('name,b,h,rv,rb,l3,df', [
    ('zoo_halonet_h0', 8, 3, 1.0, 0.5, 7, 0),
    ('zoo_halonet_h3', 10, 3, 1.0, 1.5, 12, 1024),
    ('zoo_halonet_h5', 14, 2, 2.5, 2.0, 23, 1536),
    ('zoo_halonet_h7', 10, 3, 4.0, 3.5, 26, 2048),
])
def test_block_widths(name, b, h, rv, rb, l3, df):
    """d_qk = w (1x1 input conv, queries, keys), d_v = r_v w (values, post-attn BN, 1x1 output conv input),
    block output r_b w, stage-3 depth l_3, final conv d_f."""
    model = timm.create_model(name, device='meta')
    assert [len(s) for s in model.stages] == [3, 3, l3, 3]
    for stage, w in zip(model.stages, (64, 128, 256, 512)):
        for blk in stage:
            attn = blk.self_attn.attn
            assert (attn.block_size, attn.halo_size, attn.num_heads) == (b, h, 8)
            assert blk.conv1_1x1.conv.out_channels == w
            assert attn.q.out_channels == w and attn.dim_out_qk == w
            assert attn.kv.out_channels == w + int(rv * w)
            assert blk.post_attn.num_features == int(rv * w)
            assert blk.conv3_1x1.conv.in_channels == int(rv * w)
            assert blk.conv3_1x1.conv.out_channels == int(rb * w)
    assert model.num_features == (df or int(512 * rb))


# ---------------------------------------------------------------------------------------------------------------
# padded halo attention

def reference_halo_attn(attn: HaloAttn, x: torch.Tensor) -> torch.Tensor:
    """Halo attention from its definition, one query block at a time (independent of HaloAttn's reshapes).

    Query block (by, bx) covers rows by*b .. by*b+b-1 (strided queries: every other row); its keys/values are the
    (b+2h)^2 window starting at (by*b - h, bx*b - h); keys/values outside the map are zero (halo border and the
    block padding of non-divisible sizes alike). Logits: q.k * scale + q.height_rel[w-1 + key_row - query_row]
    + q.width_rel[w-1 + key_col - query_col], rows/cols local to the window / the (strided) query block.
    Attention at stride 1 followed by 2x2 average pooling (odd b) is not covered here.
    """
    B, _, H, W = x.shape
    b, h, w, s = attn.block_size, attn.halo_size, attn.win_size, attn.block_stride
    bq = b // s
    heads, dqk, dv = attn.num_heads, attn.dim_head_qk, attn.dim_head_v
    nby, nbx = -(-H // b), -(-W // b)
    q = attn.q(x)  # strided 1x1 conv on the unpadded map = queries at even positions
    hq, wq = q.shape[-2:]
    q = F.pad(q, [0, nbx * bq - wq, 0, nby * bq - hq]).reshape(B, heads, dqk, nby * bq, nbx * bq)
    kv = attn.kv(x).reshape(B, heads, dqk + dv, H, W)
    kv = F.pad(kv, [h, nbx * b - W + h, h, nby * b - H + h])
    k, v = kv[:, :, :dqk], kv[:, :, dqk:]
    rel = (w - 1) + torch.arange(w)[None, :] - torch.arange(bq)[:, None]  # query pos, key pos -> table row
    rel_h, rel_w = attn.pos_embed.height_rel[rel], attn.pos_embed.width_rel[rel]  # bq, w, dqk
    out = x.new_zeros(B, heads, dv, nby * bq, nbx * bq)
    for by in range(nby):
        for bx in range(nbx):
            qb = q[..., by * bq:(by + 1) * bq, bx * bq:(bx + 1) * bq]
            kb = k[..., by * b:by * b + w, bx * b:bx * b + w]
            vb = v[..., by * b:by * b + w, bx * b:bx * b + w]
            logits = torch.einsum('znciy,znckl->zniykl', qb, kb) * attn.scale
            logits = logits + torch.einsum('znciy,ikc->zniyk', qb, rel_h)[..., None]
            logits = logits + torch.einsum('znciy,ylc->zniyl', qb, rel_w)[..., None, :]
            a = logits.flatten(-2).softmax(-1).reshape(logits.shape)
            out[..., by * bq:(by + 1) * bq, bx * bq:(bx + 1) * bq] = torch.einsum('zniykl,znckl->znciy', a, vb)
    return out[..., :hq, :wq].reshape(B, heads * dv, hq, wq)


ATTN_CFGS = [  # (dim, kwargs); HaloNet uses stride 1 and strided queries (even b)
    (32, dict(block_size=8, halo_size=3, num_heads=4)),
    (32, dict(block_size=8, halo_size=3, num_heads=4, stride=2)),
    (24, dict(block_size=10, halo_size=3, num_heads=2, stride=2)),
    (16, dict(block_size=4, halo_size=2, num_heads=2, dim_out=40, qk_ratio=0.4)),  # value multiplier 2.5
]


def _pair(dim, kwargs, seed=0):
    torch.manual_seed(seed)
    padded = PaddedHaloAttn(dim, **kwargs).eval()
    plain = HaloAttn(dim, **kwargs).eval()
    plain.load_state_dict(padded.attn.state_dict())
    return padded, plain


@pytest.mark.parametrize('dim,kwargs', ATTN_CFGS + [
    (16, dict(block_size=7, halo_size=2, num_heads=2, stride=2)),  # odd b: stride-1 attention + 2x2 avg pool
    (16, dict(block_size=6, halo_size=1, num_heads=2, stride=2, avg_down=True)),
])
def test_padded_attn_equals_timm_when_divisible(dim, kwargs):
    """Same computation as timm's HaloAttn (its weights), up to float summation order, in float32 and float64."""
    padded, plain = _pair(dim, kwargs)
    b = kwargs['block_size'] * 2
    x = randn(2, dim, 2 * b, 3 * b)
    assert_formulas_agree(padded, plain, x, dtypes=(torch.float32, torch.float64))


@pytest.mark.parametrize('dim,kwargs', ATTN_CFGS)
@pytest.mark.parametrize('size', [(16, 24), (11, 13), (3, 17)])
def test_padded_attn_matches_definition(dim, kwargs, size):
    """Padding acts as more zero border: the result equals the definition with zero keys/values off the map."""
    padded, _ = _pair(dim, kwargs)
    x = randn(2, dim, *size, seed=1)
    (out, _), _ = assert_formulas_agree(lambda m, x: m(x), lambda m, x: reference_halo_attn(m.attn, x), padded, x)
    s = kwargs.get('stride', 1)
    assert out.shape == (2, padded.dim_out, math.ceil(size[0] / s), math.ceil(size[1] / s))


def test_padded_attn_avg_pool_odd_size():
    """Odd b at stride 2: the 2x2 pooling runs on the cropped map, the last odd row/column averages real positions."""
    padded, _ = _pair(16, dict(block_size=7, halo_size=2, num_heads=2, stride=2))
    x = randn(1, 16, 13, 9, seed=2)

    def corners(m, x):  # the last (odd) pixel and the first one
        out = m(x)
        assert out.shape == (1, 16, 7, 5)
        return out[..., -1, -1], out[..., 0, 0]

    def reference(m, x):  # stride-1 attention (pool removed), cropped: the last pixel and the first 2x2 mean
        ref = m.attn(F.pad(x, [0, 5, 0, 1]))[..., :13, :9]
        return ref[..., -1, -1], ref[..., :2, :2].mean((-2, -1))
    assert_formulas_agree(corners, reference, padded, x)


# ---------------------------------------------------------------------------------------------------------------
# whole models at any size

@pytest.mark.parametrize('size', [(224, 224), (320, 320), (480, 640), (20, 28), (1, 1)])
def test_any_input_size(size):
    """No minimum size: every stage serves any H x W (ceil(H / stride) outputs, down to 1 x 1)."""
    model = _eval_model('zoo_halonet_h0', num_classes=10)
    x = randn(1, 3, *size)
    with torch.no_grad():
        feat = model.forward_features(x)
        out = model.forward_head(feat)
    assert feat.shape[-2:] == (math.ceil(size[0] / 32), math.ceil(size[1] / 32))
    assert out.shape == (1, 10) and torch.isfinite(out).all()


@pytest.mark.parametrize('name', ['zoo_halonet_h0', 'zoo_halonet_h3', 'zoo_halonet_h4'])
def test_features_at_detection_size(name):
    """features_only default: the stride-2 stem and the four stages (strides 2/4/8/16/32, as timm's HaloNets), here
    at 333x517 (b = 8, 10 and 12)."""
    model = _eval_model(name, features_only=True)
    info = model.feature_info
    assert info.reduction() == [2, 4, 8, 16, 32]
    x = randn(1, 3, 333, 517)
    with torch.no_grad():
        feats = model(x)
    for f, c, r in zip(feats, info.channels(), info.reduction()):
        assert f.shape == (1, c, math.ceil(333 / r), math.ceil(517 / r))
        assert torch.isfinite(f).all()
    with torch.no_grad():  # the stride-2 stem is index 0
        stem = timm.create_model(name, features_only=True, out_indices=(0,)).eval()(x)[0]
    assert stem.shape[-2:] == (167, 259)


def test_forward_intermediates_odd_size():
    model = _eval_model('zoo_halonet_h0')
    x = randn(1, 3, 97, 75)
    with torch.no_grad():
        final, inters = model.forward_intermediates(x)
        torch.testing.assert_close(final, model.forward_features(x))
    assert [t.shape[-2:] for t in inters] == [(49, 38), (25, 19), (13, 10), (7, 5), (4, 3)]


# ---------------------------------------------------------------------------------------------------------------
# loading

def test_loads_timm_halonet_h1_layout(tmp_path):
    """timm's halonet_h1 is H1; its state dict (wrapped, DDP-prefixed) loads into zoo_halonet_h1 with equal logits,
    and the zoo model also serves sizes timm's asserts on."""
    torch.manual_seed(0)
    ref = timm.create_model('halonet_h1').eval()
    path = save_checkpoint({'state_dict': {'module.' + k: v for k, v in ref.state_dict().items()}, 'epoch': 1},
                           tmp_path, 'halonet_h1.pth')
    model = load_pretrained('zoo_halonet_h1', path)
    x = randn(1, 3, 256, 256)
    expected, expected64 = fp32_and_fp64(ref, x)
    with torch.no_grad():
        torch.testing.assert_close(model(x), expected, rtol=0, atol=tol_from_spread(max_diff(expected, expected64)))
        with pytest.raises(AssertionError):
            ref(randn(1, 3, 224, 224))
        assert model(randn(1, 3, 224, 224)).shape == (1, 1000)


def test_zoo_layout_passes_through():
    model = _eval_model('zoo_halonet_h0')
    sd = model.state_dict()
    out = checkpoint_filter_fn({'model': sd}, model)
    assert list(out) == list(sd) and all(out[k] is sd[k] for k in sd)


def test_strict_loading_names_tensors():
    model = timm.create_model('zoo_halonet_h0', device='meta')
    sd = dict(model.state_dict())
    sd.pop('stages.2.1.self_attn.attn.kv.weight')
    sd['stages.0.0.self_attn.attn.extra'] = torch.zeros(1)
    sd['final_conv.weight'] = torch.zeros(1)
    sd['stages.1.0.self_attn.attn.q.weight'] = torch.zeros(3, 3, 1, 1)
    with pytest.raises(CheckpointError) as e:
        convert_and_check(sd, model, checkpoint_filter_fn)
    msg = str(e.value)
    for name in ('stages.2.1.self_attn.attn.kv.weight', 'stages.0.0.self_attn.attn.extra', 'final_conv.weight',
                 'stages.1.0.self_attn.attn.q.weight (checkpoint (3, 3, 1, 1)'):
        assert name in msg, (name, msg)


# ---------------------------------------------------------------------------------------------------------------
# training and scripting

def test_drop_path_trains():
    torch.manual_seed(0)
    model = timm.create_model('zoo_halonet_h0', num_classes=5, drop_path_rate=0.2).train()
    rates = [blk.drop_path.drop_prob for stage in model.stages for blk in stage
             if isinstance(blk.drop_path, timm.layers.DropPath)]
    assert len(rates) > 10 and max(rates) == pytest.approx(0.2, abs=0.02)
    out = model(randn(2, 3, 72, 88))
    out.sum().backward()
    assert all(p.grad is not None for p in model.parameters())


def test_torchscript_odd_size():
    from timm.layers import set_layer_config
    with set_layer_config(scriptable=True):
        model = _eval_model('zoo_halonet_h0')
    scripted = torch.jit.script(model)
    x = randn(1, 3, 37, 45)
    with torch.no_grad():
        torch.testing.assert_close(scripted(x), model(x), rtol=0, atol=tol_from_spread(fp32_spread(model, x)))


# ---------------------------------------------------------------------------------------------------------------
# bfloat16 autocast


def test_bf16_autocast_close_finite_and_no_fp32_round_trip():
    """Under CPU bf16 autocast: logits within bf16 tolerance of fp32, finite forward and backward, and inside the
    halo attention every op stays in bf16 (no op takes a bf16 tensor and returns fp32; fused SDPA runs in bf16)."""
    model = _eval_model('zoo_halonet_h0', num_classes=10)
    x = randn(2, 3, 72, 88)  # padded in every stage
    check_bf16_autocast(model, x, PaddedHaloAttn, n_sdpa=16)  # 16 attention blocks deep
