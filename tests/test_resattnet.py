"""Residual Attention Network specifics: graph vs the official Caffe prototxts, sizes, counts, loading."""
import collections

import pytest
import timm
import torch
import torch.nn.functional as F
from torch.utils.flop_counter import FlopCounterMode

import zoo  # noqa: F401
from zoo.layers.residual_attention import PreActBottleneck, ResidualAttentionModule
from zoo.checkpoint import CheckpointError
from zoo.models.zoo_resattnet import ResidualAttentionNet, _cifar_args

from helpers import fp32_and_fp64, fp64_tol, load_pretrained, max_diff, n_params, save_checkpoint
from official import official_state_dict

# (num_output, kernel_size, stride) of every Convolution layer in the official deploy prototxts
# (fwang91/residual-attention-network@bc207a8, imagenet_model/Attention-{56,92}-deploy.prototxt), counted once
# from those files; plus their BN / max-pool / sigmoid layer counts.
_COMMON = {(64, 1, 1): 13, (64, 3, 1): 13, (64, 7, 2): 1, (128, 3, 2): 1, (256, 3, 2): 1, (512, 1, 2): 1,
           (512, 3, 1): 2, (512, 3, 2): 1, (1024, 1, 2): 1, (2048, 1, 1): 3, (2048, 1, 2): 1}
PROTOTXT = {
    'zoo_resattnet56': dict(
        convs={**_COMMON, (128, 1, 1): 10, (128, 3, 1): 9, (256, 1, 1): 23, (256, 3, 1): 6, (512, 1, 1): 15,
               (1024, 1, 1): 9},
        bn=107, maxpool=7, sigmoid=3),
    'zoo_resattnet92': dict(
        convs={**_COMMON, (128, 1, 1): 19, (128, 3, 1): 18, (256, 1, 1): 35, (256, 3, 1): 18, (512, 1, 1): 26,
               (1024, 1, 1): 25},
        bn=176, maxpool=11, sigmoid=6),
}

# params (conv + BN scale/shift + FC) and multiply-adds at 224 px counted from the prototxts (dossier section 7.2),
# and the paper's table (31.9M / 6.3 GFLOPs, 51.3M / 10.4 GFLOPs)
COUNTS = {'zoo_resattnet56': (31.81e6, 6.27e9, 31.9e6, 6.3e9), 'zoo_resattnet92': (52.47e6, 10.53e9, 51.3e6, 10.4e9)}


def _meta(name, **kwargs):
    with torch.device('meta'):
        return timm.create_model(name, **kwargs)


@pytest.mark.parametrize('name', list(PROTOTXT))
def test_graph_matches_official_prototxt(name):
    model = _meta(name)
    ref = PROTOTXT[name]
    convs = collections.Counter(
        (m.out_channels, m.kernel_size[0], m.stride[0]) for m in model.modules() if isinstance(m, torch.nn.Conv2d))
    assert convs == collections.Counter(ref['convs'])
    assert all(m.bias is None for m in model.modules() if isinstance(m, torch.nn.Conv2d))
    assert sum(isinstance(m, torch.nn.BatchNorm2d) for m in model.modules()) == ref['bn']
    assert sum(isinstance(m, torch.nn.MaxPool2d) for m in model.modules()) == ref['maxpool']
    assert sum(isinstance(m, torch.nn.Sigmoid) for m in model.modules()) == ref['sigmoid']


@pytest.mark.parametrize('name', list(COUNTS))
def test_params_and_macs(name):
    """Own faithful count within 0.1% of the prototxt count; the paper's figures within 0.5% (56) / 2.5% (92):
    the paper's Attention-92 row is smaller than its official prototxt (documented in the model docstring)."""
    params, macs, paper_params, paper_flops = COUNTS[name]
    model = _meta(name)
    n = n_params(model)
    with FlopCounterMode(display=False) as counter:
        model(torch.empty(1, 3, 224, 224, device='meta'))
    m = counter.get_total_flops() / 2
    assert abs(n - params) / params < 1e-3
    assert abs(m - macs) / macs < 1e-3
    tol = 0.005 if name == 'zoo_resattnet56' else 0.025
    assert abs(n - paper_params) / paper_params < tol
    assert abs(m - paper_flops) / paper_flops < (0.01 if name == 'zoo_resattnet56' else 0.015)


