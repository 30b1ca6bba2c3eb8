"""ViT-LKCA specifics: parity with the author's code, the two exact views, kernel extension, loading, sizes."""
import math

import pytest
import timm
import torch

import zoo  # noqa: F401
from zoo.layers.lkca import LargeKernelConvAttention, lkca_attention_matrix, lkca_fit_kernel, lkca_use_matrix
from zoo.checkpoint import CheckpointError

from helpers import (assert_formulas_agree, fp32_and_fp64, golden_spread, load_pretrained, max_diff, n_params, randn,
                     save_checkpoint, tol_from_spread)
from official import load_golden, official_keys, official_state_dict

# golden (json name) -> zoo architecture; goldens from the author's Large_ViT_cnn, see tests/data/parity/README.md
PARITY = {
    'lkca_vit_05m': 'zoo_lkca_vit_05m',
    'lkca_largevit_cnn': 'zoo_lkca_vit_2m',
    'lkca_vit': 'zoo_lkca_vit',
    'lkca_vit_12m': 'zoo_lkca_vit_12m',
}

# json name of every variant, and its parameter count in millions from the dossier's table
# (architectures.md section 6.4: 64 px / 200 classes, 32 px / 100 classes)
VARIANTS = {
    'zoo_lkca_vit_05m': ('lkca_vit_05m', 0.53, 0.51),
    'zoo_lkca_vit_1m': ('lkca_vit_1m', 1.07, 1.04),
    'zoo_lkca_vit_2m': ('lkca_largevit_cnn', 2.10, 2.05),
    'zoo_lkca_vit_4m': ('lkca_vit_4m', 4.13, 4.07),
    'zoo_lkca_vit_8m': ('lkca_vit_8m', 8.04, 7.97),
    'zoo_lkca_vit_12m': ('lkca_vit_12m', 12.65, 12.56),
    'zoo_lkca_vit': ('lkca_vit', 2.76, 2.71),
}


def _trainer_checkpoint(sd):
    """The author's main.py checkpoint: model, optimizer and scheduler state."""
    return {'model_state_dict': sd, 'epoch': 7, 'optimizer_state_dict': {'state': {}, 'param_groups': [{'lr': 1e-3}]},
            'scheduler': {'last_epoch': 7}}


@pytest.mark.parity
@pytest.mark.parametrize('json_name', list(PARITY))
def test_parity_with_author_code(json_name, tmp_path):
    golden = load_golden(json_name)
    assert golden is not None, f'missing golden tests/data/parity/{json_name}.pt'
    tol = tol_from_spread(golden_spread(golden, json_name))
    # the author's two views agree with each other in the golden itself
    torch.testing.assert_close(golden['logits_vit_view'], golden['logits'], rtol=0, atol=tol)
    path = save_checkpoint(_trainer_checkpoint(official_state_dict(json_name, seed=0)), tmp_path)
    for view in ('auto', 'conv', 'matrix'):
        model = load_pretrained(PARITY[json_name], path, attn_view=view)
        with torch.no_grad():
            out = model(golden['input'])
        assert (out - golden['logits']).abs().max().item() < tol, view


@pytest.mark.parity
def test_bare_official_state_dict_and_zoo_layout_load(tmp_path):
    golden = load_golden('lkca_vit_05m')
    sd = official_state_dict('lkca_vit_05m', seed=0)
    model = load_pretrained('zoo_lkca_vit_05m', save_checkpoint(sd, tmp_path, 'bare.pth'))
    # zoo layout (our own published weights) passes through unchanged
    path = save_checkpoint({'state_dict': model.state_dict()}, tmp_path, 'zoo.pth')
    again = load_pretrained('zoo_lkca_vit_05m', path)
    tol = tol_from_spread(golden_spread(golden, 'lkca_vit_05m'))
    with torch.no_grad():
        torch.testing.assert_close(model(golden['input']), golden['logits'], rtol=0, atol=tol)
        torch.testing.assert_close(again(golden['input']), golden['logits'], rtol=0, atol=tol)


