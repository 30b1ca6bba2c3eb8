"""Pretrained weights: the manifest, safe loading, verified downloads (from a loopback HTTP server), conversion.

Everything runs offline: official files are served by an ``http.server`` on 127.0.0.1 in a thread, and the
"official" checkpoints are built from the recorded official key layouts (tests/official.py).
"""
import hashlib
import http.server
import importlib.util
import json
import os
import pickle
import re
import shutil
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import pytest
import torch
import yaml

import timm
import zoo
from zoo import hub, manifest as zoo_manifest
from zoo.checkpoint import CheckpointError

from helpers import fp32_spread, tol_from_spread
from official import official_state_dict

ROOT = Path(__file__).resolve().parents[1]
ARCH = 'zoo_resnet18_cbam'  # small CBAM net; official layout recorded in tests/data/official_keys/cbam_resnet18.json
X = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(0))


def _tool(name):
    spec = importlib.util.spec_from_file_location(f'_zoo_tool_{name}', ROOT / 'tools' / f'{name}.py')
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _official_checkpoint(path, seed=0, **extra):
    """ResNet-18+CBAM in the official distribution format: .pth.tar dict, `module.`-prefixed state_dict."""
    sd = official_state_dict('cbam_resnet18', seed=seed)
    obj = {'epoch': 90, 'arch': 'resnet18', 'state_dict': {'module.' + k: v for k, v in sd.items()},
           'best_prec1': torch.tensor(70.1), 'optimizer': {'state': {}, 'param_groups': [{'lr': 1e-4}]}, **extra}
    torch.save(obj, path)
    return path


def _reference(path, **kwargs):
    """The documented user path for a local official file: timm's pretrained loader + the family filter."""
    return timm.create_model(ARCH, pretrained=True, pretrained_cfg_overlay=dict(file=str(path)), **kwargs).eval()


def _sha(path):
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


@pytest.fixture
def cache(tmp_path, monkeypatch):
    d = tmp_path / 'cache'
    monkeypatch.setenv('ZOO_CACHE_DIR', str(d))
    return d


