"""The built package: ``python -m build`` makes an sdist and a wheel (the wheel from the sdist), and the wheel works
installed non-editable into a fresh venv, used from a folder outside the repository.

The venv reuses the dependencies installed in the test interpreter's site-packages through a ``.pth`` file (no
download, no ``--system-site-packages``); ``.pth`` files inside that folder (the editable install's finder) are not
processed, so ``zoo`` can only come from the wheel, which the test checks through ``zoo.__file__``. One build per
session (module-scoped fixture); all tests of this file run on one xdist worker.
"""
import json
import os
import re
import shutil
import subprocess
import sys
import sysconfig
import textwrap
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
pytestmark = [pytest.mark.slow, pytest.mark.xdist_group('package')]

CONSOLE_SCRIPTS = ['zoo-train', 'zoo-eval', 'zoo-benchmark', 'zoo-download', 'zoo-convert', 'zoo-push', 'zoo-export',
                   'zoo-visualize', 'zoo-demo']
SHAPES_DET = 'zoo::det/retinanet_zoo-resnet18-cbam_fpn_shapes.py'
DIST = 'timm-attention-zoo'  # the distribution name (the index's `zoo` is another project); the import name is zoo


def _env(**extra):
    env = {k: v for k, v in os.environ.items() if k not in ('PYTHONPATH', 'ZOO_WEIGHTS_MANIFEST')}
    env.update(HF_HUB_OFFLINE='1', OMP_NUM_THREADS='1', PYTHONNOUSERSITE='1', **extra)
    return env


def _run(cmd, cwd, timeout=300, check=True, **kw):
    p = subprocess.run([str(c) for c in cmd], cwd=str(cwd), capture_output=True, text=True, timeout=timeout,
                       env=_env(), **kw)
    if check:
        assert p.returncode == 0, f'{cmd}: rc {p.returncode}\n{p.stdout[-3000:]}\n{p.stderr[-3000:]}'
    return p


def _source_copy(dst: Path) -> Path:
    """The files git would commit (tracked + untracked not ignored), so the build sees no local outputs."""
    try:
        files = subprocess.run(['git', 'ls-files', '-co', '--exclude-standard', '-z'], cwd=REPO, capture_output=True,
                               check=True).stdout.decode().split('\0')
    except (OSError, subprocess.CalledProcessError):
        files = None
    if files is None:
        top = {'.git', '.venv', 'output', 'data', 'work_dirs', 'build', 'dist', 'runs', '.cache'}

        def ignore(folder, names):
            return [n for n in names if (Path(folder) == REPO and n in top) or n == '__pycache__'
                    or n.endswith(('.egg-info', '.pth', '.pyc'))]
        shutil.copytree(REPO, dst, ignore=ignore)
        return dst
    for f in filter(None, files):
        src = REPO / f
        if src.is_symlink():  # zoo/_weights, zoo/_configs: the package data folders in a checkout
            (dst / f).parent.mkdir(parents=True, exist_ok=True)
            os.symlink(os.readlink(src), dst / f)
        elif src.is_file():
            (dst / f).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dst / f)
    return dst


def _venv(path: Path) -> Path:
    """A venv without pip whose only view of other packages is the test interpreter's site-packages (a .pth)."""
    subprocess.run([sys.executable, '-m', 'venv', '--without-pip', str(path)], check=True)
    py = path / 'bin' / 'python'
    site = subprocess.run([str(py), '-c', 'import sysconfig; print(sysconfig.get_paths()["purelib"])'],
                          capture_output=True, text=True, check=True).stdout.strip()
    deps = {sysconfig.get_paths()['purelib'], sysconfig.get_paths()['platlib']}
    Path(site, '_zoo_test_deps.pth').write_text('\n'.join(sorted(deps)) + '\n')
    return py


def _pip(py: Path, *args):
    return [sys.executable, '-m', 'pip', '--disable-pip-version-check', '--python', str(py), 'install', '-q',
            '--no-deps', '--no-index', *args]


@pytest.fixture(scope='module')
def built(tmp_path_factory):
    tmp = tmp_path_factory.mktemp('pkg')
    src = _source_copy(tmp / 'src')
    _run([sys.executable, '-m', 'build', '--no-isolation', '--outdir', tmp / 'dist', src], cwd=tmp, timeout=600)
    wheels = list((tmp / 'dist').glob('*.whl'))
    sdists = list((tmp / 'dist').glob('*.tar.gz'))
    assert len(wheels) == 1 and len(sdists) == 1, list((tmp / 'dist').iterdir())
    return dict(tmp=tmp, src=src, wheel=wheels[0], sdist=sdists[0])


@pytest.fixture(scope='module')
def installed(built):
    tmp = built['tmp']
    py = _venv(tmp / 'venv')
    _run(_pip(py, built['wheel']), cwd=tmp)
    work = tmp / 'elsewhere'
    work.mkdir()
    return dict(built, py=py, bin=py.parent, work=work)


