"""``pretrained=True`` through huggingface_hub's own client, against a loopback server that speaks the Hub's protocol.

Two servers on 127.0.0.1 (threads, stopped by the test or after a deadline): the "Hub" answers
``/{repo_id}/resolve/{revision}/{filename}`` (HEAD and GET) with ``X-Repo-Commit``, ``ETag`` and, for weights, a
redirect to the "CDN" carrying ``X-Linked-Etag`` / ``X-Linked-Size``, as huggingface.co does for LFS files; the CDN
serves the blobs (with Range requests). ``HF_ENDPOINT`` points fresh interpreters at it, ``HF_HOME`` is temporary.
They load by short name: a published zoo copy (pinned to a commit, another commit on ``main``), timm's CoaT-Lite
copy through the real manifest entry, and an official file from the URL fallback; then again after the server is
stopped, from the caches. Corrupted and truncated files are refused with :class:`zoo.errors.PretrainedUnavailable`.
"""
import hashlib
import http.server
import io
import json
import os
import re
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest
import safetensors.torch
import torch

import timm
from zoo import hub, manifest as zoo_manifest

from helpers import fp32_spread, tol_from_spread

ROOT = Path(__file__).resolve().parents[1]
X = torch.randn(1, 3, 224, 224, generator=torch.Generator().manual_seed(0))  # timm's CoaT runs at 224 px only
ZOO_REPO = 'zoo-test/zoo_resnet18_cbam.unittest'
TIMM_REPO = 'timm/coat_lite_tiny.in1k'  # the real manifest entry's hf_hub_id
DEADLINE_S = 900


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _commit(seed: str) -> str:
    return hashlib.sha1(seed.encode()).hexdigest()


def _safetensors(sd) -> bytes:
    return safetensors.torch.save({k: v.detach().clone().contiguous() for k, v in sd.items()})


class HubServer:
    """``repos[repo_id] = {'refs': {'main': commit}, 'commits': {commit: {filename: bytes}}}``; blobs go through the
    CDN. ``log`` records ``(method, path)`` of every request."""

    def __init__(self, repos):
        self.repos, self.log, self.blobs = repos, [], {}
        for repo in repos.values():
            for files in repo['commits'].values():
                for data in files.values():
                    self.blobs[_sha256(data)] = data
        self.cdn = self._start(self._cdn_handler())
        self.hub = self._start(self._hub_handler())
        self.endpoint = f'http://127.0.0.1:{self.hub[0].server_address[1]}'
        self.cdn_base = f'http://127.0.0.1:{self.cdn[0].server_address[1]}'

    def _start(self, handler):
        srv = http.server.ThreadingHTTPServer(('127.0.0.1', 0), handler)
        srv.timeout = 0.2
        stop = threading.Event()
        deadline = time.monotonic() + DEADLINE_S

        def serve():
            while not stop.is_set() and time.monotonic() < deadline:
                srv.handle_request()
            srv.server_close()

        thread = threading.Thread(target=serve, daemon=True)
        thread.start()
        return srv, stop, thread

    def stop(self):
        for srv, stop, thread in (self.hub, self.cdn):
            stop.set()
            thread.join(timeout=10)

    def _base(self):
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = 'HTTP/1.1'

            def log_message(self, *args):
                pass

            def reply(self, status, headers, body=b''):
                self.send_response(status)
                for k, v in headers.items():
                    self.send_header(k, str(v))
                self.send_header('Content-Length', str(len(body)))
                self.end_headers()
                if self.command == 'GET':
                    self.wfile.write(body)

            def do_HEAD(self):
                server.log.append((self.command, self.path))
                self.handle_path()

            do_GET = do_HEAD
        return Handler

    def _hub_handler(self):
        server = self

        class Hub(self._base()):
            def handle_path(self):
                m = re.match(r'^/(?P<repo>[^/]+/[^/]+)/resolve/(?P<rev>[^/]+)/(?P<file>.+)$', self.path)
                repo = server.repos.get(m.group('repo')) if m else None
                if repo is None:
                    return self.reply(404, {'X-Error-Code': 'RepoNotFound'})
                commit = repo['refs'].get(m.group('rev'), m.group('rev'))
                files = repo['commits'].get(commit)
                if files is None:
                    return self.reply(404, {'X-Error-Code': 'RevisionNotFound'})
                data = files.get(m.group('file'))
                if data is None:
                    return self.reply(404, {'X-Error-Code': 'EntryNotFound', 'X-Repo-Commit': commit})
                if m.group('file').endswith(('.safetensors', '.bin', '.pth')):  # LFS: redirect to the CDN
                    sha = _sha256(data)
                    return self.reply(302, {'X-Repo-Commit': commit, 'ETag': f'"{_commit(sha)}"',
                                            'X-Linked-Etag': f'"{sha}"', 'X-Linked-Size': len(data),
                                            'Location': f'{server.cdn_base}/lfs/{sha}'})
                self.reply(200, {'X-Repo-Commit': commit, 'ETag': f'"{_commit(data.hex())}"'}, data)
        return Hub

    def _cdn_handler(self):
        server = self

        class Cdn(self._base()):
            def handle_path(self):
                m = re.match(r'^/(lfs|official)/(\w[\w.]*)$', self.path)
                data = server.blobs.get(m.group(2)) if m else None
                if data is None:
                    return self.reply(404, {})
                r = re.match(r'bytes=(\d+)-$', self.headers.get('Range', ''))
                if r:
                    start = int(r.group(1))
                    return self.reply(206, {'Content-Range': f'bytes {start}-{len(data) - 1}/{len(data)}'},
                                      data[start:])
                self.reply(200, {'ETag': f'"{_sha256(data)}"'}, data)
        return Cdn