def test_cifar_param_counts_vs_paper():
    """The CIFAR reconstruction reproduces the paper's sizes: Attention-92 1.9M, Attention-236 5.1M (within 4%)."""
    n92 = n_params(_meta('zoo_resattnet92_cifar'))
    with torch.device('meta'):
        n236 = n_params(ResidualAttentionNet(**_cifar_args(6), num_classes=10))
    assert abs(n92 - 1.9e6) / 1.9e6 < 0.04
    assert abs(n236 - 5.1e6) / 5.1e6 < 0.04
    n164 = n_params(_meta('zoo_resattnet164_cifar'))
    assert n92 < n164 < n236
    # depth = 36 m + 20 weighted layers on the trunk path (3 per unit, plus stem conv and FC)
    for name, depth in [('zoo_resattnet92_cifar', 92), ('zoo_resattnet164_cifar', 164)]:
        model = _meta(name)
        units = 0
        for stage in model.stages:
            for block in stage.blocks:
                units += 4 if isinstance(block, ResidualAttentionModule) else 1
        assert 3 * units + 2 == depth


def _caffe_stage_a(module, x):
    """Attention stage A written out along the prototxt's blob names, reusing the module's units."""
    res1 = module.pre(x)  # trunk/res1
    res3 = module.trunk[1](module.trunk[0](res1))  # trunk/res3
    mask = module.mask
    d_res1_1 = mask.down[0](res1)  # down_sample/pool1 -> res1_1
    d_res2_1 = mask.down[1](d_res1_1)  # pool2 -> res2_1
    d_res3_2 = mask.down[2](d_res2_1)  # pool3 -> res3_1 -> res3_2
    interp = lambda t, ref: F.interpolate(t, size=ref.shape[-2:], mode='bilinear', align_corners=True)
    up2 = mask.skip[0](d_res2_1) + interp(d_res3_2, d_res2_1)  # skip/res2 + interp_3
    u_res2_1 = mask.up[0](up2)
    up1 = mask.skip[1](d_res1_1) + interp(u_res2_1, d_res1_1)  # skip/res1 + interp_2
    u_res1_1 = mask.up[1](up1)
    m = mask.head(interp(u_res1_1, res3))  # interp_1 -> bn-relu-linear_1-bn-relu-linear_2-sigmoid
    assert len(mask.down[2]) == 3 and len(mask.down[0]) == 2  # pool + 2 units at the bottom, pool + 1 above
    return module.post(res3 * m + res3)  # _residual (PROD) + fusion (SUM), then the last unit


@pytest.mark.parametrize('size', [(56, 56), (23, 17)])
def test_attention_module_dataflow(size):
    torch.manual_seed(0)
    module = ResidualAttentionModule(32, num_levels=3).eval()
    for m in module.modules():
        if isinstance(m, PreActBottleneck):
            torch.nn.init.normal_(m.conv3.weight, std=0.05)
    x = torch.randn(2, 32, *size)
    with torch.no_grad():
        out = module(x)
        ref = _caffe_stage_a(module, x)
        t = module.trunk(module.pre(x))
        m = module.mask(module.pre(x), t)
    assert out.shape == x.shape
    torch.testing.assert_close(out, ref)
    assert m.shape == t.shape and m.min() > 0 and m.max() < 1
    # mask is not trivially constant: it modulates channels and positions
    assert m.std() > 1e-3


