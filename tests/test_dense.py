"""The authors' detectors / segmenters (manifest task det / seg): entries, verified downloads, conversion of the
mmdet 2.x / mmseg 0.x layout into the zoo's mmdet 3 / mmseg 1 configs, parity of the dense backbones with the authors'
code, inference through DetInferencer / MMSegInferencer.

Data (tests/data/dense/, made once by a private script that is not part of the repository):

* ``keys/<name>.json``: names, shapes and dtypes of the authors' *full* models. ``backbone.*`` were recorded from the
  authors' dense backbones built on this machine: LMMMEng/OverLoCK@2c8ab3b ``detection/models/overlock.py`` /
  ``segmentation/models/overlock.py`` ``overlock_t()``, and mlpc-ucsd/CoaT@f1962d1 (the commit that published the
  mmdet checkpoints) ``tasks/mmdet/mmdet/models/backbones/coat_wrapper.py`` ``CoaT`` with the coat_mini /
  coat_lite_small configs (``return_interm_layers=True``); neck / head names and shapes were written from the mmdet
  2.11 sources vendored in mlpc-ucsd/CoaT (``necks/fpn.py``, ``dense_heads/rpn_head.py``, ``bbox_heads/
  convfc_bbox_head.py``, ``mask_heads/fcn_mask_head.py``; mmcv 1.x ``ConvModule`` names ``conv`` / ``bn``) and mmseg
  0.30's ``UPerHead`` / ``PPM`` / ``FCNHead`` / ``BaseDecodeHead.conv_seg``, for the authors' configs.
* ``<name>.pt``: the authors' backbone, in float64 and eval mode, with ``official_state_dict(name, seed=0)``'s
  ``backbone.*`` tensors loaded strictly, run on ``parity_input(input_shape, seed=1)`` zero-padded bottom / right to a
  multiple of 32 (mmdet 2's ``Pad(size_divisor=32)``): ``features`` = its four outputs. Only the imports were shimmed
  (mmdet / mmseg registries and logger, mmcv's ``load_checkpoint``; natten's ``na2d_av`` by an explicit per-pixel loop:
  window start ``clamp(i - k // 2, 0, L - k)``, row-major taps); einops 0.8.2, timm 1.0.31, torch 2.15 CPU.
"""
import json
import os.path as osp
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from helpers import ROOT, fp64_tol, max_diffs, mm_missing
from official import official_state_dict, parity_input

DATA = Path(__file__).parent / 'data' / 'dense'
KEYS = DATA / 'keys'
# stand-in name -> (config, layout)
STANDINS = {
    'mask-rcnn_overlock-t_mmdet2': ('zoo::det/mask-rcnn_zoo-overlock-t_fpn_1x_coco_authors.py', 'mmdet2'),
    'upernet_overlock-t_mmseg0': ('zoo::seg/zoo-overlock-t_upernet_8xb2-160k_ade20k-512x512_authors.py', 'mmseg0'),
    'mask-rcnn_coat-mini_mmdet2': ('zoo::det/mask-rcnn_zoo-coat-mini_fpn_ms-1x_coco_authors.py', 'mmdet2'),
    'cascade-mask-rcnn_coat-lite-small_mmdet2':
        ('zoo::det/cascade-mask-rcnn_zoo-coat-lite-small_fpn_giou-4conv1f_ms-1x_coco_authors.py', 'mmdet2'),
}
_REASON = mm_missing('mmdet', 'mmseg', 'pycocotools')
mm = [pytest.mark.mm, pytest.mark.skipif(_REASON is not None, reason=_REASON or '')]


def _dense_entries():
    from zoo import manifest as zoo_manifest
    return {k: e for k, e in zoo_manifest.entries().items() if e.get('task') in zoo_manifest.DENSE_TASKS}


