"""Publishing to and loading from the Hugging Face Hub, offline.

tools/push_to_hub.py runs its real code path (timm.models.push_to_hf_hub) against a stand-in ``HfApi`` whose
``upload_folder`` commits into the real Hub cache layout (blobs / refs / snapshots) of a temporary HF_HOME. A
fresh interpreter with HF_HUB_OFFLINE=1 then loads the published weights by short name (through the manifest's
`hub` id), by ``hf-hub:ORG/NAME.TAG`` (also ``@main``), and by ``local-dir:``, with ``features_only=True`` and
another ``num_classes``; every output must equal the model's before publishing.
"""
import hashlib
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

import timm
from zoo import hub, manifest as zoo_manifest

from official import official_state_dict

ROOT = Path(__file__).resolve().parents[1]
ARCH = 'zoo_resnet18_cbam'
ORG = 'zoo-test'
X = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(0))


def _push_tool():
    spec = importlib.util.spec_from_file_location('_zoo_tool_push_to_hub', ROOT / 'tools' / 'push_to_hub.py')
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _populate_cache(hub_cache: Path, repo_id: str, folder: Path, revision: str = 'main') -> str:
    """Commit ``folder`` into the Hub cache layout exactly as huggingface_hub stores downloads."""
    files = sorted(p for p in Path(folder).iterdir() if p.is_file())
    commit = hashlib.sha1(b''.join(p.name.encode() + p.read_bytes() for p in files)).hexdigest()
    repo = hub_cache / ('models--' + repo_id.replace('/', '--'))
    snap = repo / 'snapshots' / commit
    snap.mkdir(parents=True, exist_ok=True)
    (repo / 'blobs').mkdir(exist_ok=True)
    (repo / 'refs').mkdir(exist_ok=True)
    for p in files:
        blob = repo / 'blobs' / hashlib.sha256(p.read_bytes()).hexdigest()
        shutil.copyfile(p, blob)
        (snap / p.name).unlink(missing_ok=True)
        os.symlink(os.path.relpath(blob, snap), snap / p.name)
    (repo / 'refs' / revision).write_text(commit)
    return commit


class FakeHfApi:
    """Stands in for huggingface_hub.HfApi inside timm's push_to_hf_hub: records the calls and 'uploads' into
    the Hub cache of a temporary HF_HOME (and a plain copy per repo, to inspect)."""
    calls = []
    hub_cache: Path = None
    remote: Path = None

    def __init__(self, token=None, library_name=None, library_version=None, **kwargs):
        self.calls.append(('init', dict(token=token, library_name=library_name)))

    def create_repo(self, repo_id, private=None, exist_ok=False, **kwargs):
        self.calls.append(('create_repo', dict(repo_id=repo_id, private=private, exist_ok=exist_ok)))
        return SimpleNamespace(repo_id=repo_id)

    def file_exists(self, repo_id, filename, revision=None, **kwargs):
        self.calls.append(('file_exists', dict(repo_id=repo_id, filename=filename)))
        return (self.remote / repo_id / filename).is_file()

    def upload_folder(self, *, repo_id, folder_path, revision=None, create_pr=None, commit_message=None, **kwargs):
        self.calls.append(('upload_folder', dict(repo_id=repo_id, files=sorted(os.listdir(folder_path)),
                                                 commit_message=commit_message)))
        dst = self.remote / repo_id
        shutil.copytree(folder_path, dst, dirs_exist_ok=True)
        commit = _populate_cache(self.hub_cache, repo_id, dst, revision or 'main')
        return SimpleNamespace(commit_url=f'https://huggingface.co/{repo_id}/commit/{commit}', oid=commit)


@pytest.fixture
def fake_hub(tmp_path, monkeypatch):
    from huggingface_hub import constants
    from timm.models import _hub
    FakeHfApi.calls = []
    FakeHfApi.hub_cache = tmp_path / 'hf' / 'hub'
    FakeHfApi.remote = tmp_path / 'remote'
    FakeHfApi.hub_cache.mkdir(parents=True)
    monkeypatch.setattr(_hub, 'HfApi', FakeHfApi)
    monkeypatch.setattr(constants, 'HF_HUB_OFFLINE', False)  # the fake needs no network; the tool checks the flag
    monkeypatch.setenv('ZOO_CACHE_DIR', str(tmp_path / 'zoo_cache'))
    return FakeHfApi