@pytest.fixture(scope='module')
def weights(tmp_path_factory):
    """The served files and the outputs they must give."""
    tmp = tmp_path_factory.mktemp('weights')
    out = {}
    torch.manual_seed(0)
    pinned = timm.create_model('zoo_resnet18_cbam').eval()
    torch.manual_seed(1)
    newer = timm.create_model('zoo_resnet18_cbam').eval()
    for key, model in (('pinned', pinned), ('newer', newer)):
        folder = hub.export(model, tmp / key, tag='unittest', repo_id=ZOO_REPO)
        out[key] = {p.name: p.read_bytes() for p in folder.iterdir() if p.name != 'README.md'}
    torch.manual_seed(2)
    coat = timm.create_model('coat_lite_tiny').eval()  # timm's own CoaT-Lite: timm's key layout
    out['timm'] = _safetensors(coat.state_dict())
    buf = io.BytesIO()
    torch.save({'model': {k: v.clone() for k, v in coat.state_dict().items()}}, buf)  # the official layout
    out['official'] = buf.getvalue()
    with torch.no_grad():
        out['y_zoo'], out['y_newer'], out['y_coat'] = pinned(X), newer(X), coat(X)
    out['coat_tol'] = tol_from_spread(fp32_spread(coat, X))  # zoo's CoaT-Lite against timm's: timm's own spread
    return out


@pytest.fixture
def server(weights):
    good = weights['timm']
    half = len(good) // 2
    corrupt = good[:half] + bytes([good[half] ^ 0xFF]) + good[half + 1:]  # one byte flipped in the tensor data
    commits = {k: _commit(k) for k in ('pinned', 'newer', 'timm', 'bad')}
    repos = {
        ZOO_REPO: {'refs': {'main': commits['newer']},
                   'commits': {commits['pinned']: weights['pinned'], commits['newer']: weights['newer']}},
        TIMM_REPO: {'refs': {'main': commits['timm']}, 'commits': {commits['timm']: {'model.safetensors': good}}},
        'zoo-test/coat_corrupt': {'refs': {'main': commits['bad']},
                                  'commits': {commits['bad']: {'model.safetensors': corrupt}}},
        'zoo-test/coat_truncated': {'refs': {'main': commits['bad']},  # served whole: the upload was truncated
                                    'commits': {commits['bad']: {'model.safetensors': good[:half]}}},
    }
    srv = HubServer(repos)
    srv.blobs['coat_lite_tiny_official.pth'] = weights['official']
    yield srv, commits
    srv.stop()


