"""timm's own model test-suite over every zoo model.

The installed timm's source distribution is fetched from the package index once
(``pip download --no-deps --no-binary :all: timm==<installed version>``) and cached under
``$ZOO_CACHE_DIR/timm-sdist`` (default ``~/.cache/zoo/timm-sdist``), so later runs need no network. Its
``tests/test_models.py`` is patched at run time with exactly these additions (asserted, so a timm release that moves
the anchors fails loudly instead of testing something else):

1. ``import zoo`` after ``import timm`` (registers the zoo models);
2. the zoo's model modules, as ``timm.models._registry`` records them, appended to ``FEAT_INTER_FILTERS`` (every zoo
   model has ``forward_intermediates`` and ``features_only`` through timm's getter);
3. one addition beyond those two, for the kind of model timm itself lists: ``zoo_coat_*`` appended to
   ``NON_STD_FILTERS``, because timm lists its own ``coat_*`` there -- like timm's CoaT, the zoo's returns token
   sequences (class token first) from ``forward_features``, not a ``(B, C, H, W)`` map matching ``pool_size``. The
   patch asserts that timm still lists ``coat_*``.

The patched file is imported (with pytest's assertion rewriting) and its tests are collected here, each restricted to
the zoo models: every timm test that is parametrised over ``model_name`` and selects a zoo model runs here as
``tests/test_timm_suite.py::<timm test>[...-<zoo model>]``, with timm's own markers and per-test time-outs, inside the
suite's own pytest(-xdist) workers (nothing else to schedule: CI's ``-n 2`` is the worker count).

Not run: ``test_model_load_pretrained`` and ``test_model_features_pretrained`` download pretrained weights from the
internet; they are kept but skipped for every zoo model, with that reason in the report (the zoo's weights are tested
offline in tests/test_weights.py and tests/test_hub.py).

Export status: the TorchScript (``test_model_forward_torchscript``) and FX (``test_model_forward_fx`` and
``test_model_backward_fx``) outcomes per model are recorded, and ``test_export_status[<model>]`` (run after them, in
the same xdist group) checks that docs/export_status.json says the same for the fields it observed. With
``ZOO_WRITE_EXPORT_STATUS=1`` it writes them instead (only the ``torchscript`` / ``fx`` fields and their ``notes``
segments; ``compile`` and ``onnx`` belong to other tests).
"""
import contextlib
import fcntl
import functools
import importlib
import json
import os
import subprocess
import sys
import tarfile
import tempfile
import warnings
from pathlib import Path

import pytest
import timm
from timm.models import _registry

import zoo

TIMM_VERSION = timm.__version__
ZOO_MODELS = set(zoo.list_models())
ZOO_MODULES = sorted({_registry._model_to_module[n] for n in ZOO_MODELS})
# zoo patterns added to timm's NON_STD_FILTERS, each only because timm lists its own models of that kind there
NON_STD_AS_TIMM = {'zoo_coat_*': 'coat_*'}
NETWORK_TESTS = {
    'test_model_load_pretrained': 'downloads pretrained weights from the internet (zoo weights: tests/test_weights.py)',
    'test_model_features_pretrained': 'downloads pretrained weights from the internet (zoo weights: tests/test_weights.py)',
}
# export_status.json field -> the timm tests that must all pass for it
EXPORT_TESTS = {
    'torchscript': ('test_model_forward_torchscript',),
    'fx': ('test_model_forward_fx', 'test_model_backward_fx'),
}
STATUS_PATH = Path(__file__).resolve().parent.parent / 'docs' / 'export_status.json'
STATUS_FIELDS = ('torchscript', 'fx', 'compile', 'onnx', 'notes')
MODULE_NAME = '_zoo_timm_test_models'


def cache_dir() -> Path:
    root = os.environ.get('ZOO_CACHE_DIR') or str(Path.home() / '.cache' / 'zoo')
    return Path(root) / 'timm-sdist'