def test_distribution_name(built):
    """The wheel, the sdist and the metadata carry the distribution name, and so do the dev extra's self-reference
    and every install command the repository shows a user (never the unrelated `zoo` distribution)."""
    assert built['wheel'].name == 'timm_attention_zoo-0.1.0-py3-none-any.whl'
    assert built['sdist'].name == 'timm_attention_zoo-0.1.0.tar.gz'
    wheel = zipfile.ZipFile(built['wheel'])
    meta = wheel.read(next(n for n in wheel.namelist() if n.endswith('.dist-info/METADATA'))).decode()
    assert f'Name: {DIST}\n' in meta
    assert f'Requires-Dist: {DIST}[export,smp,viz]; extra == "dev"' in meta
    src = built['src']  # the files git would commit
    wrong = [f'{f.relative_to(src)}: {m.group(0)}'
             for f in (*src.rglob('*.md'), *src.rglob('*.py'), *src.rglob('*.toml'), *src.rglob('*.sh'))
             if not f.is_relative_to(src / 'tests')
             for m in re.finditer(r'pip install[ "\']*zoo\b|"zoo\[', f.read_text())]
    assert not wrong, wrong


def test_wheel_contents(built):
    names = zipfile.ZipFile(built['wheel']).namelist()
    # the manifest and the configs are package data, and exactly one manifest file is in the repository
    assert 'zoo/_weights/manifest.yaml' in names
    assert list(built['src'].rglob('manifest.yaml')) == [built['src'] / 'weights' / 'manifest.yaml']
    for cfg in (REPO / 'configs').rglob('*'):
        if cfg.suffix in ('.py', '.yaml'):
            assert f'zoo/_configs/{cfg.relative_to(REPO / "configs").as_posix()}' in names, cfg
    # every package of the source tree is in the wheel, and every data file that lives in it (the card template)
    for init in (REPO / 'zoo').rglob('__init__.py'):
        assert init.relative_to(REPO).as_posix() in names, init
    data = [p for p in (REPO / 'zoo').rglob('*') if p.is_file() and p.suffix not in ('.py', '.pyc')]
    assert data, 'the package holds data files (model_card.md)'
    for path in data:
        assert path.relative_to(REPO).as_posix() in names, path
    eps = next(n for n in names if n.endswith('entry_points.txt'))
    text = zipfile.ZipFile(built['wheel']).read(eps).decode()
    for script in CONSOLE_SCRIPTS:
        assert f'{script} = zoo.cli.{script[4:]}:main' in text, script
    # the sdist holds what the wheel is built from
    import tarfile
    sd = tarfile.open(built['sdist']).getnames()
    assert any(n.endswith('/weights/manifest.yaml') for n in sd) and any(n.endswith('/setup.py') for n in sd)


def test_installed_wheel_works_outside_the_repo(installed):
    py, work = installed['py'], installed['work']
    script = textwrap.dedent(f'''
        import json, os, sys
        import torch, timm, zoo
        from zoo import manifest as zoo_manifest
        from zoo.configs import config_path, list_configs
        site = os.path.dirname(os.path.dirname(zoo.__file__))
        out = dict(zoo=zoo.__file__, manifest=str(zoo_manifest.manifest_path()), site=site)
        # every pretrained tag resolves its cfg from the packaged manifest
        tags = zoo.list_pretrained()
        missing = [t for t in tags if timm.models.get_pretrained_cfg(t) is None]
        out.update(n_tags=len(tags), missing=missing)
        # create_model with pretrained=True from a local file (pretrained_cfg_overlay)
        src = timm.create_model('zoo_resnet18_cbam', num_classes=10)
        torch.save(src.state_dict(), 'ck.pth')
        m = timm.create_model('zoo_resnet18_cbam', pretrained=True, num_classes=10,
                              pretrained_cfg_overlay=dict(file=os.path.abspath('ck.pth'), num_classes=10))
        sd = src.state_dict()
        out['loaded_equal'] = all(torch.equal(v, sd[k]) for k, v in m.state_dict().items())
        out['config'] = config_path('{SHAPES_DET}')
        out['n_configs'] = len(list_configs())
        print(json.dumps(out))
    ''')
    p = _run([py, '-c', script], cwd=work)
    out = json.loads(p.stdout.strip().splitlines()[-1])
    venv = str(installed['tmp'] / 'venv')
    assert out['zoo'].startswith(venv), out  # from the wheel, not the editable install
    assert out['manifest'].startswith(out['site']) and out['manifest'].endswith('zoo/_weights/manifest.yaml'), out
    assert out['n_tags'] > 0 and out['missing'] == [], out
    assert out['loaded_equal'] is True
    assert out['config'].startswith(out['site']) and Path(out['config']).is_file(), out
    assert out['n_configs'] == len([p for p in (REPO / 'configs').rglob('*') if p.suffix in ('.py', '.yaml')
                                    and '_base_' not in p.parts])