@pytest.fixture
def test_manifest(tmp_path, monkeypatch):
    """The real manifest plus a published test entry whose Hub repo the test fills."""
    text = zoo_manifest.manifest_path().read_text().rstrip('\n') + '\n'
    text += textwrap.indent(textwrap.dedent(f'''\
        {ARCH}.unittest:
          source: hub
          license: mit
          paper: arXiv:1807.06521
          paper_name: 'CBAM: Convolutional Block Attention Module'
          origin_url: https://github.com/Jongchan/attention-module
          metrics: {{top1: 70.1, top5: 89.5}}
          hub: {ORG}/{ARCH}.unittest
          published: true
          cfg: {{crop_pct: 0.9}}
        '''), '  ')
    path = tmp_path / 'manifest.yaml'
    path.write_text(text)
    monkeypatch.setenv(zoo_manifest.MANIFEST_ENV, str(path))
    zoo_manifest.reload()
    assert zoo_manifest.validate() == []
    yield path
    monkeypatch.delenv(zoo_manifest.MANIFEST_ENV)
    zoo_manifest.reload()


def _official_checkpoint(path):
    sd = official_state_dict('cbam_resnet18', seed=0)
    torch.save({'epoch': 90, 'state_dict': {'module.' + k: v for k, v in sd.items()}, 'best_prec1': 70.1}, path)
    return path


def _training_checkpoint(path, num_classes=10):
    torch.manual_seed(1)
    raw = timm.create_model(ARCH, num_classes=num_classes).eval()
    ema = timm.create_model(ARCH, num_classes=num_classes).eval()
    torch.save({'epoch': 30, 'arch': ARCH, 'state_dict': raw.state_dict(), 'state_dict_ema': ema.state_dict(),
                'metrics': {'top1': 91.5, 'top5': 99.0}, 'optimizer': {'state': {}, 'param_groups': []}}, path)
    return ema


_LOADER = '''
import json, sys, torch
torch.set_num_threads(1)
import zoo, timm
x, folder, out_path = torch.load(sys.argv[1]), sys.argv[2], sys.argv[3]
out = {}

def run(key, name, **kw):
    m = timm.create_model(name, pretrained=True, **kw).eval()
    with torch.no_grad():
        y = m(x)
        out[key] = y
        if kw.get('num_classes'):
            out[key + '_pre'] = m.forward_head(m.forward_features(x), pre_logits=True)
    return m

m = run('short', 'zoo_resnet18_cbam.unittest')
out['short_cfg'] = dict(hf_hub_id=m.pretrained_cfg.get('hf_hub_id'), crop_pct=m.pretrained_cfg.get('crop_pct'))
run('hf', 'hf-hub:zoo-test/zoo_resnet18_cbam.unittest')
run('hf_main', 'hf-hub:zoo-test/zoo_resnet18_cbam.unittest@main')
run('local', 'local-dir:' + folder)
run('short_feat', 'zoo_resnet18_cbam.unittest', features_only=True)
run('hf_feat', 'hf-hub:zoo-test/zoo_resnet18_cbam.unittest', features_only=True, out_indices=(1, 2, 3))
run('short_nc5', 'zoo_resnet18_cbam.unittest', num_classes=5)
run('hf_nc5', 'hf-hub:zoo-test/zoo_resnet18_cbam.unittest', num_classes=5)
run('demo', 'hf-hub:me/zoo_resnet18_cbam.shapes')
run('refolder', 'hf-hub:zoo-test/zoo_resnet18_cbam.refolder')
try:
    timm.create_model('hf-hub:zoo-test/zoo_resnet18_cbam.missing', pretrained=True)
    out['missing'] = 'loaded?!'
except Exception as e:
    out['missing'] = type(e).__name__
torch.save(out, out_path)
'''