def test_preact_unit():
    torch.manual_seed(0)
    unit = PreActBottleneck(64, 256, stride=2).eval()
    torch.nn.init.normal_(unit.conv3.weight, std=0.05)
    x = torch.randn(1, 64, 9, 9)
    with torch.no_grad():
        pre = F.relu(unit.norm1(x))
        branch = unit.conv3(F.relu(unit.norm3(unit.conv2(F.relu(unit.norm2(unit.conv1(pre)))))))
        torch.testing.assert_close(unit(x), branch + unit.downsample(pre))  # projection of the pre-activated input
    same = PreActBottleneck(64, 64).eval()
    assert same.downsample is None


@pytest.mark.parametrize('size', [(224, 224), (97, 131), (40, 40), (5, 3)])
def test_any_input_size(size):
    torch.manual_seed(0)
    model = timm.create_model('zoo_resattnet56', num_classes=5).eval()
    with torch.no_grad():
        out = model(torch.randn(1, 3, *size))
    assert out.shape == (1, 5) and torch.isfinite(out).all()


def test_cifar_models_any_size_and_features():
    torch.manual_seed(0)
    model = timm.create_model('zoo_resattnet92_cifar', features_only=True).eval()
    assert model.feature_info.reduction() == [1, 2, 4]
    assert model.feature_info.channels() == [64, 128, 256]
    with torch.no_grad():
        feats = model(torch.randn(1, 3, 32, 32))
        assert [f.shape[-1] for f in feats] == [32, 16, 8]
        full = timm.create_model('zoo_resattnet92_cifar').eval()
        assert full(torch.randn(1, 3, 27, 45)).shape == (1, 10)


def test_imagenet_features():
    model = timm.create_model('zoo_resattnet56', features_only=True).eval()
    assert model.feature_info.reduction() == [4, 8, 16, 32]
    assert model.feature_info.channels() == [256, 512, 1024, 2048]
    with torch.no_grad():
        feats = model(torch.randn(1, 3, 96, 128))
    assert [tuple(f.shape[-2:]) for f in feats] == [(24, 32), (12, 16), (6, 8), (3, 4)]


def test_zoo_layout_round_trip_and_strict_errors(tmp_path):
    torch.manual_seed(0)
    model = timm.create_model('zoo_resattnet92_cifar').eval()
    for m in model.modules():
        if isinstance(m, PreActBottleneck):
            torch.nn.init.normal_(m.conv3.weight, std=0.02)
    loaded = load_pretrained('zoo_resattnet92_cifar', save_checkpoint(
        {'state_dict': {'module.' + k: v for k, v in model.state_dict().items()}}, tmp_path, 'ours.pth'))
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), model(x))

    sd = dict(model.state_dict())
    del sd['stages.1.blocks.1.mask.skip.0.conv2.weight']
    sd['stages.0.blocks.1.mask.extra.weight'] = torch.zeros(1)
    sd['stages.2.blocks.0.downsample.weight'] = torch.zeros(256, 128, 3, 3)
    with pytest.raises(CheckpointError) as err:
        load_pretrained('zoo_resattnet92_cifar', save_checkpoint(sd, tmp_path, 'ours.pth'))
    msg = str(err.value)
    assert 'missing 1 tensors: stages.1.blocks.1.mask.skip.0.conv2.weight' in msg
    assert 'unexpected 1 tensors: stages.0.blocks.1.mask.extra.weight' in msg
    assert 'stages.2.blocks.0.downsample.weight (checkpoint (256, 128, 3, 3), model (256, 128, 1, 1))' in msg


def test_third_party_layout_is_refused_with_reason(tmp_path):
    """tengshaofeng's re-implementation is a different network: refused, never silently converted."""
    path = save_checkpoint(official_state_dict('resattn56', seed=0), tmp_path, 'tsf.pth')
    with pytest.raises(CheckpointError, match='different network'):
        load_pretrained('zoo_resattnet56', path)