def test_console_scripts(installed):
    bin_, work = installed['bin'], installed['work']
    for script in CONSOLE_SCRIPTS:
        assert (bin_ / script).is_file(), script
    # every entry point loads (one process): the module exists and has a callable main
    script = ('import json; from importlib.metadata import distribution; '
              f'eps = [e for e in distribution("{DIST}").entry_points if e.group == "console_scripts"]; '
              'print(json.dumps({e.name: [e.value, callable(e.load())] for e in eps}))')
    eps = json.loads(_run([installed['py'], '-c', script], cwd=work).stdout.strip().splitlines()[-1])
    assert sorted(eps) == sorted(CONSOLE_SCRIPTS), eps
    assert all(ok for _, ok in eps.values()), eps
    for script in ('zoo-train', 'zoo-benchmark', 'zoo-demo'):
        p = _run([bin_ / script, '--help'], cwd=work)
        assert 'usage' in p.stdout.lower(), (script, p.stdout[-500:])
    # the error convention: one `error:` line, exit 2, no traceback
    p = _run([bin_ / 'zoo-benchmark', '--no-such-flag'], cwd=work, check=False)
    assert p.returncode == 2 and p.stderr.startswith('error:') and 'Traceback' not in p.stderr, p.stderr


def test_config_by_name_from_the_installed_package(installed):
    """mmengine resolves the packaged config's `mmdet::` and relative `../_base_/` bases from site-packages, and a
    user config can inherit a zoo config by name."""
    py, work = installed['py'], installed['work']
    check = subprocess.run([str(py), '-c', 'import mmengine, mmdet'], capture_output=True, env=_env())
    if check.returncode != 0:
        pytest.skip('mmengine / mmdet are not installed (the mm extra)')
    (work / 'mine.py').write_text(f"_base_ = '{SHAPES_DET}'\nmodel = dict(bbox_head=dict(num_classes=3))\n")
    script = textwrap.dedent(f'''
        import json
        from zoo.mm.configs import load_config
        a = load_config('{SHAPES_DET}')
        b = load_config('mine.py')
        print(json.dumps(dict(file=a.filename, model=a.model.type, backbone=a.model.backbone.type,
                              imports=a.custom_imports['imports'], loader=a.train_dataloader.dataset.type,
                              b_classes=b.model.bbox_head.num_classes, b_backbone=b.model.backbone.model_name)))
    ''')
    out = json.loads(_run([py, '-c', script], cwd=work).stdout.strip().splitlines()[-1])
    assert out['file'].startswith(str(installed['tmp'] / 'venv')), out
    assert out['model'] == 'RetinaNet' and out['backbone'] == 'ZooBackbone' and out['imports'] == ['zoo.mm'], out
    assert out['loader'] == 'CocoDataset' and out['b_classes'] == 3 and out['b_backbone'] == 'zoo_resnet18_cbam', out


def test_editable_install_resolves_manifest_and_configs(built, tmp_path):
    """``pip install -e`` of the source (the setup.sh way) finds the repository's weights/ and configs/."""
    src = built['src']
    py = _venv(tmp_path / 'venv-e')
    _run(_pip(py, '--no-build-isolation', '-e', src), cwd=tmp_path, timeout=600)
    script = ('import json, zoo; from zoo import manifest as zoo_manifest; from zoo.configs import config_path; '
              f'print(json.dumps(dict(zoo=zoo.__file__, manifest=str(zoo_manifest.manifest_path()), '
              f'config=config_path("{SHAPES_DET}"), tags=len(zoo.list_pretrained()))))')
    out = json.loads(_run([py, '-c', script], cwd=tmp_path).stdout.strip().splitlines()[-1])
    assert out['zoo'] == str(src / 'zoo' / '__init__.py'), out
    assert out['manifest'] == str(src / 'weights' / 'manifest.yaml'), out
    assert out['config'] == str(src / 'configs' / 'det' / 'retinanet_zoo-resnet18-cbam_fpn_shapes.py'), out
    assert out['tags'] > 0


def test_mm_runner_by_name_and_error_convention(installed):
    """zoo-train hands .py / zoo:: configs to zoo.cli.mm: unknown names and existing checkpoints end with one
    `error:` line and exit 2, and nothing is written."""
    py, bin_, work = installed['py'], installed['bin'], installed['work']
    if subprocess.run([str(py), '-c', 'import mmengine'], capture_output=True, env=_env()).returncode != 0:
        pytest.skip('mmengine is not installed (the mm extra)')
    p = _run([bin_ / 'zoo-train', 'zoo::det/retinanet_zoo-resnet18-cbam_fpn_shape.py'], cwd=work, check=False)
    assert p.returncode == 2 and p.stderr.startswith('error: no packaged config') and 'Traceback' not in p.stderr
    assert 'zoo::det/retinanet_zoo-resnet18-cbam_fpn_shapes.py' in p.stderr  # the closest name
    (work / 'tiny.py').write_text("model = dict(type='ZooBackbone', model_name='resnet10t')\n")
    (work / 'wck').mkdir()
    (work / 'wck' / 'epoch_1.pth').write_bytes(b'old')
    p = _run([py, '-m', 'zoo.cli.mm', 'train', 'tiny.py', '--work-dir', 'wck'], cwd=work, check=False)
    assert p.returncode == 2 and 'already holds checkpoints' in p.stderr and 'Traceback' not in p.stderr, p.stderr
    assert (work / 'wck' / 'epoch_1.pth').read_bytes() == b'old' and len(list((work / 'wck').iterdir())) == 1
