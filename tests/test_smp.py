"""segmentation_models_pytorch: zoo backbones as smp encoders (Unet, FPN, DeepLabV3+), any input size through
zoo.smp.PadToStride, one training step."""
import pytest
import torch

import zoo  # noqa: F401

smp = pytest.importorskip('segmentation_models_pytorch')
from zoo.smp import PadToStride, create_model, supports_output_stride  # noqa: E402

from helpers import assert_formulas_agree  # noqa: E402

# one small backbone per family whose feature strides smp's universal encoder accepts (2..32 or 4..32)
FAST = ['zoo_resnet18_cbam', 'zoo_biformer_tiny']
SLOW = ['zoo_mobilenetv2_triplet', 'zoo_halonet_h0', 'zoo_coat_lite_tiny', 'zoo_lkca_vit_05m', 'zoo_overlock_xt',
        'zoo_resattnet56']
ARCHS = ['Unet', 'FPN', 'DeepLabV3Plus']


def _params(names):
    return [pytest.param(n, marks=pytest.mark.slow) if n in SLOW else n for n in names]


def _train_step(net, x, classes):
    net.train()
    opt = torch.optim.SGD(net.parameters(), lr=0.01)
    target = torch.randint(0, classes, (x.shape[0], x.shape[2], x.shape[3]))
    out = net(x)
    loss = torch.nn.functional.cross_entropy(out, target)
    opt.zero_grad()
    loss.backward()
    grads = [p.grad for p in net.model.encoder.parameters() if p.requires_grad]
    assert any(g is not None and g.abs().sum() > 0 for g in grads), 'no gradient reached the zoo encoder'
    opt.step()
    return out


@pytest.mark.parametrize('arch', ARCHS)
@pytest.mark.parametrize('name', _params(FAST + SLOW))
def test_smp_any_size_and_train_step(name, arch):
    net = create_model(arch, name, classes=3)
    assert isinstance(net, PadToStride)
    x = torch.randn(2, 3, 70, 50)  # not divisible by the stride: padded, then cropped back
    out = _train_step(net, x, 3)
    assert out.shape == (2, 3, 70, 50) and torch.isfinite(out).all()
    net.eval()
    with torch.no_grad():
        assert net(torch.randn(1, 3, 64, 96)).shape == (1, 3, 64, 96)


def test_plain_smp_universal_encoder():
    """The documented plain route: ``smp.FPN('tu-zoo_...', encoder_weights=None)`` after ``import zoo``."""
    net = smp.FPN('tu-zoo_biformer_tiny', encoder_weights=None, classes=2).eval()
    with torch.no_grad():
        assert net(torch.randn(1, 3, 64, 64)).shape == (1, 2, 64, 64)
        with pytest.raises(RuntimeError, match='divisible'):
            net(torch.randn(1, 3, 70, 50))  # smp itself refuses: what PadToStride is for
        assert PadToStride(net)(torch.randn(1, 3, 70, 50)).shape == (1, 2, 70, 50)
        # smp >= 0.5's Unet resizes in its decoder and takes any size on its own
        unet = smp.Unet('tu-zoo_biformer_tiny', encoder_weights=None, classes=2).eval()
        assert unet(torch.randn(1, 3, 70, 50)).shape == (1, 2, 70, 50)


# plain smp (``smp.Unet('tu-zoo_...')``, no zoo.smp): its TimmUniversalEncoder reads the strides of features_only's
# DEFAULT out_indices (2..32: "traditional", or 4..32: "transformer" with a zero-channel stand-in at stride 2) and
# then asks for out_indices=range(depth) (resp. range(depth - 1)), i.e. it assumes the default covers the model's
# feature_info from index 0. One model per family (with a default that skipped HaloNet's stride-2 stem, smp took the
# stem as the stride-4 stage and every stage one level too shallow: FPN's mask came out 2x).
PLAIN = ['zoo_resnet18_cbam', 'zoo_biformer_tiny', 'zoo_mobilenetv2_triplet', 'zoo_coat_lite_tiny', 'zoo_lkca_vit_05m',
         'zoo_overlock_xt', 'zoo_resattnet56', 'zoo_halonet_h0']


def _plain_params():
    out = []
    for n in PLAIN:
        marks = [pytest.mark.slow] if n not in FAST else []
        out.append(pytest.param(n, marks=marks))
    return out