def test_grad_checkpointing_train_mode_matches():
    torch.manual_seed(0)
    model = timm.create_model('zoo_resattnet92_cifar', num_classes=3)
    for m in model.modules():
        if isinstance(m, PreActBottleneck):
            torch.nn.init.normal_(m.conv3.weight, std=0.02)
    model.train()
    x = torch.randn(2, 3, 32, 32)
    out = model(x)
    out.sum().backward()
    grads = {n: p.grad.clone() for n, p in model.named_parameters()}
    model.zero_grad()
    model.set_grad_checkpointing(True)
    out2 = model(x)  # BN in train mode uses batch statistics: deterministic, so outputs match
    out2.sum().backward()
    # the checkpointed segments rerun the same ops on the same inputs: the same values and gradients, exactly
    torch.testing.assert_close(out2, out, rtol=0, atol=0)
    for n, p in model.named_parameters():
        torch.testing.assert_close(p.grad, grads[n], rtol=0, atol=0)


def test_fx_traced_model_keeps_any_input_size():
    """The size-dependent mask up-sampling is an FX leaf: a traced model (as timm's suite traces it) still serves
    inputs whose pooling pyramid has odd sizes, with the eager model's output."""
    from timm.models import get_notrace_functions, get_notrace_modules
    from torchvision.models.feature_extraction import create_feature_extractor, get_graph_node_names
    torch.manual_seed(0)
    model = timm.create_model('zoo_resattnet92_cifar', zero_init_last=False).eval()
    kw = dict(leaf_modules=get_notrace_modules(), autowrap_functions=get_notrace_functions())
    _, eval_nodes = get_graph_node_names(model, tracer_kwargs=kw)
    traced = create_feature_extractor(model, return_nodes=[eval_nodes[-1]], tracer_kwargs=kw)
    with torch.no_grad():
        for size in ((32, 32), (23, 17)):
            x = torch.randn(1, 3, *size)
            out = traced(x)
            out = next(iter(out.values())) if isinstance(out, dict) else out
            torch.testing.assert_close(out, model(x), rtol=0, atol=0)  # the same ops as the eager model