@pytest.fixture
def server(tmp_path, monkeypatch):
    """(folder, base_url): files in folder are served on 127.0.0.1; /truncated/<f> sends half of <f>."""
    for var in ('http_proxy', 'HTTP_PROXY', 'all_proxy', 'ALL_PROXY'):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv('no_proxy', '127.0.0.1,localhost')
    root = tmp_path / 'srv'
    root.mkdir()

    class Handler(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, directory=str(root), **kwargs)

        def log_message(self, *args):
            pass

        def do_GET(self):
            if self.path.startswith('/truncated/'):
                data = (root / self.path.rsplit('/', 1)[-1]).read_bytes()
                self.send_response(200)
                self.send_header('Content-Length', str(len(data)))  # promises all of it ...
                self.end_headers()
                self.wfile.write(data[:len(data) // 2])  # ... sends half, then closes the connection
                self.close_connection = True
                return
            super().do_GET()

    srv = http.server.ThreadingHTTPServer(('127.0.0.1', 0), Handler)
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    yield root, f'http://127.0.0.1:{srv.server_address[1]}'
    srv.shutdown()
    srv.server_close()


def _files(folder):
    return sorted(p.name for p in Path(folder).rglob('*') if p.is_file()) if Path(folder).exists() else []


# --- manifest --------------------------------------------------------------------------------------------

def test_manifest_is_valid():
    assert zoo_manifest.validate() == []
    data = yaml.safe_load(zoo_manifest.manifest_path().read_text())
    assert list(data)[-1] == 'models', '`models:` must stay the last key (entries are appended with cat >>)'


def test_every_manifest_tag_resolves_to_a_registered_cfg():
    for name, e in zoo_manifest.entries().items():
        arch, tag = name.split('.', 1)
        assert timm.is_model(arch), f'{name}: architecture {arch} is not registered'
        cfgs = timm.models.get_arch_pretrained_cfgs(arch)
        if e.get('task') in zoo_manifest.DENSE_TASKS:  # detectors / segmenters: zoo.mm, never timm tags
            assert name not in cfgs
            continue
        assert name in cfgs, f'{name}: no pretrained cfg registered (does the family build default_cfgs with pretrained_cfgs()?)'
        cfg = cfgs[name]
        assert cfg.tag == tag and cfg.architecture == arch
        assert cfg.license == e['license']
        if e.get('paper'):
            assert cfg.paper_ids == e['paper']
        # the Hub first: the zoo's published copy, else another Hub copy (timm's); the official URL as the fallback
        if e.get('published'):
            assert cfg.hf_hub_id == e['hub'], f'{name}: published entries load from their Hub repo'
        else:
            assert cfg.hf_hub_id == e.get('hf_hub_id'), name
        assert cfg.url == (e['url'] if e['source'] == 'url' else None), name
        assert not cfg.file
        if e['source'] == 'manual' and not cfg.hf_hub_id:
            assert any(e['page'] in n for n in cfg.notes or ()), f'{name}: cfg notes must say where to fetch it'
        for k, v in (e.get('cfg') or {}).items():
            have = getattr(cfg, k)
            assert (tuple(have) if isinstance(have, (list, tuple)) else have) == (tuple(v) if isinstance(v, list) else v)


def test_every_zoo_cfg_with_weights_or_tag_is_in_the_manifest():
    models = zoo_manifest.entries()
    for arch in zoo.list_models():
        for key, cfg in timm.models.get_arch_pretrained_cfgs(arch).items():
            has_weights = bool(cfg.url or cfg.file or cfg.hf_hub_id)
            if has_weights or cfg.tag:
                assert key in models, f'{key} has a pretrained cfg (weights or a tag) but no entry in weights/manifest.yaml'
    assert set(zoo.list_pretrained()) <= set(models)


@pytest.mark.parametrize('field,value,match', [
    ('sha256', 'ABC', 'sha256'),
    ('sha256', 'g' * 64, 'sha256'),
    ('sha256', 'A' * 64, 'sha256'),
    ('source', 'gdrive', 'source'),
    ('hub', 'zoo-models/zoo_resnet18_cbam.in1k', 'named after the entry'),
    ('hub', 'zoo_resnet50_cbam.in1k', 'form <org>/<arch>.<tag>'),
    ('url', 'ftp://x/y.pth', 'http'),
    ('license', 'MIT License', 'license'),
    ('paper', '1807.06521', 'paper'),
    ('metrics', {'top1': 'high'}, 'metric'),
    ('cfg', {'url': 'http://x'}, 'cfg may only override'),
    ('published', 'yes', 'published'),
    ('bogus', 1, 'unknown fields'),
    ('hub_sha256', 'ABC', 'hub_sha256'),
    ('hf_hub_id', 'coat_lite_tiny.in1k', 'hf_hub_id must be'),
    ('hf_hub_sha256', 'a' * 64, 'hf_hub_sha256 needs `hf_hub_id`'),
])
def test_manifest_validation_rejects(field, value, match):
    good = zoo_manifest.entries()['zoo_resnet50_cbam.in1k'] if 'zoo_resnet50_cbam.in1k' in zoo_manifest.entries() else {
        'source': 'manual', 'page': 'https://example.org/x', 'file': 'x.pth.tar', 'sha256': None,
        'layout': 'state_dict', 'license': 'mit', 'hub': 'zoo-models/zoo_resnet50_cbam.in1k', 'published': False}
    assert zoo_manifest.validate_entry('zoo_resnet50_cbam.in1k', good) == []
    bad = dict(good, **{field: value})
    errs = zoo_manifest.validate_entry('zoo_resnet50_cbam.in1k', bad)
    assert errs and any(match in e for e in errs), errs


def test_manifest_validation_rules_between_fields():
    base = {'license': 'mit', 'sha256': None, 'file': 'f.pth', 'layout': 'x'}
    assert any("needs `url`" in e for e in zoo_manifest.validate_entry('zoo_a.b', dict(base, source='url')))
    assert any("needs `page`" in e for e in zoo_manifest.validate_entry('zoo_a.b', dict(base, source='manual')))
    assert any('needs `hub`' in e for e in zoo_manifest.validate_entry('zoo_a.b', dict(base, source='none', published=True)))
    assert any('published' in e for e in zoo_manifest.validate_entry('zoo_a.b', dict(base, source='hub')))
    assert any('key must be' in e for e in zoo_manifest.validate_entry('resnet.b', dict(base, source='none')))
    assert zoo_manifest.validate_entry('zoo_a.b', dict(base, source='hub', published=True, hub='o/zoo_a.b@v1.0')) == []
    assert zoo_manifest.validate_entry('zoo_a.b', dict(base, source='none', hf_hub_id='timm/a.in1k@0123abc',
                                                    hf_hub_sha256='0' * 64)) == []


def test_coat_loads_timms_hub_copies_first():
    """Every CoaT / CoaT-Lite tag names timm's Hub copy of its official weights (timm's own default_cfgs), keeps the
    authors' URL as the fallback, and the family filter converts timm's layout exactly."""
    coat = {k: e for k, e in zoo_manifest.entries().items() if k.startswith('zoo_coat') and e.get('task', 'cls') == 'cls'}
    timm_ids = {f"timm/{k}" for k in timm.list_pretrained('coat_*')}
    assert len(coat) == 8 and all(e['hf_hub_id'] in timm_ids and e['url'] for e in coat.values())
    assert len({e['hf_hub_id'] for e in coat.values()}) == 8
    torch.manual_seed(0)
    ref = timm.create_model('coat_lite_tiny').eval()
    x = torch.randn(1, 3, 224, 224)
    model = timm.create_model('zoo_coat_lite_tiny', pretrained=True,
                              pretrained_cfg_overlay=dict(state_dict=ref.state_dict())).eval()
    with torch.no_grad():
        torch.testing.assert_close(model(x), ref(x), rtol=0, atol=tol_from_spread(fp32_spread(ref, x)))


def test_record_sha256_edits_one_line(tmp_path):
    src = zoo_manifest.manifest_path().read_text()
    path = tmp_path / 'manifest.yaml'
    path.write_text(src.rstrip('\n') + '\n' + textwrap.indent(textwrap.dedent('''\
        zoo_resnet18_cbam.unittest:
          source: url
          url: https://example.org/r18.pth
          file: r18.pth
          sha256: null
          layout: state_dict
          license: mit
        '''), '  '))
    before = path.read_text().splitlines()
    sha = '0123456789' * 6 + '0123'  # all digits: must stay a string in YAML
    zoo_manifest.record_sha256('zoo_resnet18_cbam.unittest', sha, path)
    after = path.read_text().splitlines()
    changed = [(a, b) for a, b in zip(before, after) if a != b]
    assert len(before) == len(after) and len(changed) == 1 and changed[0][1].strip().startswith('sha256:')
    parsed = yaml.safe_load(path.read_text())['models']['zoo_resnet18_cbam.unittest']
    assert parsed['sha256'] == sha
    assert zoo_manifest.validate(yaml.safe_load(path.read_text())) == []
    with pytest.raises(ValueError):
        zoo_manifest.record_sha256('zoo_resnet18_cbam.unittest', 'not-a-sha', path)
    with pytest.raises(KeyError):
        zoo_manifest.record_sha256('zoo_nope.x', sha, path)
    zoo_manifest.set_entry_field('zoo_resnet18_cbam.unittest', 'published', True, path)
    assert yaml.safe_load(path.read_text())['models']['zoo_resnet18_cbam.unittest']['published'] is True


# --- safe loading ----------------------------------------------------------------------------------------

class _Evil:
    """Unpickling this runs a shell command (creates a marker file)."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f'touch {self.marker}',)


@pytest.mark.parametrize('fmt', ['zip', 'legacy', 'pickle2', 'pickle5'])
def test_malicious_pickle_is_refused_and_nothing_runs(tmp_path, fmt, capsys):
    marker = tmp_path / 'executed'
    path = tmp_path / f'evil_{fmt}.pth'
    if fmt.startswith('pickle'):  # a plain pickle, not written by torch.save
        path.write_bytes(pickle.dumps({'state_dict': {}, 'payload': _Evil(marker)}, protocol=int(fmt[-1])))
    else:
        ckpt = {'state_dict': official_state_dict('cbam_resnet18'), 'payload': _Evil(marker)}
        torch.save(ckpt, path, _use_new_zipfile_serialization=(fmt == 'zip'))
    with pytest.raises(hub.UnsafeCheckpointError, match='arbitrary code') as ei:
        hub.safe_load(path)
    assert 'posix.system' in str(ei.value) or 'os.system' in str(ei.value)
    assert str(path) in str(ei.value)
    with pytest.raises(hub.UnsafeCheckpointError):
        hub.convert(ARCH, path)
    capsys.readouterr()
    rc = _tool('convert').main(['--model', ARCH, '--checkpoint', str(path), '--out', str(tmp_path / 'out')])
    assert rc == 2 and not (tmp_path / 'out').exists()  # a user error: one `error: ...` line, exit 2
    err = capsys.readouterr().err
    assert err.startswith('error: refusing to load') and err.count('\n') == 1
    assert not marker.exists(), 'code inside the checkpoint was executed'


def test_marker_payload_really_is_malicious(tmp_path):
    # guards the test above: the same file *does* run code when loaded unsafely
    marker = tmp_path / 'executed'
    path = tmp_path / 'evil.pth'
    torch.save({'payload': _Evil(marker)}, path)
    torch.load(path, weights_only=False)
    assert marker.exists()


def test_corrupt_and_truncated_files_fail_clearly(tmp_path):
    good = _official_checkpoint(tmp_path / 'good.pth.tar')
    data = good.read_bytes()
    cases = {'truncated.pth.tar': data[:len(data) // 2], 'empty.pth': b'', 'garbage.pth': b'not a checkpoint' * 10}
    import safetensors.torch
    safetensors.torch.save_file({'w': torch.ones(64)}, tmp_path / 'ok.safetensors')
    cases['truncated.safetensors'] = (tmp_path / 'ok.safetensors').read_bytes()[:-40]
    for name, blob in cases.items():
        (tmp_path / name).write_bytes(blob)
        with pytest.raises(hub.CorruptCheckpointError, match='not a readable') as ei:
            hub.safe_load(tmp_path / name)
        assert name in str(ei.value)
    assert set(hub.safe_load(good)) == {'epoch', 'arch', 'state_dict', 'best_prec1', 'optimizer'}
    assert torch.equal(hub.safe_load(tmp_path / 'ok.safetensors')['w'], torch.ones(64))


# --- downloads -------------------------------------------------------------------------------------------

def test_download_verifies_and_caches(server, cache, capsys):
    root, base = server
    f = _official_checkpoint(root / 'r18.pth.tar')
    sha = _sha(f)
    res = hub.download(f'{base}/r18.pth.tar', sha256=sha, progress=True)
    assert res.verified and res.sha256 == sha and res.path == cache / 'checkpoints' / 'r18.pth.tar'
    assert res.path.read_bytes() == f.read_bytes()
    assert '%|' in capsys.readouterr().err, 'expected a progress bar'
    assert _files(cache) == ['r18.pth.tar']
    # cached: served again without the server having it
    f.unlink()
    assert hub.download(f'{base}/r18.pth.tar', sha256=sha, progress=False).path == res.path


def test_download_checksum_mismatch_leaves_nothing(server, cache):
    root, base = server
    f = _official_checkpoint(root / 'r18.pth.tar')
    wrong = hashlib.sha256(b'something else').hexdigest()
    with pytest.raises(hub.ChecksumError, match=f'expected {wrong}, got {_sha(f)}'):
        hub.download(f'{base}/r18.pth.tar', sha256=wrong, progress=False)
    assert _files(cache) == []


def test_download_truncated_leaves_nothing(server, cache):
    root, base = server
    f = _official_checkpoint(root / 'r18.pth.tar')
    with pytest.raises(hub.ChecksumError, match='SHA-256 mismatch'):
        hub.download(f'{base}/truncated/r18.pth.tar', sha256=_sha(f), progress=False)
    assert _files(cache) == []
    # without a known checksum the safe test-load catches it
    with pytest.raises(hub.CorruptCheckpointError, match='truncated or damaged'):
        hub.download(f'{base}/truncated/r18.pth.tar', progress=False)
    assert _files(cache) == []


def test_download_unsafe_file_is_not_cached(server, cache, tmp_path):
    root, base = server
    marker = tmp_path / 'executed'
    torch.save({'payload': _Evil(marker)}, root / 'evil.pth')
    with pytest.raises(hub.UnsafeCheckpointError):
        hub.download(f'{base}/evil.pth', progress=False)
    assert _files(cache) == [] and not marker.exists()


def test_download_missing_url_fails_clearly(server, cache):
    _, base = server
    with pytest.raises(OSError, match='404'):
        hub.download(f'{base}/nope.pth', progress=False)
    assert _files(cache) == []


def _test_manifest(tmp_path, url, sha256=None):
    """A manifest with only test entries: one downloadable from ``url``, one to fetch by hand."""
    text = textwrap.dedent(f'''\
        hub_org: zoo-test
        models:
          {ARCH}.unittest:
            source: url
            url: {url}
            file: r18_official.pth.tar
            sha256: {sha256 or 'null'}
            layout: official .pth.tar dict with state_dict; keys prefixed module.
            license: mit
            paper: arXiv:1807.06521
            origin_url: https://github.com/Jongchan/attention-module
            metrics: {{top1: 70.1, top5: 89.5}}
            hub: zoo-test/{ARCH}.unittest
            published: false
          {ARCH}.unittest_manual:
            source: manual
            page: https://example.org/drive/r18
            file: r18_manual.pth.tar
            sha256: null
            layout: official .pth.tar dict with state_dict; keys prefixed module.
            license: mit
        ''')
    path = tmp_path / 'manifest.yaml'
    path.write_text(text)
    return path


@pytest.fixture
def test_manifest(tmp_path, server, monkeypatch):
    root, base = server
    f = _official_checkpoint(root / 'r18_official.pth.tar')
    path = _test_manifest(tmp_path, f'{base}/r18_official.pth.tar')
    monkeypatch.setenv(zoo_manifest.MANIFEST_ENV, str(path))
    zoo_manifest.reload()
    yield path, f
    monkeypatch.delenv(zoo_manifest.MANIFEST_ENV)
    zoo_manifest.reload()


def test_fetch_records_unknown_sha256(test_manifest, cache, capsys):
    path, f = test_manifest
    name = f'{ARCH}.unittest'
    res = hub.fetch(name, progress=False)
    assert not res.verified and res.sha256 == _sha(f)
    err = capsys.readouterr().err
    assert 'no SHA-256' in err and res.sha256 in err and '--record' in err
    records = json.loads((cache / hub.SHA_RECORDS).read_text())
    assert records[name]['sha256'] == res.sha256
    assert zoo_manifest.entry(name)['sha256'] is None  # not written without --record
    res = hub.fetch(name, progress=False, record=True)
    assert yaml.safe_load(path.read_text())['models'][name]['sha256'] == res.sha256
    assert zoo_manifest.entry(name)['sha256'] == res.sha256
    assert hub.fetch(name, progress=False).verified  # now verified against the manifest


def test_fetch_manual_entry_says_where_to_get_it(test_manifest, cache):
    with pytest.raises(hub.ManualDownloadError, match=re.escape('https://example.org/drive/r18')) as ei:
        hub.fetch(f'{ARCH}.unittest_manual')
    assert 'tools/convert.py' in str(ei.value) and _files(cache) == []


def test_manual_entry_with_direct_link_is_downloaded(test_manifest, server, cache, monkeypatch):
    """manual + url (e.g. OneDrive .../content links): downloaded and cached under the manifest's file name."""
    path, f = test_manifest
    _, base = server
    text = path.read_text().replace('page: https://example.org/drive/r18',
                                    f'page: https://example.org/drive/r18\n    url: {base}/r18_official.pth.tar?download=1')
    path.write_text(text)
    zoo_manifest.reload()
    res = hub.fetch(f'{ARCH}.unittest_manual', progress=False)
    assert res.path.name == 'r18_manual.pth.tar' and res.sha256 == _sha(f)


def test_download_tool_end_to_end(test_manifest, tmp_path, cache):
    """tools/download.py NAME.TAG in a fresh interpreter (the test tag is registered from the test manifest):
    download from the loopback server, convert through the CBAM filter, export in timm's Hub layout."""
    path, f = test_manifest
    out = tmp_path / 'export'
    env = dict(os.environ, **{zoo_manifest.MANIFEST_ENV: str(path), 'ZOO_CACHE_DIR': str(cache)})
    cmd = [sys.executable, str(ROOT / 'tools' / 'download.py'), f'{ARCH}.unittest', '--out', str(out), '--record']
    r = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=ROOT, timeout=300)
    assert r.returncode == 0, r.stderr
    assert 'recorded' in r.stderr and _sha(f) in r.stderr
    assert '%|' in r.stderr, 'expected a download progress bar'
    folder = out / f'{ARCH}.unittest'
    assert _files(folder) == ['README.md', 'config.json', 'model.safetensors']
    cfg = json.loads((folder / 'config.json').read_text())
    assert cfg['architecture'] == ARCH and cfg['num_classes'] == 1000 and cfg['pretrained_cfg']['tag'] == 'unittest'
    assert cfg['zoo']['checkpoint_sha256'] == _sha(f)
    readme = (folder / 'README.md').read_text()
    assert 'top1: 70.1' in readme and _sha(f) in readme and 'license: mit' in readme
    ref = _reference(f)
    model = timm.create_model(f'local-dir:{folder}', pretrained=True).eval()
    with torch.no_grad():
        assert torch.equal(model(X), ref(X))


def test_download_tool_in_process(test_manifest, tmp_path, cache, capsys):
    path, f = test_manifest
    dl = _tool('download')
    name = f'{ARCH}.unittest'
    assert dl.main([name, '--no-convert', '--no-progress']) == 0
    out = capsys.readouterr()
    assert 'NOT verified' in out.out and 'no SHA-256' in out.err and _sha(f) in out.err
    assert dl.main([name, '--no-convert', '--no-progress', '--record']) == 0
    assert dl.main([name, '--no-convert', '--no-progress']) == 0
    assert '[verified]' in capsys.readouterr().out
    # a tampered official file fails the recorded checksum and is not cached
    shutil.rmtree(cache / 'checkpoints')
    _official_checkpoint(f, seed=1)
    assert dl.main([name, '--no-convert', '--no-progress']) == 1
    assert 'SHA-256 mismatch' in capsys.readouterr().err and _files(cache / 'checkpoints') == []
    # a manual-only tag is reported with the page to fetch it from; named explicitly it is an error
    assert dl.main([f'{ARCH}.unittest_manual']) == 2
    assert 'https://example.org/drive/r18' in capsys.readouterr().err
    assert dl.main(['--all', '--no-convert', '--no-progress']) == 1  # the tampered file still fails under --all
    err = capsys.readouterr().err
    assert 'unittest_manual: SKIPPED' in err and 'unittest: FAILED' in err


# --- conversion ------------------------------------------------------------------------------------------

def test_convert_tool_official_checkpoint(tmp_path):
    ckpt = _official_checkpoint(tmp_path / 'RESNET18_CBAM.pth.tar')
    out = tmp_path / 'out'
    assert _tool('convert').main(['--model', ARCH, '--checkpoint', str(ckpt), '--out', str(out)]) == 0
    assert _files(out) == ['README.md', 'config.json', 'model.safetensors']
    ref = _reference(ckpt)
    with torch.no_grad():
        y = ref(X)
        m = timm.create_model(f'local-dir:{out}', pretrained=True).eval()
        assert torch.equal(m(X), y)
        # the zoo-layout export also loads through the filter (pass-through) by file
        m = _reference(out / 'model.safetensors')
        assert torch.equal(m(X), y)
        fm = timm.create_model(f'local-dir:{out}', pretrained=True, features_only=True).eval()
        feats, ref_feats = fm(X), _reference(ckpt, features_only=True)(X)
        assert len(feats) >= 3 and [t.shape[1] for t in feats] == fm.feature_info.channels()
        assert all(torch.equal(a, b) for a, b in zip(feats, ref_feats))
        m5 = timm.create_model(f'local-dir:{out}', pretrained=True, num_classes=5).eval()
        assert m5(X).shape == (2, 5) and torch.equal(m5.forward_head(m5.forward_features(X), pre_logits=True),
                                                       ref.forward_head(ref.forward_features(X), pre_logits=True))


def test_convert_checks_manifest_sha256(tmp_path, monkeypatch, capsys):
    ckpt = _official_checkpoint(tmp_path / 'r18_official.pth.tar')
    path = _test_manifest(tmp_path, 'https://example.org/r18_official.pth.tar', sha256='0' * 64)
    monkeypatch.setenv(zoo_manifest.MANIFEST_ENV, str(path))
    zoo_manifest.reload()
    try:
        conv = _tool('convert')
        rc = conv.main(['--model', f'{ARCH}.unittest', '--checkpoint', str(ckpt), '--out', str(tmp_path / 'o')])
        assert rc == 2 and not (tmp_path / 'o').exists()
        assert 'error: SHA-256 of' in capsys.readouterr().err
    finally:
        monkeypatch.delenv(zoo_manifest.MANIFEST_ENV)
        zoo_manifest.reload()


def test_convert_training_checkpoint_keeps_head_and_picks_ema(tmp_path):
    torch.manual_seed(0)
    raw = timm.create_model(ARCH, num_classes=10).eval()
    ema = timm.create_model(ARCH, num_classes=10).eval()
    ckpt = tmp_path / 'model_best.pth.tar'
    torch.save({'epoch': 3, 'arch': ARCH, 'state_dict': {'module.' + k: v for k, v in raw.state_dict().items()},
                'state_dict_ema': ema.state_dict(), 'metrics': {'top1': 91.5},
                'args': __import__('argparse').Namespace(model=ARCH, lr=0.1)}, ckpt)
    with torch.no_grad():
        m = hub.convert(ARCH, ckpt)
        assert m.num_classes == 10 and torch.equal(m(X), ema(X))
        m = hub.convert(ARCH, ckpt, use_ema=False)
        assert torch.equal(m(X), raw(X))
        m = hub.convert(ARCH, ckpt, num_classes=3)  # new head, same trunk
        assert m(X).shape == (2, 3) and torch.equal(m.forward_features(X), ema.forward_features(X))


def test_convert_wrong_checkpoint_names_the_tensors(tmp_path, capsys):
    sd = official_state_dict('cbam_resnet18')
    sd.pop('layer1.0.conv1.weight')
    sd['layer4.1.bn2.weight'] = torch.ones(7)
    sd['extra.weight'] = torch.ones(1)
    path = tmp_path / 'bad.pth'
    torch.save({'state_dict': sd}, path)
    with pytest.raises(CheckpointError) as ei:
        hub.convert(ARCH, path)
    msg = str(ei.value)
    assert 'layer1.0.conv1.weight' in msg and 'layer4.1.bn2.weight' in msg and 'extra.weight' in msg
    rc = _tool('convert').main(['--model', ARCH, '--checkpoint', str(path), '--out', str(tmp_path / 'o')])
    assert rc == 2 and not (tmp_path / 'o').exists()
    assert 'extra.weight' in capsys.readouterr().err


# --- the maintainer's flow: download -> record -> convert -> verify -> push -> mark published --------------------

_RELEASE_DRIVER = '''
import json, sys
from pathlib import Path
sys.path.insert(0, sys.argv[1])
from test_hub import FakeHfApi  # the stand-in HfApi of tests/test_hub.py
from huggingface_hub import constants
from timm.models import _hub
FakeHfApi.hub_cache, FakeHfApi.remote, FakeHfApi.calls = Path(sys.argv[2]), Path(sys.argv[3]), []
FakeHfApi.hub_cache.mkdir(parents=True, exist_ok=True)
_hub.HfApi = FakeHfApi
constants.HF_HUB_OFFLINE = False
from zoo.cli.download import main
rc = main(sys.argv[5:])
Path(sys.argv[4]).write_text(json.dumps([c[0] if c[0] != 'upload_folder' else [c[0], c[1]] for c in FakeHfApi.calls]))
sys.exit(rc)
'''

_SHORT_NAME_LOADER = '''
import sys, torch
import zoo, timm
m = timm.create_model('zoo_resnet18_cbam.unittest', pretrained=True).eval()
assert m.pretrained_cfg['hf_hub_id'] == 'zoo-test/zoo_resnet18_cbam.unittest', m.pretrained_cfg
with torch.no_grad():
    torch.save(m(torch.load(sys.argv[1])), sys.argv[2])
'''


def _release(tmp_path, manifest, cache, *args):
    calls = tmp_path / 'calls.json'
    env = dict(os.environ, **{zoo_manifest.MANIFEST_ENV: str(manifest), 'ZOO_CACHE_DIR': str(cache)})
    cmd = [sys.executable, '-c', _RELEASE_DRIVER, str(ROOT / 'tests'), str(tmp_path / 'hf' / 'hub'),
           str(tmp_path / 'remote'), str(calls), *args]
    r = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=ROOT, timeout=600)
    return r, (json.loads(calls.read_text()) if calls.is_file() else None)