def fetch_sdist(version: str = TIMM_VERSION) -> Path:
    """The cached ``timm-<version>.tar.gz``, downloaded from the package index with pip if missing."""
    d = cache_dir()
    path = d / f'timm-{version}.tar.gz'
    if path.is_file():
        return path
    d.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=d, prefix='.download-') as tmp:
        cmd = [sys.executable, '-m', 'pip', 'download', '--no-deps', '--no-binary', ':all:', '--disable-pip-version-check',
               '-d', tmp, f'timm=={version}']
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
        got = Path(tmp) / path.name
        if r.returncode != 0 or not got.is_file():
            raise RuntimeError(f'could not download the timm {version} sdist ({" ".join(cmd)}):\n{r.stdout}\n{r.stderr}')
        os.replace(got, path)  # atomic: a concurrent worker sees the whole file or none
    return path


def _replace_once(text: str, old: str, new: str) -> str:
    if text.count(old) != 1:
        raise RuntimeError(f'timm {TIMM_VERSION} tests/test_models.py: expected one {old!r}, found {text.count(old)}; '
                           'the patch needs updating for this timm release')
    return text.replace(old, new)


def patched_test_models(source: str) -> str:
    """timm's tests/test_models.py with the additions listed in this module's docstring."""
    s = _replace_once(source, '\nimport timm\n', '\nimport timm\nimport zoo  # zoo addition 1: registers the zoo models\n')
    s = _replace_once(
        s, '\nNON_STD_FILTERS = [',
        f'\nFEAT_INTER_FILTERS += {ZOO_MODULES!r}  # zoo addition 2: the zoo model modules\n\nNON_STD_FILTERS = [')
    extra = []
    for zoo_pat, timm_pat in NON_STD_AS_TIMM.items():
        extra.append(f'assert {timm_pat!r} in NON_STD_FILTERS, "timm no longer lists {timm_pat} as non-standard"\n'
                     f'NON_STD_FILTERS += [{zoo_pat!r}]  # zoo addition 3: as timm lists its own {timm_pat!r}: '
                     'forward_features returns token sequences, not a (B, C, H, W) map matching pool_size\n')
    return _replace_once(s, '\nNUM_NON_STD = ', '\n' + ''.join(extra) + 'NUM_NON_STD = ')


def load_timm_tests():
    """Import the patched test module (cached next to the sdist, rewritten by pytest's assertion rewriting)."""
    sdist = fetch_sdist()
    with tarfile.open(sdist) as tf:
        member = tf.getmember(f'timm-{TIMM_VERSION}/tests/test_models.py')
        source = tf.extractfile(member).read().decode()
    d = cache_dir() / f'timm-{TIMM_VERSION}-zoo'
    d.mkdir(parents=True, exist_ok=True)
    target = d / f'{MODULE_NAME}.py'
    text = patched_test_models(source)
    if not target.is_file() or target.read_text() != text:
        fd, tmp = tempfile.mkstemp(dir=d, suffix='.tmp')
        with os.fdopen(fd, 'w') as f:
            f.write(text)
        os.replace(tmp, target)
    pytest.register_assert_rewrite(MODULE_NAME)
    sys.path.insert(0, str(d))
    try:
        with warnings.catch_warnings():
            # timm registers its markers (base, cfg, features, fxforward, ...) in its own pyproject.toml
            warnings.simplefilter('ignore', pytest.PytestUnknownMarkWarning)
            return importlib.import_module(MODULE_NAME)
    finally:
        sys.path.remove(str(d))


def _is_zoo(model_name) -> bool:
    return isinstance(model_name, str) and model_name.split('.')[0] in ZOO_MODELS


def _base(model_name: str) -> str:
    return model_name.split('.')[0]


# ---------------------------------------------------------------------------------------------- outcomes

# (timm test, model) -> True (passed) / False (failed), in this process
OUTCOMES = {}
FAILURES = {}
_EXPORT_TEST_FIELD = {t: f for f, tests in EXPORT_TESTS.items() for t in tests}


