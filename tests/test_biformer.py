"""BiFormer specifics: parity with the official code, checkpoint loading, BRA semantics, padding, sizes, budgets."""
import pytest
import timm
import torch
import torch.nn.functional as F
from torch.utils.flop_counter import FlopCounterMode

import zoo  # noqa: F401
from zoo.layers.bra_reference import bra_gather_reference
from zoo.layers.bra import BiLevelRoutingAttention
from zoo.checkpoint import CheckpointError

from helpers import (assert_formulas_agree, check_bf16_autocast, fp64_tol, golden_spread, load_pretrained, max_diff,
                     n_params, randn, save_checkpoint, tol_from_spread, with_grads)
from official import load_golden, official_state_dict

# golden -> (json name of the official keys, zoo architecture); produced by rayleizhu/BiFormer, see
# tests/data/parity/README.md. *_autopad: official model with auto_pad=True at a size not divisible by the regions.
PARITY = {
    'biformer_tiny': ('biformer_tiny', 'zoo_biformer_tiny'),
    'biformer_tiny_autopad': ('biformer_tiny', 'zoo_biformer_tiny'),
    'biformer_small': ('biformer_small', 'zoo_biformer_small'),
    'biformer_base': ('biformer_base', 'zoo_biformer_base'),
}

# paper / README: params (M) and GFLOPs (reported as FLOPs, i.e. multiply-accumulates) at 224
BUDGET = {
    'zoo_biformer_tiny': (13.1, 2.2),
    'zoo_biformer_small': (25.5, 4.5),
    'zoo_biformer_base': (56.8, 9.8),
}


@pytest.mark.parity
@pytest.mark.parametrize('golden_name', list(PARITY))
def test_parity_with_official_code(golden_name, tmp_path):
    golden = load_golden(golden_name)
    assert golden is not None, f'missing golden tests/data/parity/{golden_name}.pt'
    json_name, arch = PARITY[golden_name]
    # the official release format: weights under 'model'
    model = load_pretrained(arch, save_checkpoint({'model': official_state_dict(json_name, seed=0)}, tmp_path))
    with torch.no_grad():
        out = model(golden['input'])
    # random weights give |logits| up to ~170 (T) and ~14000 (S/B): the official model's own float32 rounding
    # (its golden spread) is 6e-5 (T) / 9e-3 (S/B)
    spread = golden_spread(golden, golden_name)
    assert (out - golden['logits']).abs().max().item() < tol_from_spread(spread)
    model.double()
    with torch.no_grad():
        out64 = model(golden['input'].double())
    assert (out64 - golden['logits_fp64']).abs().max().item() < fp64_tol(spread)


@pytest.mark.parity
def test_bare_and_zoo_layout_checkpoints_load(tmp_path):
    golden = load_golden('biformer_tiny_autopad')
    path = save_checkpoint(official_state_dict('biformer_tiny', seed=0), tmp_path, 'bare.pth')
    model = load_pretrained('zoo_biformer_tiny', path)
    again = load_pretrained('zoo_biformer_tiny',
                            save_checkpoint({'state_dict': model.state_dict()}, tmp_path, 'zoo.pth'))
    tol = tol_from_spread(golden_spread(golden, 'biformer_tiny_autopad'))
    with torch.no_grad():
        torch.testing.assert_close(model(golden['input']), golden['logits'], rtol=0, atol=tol)
        torch.testing.assert_close(again(golden['input']), golden['logits'], rtol=0, atol=tol)
    # head dropped / stem adapted by timm on top of the converted checkpoint
    m5 = load_pretrained('zoo_biformer_tiny', path, num_classes=5, in_chans=1)
    assert m5(torch.randn(1, 1, 64, 64)).shape == (1, 5)
    feats = load_pretrained('zoo_biformer_tiny', path, features_only=True)
    assert [f.shape[1] for f in feats(torch.randn(1, 3, 64, 64))] == [64, 128, 256, 512]