def test_release_flow_all_record_verify_push_offline(test_manifest, tmp_path, cache):
    """`zoo-download --all --record --push`: every downloadable official file is fetched from the loopback server,
    its SHA-256 recorded in the manifest, converted, reloaded strictly, pushed (stand-in HfApi) and marked
    published; a fresh offline interpreter then loads it by its short name from the Hub cache."""
    path, f = test_manifest
    name = f'{ARCH}.unittest'
    # unverifiable weights are never pushed: no SHA-256 in the manifest and no --record
    r, calls = _release(tmp_path, path, cache, '--all', '--push', '--quiet', '--out', str(tmp_path / 'export'))
    assert r.returncode == 1, r.stdout + r.stderr
    assert 'not pushing weights whose SHA-256 is not in the manifest' in r.stderr
    assert not any(isinstance(c, list) for c in calls)
    assert yaml.safe_load(path.read_text())['models'][name]['published'] is False
    # the flow
    r, calls = _release(tmp_path, path, cache, '--all', '--record', '--push', '--quiet',
                        '--out', str(tmp_path / 'export'))
    assert r.returncode == 0, r.stdout + r.stderr
    assert '%|' not in r.stderr, '--quiet shows no progress bar'
    assert f'{ARCH}.unittest_manual: SKIPPED' in r.stderr and 'https://example.org/drive/r18' in r.stderr
    assert 'verified: ' in r.stdout and 'reloads strictly' in r.stdout
    entry = yaml.safe_load(path.read_text())['models'][name]
    assert entry['sha256'] == _sha(f) and entry['published'] is True
    zoo_manifest.reload()
    assert zoo_manifest.validate() == []
    uploads = [c[1] for c in calls if isinstance(c, list)]
    assert [u['repo_id'] for u in uploads] == [f'zoo-test/{name}']
    assert uploads[0]['files'] == ['README.md', 'config.json', 'model.safetensors']
    remote = tmp_path / 'remote' / 'zoo-test' / name
    export = tmp_path / 'export' / name
    assert (remote / 'model.safetensors').read_bytes() == (export / 'model.safetensors').read_bytes()
    readme = (remote / 'README.md').read_text()
    assert _sha(f) in readme and 'top1: 70.1' in readme
    # published: the short name now loads the pushed weights (fresh interpreter, offline, Hub cache only)
    torch.save(X, tmp_path / 'x.pt')
    env = dict(os.environ, HF_HOME=str(tmp_path / 'hf'), HF_HUB_OFFLINE='1', HF_HUB_DISABLE_TELEMETRY='1',
               **{zoo_manifest.MANIFEST_ENV: str(path)})
    env.pop('HF_HUB_CACHE', None)
    env.pop('HUGGINGFACE_HUB_CACHE', None)
    r = subprocess.run([sys.executable, '-c', _SHORT_NAME_LOADER, str(tmp_path / 'x.pt'), str(tmp_path / 'y.pt')],
                       capture_output=True, text=True, env=env, cwd=ROOT, timeout=300)
    assert r.returncode == 0, r.stderr
    with torch.no_grad():
        assert torch.equal(torch.load(tmp_path / 'y.pt', weights_only=True), _reference(f)(X))