def test_manifest_dense_entries():
    import timm

    import zoo  # noqa: F401
    from zoo import manifest as zoo_manifest
    entries = _dense_entries()
    assert len(entries) == 19  # OverLoCK 6 det + 3 seg, CoaT 8 Mask R-CNN + 2 Cascade
    assert not zoo_manifest.validate()
    for name, e in entries.items():
        assert e['sha256'] is None and e['layout'] in ('mmdet2', 'mmseg0')
        assert osp.isfile(osp.join(ROOT, 'configs', e['config'][len('zoo::'):])), e['config']
        assert set(e['metrics']) == ({'box_ap', 'mask_ap'} if e['task'] == 'det' else {'miou'})
        assert name not in timm.list_pretrained(name.split('.')[0] + '*')  # no timm tag for a detector
        if 'coat' in name:  # the file name ends with the published SHA-256 prefix
            assert e['file'].endswith(f'_{e["sha256_prefix"]}.pth')
    bad = dict(entries['zoo_coat_mini.mask_rcnn_1x_coco'], sha256='0' * 64, config='configs/x.py')
    errs = zoo_manifest.validate_entry('zoo_coat_mini.mask_rcnn_1x_coco', bad)
    assert any('sha256_prefix' in m for m in errs) and any('needs `config`' in m for m in errs)


def test_download_checks_the_published_prefix(tmp_path, monkeypatch):
    from zoo.checkpoint import ChecksumError, sha256_file
    from zoo.hub import download
    src = tmp_path / 'src.pth'
    torch.save({'state_dict': {'w': torch.zeros(2)}}, src)
    sha = sha256_file(src)
    monkeypatch.setattr(torch.hub, 'download_url_to_file', lambda url, dst, **kw: Path(dst).write_bytes(src.read_bytes()))
    cache = tmp_path / 'cache'
    with pytest.raises(ChecksumError, match='published prefix'):
        download('https://example.org/f.pth', cache=cache, sha256_prefix='0' * 8, progress=False)
    assert not any(cache.iterdir())  # nothing cached
    got = download('https://example.org/f.pth', cache=cache, sha256_prefix=sha[:8], progress=False)
    assert got.sha256 == sha and got.path.is_file()


# ------------------------------------------------------------------------------------------------ OpenMMLab stack
def _standin(name, seed=0):
    return official_state_dict(name, seed=seed, folder=KEYS)


def _model(config):
    from zoo.mm.convert import build_model
    from zoo.mm.configs import load_config
    cfg = load_config(config)
    cfg.model.backbone.pretrained = False
    return build_model(cfg).eval()


@pytest.mark.parametrize('name', ['mask-rcnn_overlock-t_mmdet2', 'upernet_overlock-t_mmseg0',
                                  'mask-rcnn_coat-mini_mmdet2'])