def _test_manifest(path: Path, srv: HubServer, commits, weights) -> Path:
    entries = textwrap.dedent(f'''\
        zoo_resnet18_cbam.unittest:
          source: hub
          license: mit
          hub: {ZOO_REPO}@{commits['pinned']}
          hub_sha256: {_sha256(weights['pinned']['model.safetensors'])}
          published: true
        zoo_coat_lite_tiny.unittest_url:
          source: url
          url: {srv.cdn_base}/official/coat_lite_tiny_official.pth
          file: coat_lite_tiny_official.pth
          sha256: {_sha256(weights['official'])}
          layout: official dict with the weights under 'model'
          license: apache-2.0
          hf_hub_id: zoo-test/coat_missing
        ''')
    for bad in ('corrupt', 'truncated'):
        entries += textwrap.dedent(f'''\
            zoo_coat_lite_tiny.unittest_{bad}:
              source: none
              license: apache-2.0
              hf_hub_id: zoo-test/coat_{bad}
              hf_hub_sha256: {_sha256(weights['timm'])}
            ''')
    text = zoo_manifest.manifest_path().read_text().rstrip('\n') + '\n' + textwrap.indent(entries, '  ')
    path.write_text(text)
    return path


_LOADER = '''
import json, sys, torch
torch.set_num_threads(1)
import timm, zoo
from zoo.errors import PretrainedUnavailable
x, out_path, names, bad = torch.load(sys.argv[1]), sys.argv[2], sys.argv[3].split(','), sys.argv[4].split(',')
if sys.argv[5:]:
    from zoo.cli.download import main
    assert main(sys.argv[5:]) == 0
out, errors = {}, {}
for name in filter(None, names):
    m = timm.create_model(name, pretrained=True).eval()
    assert 'state_dict' not in m.pretrained_cfg and 'file' not in m.pretrained_cfg, sorted(m.pretrained_cfg)
    with torch.no_grad():
        out[name] = m(x)
    if name == 'zoo_coat_lite_tiny':
        f = timm.create_model(name, pretrained=True, features_only=True).eval()
        assert 'state_dict' not in f.pretrained_cfg
        with torch.no_grad():
            out['features'] = f(x)
for name in filter(None, bad):
    try:
        timm.create_model(name, pretrained=True)
        errors[name] = 'loaded'
    except PretrainedUnavailable as e:
        errors[name] = [str(e), e.__cause__ is None and (e.__suppress_context__ or e.__context__ is None)]
torch.save(out, out_path)
print('ERRORS=' + json.dumps(errors))
'''


def _load(tmp_path, env, names, bad=(), cli=()):
    out = tmp_path / 'out.pt'
    out.unlink(missing_ok=True)
    r = subprocess.run([sys.executable, '-c', _LOADER, str(tmp_path / 'x.pt'), str(out), ','.join(names),
                        ','.join(bad), *cli], capture_output=True, text=True, env=env, cwd=ROOT, timeout=600)
    assert r.returncode == 0, r.stdout + r.stderr
    errors = json.loads(r.stdout.rsplit('ERRORS=', 1)[1])
    return torch.load(out, weights_only=True), errors, r


