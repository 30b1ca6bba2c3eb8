"""Names: no zoo name shadows a timm name, importing zoo warns nothing, the zoo listing works."""
import subprocess
import sys
import textwrap

import timm

import zoo


def _run(code):
    return subprocess.run([sys.executable, '-W', 'error::UserWarning', '-c', textwrap.dedent(code)],
                          capture_output=True, text=True, timeout=300)


def test_no_zoo_name_shadows_timm():
    # timm's registry is listed in a fresh interpreter *before* zoo is imported
    r = _run('''
        import json, timm
        before = set(timm.list_models()) | set(timm.list_models(pretrained=True))
        import zoo
        mine = set(zoo.list_models()) | set(zoo.list_pretrained())
        print(json.dumps(sorted(before & mine)))
        print(len(mine))
    ''')
    assert r.returncode == 0, r.stderr
    clash, count = r.stdout.strip().splitlines()
    assert clash == '[]', f'zoo names that exist in timm: {clash}'
    assert int(count) > 0


def test_import_warns_nothing():
    r = _run('import zoo')
    assert r.returncode == 0, f'importing zoo raised or warned:\n{r.stderr}'
    assert 'Overwriting' not in r.stderr


def test_every_zoo_arch_is_prefixed_and_listed():
    names = zoo.list_models()
    assert names and all(n.startswith('zoo_') and '.' not in n for n in names)
    assert set(zoo.list_models('zoo_resnet*_cbam')) == {n for n in names if n.startswith('zoo_resnet') and n.endswith('_cbam')}
    fams = zoo.model_families()
    assert sorted(n for v in fams.values() for n in v) == names
    # every listed name is creatable through timm
    assert all(timm.is_model(n) for n in names)