def test_verify_export_catches_a_changed_file(tmp_path):
    import safetensors.torch
    ckpt = _official_checkpoint(tmp_path / 'r18.pth.tar')
    model = hub.convert(ARCH, ckpt)
    out = hub.export(model, tmp_path / 'out')
    assert hub.verify_export(out, model) == len(model.state_dict())
    sd = safetensors.torch.load_file(str(out / 'model.safetensors'))
    sd['fc.bias'] = sd['fc.bias'] + 1
    safetensors.torch.save_file(sd, str(out / 'model.safetensors'))
    with pytest.raises(hub.ExportMismatchError, match='fc.bias'):
        hub.verify_export(out, model)


# --- parameter counts: which form -----------------------------------------------------------------------------

def test_overlock_entries_name_the_form_of_their_parameter_counts():
    entries = zoo_manifest.entries()
    overlock = {k: e for k, e in entries.items() if k.startswith('zoo_overlock_') and e.get('task', 'cls') == 'cls'}
    assert overlock and all(e.get('params', {}).get('form') and e['params'].get('paper_m') for e in overlock.values())
    # the paper's counts are the re-parameterised form: the deploy model of the XT tag has them, the training one not
    torch.manual_seed(0)
    n = {tag: sum(p.numel() for p in timm.create_model(f'zoo_overlock_xt.{tag}').parameters()) / 1e6
         for tag in ('in1k', 'in1k_reparam')}
    assert round(n['in1k_reparam']) == entries['zoo_overlock_xt.in1k_reparam']['params']['paper_m'] == 16
    assert round(n['in1k'], 2) == 16.97 and 'training form' in entries['zoo_overlock_xt.in1k']['params']['form']
    assert zoo_manifest.validate_entry('zoo_a.b', {'source': 'none', 'license': 'mit', 'params': {'paper_m': 'x'}})
    assert zoo_manifest.validate_entry('zoo_a.b', {'source': 'none', 'license': 'mit', 'params': {'size': 1}})