def _recording(fn):
    @functools.wraps(fn)
    def wrapper(**kwargs):
        key = (fn.__name__, kwargs.get('model_name'))
        try:
            fn(**kwargs)
        except pytest.skip.Exception:
            raise
        except BaseException as e:
            OUTCOMES[key] = False
            FAILURES[key] = f'{fn.__name__}: {type(e).__name__}: {str(e).strip().splitlines()[0] if str(e).strip() else ""}'[:300]
            raise
        OUTCOMES[key] = True
    return wrapper


def _zoo_only(fn):
    """The timm test restricted to zoo models (None if it selects none), export tests grouped per model."""
    marks = list(getattr(fn, 'pytestmark', []))
    new_marks, found = [], False
    for m in marks:
        if m.name == 'parametrize' and m.args and m.args[0] == 'model_name':
            values = [v for v in m.args[1] if _is_zoo(v)]
            if not values:
                return None
            found = True
            if fn.__name__ in _EXPORT_TEST_FIELD:  # same worker as test_export_status[<model>] under --dist loadgroup
                values = [pytest.param(v, marks=pytest.mark.xdist_group(f'export-{_base(v)}')) for v in values]
            m = pytest.mark.parametrize('model_name', values, **m.kwargs).mark
        new_marks.append(m)
    if not found:
        return None
    if fn.__name__ in NETWORK_TESTS:
        new_marks.append(pytest.mark.skip(reason=f'{fn.__name__} {NETWORK_TESTS[fn.__name__]}: not run for zoo models').mark)
    wrapped = _recording(fn) if fn.__name__ in _EXPORT_TEST_FIELD else functools.wraps(fn)(lambda **kw: fn(**kw))
    wrapped.pytestmark = new_marks
    return wrapped


def _is_fixture(obj) -> bool:
    return type(obj).__name__ == 'FixtureFunctionDefinition' or hasattr(obj, '_pytestfixturefunction')


try:
    _timm_tests = load_timm_tests()
    LOAD_ERROR = None
except Exception as e:  # reported by test_timm_suite_loaded instead of breaking the collection of the whole suite
    _timm_tests, LOAD_ERROR = None, f'{type(e).__name__}: {e}'

COLLECTED = []
if _timm_tests is not None:
    for _name, _obj in list(vars(_timm_tests).items()):
        if _name.startswith('test_') and callable(_obj):
            _t = _zoo_only(_obj)
            if _t is not None:
                globals()[_name] = _t
                COLLECTED.append(_name)
        elif _is_fixture(_obj):
            globals()[_name] = _obj  # e.g. cfg_device


def test_timm_suite_loaded():
    assert LOAD_ERROR is None, LOAD_ERROR
    # every kind of timm model test reaches the zoo models
    for name in ('test_model_forward', 'test_model_backward', 'test_model_default_cfgs', 'test_model_default_cfgs_non_std',
                 'test_model_forward_torchscript', 'test_model_forward_fx', 'test_model_backward_fx',
                 'test_model_forward_features', 'test_model_forward_intermediates',
                 'test_model_forward_intermediates_features', 'test_prune_intermediate_layers_contract'):
        assert name in COLLECTED, f'{name} selects no zoo model'
    assert set(NETWORK_TESTS) <= set(COLLECTED)


def test_patch_adds_only_the_listed_additions():
    src = 'x\nimport timm\ny\nFEAT_INTER_FILTERS = [\n]\nNON_STD_FILTERS = [\n    "coat_*",\n]\nNUM_NON_STD = 1\n'
    out = patched_test_models(src)
    added = [ln for ln in out.splitlines() if ln not in src.splitlines()]
    assert added[0].startswith('import zoo')
    assert added[1].startswith(f'FEAT_INTER_FILTERS += {ZOO_MODULES!r}')
    assert [ln for ln in added if ln.startswith('NON_STD_FILTERS +=')] == [
        f'NON_STD_FILTERS += [{p!r}]  # zoo addition 3: as timm lists its own {t!r}: forward_features returns token '
        'sequences, not a (B, C, H, W) map matching pool_size' for p, t in NON_STD_AS_TIMM.items()]
    assert len(added) == 2 + 2 * len(NON_STD_AS_TIMM) + 1  # + the blank line after FEAT_INTER_FILTERS
    with pytest.raises(RuntimeError, match='patch needs updating'):
        patched_test_models(src.replace('\nimport timm\n', '\nimport timm as t\n'))