def test_pretrained_through_huggingface_hub_client(tmp_path, server, weights, monkeypatch):
    srv, commits = server
    manifest = _test_manifest(tmp_path / 'manifest.yaml', srv, commits, weights)
    torch.save(X, tmp_path / 'x.pt')
    env = {k: v for k, v in os.environ.items()
           if k not in ('HF_HUB_OFFLINE', 'HF_HUB_CACHE', 'HUGGINGFACE_HUB_CACHE', 'HF_TOKEN', 'HF_HUB_ETAG_TIMEOUT')
           and not k.lower().endswith('_proxy')}
    env.update(HF_ENDPOINT=srv.endpoint, HF_HOME=str(tmp_path / 'hf'), HF_HUB_DISABLE_TELEMETRY='1',
               HF_HUB_DISABLE_IMPLICIT_TOKEN='1', no_proxy='127.0.0.1', ZOO_CACHE_DIR=str(tmp_path / 'zoo'),
               OMP_NUM_THREADS='1', **{zoo_manifest.MANIFEST_ENV: str(manifest)})
    good = ['zoo_resnet18_cbam.unittest', 'zoo_coat_lite_tiny', 'zoo_coat_lite_tiny.unittest_url']
    bad = ['zoo_coat_lite_tiny.unittest_corrupt', 'zoo_coat_lite_tiny.unittest_truncated']

    # online: zoo-download fills the caches for the timm copy and records its SHA-256 (the entry had none)
    out, errors, r = _load(tmp_path, env, good, bad, cli=['zoo_coat_lite_tiny.in1k', '--record', '--quiet'])
    assert f'hf_hub_sha256: {_sha256(weights["timm"])}' in manifest.read_text()
    assert 'recorded as hf_hub_sha256' in r.stdout
    assert torch.equal(out['zoo_resnet18_cbam.unittest'], weights['y_zoo'])  # the pinned commit, not main's
    assert not torch.equal(out['zoo_resnet18_cbam.unittest'], weights['y_newer'])
    for name in good[1:]:
        torch.testing.assert_close(out[name], weights['y_coat'], rtol=0, atol=weights['coat_tol'])
    assert len(out['features']) == 4
    gets = [p for m, p in srv.log if m == 'GET']
    assert f'/{ZOO_REPO}/resolve/{commits["pinned"]}/model.safetensors' in [p for _, p in srv.log]
    assert any(p == f'/{TIMM_REPO}/resolve/main/model.safetensors' for _, p in srv.log)
    assert f'/official/coat_lite_tiny_official.pth' in gets  # the URL fallback (zoo-test/coat_missing: no repo)
    assert any(p.startswith('/zoo-test/coat_missing/resolve/') for _, p in srv.log)
    assert 'Hub zoo-test/coat_missing' in r.stderr  # the fallback is logged
    for name in bad:
        assert errors[name] != 'loaded', f'{name}: a file that fails its SHA-256 was loaded'
        msg, suppressed = errors[name]
        assert suppressed, 'the huggingface_hub / urllib exception must not be chained'
        lines = msg.splitlines()
        assert lines[0] == f'{name}: no pretrained weights could be loaded.'
        assert f'zoo-test/coat_{name.rsplit("_", 1)[1]} (revision main) model.safetensors' in lines[1]
        assert f'the manifest lists {_sha256(weights["timm"])} (`hf_hub_sha256`)' in lines[1]
        assert lines[-1].startswith(f'  next: run `zoo-download {name}`') and 'pretrained_cfg_overlay=dict(file=' in msg

    # the server stopped: everything loaded above comes from the caches (HF_HUB_OFFLINE unset)
    srv.stop()
    n_requests = len(srv.log)
    out2, errors2, _ = _load(tmp_path, env, good[:2], bad[:1])
    assert len(srv.log) == n_requests
    assert torch.equal(out2['zoo_resnet18_cbam.unittest'], weights['y_zoo'])
    assert torch.equal(out2['zoo_coat_lite_tiny'], out['zoo_coat_lite_tiny'])
    assert 'SHA-256' in errors2[bad[0]][0]  # the corrupt file stays refused from the cache

    # offline: the URL fallback's cached official file; a tag never fetched says what to do
    out3, errors3, _ = _load(tmp_path, dict(env, HF_HUB_OFFLINE='1'), good[2:], ['zoo_coat_lite_mini'])
    torch.testing.assert_close(out3[good[2]], weights['y_coat'], rtol=0, atol=weights['coat_tol'])
    msg = errors3['zoo_coat_lite_mini'][0]
    assert 'tried Hub timm/coat_lite_mini.in1k (revision main)' in msg and 'models--timm--coat_lite_mini.in1k' in msg
    assert 'not downloaded (HF_HUB_OFFLINE is set)' in msg and 'coat_lite_mini_6b4a8ae5.pth' in msg
    assert 'zoo-download zoo_coat_lite_mini.in1k' in msg