# --- pretrained=True: one error that says what to do ----------------------------------------------------------

def _one_error_line(capsys, main, argv):
    rc = main(argv)
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and err[-1].startswith('error: ') and not any('Traceback' in e for e in err), err
    return err[-1]


def test_pretrained_unavailable_says_what_to_do(cache, capsys):
    """A manual-only tag: the page, the cache path it looks in, the overlay; a file of another model in that place
    is refused; the official file saved there by hand loads. The CLI tools print the message as one error line."""
    from zoo.cli import download as cli_download, eval as cli_eval
    from zoo.errors import PretrainedUnavailable
    name, e = 'zoo_resnet50_cbam.in1k', zoo_manifest.entry('zoo_resnet50_cbam.in1k')
    saved = cache / 'checkpoints' / e['file']
    with pytest.raises(PretrainedUnavailable) as ei:
        timm.create_model('zoo_resnet50_cbam', pretrained=True)
    msg = str(ei.value)
    assert ei.value.__context__ is None and ei.value.__cause__ is None
    assert msg.startswith(f'{name}: no pretrained weights could be loaded.')
    assert f'Hub {e["hub"]}: no copy published yet' in msg and f'cache {saved}: not there' in msg
    assert e['page'] in msg and 'pretrained_cfg_overlay=dict(file=PATH)' in msg
    for main, argv in ((cli_eval.main, ['--model', 'zoo_resnet50_cbam', '--pretrained']),
                       (cli_download.main, [name, '--source', 'hub'])):
        line = _one_error_line(capsys, main, argv)
        assert name in line and e['page'] in line and str(saved) in line
    # another model's file in that place
    saved.parent.mkdir(parents=True, exist_ok=True)
    _official_checkpoint(saved)  # ResNet-18 + CBAM
    with pytest.raises(PretrainedUnavailable, match='holds the weights of another model') as ei:
        timm.create_model('zoo_resnet50_cbam', pretrained=True)
    assert str(saved) in str(ei.value) and 'CBAM checkpoint does not match' in str(ei.value)
    # the official file saved by hand
    sd = official_state_dict('cbam_resnet50', seed=0)
    torch.save({'state_dict': {'module.' + k: v for k, v in sd.items()}}, saved)
    got = timm.create_model('zoo_resnet50_cbam', pretrained=True).state_dict()
    want = timm.create_model('zoo_resnet50_cbam', pretrained=True, pretrained_cfg_overlay=dict(file=str(saved)))
    assert all(torch.equal(v, got[k]) for k, v in want.state_dict().items()) and got.keys() == want.state_dict().keys()