# ---------------------------------------------------------------------------------------------- export status

def read_status(path: Path = STATUS_PATH) -> dict:
    return json.loads(path.read_text()) if path.is_file() else {}


@contextlib.contextmanager
def _locked(path: Path):
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_name(path.name + '.lock'), 'w') as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _merge_notes(notes: str, fields, new_notes: dict) -> str:
    """Notes are '; '-separated '<field>: <reason>' segments; replace those of ``fields``, keep the others."""
    keep = [seg for seg in (notes or '').split('; ') if seg and seg.split(':', 1)[0] not in fields]
    return '; '.join(keep + [f'{f}: {new_notes[f]}' for f in fields if new_notes.get(f)])


def write_status(model: str, values: dict, notes: dict, path: Path = STATUS_PATH) -> None:
    """Set ``values`` (field -> bool) and their notes for ``model``, leaving every other field and model as it is."""
    with _locked(path):
        data = read_status(path)
        entry = data.setdefault(model, {})
        for k in STATUS_FIELDS:
            entry.setdefault(k, '' if k == 'notes' else None)
        entry.update(values)
        entry['notes'] = _merge_notes(entry['notes'], list(values), notes)
        data = {k: data[k] for k in sorted(data)}
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f'.{path.name}.')
        with os.fdopen(fd, 'w') as f:
            json.dump(data, f, indent=2)
            f.write('\n')
        os.replace(tmp, path)


def observed_status(model: str):
    """field -> True / False from this process's outcomes, for the fields whose tests all ran; and failure notes."""
    values, notes = {}, {}
    for field, tests in EXPORT_TESTS.items():
        got = [OUTCOMES.get((t, model)) for t in tests]
        if any(g is None for g in got):
            continue
        values[field] = all(got)
        notes[field] = ' / '.join(FAILURES[(t, model)] for t in tests if (t, model) in FAILURES)
    return values, notes


def test_status_merge_keeps_other_fields(tmp_path):
    path = tmp_path / 'status.json'
    path.write_text(json.dumps({'m': {'torchscript': None, 'fx': None, 'compile': True, 'onnx': False,
                                      'notes': 'onnx: no kernel; fx: old'}}))
    write_status('m', {'fx': False, 'torchscript': True}, {'fx': 'TraceError: x'}, path)
    write_status('n', {'torchscript': True}, {}, path)
    data = read_status(path)
    assert data['m'] == {'torchscript': True, 'fx': False, 'compile': True, 'onnx': False,
                         'notes': 'onnx: no kernel; fx: TraceError: x'}
    assert data['n'] == {'torchscript': True, 'fx': None, 'compile': None, 'onnx': None, 'notes': ''}


@pytest.mark.parametrize('model_name', [pytest.param(n, marks=pytest.mark.xdist_group(f'export-{n}'))
                                        for n in sorted(ZOO_MODELS)])
def test_export_status(model_name):
    """docs/export_status.json agrees with this run's TorchScript / FX outcomes (ZOO_WRITE_EXPORT_STATUS=1: writes them)."""
    values, notes = observed_status(model_name)
    if not values:
        pytest.skip(f'no TorchScript / FX outcome of {model_name} in this process (tests deselected, or run on another '
                    'xdist worker: use --dist loadgroup)')
    if os.environ.get('ZOO_WRITE_EXPORT_STATUS') == '1':
        write_status(model_name, values, notes)
        return
    recorded = read_status().get(model_name)
    assert recorded is not None, f'{model_name} missing from {STATUS_PATH.name}; regenerate with ZOO_WRITE_EXPORT_STATUS=1'
    wrong = {f: (recorded.get(f), v) for f, v in values.items() if recorded.get(f) is not v}
    assert not wrong, (f'{STATUS_PATH.name} disagrees with this run for {model_name} (field: (recorded, observed)): '
                       f'{wrong}; regenerate with ZOO_WRITE_EXPORT_STATUS=1 pytest tests/test_timm_suite.py')