@pytest.mark.parametrize('output_stride, reductions, dilations', [
    (16, [4, 8, 16, 16], [1, 1, 1, 2]),
    (8, [4, 8, 8, 8], [1, 1, 2, 4]),
])
def test_output_stride_dilates_later_stages(output_stride, reductions, dilations):
    """timm's ResNet scheme: past output_stride a stage's stride becomes dilation; its transition unit keeps the
    previous dilation, every later unit and Attention Module (soft mask branch included) takes the new one."""
    from zoo.layers.residual_attention import DilatedMaxPool
    model = timm.create_model('zoo_resattnet56', features_only=True, output_stride=output_stride).eval()
    assert model.feature_info.reduction() == reductions
    assert n_params(model) == n_params(timm.create_model('zoo_resattnet56', features_only=True))
    prev_dilation = 1
    for i, stage in enumerate(model.model.stages):
        first, *rest = stage.blocks
        assert first.conv2.stride == ((2, 2) if i > 0 and reductions[i] > reductions[i - 1] else (1, 1))
        assert first.conv2.dilation == (prev_dilation,) * 2
        later = [m for b in rest for m in b.modules()]
        assert {m.dilation for m in later if isinstance(m, torch.nn.Conv2d) and m.kernel_size == (3, 3)} == \
            {(dilations[i],) * 2}
        pools = [m for m in later if isinstance(m, (torch.nn.MaxPool2d, DilatedMaxPool))]
        assert all(isinstance(p, DilatedMaxPool) == (dilations[i] > 1) for p in pools)
        prev_dilation = dilations[i]
    with torch.no_grad():
        feats = model(torch.randn(1, 3, 96, 128))
    assert [tuple(f.shape[-2:]) for f in feats] == [(96 // r, 128 // r) for r in reductions]
    assert all(torch.isfinite(f).all() for f in feats)
    with pytest.raises(ValueError, match='zoo_resattnet56 supports output_stride 8, 16 or 32; got 4'):
        timm.create_model('zoo_resattnet56', output_stride=4)


def test_dilated_stage_is_the_undilated_stage_sampled_densely():
    """At output_stride 16 the last stage (plain units) runs at stride 16 with dilation 2: on the even positions
    its output is the undilated network's (float64: only summation order differs; two formulas, within the sum of
    both float32 spreads scaled to float64)."""
    torch.manual_seed(0)
    base = timm.create_model('zoo_resattnet56', zero_init_last=False).double().eval()
    dilated = timm.create_model('zoo_resattnet56', zero_init_last=False, output_stride=16).double().eval()
    dilated.load_state_dict(base.state_dict())
    x = torch.randn(1, 3, 96, 128, dtype=torch.float64)

    def stages(model, x):
        return model.forward_intermediates(x, intermediates_only=True)
    ref32, ref = fp32_and_fp64(stages, base, x)
    out32, out = fp32_and_fp64(stages, dilated, x)
    for r, o in zip(ref[:3], out[:3]):
        assert torch.equal(r, o)
    assert out[3].shape[-2:] == (6, 8)
    spread = max_diff(ref32[3], ref[3]) + max_diff(out32[3][..., ::2, ::2], out[3][..., ::2, ::2])
    torch.testing.assert_close(out[3][..., ::2, ::2], ref[3], rtol=0, atol=fp64_tol(spread))


@pytest.mark.parametrize('size', [(24, 20), (23, 17)])
def test_dilated_soft_mask_branch_keeps_the_receptive_fields(size):
    """A soft mask branch dilated by 2 on a map twice as dense: each level of its pooling pyramid (max pools and
    units dilated by 2, pools keeping stride 2) holds the undilated pyramid's values on its even positions, so
    every unit sees the receptive field it has undilated; the mask comes out at the dense trunk's size
    (float64: only summation order differs; two formulas, within the sum of both float32 spreads scaled to
    float64)."""
    from zoo.layers.residual_attention import SoftMaskBranch
    torch.manual_seed(0)
    base = SoftMaskBranch(16, num_levels=3).double().eval()
    dilated = SoftMaskBranch(16, num_levels=3, dilation=2).double().eval()
    for m in base.modules():
        if isinstance(m, PreActBottleneck):
            torch.nn.init.normal_(m.conv3.weight, std=0.1)
    dilated.load_state_dict(base.state_dict())
    dense = torch.randn(2, 16, *size, dtype=torch.float64)

    def levels(branch, x):
        outs = []
        for level in branch.down:
            outs.append(x := level(x))
        return outs
    xs32, xs = fp32_and_fp64(levels, base, dense[..., ::2, ::2])
    xds32, xds = fp32_and_fp64(levels, dilated, dense)
    for x32, x, xd32, xd in zip(xs32, xs, xds32, xds, strict=True):
        assert xd.shape[-2:] == ((size[0] + 1) // 2, (size[1] + 1) // 2)
        size = tuple(xd.shape[-2:])
        spread = max_diff(x32, x) + max_diff(xd32[..., ::2, ::2], xd[..., ::2, ::2])
        torch.testing.assert_close(xd[..., ::2, ::2], x, rtol=0, atol=fp64_tol(spread))
    with torch.no_grad():
        trunk = torch.randn(2, 16, 24, 20, dtype=torch.float64)
        mask = dilated(dense, trunk)
    assert mask.shape == trunk.shape and mask.min() > 0 and mask.max() < 1


def test_dilated_model_scripts_and_cifar_strides():
    """The dilated model (dilated max pools in its soft masks) scripts with TorchScript to the eager features;
    the CIFAR models already run at stride 4, below every supported output_stride, so it changes nothing."""
    torch.manual_seed(0)
    model = timm.create_model('zoo_resattnet56', features_only=True, output_stride=8).eval()
    x = torch.randn(1, 3, 64, 96)
    with torch.no_grad():
        for e, s in zip(model(x), torch.jit.script(model)(x)):
            assert torch.equal(e, s)
    cifar = timm.create_model('zoo_resattnet92_cifar', output_stride=8)
    assert [f['reduction'] for f in cifar.feature_info] == [1, 2, 4]
    assert all(m.dilation == (1, 1) for m in cifar.modules() if isinstance(m, torch.nn.Conv2d))
