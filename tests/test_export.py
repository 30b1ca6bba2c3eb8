"""Export (zoo.export / tools/export.py): one small model per family to ONNX, verified in onnxruntime against eager
fp32 logits; torch.export (saved/loaded, ``.module()``) and TorchScript (``torch.jit.load``) for a representative;
dynamic height/width; atomic writes; the export-status merge.

``ZOO_WRITE_EXPORT_STATUS=1`` records each tested model's ``onnx`` result in zoo/export_status.json (only that
field), and ``dynamic`` (torch.export with a dynamic height/width, verified at two sizes) for the models exported
that way. ``-m slow -k all_models`` exports every zoo model (the README export column).
"""
import os
import json

import pytest
import timm
import torch

import zoo
from zoo.export import ExportError, _inputs, export_model, merge_export_status, second_input_size

from helpers import fp32_spread, tol_from_spread

pytest.importorskip('onnxruntime')
pytest.importorskip('onnxscript')

# one small model per family and a small input (C, H, W); the first one is in the fast suite
FAMILY_MODELS = [
    ('zoo_resnet18_cbam', (3, 64, 64)),
    ('zoo_mobilenetv2_triplet', (3, 64, 64)),
    ('zoo_biformer_tiny', (3, 64, 64)),
    ('zoo_halonet_h0', (3, 64, 64)),
    ('zoo_coat_lite_tiny', (3, 64, 64)),
    ('zoo_lkca_vit_05m', (3, 64, 64)),
    ('zoo_resattnet92_cifar', (3, 32, 32)),
    ('zoo_overlock_xt', (3, 64, 64)),
]


def _record(name, ok, reason=''):
    merge_export_status({name: {'onnx': bool(ok)}}, notes={name: reason})


def _model(name):
    return timm.create_model(name).eval()


def _tol(m, *xs):
    """The tolerance of exported-vs-eager logits on inputs ``xs``: from the eager model's own float32 spread."""
    return tol_from_spread(max(fp32_spread(m, x) for x in xs))


def _export_tol(m, size, dynamic=False):
    """``_tol`` on the inputs export_model verifies with: batch 2 at ``size`` (seed 0) and, with ``dynamic``,
    batch 1 at its second size (seed 1)."""
    xs = [_inputs(size, 2, 0)] + ([_inputs(second_input_size(m, size), 1, 1)] if dynamic else [])
    return _tol(m, *xs)


@pytest.mark.parametrize('name,size', [pytest.param(n, s, marks=pytest.mark.slow) if i else (n, s)
                                       for i, (n, s) in enumerate(FAMILY_MODELS)])
def test_onnx_per_family(name, size, tmp_path):
    torch.manual_seed(0)
    m = _model(name)
    out = tmp_path / f'{name}.onnx'
    tol = _export_tol(m, size)
    try:
        res = export_model(m, 'onnx', size, out, atol=tol)
    except ExportError as e:
        _record(name, False, str(e)[:160])
        raise
    _record(name, True)
    assert out.is_file() and res.path == out and res.max_abs_diff <= tol
    # independent check: the file runs in onnxruntime and matches eager on a fresh input
    import onnxruntime as ort
    sess = ort.InferenceSession(str(out), providers=['CPUExecutionProvider'])
    x = torch.randn(1 if res.dynamic else 2, *size)
    y = torch.from_numpy(sess.run(None, {sess.get_inputs()[0].name: x.numpy()})[0])
    with torch.no_grad():
        ref = m(x)
    assert y.shape == ref.shape and float((y - ref).abs().max()) <= _tol(m, x)


def test_onnx_dynamic_hw(tmp_path):
    m = _model('zoo_resnet18_cbam')
    out = tmp_path / 'dyn.onnx'
    tol = _export_tol(m, (3, 32, 32), dynamic=True)
    res = export_model(m, 'onnx', (3, 32, 32), out, dynamic=True, atol=tol)
    assert list(res.diffs) == ['2x3x32x32', '1x3x64x96'] and res.max_abs_diff <= tol
    import onnxruntime as ort
    sess = ort.InferenceSession(str(out), providers=['CPUExecutionProvider'])
    x = torch.randn(3, 3, 80, 48)  # a third size, batch 3
    y = torch.from_numpy(sess.run(None, {sess.get_inputs()[0].name: x.numpy()})[0])
    with torch.no_grad():
        assert float((y - m(x)).abs().max()) <= _tol(m, x)