def test_strict_loading_names_tensors(tmp_path):
    sd = official_state_dict('biformer_tiny', seed=0)
    del sd['stages.2.3.attn.lepe.weight']
    sd['stages.0.0.attn.router.emb.weight'] = torch.zeros(64, 64)
    sd['stages.3.1.attn.qkv.weight'] = torch.zeros(512 * 3, 256)
    with pytest.raises(CheckpointError) as err:
        load_pretrained('zoo_biformer_tiny', save_checkpoint({'model': sd}, tmp_path))
    msg = str(err.value)
    assert 'stages.2.blocks.3.attn.lepe.weight' in msg  # missing, under its zoo name
    assert 'stages.0.blocks.0.attn.router.emb.weight' in msg  # unexpected
    assert 'stages.3.blocks.1.attn.qkv.weight' in msg and '(1536, 256)' in msg  # wrongly shaped
    with pytest.raises(CheckpointError, match='not a state dict'):
        load_pretrained('zoo_biformer_tiny', save_checkpoint({'model': {'epoch': 3}}, tmp_path, 'bad.pth'))


@pytest.mark.parametrize('arch', list(BUDGET))
def test_params_and_macs_match_paper(arch):
    params_m, gmacs = BUDGET[arch]
    model = timm.create_model(arch).eval()
    n = n_params(model) / 1e6
    assert abs(n - params_m) / params_m < 0.01, n
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(torch.randn(1, 3, 224, 224))
    macs = counter.get_total_flops() / 2 / 1e9
    assert abs(macs - gmacs) / gmacs < 0.01, macs


def _bra(mask_padding, n_win=7, topk=4, dim=64, heads=2, seed=0):
    torch.manual_seed(seed)
    attn = BiLevelRoutingAttention(dim, num_heads=heads, n_win=n_win, topk=topk, mask_padding=mask_padding)
    with torch.no_grad():
        attn.qkv.bias.normal_()  # padded tokens carry this bias: make it matter
    return attn


@pytest.mark.parametrize('mask_padding', [False, True])
@pytest.mark.parametrize('H,W,n_win,topk', [
    (28, 28, 7, 4), (13, 19, 7, 4), (4, 5, 7, 16), (33, 17, 4, 3), (3, 3, 7, 49)])
def test_bra_matches_gather_reference(mask_padding, H, W, n_win, topk):
    attn = _bra(mask_padding, n_win, topk)
    x = torch.randn(2, H, W, 64)
    # the value and the gradients (input, every parameter), compared in float64, where the routing cannot flip
    # between near-equal region affinities
    (out, _), _ = assert_formulas_agree(with_grads(lambda m, x: m(x), input_grad=True),
                                        with_grads(bra_gather_reference, input_grad=True), attn, x,
                                        dtypes=(torch.float64,))
    assert out[0].shape == x.shape