@pytest.mark.mm
@pytest.mark.skipif(_REASON is not None, reason=_REASON or '')
def test_backbone_matches_the_authors_code(name):
    """The converted stand-in's ZooBackbone reproduces the authors' dense backbone at every level (float64, within
    ``fp64_tol`` of the level's float32 spread; observed 0-0.3 of it): on the padded input (what mmdet 3's data
    preprocessor hands it) and on the unpadded non-square input, which ZooBackbone pads itself and crops back."""
    from zoo.mm.convert import convert_state_dict
    model = _model(STANDINS[name][0])
    model.load_state_dict(convert_state_dict(_standin(name), model), strict=True)
    backbone = model.backbone.double()
    golden = torch.load(DATA / f'{name}.pt', weights_only=True)
    x = parity_input(golden['input_shape'], seed=1).double()
    h, w = x.shape[-2:]
    padded = F.pad(x, (0, golden['padded_shape'][3] - w, 0, golden['padded_shape'][2] - h))
    assert (h, w) != tuple(padded.shape[-2:]) and h != w
    with torch.no_grad():
        full, cropped = backbone(padded), backbone(x)
    assert len(full) == len(golden['features']) == 4
    with torch.no_grad():  # the golden has no float32 run: each level's spread of the same computation, on ours
        tols = [fp64_tol(s) for s in max_diffs(backbone.float()(padded.float()), full)]
    for stride, ours, crop, ref, tol in zip((4, 8, 16, 32), full, cropped, golden['features'], tols):
        torch.testing.assert_close(ours, ref, rtol=0, atol=tol)
        ref = ref[..., :-(-h // stride), :-(-w // stride)]
        torch.testing.assert_close(crop, ref, rtol=0, atol=tol)


def _authors_file(tmp_path, name, layout, seed=0):
    meta = {'mmdet_version': '2.28.2', 'CLASSES': tuple(f'c{i}' for i in range(80))} if layout == 'mmdet2' else \
        {'mmseg_version': '0.30.0', 'CLASSES': tuple(f'c{i}' for i in range(150)),
         'PALETTE': [[i, i, i] for i in range(150)], 'hook_msgs': {'best_score': __import__('numpy').float64(0.5)}}
    path = tmp_path / f'{name}.pth'
    torch.save({'meta': meta, 'state_dict': _standin(name, seed), 'optimizer': {}}, path)
    return path


@pytest.mark.parametrize('name', list(STANDINS))
@pytest.mark.mm
@pytest.mark.slow
@pytest.mark.skipif(_REASON is not None, reason=_REASON or '')
def test_standin_converts_loads_strictly_and_predicts(tmp_path, name):
    """A full-model stand-in in the authors' layout (seeded tensors, keys/<name>.json) converts in one step into an
    mmengine checkpoint that loads strictly into its config and runs through DetInferencer / MMSegInferencer."""
    import numpy as np

    from zoo.mm.convert import convert_checkpoint, inferencer
    from zoo.mm.configs import load_config
    config, layout = STANDINS[name]
    out = convert_checkpoint(_authors_file(tmp_path, name, layout), config, tmp_path / 'converted.pth')
    ckpt = torch.load(out, weights_only=True)
    assert ckpt['meta']['zoo_converted']['layout'] == layout and len(ckpt['meta']['dataset_meta']['classes']) > 0
    model = _model(config)
    model.load_state_dict(ckpt['state_dict'], strict=True)
    # a tiny test-time resize keeps CPU inference short
    resize = [i for i, t in enumerate(load_config(config).test_dataloader.dataset.pipeline) if t['type'] == 'Resize']
    infer = inferencer(config, str(out), cfg_options={f'test_dataloader.dataset.pipeline.{resize[0]}.scale': (96, 64)})
    image = np.random.default_rng(0).integers(0, 255, (50, 75, 3), dtype=np.uint8)
    pred = infer(image, return_datasamples=True)
    if layout == 'mmseg0':  # MMSegInferencer returns a single input's data sample itself
        assert tuple(pred.pred_sem_seg.data.shape[-2:]) == (50, 75)
    else:
        pred = pred['predictions'][0]
        assert pred.pred_instances.bboxes.shape[-1] == 4
        assert torch.isfinite(pred.pred_instances.scores).all()


@pytest.mark.mm
@pytest.mark.skipif(_REASON is not None, reason=_REASON or '')
def test_one_error_names_every_unmatched_key():
    from zoo.checkpoint import CheckpointError
    from zoo.mm.convert import convert_state_dict
    name = 'mask-rcnn_coat-mini_mmdet2'
    sd = _standin(name)
    del sd['rpn_head.rpn_cls.bias'], sd['backbone.cls_token2']
    sd['roi_head.bbox_head.fc_extra.weight'] = torch.zeros(1)
    sd['neck.fpn_convs.0.conv.weight'] = torch.zeros(1)
    with pytest.raises(CheckpointError) as e:
        convert_state_dict(sd, _model(STANDINS[name][0]))
    msg = str(e.value)
    for key in ('rpn_head.rpn_cls.bias', 'stages.1.cls_token', 'roi_head.bbox_head.fc_extra.weight',
                'neck.fpn_convs.0.conv.weight'):
        assert key in msg, key


@pytest.mark.mm
@pytest.mark.skipif(_REASON is not None, reason=_REASON or '')
def test_cli_refuses_unknown_layouts(tmp_path):
    ckpt = tmp_path / 'mmdet3.pth'
    torch.save({'meta': {'mmdet_version': '3.3.0'}, 'state_dict': {'backbone.x': torch.zeros(1)}}, ckpt)
    config = STANDINS['mask-rcnn_coat-mini_mmdet2'][0]
    for extra, says in (([], 'unknown checkpoint layout'), (['--layout', 'mmdet1'], "unknown checkpoint layout 'mmdet1'"),
                        (['--layout', 'mmseg0'], 'cannot load into an mmdet config')):
        r = subprocess.run([sys.executable, osp.join(ROOT, 'tools', 'convert.py'), '--config', config, '--checkpoint',
                            str(ckpt), '--out', str(tmp_path / 'o.pth')] + extra, capture_output=True, text=True)
        assert r.returncode == 2, r.stderr
        lines = r.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith('error: ') and says in lines[0], r.stderr
    assert not (tmp_path / 'o.pth').exists()


def _reference(name, entry):
    """The stand-in with ``entry``'s detector / segmenter and backbone family."""
    if entry['task'] == 'seg':
        return 'upernet_overlock-t_mmseg0'
    if 'cascade' in name:
        return 'cascade-mask-rcnn_coat-lite-small_mmdet2'
    return 'mask-rcnn_overlock-t_mmdet2' if 'overlock' in name else 'mask-rcnn_coat-mini_mmdet2'


@pytest.mark.mm
@pytest.mark.slow
@pytest.mark.skipif(_REASON is not None, reason=_REASON or '')
def test_every_entry_config_builds_the_authors_model():
    """Each of the 19 configs builds (once) with the tag's backbone and the authors' neck / heads: the stand-in of the
    same detector / segmenter converts into it strictly where the backbone is the same; for another variant the
    neck / head tensors have the stand-in's names and shapes, but for the input channels of convolutions that read
    the backbone's maps."""
    from zoo.mm.convert import convert_state_dict
    from zoo.mm.configs import load_config
    arch_of = {ref: load_config(cfg).model.backbone.model_name for ref, (cfg, _) in STANDINS.items()}
    converted = set()
    for name, e in _dense_entries().items():
        model = _model(e['config'])
        assert model.backbone.model_name == name.split('.')[0], name
        ref = _reference(name, e)
        sd = _standin(ref)
        if arch_of[ref] == model.backbone.model_name:
            model.load_state_dict(convert_state_dict(sd, model), strict=True)
            converted.add(ref)
            continue
        ours = {k: tuple(v.shape) for k, v in model.state_dict().items() if not k.startswith('backbone.')}
        theirs = {k: tuple(v.shape) for k, v in sd.items() if not k.startswith('backbone.')}
        assert set(ours) == set(theirs), (name, sorted(set(ours) ^ set(theirs))[:10])
        for k, shape in ours.items():
            if shape != theirs[k]:
                assert len(shape) == 4 and shape[0] == theirs[k][0] and shape[2:] == theirs[k][2:], (name, k)
    assert converted == set(STANDINS)


@pytest.mark.parametrize('tag, ref', [('zoo_coat_mini.mask_rcnn_1x_coco', 'mask-rcnn_coat-mini_mmdet2'),
                                      ('zoo_overlock_t.upernet_160k_ade20k', 'upernet_overlock-t_mmseg0')])
@pytest.mark.mm
@pytest.mark.skipif(_REASON is not None, reason=_REASON or '')
def test_cli_converts_a_tag(tmp_path, capsys, tag, ref):
    """``tools/convert.py --model TAG --checkpoint FILE`` converts for the tag's config, and the result loads strictly
    into its model. Where the authors publish a SHA-256 prefix (CoaT), another file is refused (one ``error:`` line)
    unless --no-verify; OverLoCK's releases publish none (the full SHA-256 is recorded with --record)."""
    from zoo import manifest as zoo_manifest
    from zoo.cli.convert import main
    from zoo.mm.convert import convert_state_dict
    entry = zoo_manifest.entry(tag)
    assert entry['config'] == STANDINS[ref][0]
    src = _authors_file(tmp_path, ref, entry['layout'])
    out = tmp_path / 'converted.pth'
    argv = ['--model', tag, '--checkpoint', str(src), '--out', str(out)]
    if entry.get('sha256_prefix'):
        assert main(argv) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith('error: ') and 'not the published' in err[0] and not out.exists()
        argv.append('--no-verify')
    assert main(argv) == 0
    ckpt = torch.load(out, weights_only=True)
    assert ckpt['meta']['zoo_converted']['config'] == entry['config']
    model = _model(entry['config'])
    model.load_state_dict(ckpt['state_dict'], strict=True)
    expected = convert_state_dict(_standin(ref), model)
    assert all(torch.equal(ckpt['state_dict'][k], v) for k, v in expected.items())


def test_key_lists_are_the_authors_layout():
    """The stand-ins carry the authors' names (backbone.*, no zoo body.* keys) and mmdet 2 / mmseg 0 head names."""
    for name in STANDINS:
        doc = json.loads((KEYS / f'{name}.json').read_text())
        keys = doc['keys']
        assert doc['n_entries'] == len(keys) and not any(k.startswith('backbone.body.') for k in keys)
        heads = {k.split('.')[0] for k in keys}
        assert heads == ({'backbone', 'decode_head', 'auxiliary_head'} if 'mmseg0' in name else
                         {'backbone', 'neck', 'rpn_head', 'roi_head'})