def test_torch_export_dynamic_roundtrip(tmp_path):
    m = _model('zoo_resnet18_cbam')
    out = tmp_path / 'r18.pt2'
    tol = _export_tol(m, (3, 64, 64), dynamic=True)
    res = export_model(m, 'torch.export', (3, 64, 64), out, dynamic=True, atol=tol)
    assert res.max_abs_diff <= tol and len(res.diffs) == 2
    merge_export_status({'zoo_resnet18_cbam': {'dynamic': True}}, fields=('dynamic',))
    loaded = torch.export.load(str(out)).module()
    x = torch.randn(1, 3, 80, 112)
    with torch.no_grad():
        assert float((loaded(x) - m(x)).abs().max()) <= _tol(m, x)


# the attention families whose padding depends on the input size; the smallest variant at a small size where every
# attention stage still has >= 2 regions/blocks per side (torch.export specialises a size of 1): BiFormer's BRA
# (7 x 7 regions) on its stride-16 stage needs > 112 px
DYNAMIC_MODELS = [('zoo_biformer_tiny', (3, 128, 128), (3, 176, 144)),
                  ('zoo_halonet_h0', (3, 64, 64), (3, 88, 72))]


@pytest.mark.slow
@pytest.mark.parametrize('name,size,third', DYNAMIC_MODELS)
def test_torch_export_dynamic_attention_padding(name, size, third, tmp_path):
    """BRA / halo attention pad to their regions / blocks: with a dynamic height/width one exported program serves
    sizes that need different padding (verified at the traced and the second size, then at a third, odd one)."""
    m = _model(name)
    out = tmp_path / 'm.pt2'
    tol = _export_tol(m, size, dynamic=True)
    try:
        res = export_model(m, 'torch.export', size, out, dynamic=True, atol=tol)
    except ExportError:
        merge_export_status({name: {'dynamic': False}}, fields=('dynamic',))
        raise
    merge_export_status({name: {'dynamic': True}}, fields=('dynamic',))
    assert len(res.diffs) == 2 and res.max_abs_diff <= tol
    loaded = torch.export.load(str(out)).module()
    x = torch.randn(1, *third)
    with torch.no_grad():
        assert float((loaded(x) - m(x)).abs().max()) <= _tol(m, x)


def test_dynamic_size_outside_the_exported_range_is_an_error(tmp_path):
    """Traced at 32 px, torch.export bounds this model's height/width (a guard it cannot drop); the check at the
    second size catches it, says which range the export allows, and writes nothing."""
    out = tmp_path / 'r18.pt2'
    with pytest.raises(ExportError, match='second input size') as e:
        export_model(_model('zoo_resnet18_cbam'), 'torch.export', (3, 32, 32), out, dynamic=True)
    assert 'allows only' in str(e.value)
    assert not out.exists()


@pytest.mark.parametrize('name,size', [('zoo_resnet18_cbam', (3, 64, 64)),
                                       pytest.param('zoo_coat_lite_tiny', (3, 64, 64), marks=pytest.mark.slow)])
def test_torchscript_roundtrip(name, size, tmp_path):
    m = _model(name)
    out = tmp_path / 'm.pt'
    tol = _export_tol(m, size)
    res = export_model(m, 'torchscript', size, out, atol=tol)
    assert res.max_abs_diff <= tol and res.method in ('script', 'trace')
    loaded = torch.jit.load(str(out))
    x = torch.randn(2, *size)
    with torch.no_grad():
        assert float((loaded(x) - m(x)).abs().max()) <= _tol(m, x)


def test_failed_verification_writes_nothing(tmp_path):
    m = _model('zoo_resnet18_cbam')
    out = tmp_path / 'keep.pt2'
    out.write_bytes(b'previous artifact')
    with pytest.raises(ExportError, match='does not match'):
        export_model(m, 'torch.export', (3, 32, 32), out, atol=-1.)  # no artifact can pass a negative tolerance
    assert out.read_bytes() == b'previous artifact'
    assert sorted(p.name for p in tmp_path.iterdir()) == ['keep.pt2']  # no temporary left behind