@pytest.mark.parametrize('arch', ['Unet', 'FPN'])
@pytest.mark.parametrize('name', _plain_params())
def test_plain_smp_stages_have_the_strides_smp_assumes(name, arch):
    net = getattr(smp, arch)(f'tu-{name}', encoder_weights=None, classes=2).eval()
    x = torch.randn(1, 3, 64, 96)
    with torch.no_grad():
        feats = net.encoder(x)
        out = net(x)
    assert [tuple(f.shape[-2:]) for f in feats] == [(64 // 2 ** i, 96 // 2 ** i) for i in range(6)]
    assert [f.shape[1] for f in feats] == net.encoder.out_channels
    assert out.shape == (1, 2, 64, 96)


def test_plain_smp_deeplab_needs_a_dilatable_backbone():
    """Plain smp's DeepLabV3+ builds the encoder with timm's output_stride=16: fine for the CNN families, a
    ValueError naming the supported stride for backbones without dilation (BiFormer, CoaT, ...), which
    zoo.smp.create_model runs at their native stride 16 instead."""
    net = smp.DeepLabV3Plus('tu-zoo_resnet18_cbam', encoder_weights=None, classes=2).eval()
    with torch.no_grad():
        assert net(torch.randn(1, 3, 64, 96)).shape == (1, 2, 64, 96)
    with pytest.raises(ValueError, match='zoo_biformer_tiny supports output_stride 32 only; got 16'):
        smp.DeepLabV3Plus('tu-zoo_biformer_tiny', encoder_weights=None, classes=2)


# smp's encoder contract: what segmentation_models_pytorch's own encoder tests ask of a ``tu-`` encoder, one model per
# family. The CNN families dilate to output_stride 8 / 16 as timm's ResNets (HaloNet through timm's ByobNet); the
# attention families run at their native stride 32 only and say so with a ValueError.
DILATING = ['zoo_resnet18_cbam', 'zoo_resnet18_triplet', 'zoo_mobilenetv2_triplet', 'zoo_resattnet56', 'zoo_halonet_h0']
NATIVE_ONLY = ['zoo_biformer_tiny', 'zoo_coat_lite_tiny', 'zoo_lkca_vit_05m', 'zoo_overlock_xt']
CONTRACT_FAST = ['zoo_resnet18_cbam', 'zoo_resnet18_triplet', 'zoo_biformer_tiny']


def _contract_params(names):
    return [n if n in CONTRACT_FAST else pytest.param(n, marks=pytest.mark.slow) for n in names]


def _encoder(name, **kwargs):
    return smp.encoders.get_encoder(f'tu-{name}', encoder_weights=None, **kwargs).eval()


def _strides(x, feats):
    return [(x.shape[-2] // f.shape[-2], x.shape[-1] // f.shape[-1]) for f in feats]


@pytest.mark.parametrize('name', _contract_params(DILATING + NATIVE_ONLY))
def test_encoder_depths_channels_and_strides(name):
    x = torch.rand(1, 3, 64, 96)
    for depth in (3, 4, 5):
        enc = _encoder(name, depth=depth)
        with torch.no_grad():
            feats = enc(x)
        assert _strides(x, feats) == [(2 ** i, 2 ** i) for i in range(depth + 1)], depth
        assert enc.out_channels == [f.shape[1] for f in feats]
        assert enc.output_stride == 2 ** depth


@pytest.mark.parametrize('output_stride', [8, 16])
@pytest.mark.parametrize('name', _contract_params(DILATING))
def test_cnn_families_dilate(name, output_stride):
    x = torch.rand(1, 3, 64, 96)
    enc = _encoder(name, output_stride=output_stride)
    with torch.no_grad():
        feats = enc(x)
    assert _strides(x, feats) == [(min(2 ** i, output_stride),) * 2 for i in range(6)]
    assert enc.out_channels == [f.shape[1] for f in feats] and enc.output_stride == output_stride
    assert all(torch.isfinite(f).all() for f in feats)


@pytest.mark.parametrize('name', _contract_params(NATIVE_ONLY))
def test_attention_families_name_their_output_stride(name):
    import timm
    for output_stride in (8, 16):
        with pytest.raises(ValueError, match=f'^{name} supports output_stride 32 only; got {output_stride}$'):
            _encoder(name, output_stride=output_stride)
    assert timm.create_model(name, output_stride=32).feature_info[-1]['reduction'] == 32  # the native one is fine


@pytest.mark.parametrize('name', _contract_params(DILATING + NATIVE_ONLY))
def test_encoder_torchscript_matches_eager(name):
    """``torch.jit.script`` of smp's encoder (timm's features_only wrapper included) gives the eager features:
    bit-identical, except OverLoCK, whose eager eval mode merges each DilatedReparam block into one conv per call
    while the scripted model sums its branches (fp32 rounding, measured 2e-6 of the largest feature): compared in
    float64 there, two formulas of the features, within the sum of both float32 spreads scaled to float64."""
    enc = _encoder(name)
    scripted = torch.jit.script(enc)
    x = torch.rand(1, 3, 64, 96)
    if name.startswith('zoo_overlock'):
        (_, eager), (_, out) = assert_formulas_agree(enc, scripted, x, dtypes=(torch.float64,))
    else:
        with torch.no_grad():
            eager, out = enc(x), scripted(x)
        assert all(torch.equal(o, e) for e, o in zip(eager, out))
    assert len(out) == len(eager) == 6


def test_pad_to_stride_crops_exactly():
    """Where no padding is needed the wrapper is the identity; otherwise the crop keeps the top-left region."""
    class Probe(torch.nn.Module):
        def forward(self, x):
            assert x.shape[-2] % 32 == 0 and x.shape[-1] % 32 == 0
            return x[:, :1] * 2
    w = PadToStride(Probe(), stride=32)
    x = torch.randn(1, 3, 45, 64)
    torch.testing.assert_close(w(x), x[:, :1] * 2)
    r = PadToStride(Probe(), stride=32, mode='reflect')
    torch.testing.assert_close(r(x), x[:, :1] * 2)


def test_deeplab_uses_native_stride_16():
    net = create_model('DeepLabV3Plus', 'zoo_biformer_tiny', classes=2)
    assert net.stride == 16 and net.model.encoder.output_stride == 16
    assert not supports_output_stride('zoo_biformer_tiny', 16)


@pytest.mark.parametrize('name', _params(['zoo_resnet18_cbam', 'zoo_resattnet56']))
def test_deeplab_dilates_the_cnn_families(name):
    """Where the backbone dilates, DeepLabV3+ gets smp's own universal encoder at output stride 16 (all five
    stages, the last one dilated)."""
    from segmentation_models_pytorch.encoders import TimmUniversalEncoder
    assert supports_output_stride(name, 16) and supports_output_stride(name, 8)
    net = create_model('DeepLabV3Plus', name, classes=2).eval()
    assert type(net.model.encoder) is TimmUniversalEncoder and net.model.encoder.output_stride == 16
    with torch.no_grad():
        feats = net.model.encoder(torch.randn(1, 3, 64, 96))
    assert [f.shape[-1] for f in feats] == [96, 48, 24, 12, 6, 6]


@pytest.mark.parametrize('name', ['zoo_biformer_tiny', pytest.param('zoo_halonet_h0', marks=pytest.mark.slow)])
def test_encoder_stages_have_the_strides_smp_assumes(name):
    """smp's decoders assume the i-th encoder output has stride 2 ** i (a zero-channel stand-in at stride 2 for
    backbones that start at 4); the zoo encoder takes the stages from the model's full feature_info."""
    net = create_model('Unet', name, classes=2).eval()
    x = torch.randn(1, 3, 64, 96)
    with torch.no_grad():
        feats = net.model.encoder(x)
    for i, f in enumerate(feats):
        assert f.shape[-2:] == (64 // 2 ** i, 96 // 2 ** i), (i, f.shape)
    assert [f.shape[1] for f in feats] == net.model.encoder.out_channels


def test_errors():
    from zoo.errors import UserError
    with pytest.raises(UserError, match='unknown model'):
        create_model('Unet', 'zoo_biformer_tinyy')
    with pytest.raises(UserError, match='encoder_weights'):
        create_model('Unet', 'zoo_biformer_tiny', encoder_weights='imagenet')


def test_missing_smp_names_the_extra(monkeypatch):
    import sys
    from zoo.errors import UserError
    monkeypatch.setitem(sys.modules, 'segmentation_models_pytorch', None)
    with pytest.raises(UserError, match=r'pip install "timm-attention-zoo\[smp\]"'):
        create_model('Unet', 'zoo_resnet18_cbam')
