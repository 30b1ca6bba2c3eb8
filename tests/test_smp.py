"""segmentation_models_pytorch: zoo backbones as smp encoders (Unet, FPN, DeepLabV3+), any input size through
zoo.smp.PadToStride, one training step."""
import pytest
import torch

import zoo  # noqa: F401

smp = pytest.importorskip('segmentation_models_pytorch')
from zoo.smp import PadToStride, create_model  # noqa: E402

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
    """Plain smp's DeepLabV3+ builds the encoder with timm's output_stride=16: fine for the ResNet-based families,
    a TypeError for backbones without dilation (BiFormer, CoaT, ...), which zoo.smp.create_model runs at their
    native stride 16 instead."""
    net = smp.DeepLabV3Plus('tu-zoo_resnet18_cbam', encoder_weights=None, classes=2).eval()
    with torch.no_grad():
        assert net(torch.randn(1, 3, 64, 96)).shape == (1, 2, 64, 96)
    with pytest.raises(TypeError, match='output_stride'):
        smp.DeepLabV3Plus('tu-zoo_biformer_tiny', encoder_weights=None, classes=2)


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