def test_cli(tmp_path, capsys):
    from zoo.cli.export import main
    out = tmp_path / 'cbam.pt2'
    assert main(['zoo_resnet18_cbam', '--format', 'torch.export', '--input-size', '3', '32', '32',
                 '--out', str(out)]) == 0
    assert out.is_file() and 'max abs diff' in capsys.readouterr().out
    assert main(['zoo_resnet18_cbamm', '--format', 'onnx', '--out', str(tmp_path / 'x.onnx')]) == 2
    assert 'unknown model' in capsys.readouterr().err
    with pytest.raises(SystemExit) as e:  # argparse errors exit 2 with one error: line
        main(['zoo_resnet18_cbam', '--format', 'tflite', '--out', str(tmp_path / 'x')])
    assert e.value.code == 2 and capsys.readouterr().err.startswith('error:')
    assert main(['zoo_resnet18_cbam', '--format', 'onnx', '--out', str(tmp_path / 'x.onnx'),
                 '--checkpoint', str(tmp_path / 'missing.pth')]) == 2
    assert 'missing.pth' in capsys.readouterr().err
    assert not (tmp_path / 'x.onnx').exists()


def test_merge_export_status_preserves_other_fields(tmp_path, monkeypatch):
    path = tmp_path / 'export_status.json'
    path.write_text(json.dumps({'zoo_a': {'torchscript': True, 'fx': False, 'compile': True, 'onnx': None,
                                          'notes': 'fx: keep me'}}))
    monkeypatch.delenv('ZOO_WRITE_EXPORT_STATUS', raising=False)
    assert merge_export_status({'zoo_a': {'onnx': True}}, path) is None  # off unless asked
    assert json.loads(path.read_text())['zoo_a']['onnx'] is None
    monkeypatch.setenv('ZOO_WRITE_EXPORT_STATUS', '1')
    merge_export_status({'zoo_a': {'onnx': True, 'notes': 'not mine', 'fx': True}, 'zoo_b': {'onnx': False}}, path,
                        notes={'zoo_b': 'exporter failed'})
    data = json.loads(path.read_text())
    assert data['zoo_a'] == {'torchscript': True, 'fx': False, 'compile': True, 'onnx': True, 'notes': 'fx: keep me'}
    assert data['zoo_b'] == {'torchscript': None, 'fx': None, 'compile': None, 'onnx': False,
                             'notes': 'onnx: exporter failed'}
    merge_export_status({'zoo_b': {'onnx': True}}, path)  # fixed: the onnx note goes, others stay
    assert json.loads(path.read_text())['zoo_b']['notes'] == ''


def _small_size(name):
    cfg = timm.models.get_pretrained_cfg(name).to_dict()
    c, h, w = cfg.get('input_size', (3, 224, 224))
    return (c, min(h, 64), min(w, 64))


@pytest.mark.slow
@pytest.mark.skipif(os.environ.get('ZOO_EXPORT_ALL_MODELS', '') in ('', '0'),
                    reason='ONNX export of all 46 models takes about an hour on a shared 2-core CPU: a tool run, not a CI check '
                           '(ZOO_EXPORT_ALL_MODELS=1 ZOO_WRITE_EXPORT_STATUS=1 pytest tests/test_export.py -k all_models)')
@pytest.mark.parametrize('name', zoo.list_models())
def test_onnx_all_models(name, tmp_path):
    """Every zoo model at <= 64 px (records the README export column with ZOO_WRITE_EXPORT_STATUS=1)."""
    size = _small_size(name)
    try:
        export_model(_model(name), 'onnx', size, tmp_path / 'm.onnx', batch=1)
    except ExportError as e:
        _record(name, False, str(e)[:160])
        raise
    _record(name, True)


def test_time_limit_is_a_clear_error(tmp_path):
    with pytest.raises(ExportError, match='did not finish within'):
        export_model(_model('zoo_resnet18_cbam'), 'torch.export', (3, 32, 32), tmp_path / 'm.pt2', time_limit=0.01)
    assert list(tmp_path.iterdir()) == []


def test_missing_onnxruntime_names_the_extra(tmp_path, monkeypatch):
    import sys
    from zoo.errors import UserError
    monkeypatch.setitem(sys.modules, 'onnxruntime', None)  # import fails as if not installed
    with pytest.raises(UserError, match=r'pip install "timm-attention-zoo\[export\]"'):
        export_model(_model('zoo_resnet18_cbam'), 'onnx', (3, 32, 32), tmp_path / 'm.onnx')
    assert list(tmp_path.iterdir()) == []