def test_publish_and_load_round_trip_offline(tmp_path, fake_hub, test_manifest):
    push = _push_tool()
    # 1. official checkpoint -> Hub (repo named after the manifest entry; metadata from the entry)
    ckpt = _official_checkpoint(tmp_path / 'RESNET18_CBAM.pth.tar')
    rc = push.main([ARCH, '--checkpoint', str(ckpt), '--repo', f'{ORG}/{ARCH}.unittest'])
    assert rc == 0
    names = [c[0] for c in fake_hub.calls]
    assert names == ['init', 'create_repo', 'file_exists', 'upload_folder']
    assert fake_hub.calls[1][1]['exist_ok'] is True
    assert fake_hub.calls[3][1]['files'] == ['README.md', 'config.json', 'model.safetensors']
    remote = fake_hub.remote / ORG / f'{ARCH}.unittest'
    cfg = json.loads((remote / 'config.json').read_text())
    assert cfg['architecture'] == ARCH and cfg['num_classes'] == 1000
    assert cfg['pretrained_cfg']['tag'] == 'unittest' and cfg['pretrained_cfg']['license'] == 'mit'
    readme = (remote / 'README.md').read_text()
    front = readme.split('---')[1]
    assert '- timm' in front and '- zoo' in front and 'license: mit' in front and 'library_name: timm' in front
    assert 'top1: 70.1' in readme and 'top5: 89.5' in readme  # metrics
    assert '```bibtex' in readme and 'CBAM: Convolutional Block Attention Module' in readme  # citation
    assert hashlib.sha256(ckpt.read_bytes()).hexdigest() in readme  # source
    usage = readme.split('## Model Usage', 1)[1]
    assert usage.index('import zoo') < usage.index('import timm') < usage.index('create_model')
    assert f"hf-hub:{ORG}/{ARCH}.unittest" in usage

    # 2. the demo's trained model (training checkpoint, 10 classes, EMA) in one command
    demo = tmp_path / 'model_best.pth.tar'
    ema = _training_checkpoint(demo)
    rc = push.main([ARCH, '--checkpoint', str(demo), '--repo', f'me/{ARCH}.shapes', '--dataset', 'shapes',
                    '--license', 'apache-2.0'])
    assert rc == 0
    demo_readme = (fake_hub.remote / 'me' / f'{ARCH}.shapes' / 'README.md').read_text()
    assert 'license: apache-2.0' in demo_readme and 'top1: 91.5' in demo_readme and '- shapes' in demo_readme
    assert 'model_best.pth.tar' in demo_readme
    demo_cfg = json.loads((fake_hub.remote / 'me' / f'{ARCH}.shapes' / 'config.json').read_text())
    assert demo_cfg['num_classes'] == 10 and demo_cfg['pretrained_cfg']['tag'] == 'shapes'

    # 3. a folder in timm's Hub layout (tools/convert.py / --dry-run output) publishes as-is
    folder = tmp_path / 'export'
    assert push.main([ARCH, '--checkpoint', str(ckpt), '--repo', f'{ORG}/{ARCH}.unittest', '--dry-run', str(folder)]) == 0
    assert sorted(os.listdir(folder)) == ['README.md', 'config.json', 'model.safetensors']
    assert push.main([ARCH, '--checkpoint', str(folder), '--repo', f'{ORG}/{ARCH}.refolder']) == 0

    # reference outputs, before anything is loaded back
    ref = timm.create_model(ARCH, pretrained=True, pretrained_cfg_overlay=dict(file=str(ckpt))).eval()
    ref_feat = timm.create_model(ARCH, pretrained=True, pretrained_cfg_overlay=dict(file=str(ckpt)),
                                 features_only=True).eval()
    ref_feat3 = timm.create_model(ARCH, pretrained=True, pretrained_cfg_overlay=dict(file=str(ckpt)),
                                  features_only=True, out_indices=(1, 2, 3)).eval()
    with torch.no_grad():
        y, pre = ref(X), ref.forward_head(ref.forward_features(X), pre_logits=True)
        feats = {'short_feat': ref_feat(X), 'hf_feat': ref_feat3(X)}
        y_demo = ema(X)

    # 4. load everything back in a fresh, offline interpreter
    torch.save(X, tmp_path / 'x.pt')
    env = dict(os.environ, HF_HOME=str(tmp_path / 'hf'), HF_HUB_OFFLINE='1', HF_HUB_DISABLE_TELEMETRY='1',
               **{zoo_manifest.MANIFEST_ENV: str(test_manifest)})
    env.pop('HF_HUB_CACHE', None)
    env.pop('HUGGINGFACE_HUB_CACHE', None)
    r = subprocess.run([sys.executable, '-c', _LOADER, str(tmp_path / 'x.pt'), str(folder), str(tmp_path / 'out.pt')],
                       capture_output=True, text=True, env=env, cwd=ROOT, timeout=600)
    assert r.returncode == 0, r.stderr
    out = torch.load(tmp_path / 'out.pt', weights_only=True)
    assert out['short_cfg'] == {'hf_hub_id': f'{ORG}/{ARCH}.unittest', 'crop_pct': 0.9}
    for key in ('short', 'hf', 'hf_main', 'local', 'refolder'):
        assert torch.equal(out[key], y), key
    for key in ('short_feat', 'hf_feat'):
        got, want = out[key], feats[key]
        assert len(got) == len(want) and all(torch.equal(a, b) for a, b in zip(got, want)), key
    for key in ('short_nc5', 'hf_nc5'):
        assert out[key].shape == (2, 5) and torch.equal(out[key + '_pre'], pre), key
    assert torch.equal(out['demo'], y_demo)
    assert out['missing'] in ('LocalEntryNotFoundError', 'OfflineModeIsEnabled'), out['missing']