def test_strict_loading_names_tensors(tmp_path):
    sd = official_state_dict('lkca_vit_05m', seed=0)
    broken = dict(sd)
    del broken['transformer.layers.3.0.fn.to_v.weight']
    broken['transformer.layers.0.0.fn.to_qkv.weight'] = torch.zeros(300, 100)
    broken['transformer.layers.2.1.fn.net.0.weight'] = torch.zeros(100, 100)
    path = save_checkpoint(_trainer_checkpoint(broken), tmp_path)
    with pytest.raises(CheckpointError) as err:
        load_pretrained('zoo_lkca_vit_05m', path)
    msg = str(err.value)
    assert 'missing 1 tensors: blocks.3.attn.v.weight' in msg
    assert 'unexpected 1 tensors: transformer.layers.0.0.fn.to_qkv.weight' in msg
    assert 'blocks.2.mlp.fc1.weight (checkpoint (100, 100), model (200, 100))' in msg
    # a checkpoint of another variant is refused, not silently mis-loaded
    path = save_checkpoint(official_state_dict('lkca_vit_1m', seed=0), tmp_path, 'other.pth')
    with pytest.raises(CheckpointError, match='wrongly shaped'):
        load_pretrained('zoo_lkca_vit_05m', path)


@pytest.mark.parametrize('name', list(VARIANTS))
def test_param_counts_match_author_definitions(name):
    json_name, m64, m32 = VARIANTS[name]
    keys = official_keys(json_name)
    author = sum(math.prod(shape) for shape, _ in keys.values())
    cls_token = math.prod(keys['cls_token'][0])  # defined by the author's model, never used: not created here
    with torch.device('meta'):
        model = timm.create_model(name)
        model32 = timm.create_model(name, img_size=32, num_classes=100)
    assert n_params(model) == author - cls_token
    assert round(author / 1e6, 2) == m64
    assert round((n_params(model32) + cls_token) / 1e6, 2) == m32
    assert model32.patch_embed.patch_size == (4, 4) and model.patch_embed.patch_size == (8, 8)
    assert tuple(model32.blocks[0].attn.kernel.shape) == (1, 1, 15, 15)


def _naive_matrix(kernel, height, width):
    """Definition by loops: A[(i,j),(p,q)] = K[p-i+c_h, q-j+c_w], zero outside the kernel."""
    kh, kw = kernel.shape
    a = torch.zeros(height * width, height * width)
    for i in range(height):
        for j in range(width):
            for p in range(height):
                for q in range(width):
                    u, v = p - i + kh // 2, q - j + kw // 2
                    if 0 <= u < kh and 0 <= v < kw:
                        a[i * width + j, p * width + q] = kernel[u, v]
    return a


@pytest.mark.parametrize('grid', [(8, 8), (3, 5), (11, 9)])
def test_attention_matrix_definition(grid):
    kernel = randn(15, 15, seed=0)
    torch.testing.assert_close(lkca_attention_matrix(kernel, *grid), _naive_matrix(kernel, *grid))


def test_attention_matrix_is_author_window_construction():
    """The author's expand_window: row i*n+j is the n x n crop K[n-1-i : 2n-1-i, n-1-j : 2n-1-j] flattened."""
    n = 8
    kernel = randn(2 * n - 1, 2 * n - 1, seed=1)
    rows = [kernel[n - 1 - i:2 * n - 1 - i, n - 1 - j:2 * n - 1 - j].reshape(-1) for i in range(n) for j in range(n)]
    torch.testing.assert_close(lkca_attention_matrix(kernel, n, n), torch.stack(rows))


@pytest.mark.parametrize('grid', [(8, 8), (5, 7), (13, 10), (1, 1)])
def test_conv_and_matrix_views_equal(grid):
    torch.manual_seed(0)
    attn = LargeKernelConvAttention(24, num_heads=4, head_dim=6, kernel_size=(15, 15), view='conv').eval()
    torch.nn.init.normal_(attn.kernel)
    x = torch.randn(2, *grid, 24)

    def view(name):  # the value aggregation alone and the whole layer, in one view
        def run(m, x):
            m.view = name
            return getattr(m, f'aggregate_{name}')(m.v(x)), m(x)
        return run
    assert_formulas_agree(view('conv'), view('matrix'), attn, x)