def test_bra_token_sees_only_its_routed_region():
    """Without LePE, a query token's output depends on its own token (query) and the tokens of its routed region
    only; the router picks the key region with the largest mean-q . mean-k affinity (row-major regions)."""
    torch.manual_seed(0)
    S, C = 2, 32
    attn = BiLevelRoutingAttention(C, num_heads=2, n_win=S, topk=1, lepe_kernel=0)
    x = torch.randn(1, 8, 8, C, requires_grad=True)
    with torch.no_grad():
        q, k = attn.qkv(x)[..., :2 * C].view(1, S, 4, S, 4, 2 * C).mean((2, 4)).reshape(1, S * S, 2 * C).split(C, -1)
        routed = (q @ k.transpose(-2, -1))[0].argmax(-1)  # (regions,)
    for (i, j) in [(0, 0), (1, 6), (5, 2), (7, 7)]:
        grad, = torch.autograd.grad(attn(x)[0, i, j].sum(), x)
        touched = grad[0].abs().sum(-1) > 0
        r = routed[(i // 4) * S + j // 4].item()
        expected = torch.zeros(8, 8, dtype=torch.bool)
        expected[(r // S) * 4:(r // S + 1) * 4, (r % S) * 4:(r % S + 1) * 4] = True
        expected[i, j] = True
        assert torch.equal(touched, expected), (i, j, r)


def test_bra_mask_padding_excludes_padded_tokens():
    """mask_padding with topk = all regions is exactly dense attention + LePE over the unpadded tokens."""
    H, W, C, heads, S = 10, 12, 64, 2, 4
    attn = _bra(True, n_win=S, topk=S * S, dim=C, heads=heads).eval()
    x = torch.randn(1, H, W, C)

    def dense_attention(attn, x):
        q, k, v = attn.qkv(x).reshape(1, H * W, 3, heads, C // heads).permute(2, 0, 3, 1, 4)
        dense = F.softmax((q * attn.scale) @ k.transpose(-2, -1), -1) @ v
        dense = dense.transpose(1, 2).reshape(1, H, W, C)
        v_img = v.transpose(1, 2).reshape(1, H, W, C).permute(0, 3, 1, 2)
        return attn.proj(dense + attn.lepe(v_img).permute(0, 2, 3, 1))
    (_, _), (expected, expected64) = assert_formulas_agree(lambda m, x: m(x), dense_attention, attn, x)
    with torch.no_grad():
        # the official auto_pad mode lets padded tokens (carrying the qkv bias) in: it differs beyond rounding
        attn.mask_padding = False
        assert (attn(x) - expected).abs().max() > tol_from_spread(max_diff(expected, expected64))
        # on divisible sizes both modes are the same computation
        x8 = torch.randn(1, 8, 12, C)
        y_pad = attn(x8)
        attn.mask_padding = True
        torch.testing.assert_close(attn(x8), y_pad, rtol=0, atol=0)


def test_bra_uses_full_qk_width_scale():
    attn = BiLevelRoutingAttention(64, num_heads=2, n_win=7, topk=1)
    assert attn.scale == 64 ** -0.5  # not head_dim ** -0.5, as the released models
    with pytest.raises(ValueError, match='topk'):
        BiLevelRoutingAttention(64, num_heads=2, n_win=2, topk=5)


def test_features_any_size_and_mask_option():
    x = torch.randn(1, 3, 333, 517)
    for mask_padding in (False, True):
        torch.manual_seed(0)
        model = timm.create_model('zoo_biformer_tiny', features_only=True, mask_padding=mask_padding).eval()
        assert model.feature_info.channels() == [64, 128, 256, 512]
        assert model.feature_info.reduction() == [4, 8, 16, 32]
        with torch.no_grad():
            feats = model(x)
        assert [tuple(f.shape[-2:]) for f in feats] == [(84, 130), (42, 65), (21, 33), (11, 17)]
        assert all(torch.isfinite(f).all() for f in feats)
    b = timm.create_model('zoo_biformer_base', features_only=True)
    assert b.feature_info.channels() == [96, 192, 384, 768]


def test_too_small_input_names_minimum():
    model = timm.create_model('zoo_biformer_tiny', num_classes=3).eval()
    with torch.no_grad():
        with pytest.raises(ValueError, match=r'at least 32x32 pixels.*16x16'):
            model(torch.randn(1, 3, 16, 16))
        with pytest.raises(ValueError, match=r'at least 32x32'):
            model.forward_intermediates(torch.randn(1, 3, 40, 20))
        assert model(torch.randn(1, 3, 32, 32)).shape == (1, 3)
        # a pruned feature extractor needs only the stride of its deepest stage
        feats = timm.create_model('zoo_biformer_tiny', features_only=True, out_indices=(0, 1)).eval()
        assert [f.shape[-1] for f in feats(torch.randn(1, 3, 8, 8))] == [2, 1]
        with pytest.raises(ValueError, match=r'at least 8x8'):
            feats(torch.randn(1, 3, 4, 4))


def test_region_grid_topk_and_drop_path_args():
    model = timm.create_model('zoo_biformer_tiny', n_win=(8, 8, 8, 8), topks=(2, 8, 16, -2), drop_path_rate=0.2)
    bras = [m for m in model.modules() if isinstance(m, BiLevelRoutingAttention)]
    assert len(bras) == 12 and {m.n_win for m in bras} == {8} and [m.topk for m in bras[:3]] == [2, 2, 8]
    blocks = [b for s in model.stages for b in s.blocks]
    assert isinstance(blocks[0].drop_path1, torch.nn.Identity)
    assert blocks[-1].drop_path1.drop_prob == pytest.approx(0.2)
    model.eval()
    with torch.no_grad():
        assert model(torch.randn(1, 3, 96, 80)).shape == (1, 1000)


@pytest.mark.parametrize('mask_padding', [False, True])
def test_bf16_autocast_close_finite_and_no_fp32_round_trip(mask_padding):
    """Under CPU bf16 autocast: logits within bf16 tolerance of fp32, finite forward and backward, and inside BRA
    and the dense attention every op stays in bf16 (no op takes a bf16 tensor and returns fp32)."""
    from zoo.layers.lepe import AttentionLePE
    torch.manual_seed(0)
    model = timm.create_model('zoo_biformer_tiny', num_classes=10, mask_padding=mask_padding).eval()
    x = randn(2, 3, 96, 136)  # padded in stages 1-3
    check_bf16_autocast(model, x, (BiLevelRoutingAttention, AttentionLePE), n_sdpa=14)
