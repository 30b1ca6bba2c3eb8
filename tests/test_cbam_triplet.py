"""CBAM and triplet attention: paper parameter counts, official checkpoints (as distributed) load strictly
and reproduce the official code's logits, bad checkpoints fail naming the problem."""
import pytest
import timm
import torch

import zoo  # noqa: F401
from zoo.layers import CBAM, TripletAttention
from zoo.checkpoint import CheckpointError

from helpers import assert_formulas_agree, golden_spread, load_pretrained, n_params, save_checkpoint, tol_from_spread
from official import load_golden, official_state_dict, parity_input

# paper / official README parameter counts (M)
PARAMS = {
    'zoo_resnet18_cbam': 11.78, 'zoo_resnet34_cbam': 21.96, 'zoo_resnet50_cbam': 28.09,
    'zoo_resnet101_cbam': 49.33, 'zoo_resnext50_32x4d_cbam': 27.56,
    'zoo_resnet18_triplet': 11.69, 'zoo_resnet50_triplet': 25.56, 'zoo_mobilenetv2_triplet': 3.51,
    'zoo_resnet18_triplet_k3': 11.69, 'zoo_resnet50_triplet_k3': 25.56, 'zoo_mobilenetv2_triplet_k3': 3.506,
}

# zoo name -> official keys json
OFFICIAL = {
    'zoo_resnet18_cbam': 'cbam_resnet18', 'zoo_resnet34_cbam': 'cbam_resnet34',
    'zoo_resnet50_cbam': 'cbam_resnet50', 'zoo_resnet101_cbam': 'cbam_resnet101',
    'zoo_resnet18_triplet': 'triplet_resnet18', 'zoo_resnet34_triplet': 'triplet_resnet34',
    'zoo_resnet50_triplet': 'triplet_resnet50', 'zoo_resnet101_triplet': 'triplet_resnet101',
    'zoo_mobilenetv2_triplet': 'triplet_mobilenetv2',
}


def _official_file(sd, tmp_path):
    """Save a state dict as the official training scripts do (DataParallel prefix inside a .pth.tar dict); returns
    the file's path."""
    return save_checkpoint({'epoch': 100, 'arch': 'resnet', 'best_prec1': 77.6,
                            'state_dict': {'module.' + k: v for k, v in sd.items()},
                            'optimizer': {'state': {}, 'param_groups': []}}, tmp_path, 'official.pth.tar')


def _root_file_names(sd):
    """Rename the training-time gate names to the repository root file's (cw/hc/hw with nested BasicConv)."""
    out = {}
    for k, v in sd.items():
        for old, new in (('ChannelGateH', 'cw'), ('ChannelGateW', 'hc'), ('SpatialGate', 'hw')):
            k = k.replace(f'.{old}.spatial.conv.', f'.{new}.conv.conv.').replace(f'.{old}.spatial.bn.', f'.{new}.conv.bn.')
        out[k] = v
    return out


@pytest.mark.parametrize('name', sorted(PARAMS))
def test_param_counts_match_paper(name):
    n = n_params(timm.create_model(name)) / 1e6
    assert abs(n - PARAMS[name]) / PARAMS[name] < 0.005, f'{name}: {n:.3f}M vs paper {PARAMS[name]}M'


@pytest.mark.parametrize('name', sorted(OFFICIAL))
def test_official_layout_loads_strictly(name, tmp_path):
    sd = official_state_dict(OFFICIAL[name])
    model = load_pretrained(name, _official_file(sd, tmp_path))
    # every official tensor landed somewhere: values survive the renaming
    ours = model.state_dict()
    assert len(ours) == len(sd)
    assert sorted(float(v.double().sum()) for v in ours.values()) == pytest.approx(
        sorted(float(v.double().sum()) for v in sd.values()), rel=1e-6, abs=1e-6)


@pytest.mark.parity
@pytest.mark.parametrize('name', ['zoo_resnet18_cbam', 'zoo_resnet50_cbam', 'zoo_resnet18_triplet',
                                  'zoo_resnet50_triplet', 'zoo_mobilenetv2_triplet'])
def test_parity_with_official_code(name, tmp_path):
    """Logits equal the official code's on the same (seeded) weights; goldens from tests/data/parity."""
    golden = load_golden(OFFICIAL[name])
    assert golden is not None, 'missing parity golden'
    model = load_pretrained(name, _official_file(official_state_dict(OFFICIAL[name]), tmp_path))
    x = parity_input(golden['input_shape'], seed=golden['input_seed'])
    with torch.no_grad():
        y = model(x)
    assert (y - golden['logits']).abs().max().item() < tol_from_spread(golden_spread(golden, OFFICIAL[name]))


@pytest.mark.parametrize('name', ['zoo_resnet18_triplet', 'zoo_mobilenetv2_triplet'])
def test_triplet_root_file_names_load_identically(name, tmp_path):
    sd = official_state_dict(OFFICIAL[name])
    legacy = load_pretrained(name, _official_file(sd, tmp_path))
    renamed = _root_file_names(sd)
    assert renamed.keys() != sd.keys()
    modern = load_pretrained(name, _official_file(renamed, tmp_path))
    x = parity_input((1, 3, 64, 64))
    with torch.no_grad():
        torch.testing.assert_close(modern(x), legacy(x), rtol=0, atol=0)