def test_push_refusals(tmp_path, fake_hub, capsys):
    push = _push_tool()
    ckpt = _official_checkpoint(tmp_path / 'r18.pth.tar')
    # the repo must be <org>/<the model's arch>.<tag> (user errors: one `error: ...` line, exit 2)
    assert push.main([ARCH, '--checkpoint', str(ckpt), '--repo', f'{ORG}/zoo_resnet50_cbam.in1k']) == 2
    assert push.main([ARCH, '--checkpoint', str(ckpt), '--repo', f'{ORG}/{ARCH}']) == 2
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 2 and all(e.startswith('error: Hub repo') and f'<org>/{ARCH}.<tag>' in e for e in err)
    # a checkpoint that would run code is refused before anything is uploaded
    marker = tmp_path / 'executed'

    class Evil:
        def __reduce__(self):
            return os.system, (f'touch {marker}',)

    evil = tmp_path / 'evil.pth'
    torch.save({'state_dict': official_state_dict('cbam_resnet18'), 'x': Evil()}, evil)
    assert push.main([ARCH, '--checkpoint', str(evil), '--repo', f'{ORG}/{ARCH}.evil']) == 2
    assert 'error: refusing to load' in capsys.readouterr().err
    assert not marker.exists()
    assert not any(c[0] == 'upload_folder' for c in fake_hub.calls)


def test_push_marks_published(tmp_path, fake_hub, test_manifest, capsys):
    text = test_manifest.read_text()
    test_manifest.write_text(text.replace('published: true', 'published: false').replace('source: hub', 'source: none'))
    zoo_manifest.reload()
    ckpt = _official_checkpoint(tmp_path / 'r18.pth.tar')
    push = _push_tool()
    # the repo defaults to the entry's `hub`
    assert push.main([f'{ARCH}.unittest', '--checkpoint', str(ckpt), '--dry-run', str(tmp_path / 'dry')]) == 0
    assert json.loads((tmp_path / 'dry' / 'config.json').read_text())['pretrained_cfg']['crop_pct'] == 0.9
    assert push.main([ARCH, '--checkpoint', str(ckpt), '--repo', f'{ORG}/{ARCH}.unittest']) == 0
    assert 'published: true' in capsys.readouterr().out  # a note to mark it
    assert zoo_manifest.entry(f'{ARCH}.unittest')['published'] is False
    assert push.main([ARCH, '--checkpoint', str(ckpt), '--repo', f'{ORG}/{ARCH}.unittest', '--mark-published']) == 0
    assert zoo_manifest.entry(f'{ARCH}.unittest')['published'] is True
    assert zoo_manifest.validate() == []


def test_push_refuses_in_offline_mode(tmp_path, fake_hub, monkeypatch, capsys):
    from huggingface_hub import constants
    monkeypatch.setattr(constants, 'HF_HUB_OFFLINE', True)
    ckpt = _official_checkpoint(tmp_path / 'r18.pth.tar')
    assert _push_tool().main([ARCH, '--checkpoint', str(ckpt), '--repo', f'{ORG}/{ARCH}.x']) == 2
    assert 'HF_HUB_OFFLINE' in capsys.readouterr().err
    assert fake_hub.calls == []


def test_model_card_defaults():
    m = timm.create_model(ARCH, num_classes=3)
    card = hub.model_card(m, repo_id=f'{ORG}/{ARCH}.mine', metrics={'top1': 50.0}, dataset='mine')
    assert card['tags'] == ['image-classification', 'timm', 'zoo'] and card['library_name'] == 'timm'
    assert card['license'] == m.pretrained_cfg['license']
    assert card['details']['Metrics (mine)'] == {'top1': '50.0'} and card['details']['Dataset'] == 'mine'
    assert 'arXiv:1807.06521' in card['citation']
    assert card['usage'].lstrip('`python\n').startswith('import zoo')


def test_model_card_prose_comes_from_the_template_file():
    from string import Template

    from zoo.hub import card as card_mod
    text = (ROOT / 'zoo' / 'hub' / 'model_card.md').read_text()
    assert '<!-- section: usage -->' in text and '<!-- section: description -->' in text
    usage = text.split('<!-- section: usage -->\n', 1)[1]
    m = timm.create_model(ARCH, num_classes=3)
    card = hub.model_card(m, repo_id=f'{ORG}/{ARCH}.mine')
    assert card['usage'] == Template(usage).substitute(arch=ARCH, full=f'{ARCH}.mine', repo_id=f'{ORG}/{ARCH}.mine',
                                                       paper_suffix='')
    assert card_mod.card_template()['usage'] == usage
    assert card['description'].startswith(f'`{ARCH}` image classification model from the `zoo`')