def test_auto_view_picks_the_cheaper_path():
    attn = LargeKernelConvAttention(8, num_heads=1, head_dim=8, kernel_size=(15, 15))
    assert lkca_use_matrix(attn.kernel, 8, 8)  # 64 tokens <= 225 kernel taps
    assert not lkca_use_matrix(attn.kernel, 16, 16)  # 256 tokens > 225 taps
    assert lkca_use_matrix(attn.kernel, 3, 4)  # cropped kernel 5 x 7 = 35 taps >= 12 tokens
    assert lkca_use_matrix(attn.kernel, 16, 16, 'matrix') and not lkca_use_matrix(attn.kernel, 8, 8, 'conv')


def _fx_trace(model):
    """Symbolic trace as timm's suite does (timm's notrace functions / modules stay leaves)."""
    from timm.models import get_notrace_functions, get_notrace_modules
    from torchvision.models.feature_extraction import create_feature_extractor, get_graph_node_names
    kw = dict(leaf_modules=get_notrace_modules(), autowrap_functions=get_notrace_functions())
    _, eval_nodes = get_graph_node_names(model, tracer_kwargs=kw)
    return create_feature_extractor(model, return_nodes=[eval_nodes[-1]], tracer_kwargs=kw)


def test_fx_traced_model_keeps_any_size_and_view_choice():
    """The traced graph chooses the view and resamples the position embedding per input, as the eager model."""
    torch.manual_seed(0)
    model = timm.create_model('zoo_lkca_vit_05m', depth=2).eval()
    for b in model.blocks:
        torch.nn.init.normal_(b.attn.kernel, std=0.05)
    traced = _fx_trace(model)
    with torch.no_grad():
        for size in ((64, 64), (136, 130), (20, 44)):  # 8x8: matrix view, 17x17: conv view, 3x6: cropped kernel
            assert lkca_use_matrix(model.blocks[0].attn.kernel, -(-size[0] // 8), -(-size[1] // 8)) == (size[0] < 100)
            x = torch.randn(1, 3, *size)
            out = traced(x)
            out = next(iter(out.values())) if isinstance(out, dict) else out
            torch.testing.assert_close(out, model(x), rtol=0, atol=0)  # the same ops as the eager model


def test_kernel_extension_semantics():
    """Larger grid: zero-extension (no interaction beyond the training offsets); smaller grid: crop."""
    torch.manual_seed(0)
    attn = LargeKernelConvAttention(4, num_heads=1, head_dim=4, kernel_size=(15, 15), view='conv')
    torch.nn.init.normal_(attn.kernel)
    # zero-extension: on a 12 x 12 grid, token (0, 0) reaches offsets <= 7 only
    v = torch.zeros(1, 12, 12, 4)
    v[0, 0, 0] = 1.
    out = attn.aggregate_conv(v)
    assert out[0, 7, 7].abs().sum() > 0 and out[0, :8, :8].abs().min() > 0
    assert out[0, 8:].abs().sum() == 0 and out[0, :, 8:].abs().sum() == 0
    # same as the explicitly zero-padded kernel
    padded = lkca_fit_kernel(attn.kernel, 12, 12)
    assert padded.shape[-2:] == (23, 23)
    # one non-zero value: every output is one kernel tap (or zero), exact in any summation order
    torch.testing.assert_close(out, attn.aggregate_matrix(v), rtol=0, atol=0)
    # crop: a 5 x 5 grid gives what the 8 x 8 grid gives on its top-left corner when the rest is zero
    small = torch.randn(1, 5, 5, 4)
    big = torch.zeros(1, 8, 8, 4)
    big[:, :5, :5] = small
    assert_formulas_agree(lambda m, s, b: m.aggregate_conv(s), lambda m, s, b: m.aggregate_conv(b)[:, :5, :5],
                          attn, small, big)


def test_any_input_size_and_32px_setting():
    torch.manual_seed(0)
    model = timm.create_model('zoo_lkca_vit_05m').eval()
    with torch.no_grad():
        for h, w in [(64, 64), (70, 50), (100, 130), (16, 16), (7, 9)]:
            feat = model.forward_features(torch.randn(1, 3, h, w))
            assert feat.shape[-2:] == (math.ceil(h / 8), math.ceil(w / 8))
            assert torch.isfinite(feat).all()
        m32 = timm.create_model('zoo_lkca_vit_05m', img_size=32, num_classes=100).eval()
        assert m32(torch.randn(2, 3, 32, 32)).shape == (2, 100)
        assert m32.forward_features(torch.randn(1, 3, 32, 32)).shape[-2:] == (8, 8)


def test_padding_and_position_embedding_resampling():
    """A non-multiple input is zero-padded bottom/right; the position embedding follows the grid bicubically."""
    torch.manual_seed(0)
    model = timm.create_model('zoo_lkca_vit_05m').eval()
    x = torch.randn(1, 3, 60, 61)
    padded = torch.zeros(1, 3, 64, 64)
    padded[..., :60, :61] = x
    assert_formulas_agree(lambda m, x, p: m(x), lambda m, x, p: m(p), model, x, padded)
    with torch.no_grad():
        tokens = model.patch_embed(torch.randn(1, 3, 96, 96))
        pos = model._pos_embed(torch.zeros_like(tokens))
    assert pos.shape[1:3] == (12, 12)
    expected = torch.nn.functional.interpolate(
        model.pos_embed.permute(0, 3, 1, 2), size=(12, 12), mode='bicubic', antialias=True).permute(0, 2, 3, 1)
    torch.testing.assert_close(pos, expected)


def test_checkpoint_from_training_grid_loads_into_larger_grid(tmp_path):
    """Loading adapts pos-embed / kernel exactly like the forward pass adapts them at run time."""
    path = save_checkpoint(_trainer_checkpoint(official_state_dict('lkca_vit_05m', seed=0)), tmp_path)
    m64 = load_pretrained('zoo_lkca_vit_05m', path)
    m128 = load_pretrained('zoo_lkca_vit_05m', path, img_size=128, patch_size=8)
    assert tuple(m128.blocks[0].attn.kernel.shape) == (1, 1, 31, 31)
    x = torch.randn(1, 3, 128, 128)
    ref, ref64 = fp32_and_fp64(m64, x)  # one formula (the same 31 x 31 kernel): m64's spread alone
    with torch.no_grad():
        torch.testing.assert_close(m128(x), ref, rtol=0, atol=tol_from_spread(max_diff(ref, ref64)))


def test_feature_pyramid():
    torch.manual_seed(0)
    model = timm.create_model('zoo_lkca_vit_05m', features_only=True).eval()
    assert model.feature_info.reduction() == [4, 8, 16, 32]
    with torch.no_grad():
        feats = model(torch.randn(1, 3, 128, 96))
    assert [tuple(f.shape[-2:]) for f in feats] == [(32, 24), (16, 12), (8, 6), (4, 3)]
    full = timm.create_model('zoo_lkca_vit_05m').eval()
    with torch.no_grad():
        x = torch.randn(1, 3, 64, 64)
        final, inter = full.forward_intermediates(x)
    torch.testing.assert_close(inter[1], final)
    torch.testing.assert_close(inter[3], torch.nn.functional.max_pool2d(final, 4))
    m32 = timm.create_model('zoo_lkca_vit_05m', img_size=32, features_only=True)
    assert m32.feature_info.reduction() == [2, 4, 8, 16]


def test_drop_path_is_constant_and_active_in_training():
    model = timm.create_model('zoo_lkca_vit_05m', drop_path_rate=0.3)
    rates = {b.drop_path1.drop_prob for b in model.blocks} | {b.drop_path2.drop_prob for b in model.blocks}
    assert rates == {0.3}  # the author's single rate, not a ramp
    model.train()
    torch.nn.init.normal_(model.blocks[0].attn.kernel)
    x = torch.randn(4, 3, 64, 64)
    torch.manual_seed(0)
    a = model(x)
    torch.manual_seed(1)
    b = model(x)
    assert not torch.allclose(a, b)


def test_kernel_is_zero_initialised():
    model = timm.create_model('zoo_lkca_vit_05m')
    assert all(b.attn.kernel.abs().sum() == 0 for b in model.blocks)