@pytest.mark.parametrize('name', ['zoo_resnet18_triplet_k3', 'zoo_mobilenetv2_triplet_k3'])
def test_triplet_k3_official_layout(name, tmp_path):
    base = OFFICIAL[name.replace('_k3', '')]
    sd = {k: (v[..., 2:5, 2:5].contiguous() if k.endswith('spatial.conv.weight') else v)
          for k, v in official_state_dict(base).items()}
    model = load_pretrained(name, _official_file(sd, tmp_path))
    gates = [m for m in model.modules() if type(m).__name__ == 'AttentionGate']
    assert gates and all(m.conv.kernel_size == (3, 3) for m in gates)


def test_new_class_count_and_in_chans_from_official(tmp_path):
    path = _official_file(official_state_dict('cbam_resnet18'), tmp_path)
    model = load_pretrained('zoo_resnet18_cbam', path, num_classes=5, in_chans=1)
    assert model(torch.randn(2, 1, 64, 64)).shape == (2, 5)
    feats = load_pretrained('zoo_resnet18_cbam', path, features_only=True, out_indices=(1, 2, 3, 4))
    assert feats.feature_info.channels() == [64, 128, 256, 512]


def test_bad_checkpoints_name_the_problem(tmp_path):
    sd = official_state_dict('cbam_resnet18')
    missing = dict(sd)
    del missing['layer1.0.cbam.ChannelGate.mlp.1.weight']
    with pytest.raises(CheckpointError, match=r'missing 1 tensors: layer1\.0\.se\.channel\.fc1\.weight'):
        load_pretrained('zoo_resnet18_cbam', _official_file(missing, tmp_path))
    extra = dict(sd, **{'layer9.0.foo.weight': torch.zeros(3)})
    with pytest.raises(CheckpointError, match=r'unexpected 1 tensors: layer9\.0\.foo\.weight'):
        load_pretrained('zoo_resnet18_cbam', _official_file(extra, tmp_path))
    wrong = dict(sd, **{'layer2.0.conv1.weight': torch.zeros(128, 64, 5, 5)})
    with pytest.raises(CheckpointError, match=r'wrongly shaped 1 tensors: layer2\.0\.conv1\.weight \(checkpoint \(128, 64, 5, 5\), model \(128, 64, 3, 3\)\)'):
        load_pretrained('zoo_resnet18_cbam', _official_file(wrong, tmp_path))
    with pytest.raises(CheckpointError, match='not a state dict'):
        load_pretrained('zoo_resnet18_cbam',
                        save_checkpoint({'epoch': 3, 'arch': 'resnet18', 'note': 'no weights here'}, tmp_path))
    # a triplet checkpoint is not a CBAM checkpoint
    with pytest.raises(CheckpointError, match=r'(?s)missing .*unexpected'):
        load_pretrained('zoo_resnet18_cbam', _official_file(official_state_dict('triplet_resnet18'), tmp_path))


def test_cbam_block_matches_its_definition():
    """CBAM computed from its own weights by the paper's formulas (max-then-mean spatial pooling order)."""
    torch.manual_seed(0)
    m = CBAM(32, reduction=16).eval()
    torch.nn.init.normal_(m.spatial.bn.weight)
    x = torch.randn(2, 32, 9, 11)
    mlp = lambda v: m.channel.fc2(torch.relu(m.channel.fc1(v)))  # noqa: E731
    xc = x * torch.sigmoid(mlp(x.mean((2, 3))) + mlp(x.amax((2, 3))))[:, :, None, None]
    pooled = torch.cat([xc.amax(1, keepdim=True), xc.mean(1, keepdim=True)], 1)
    ref = xc * torch.sigmoid(m.spatial.bn(torch.nn.functional.conv2d(pooled, m.spatial.conv.weight, padding=3)))
    torch.testing.assert_close(m(x), ref)


def test_triplet_block_matches_permuted_definition():
    """Triplet attention equals the paper's rotate-pool-conv-rotate-back computation."""
    torch.manual_seed(0)
    m = TripletAttention(kernel_size=7).eval()
    for g in (m.cw, m.hc, m.hw):
        torch.nn.init.normal_(g.bn.weight)
    x = torch.randn(2, 12, 9, 11)

    def gate(gm, t):  # t already rotated; pool dim 1 (max, mean), conv, bn, sigmoid
        z = torch.cat([t.amax(1, keepdim=True), t.mean(1, keepdim=True)], 1)
        return t * torch.sigmoid(gm.bn(gm.conv(z)))

    def reference(m, x):
        y_cw = gate(m.cw, x.permute(0, 2, 1, 3)).permute(0, 2, 1, 3)
        y_hc = gate(m.hc, x.permute(0, 3, 2, 1)).permute(0, 3, 2, 1)
        y_hw = gate(m.hw, x)
        return (y_cw + y_hc + y_hw) / 3
    assert_formulas_agree(lambda m, x: m(x), reference, m, x)
    assert n_params(m) == 3 * (2 * 49 + 2)
