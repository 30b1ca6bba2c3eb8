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

Export status: each TorchScript (``test_model_forward_torchscript``) and FX (``test_model_forward_fx``,
``test_model_backward_fx``) outcome is checked against zoo/export_status.json as the test runs (a passing test the
file lists as failing, or the reverse, fails with "regenerate"), so the file cannot drift; with
``ZOO_WRITE_EXPORT_STATUS=1`` the outcomes are written instead. A field is false while any of its tests is listed as
failing in the model's ``notes`` ('<field>: <test>: <reason>' segments); ``compile`` and ``onnx`` belong to
tests/test_compile.py and the export tests. Every check works per test, in whichever xdist worker runs it.
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
STATUS_PATH = Path(__file__).resolve().parent.parent / 'zoo' / 'export_status.json'
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


# ---------------------------------------------------------------------------------------------- outcomes

_EXPORT_TEST_FIELD = {t: f for f, tests in EXPORT_TESTS.items() for t in tests}


def _recording(fn):
    """The timm test, then its outcome checked against (or, with ZOO_WRITE_EXPORT_STATUS=1, written to) the status."""
    @functools.wraps(fn)
    def wrapper(**kwargs):
        model = kwargs['model_name']
        try:
            fn(**kwargs)
        except pytest.skip.Exception:
            raise
        except BaseException as e:
            msg = str(e).strip().splitlines()[0] if str(e).strip() else ''
            stale = record_outcome(model, fn.__name__, False, f'{type(e).__name__}: {msg}')
            if stale:
                e.add_note(stale)
            raise
        stale = record_outcome(model, fn.__name__, True)
        assert not stale, stale
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


def _atomic_write_json(path: Path, data: dict) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f'.{path.name}.')
    with os.fdopen(fd, 'w') as f:
        json.dump({k: data[k] for k in sorted(data)}, f, indent=2)
        f.write('\n')
    os.chmod(tmp, 0o644)
    os.replace(tmp, path)


@contextlib.contextmanager
def _locked(path: Path):
    """Serialise read-modify-write of ``path`` across xdist workers (the lock file lives in the temp folder)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    lock_name = 'zoo-' + str(path.resolve()).strip('/').replace('/', '_') + '.lock'
    with open(Path(tempfile.gettempdir()) / lock_name, 'w') as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _segments(notes):
    """Notes are '; '-separated segments; ours read '<field>: <failing timm test>: <reason>'."""
    return [seg for seg in (notes or '').split('; ') if seg]


def failing_tests(entry: dict, field: str) -> set:
    return {seg.split(': ', 2)[1] for seg in _segments(entry.get('notes')) if seg.startswith(field + ': ') and
            len(seg.split(': ', 2)) > 1 and seg.split(': ', 2)[1] in EXPORT_TESTS[field]}


def write_outcome(model: str, test: str, ok: bool, reason: str = '', path: Path = STATUS_PATH) -> None:
    """Record one timm test's outcome for ``model``: the field is False while any of its tests is listed as failing
    in the notes; every other field, note and model is left as it is."""
    field = _EXPORT_TEST_FIELD[test]
    with _locked(path):
        data = read_status(path)
        entry = data.setdefault(model, {})
        for k in STATUS_FIELDS:
            entry.setdefault(k, '' if k == 'notes' else None)
        segs = [seg for seg in _segments(entry['notes']) if not seg.startswith(f'{field}: {test}: ')]
        if not ok:
            segs.append(f'{field}: {test}: ' + reason.replace(';', ',')[:200])
        entry['notes'] = '; '.join(segs)
        entry[field] = not failing_tests(entry, field)
        _atomic_write_json(path, data)


def expected_outcome(model: str, test: str, path: Path = STATUS_PATH):
    """What zoo/export_status.json says ``test`` does for ``model``: True / False, or None if not recorded."""
    entry = read_status(path).get(model) or {}
    field = _EXPORT_TEST_FIELD[test]
    if entry.get(field) is None:
        return None
    return test not in failing_tests(entry, field) if entry[field] is False else True


def record_outcome(model: str, test: str, ok: bool, reason: str = '', path: Path = STATUS_PATH) -> str:
    """Write (ZOO_WRITE_EXPORT_STATUS=1) or check one outcome; returns a message when the file disagrees."""
    if os.environ.get('ZOO_WRITE_EXPORT_STATUS') == '1':
        write_outcome(model, test, ok, reason, path)
        return ''
    expected = expected_outcome(model, test, path)
    if expected is ok:
        return ''
    return (f'{path.name} says {test} {"passes" if expected else "fails" if expected is False else "is not recorded"} '
            f'for {model}, this run: {"passed" if ok else "failed"}; regenerate with '
            'ZOO_WRITE_EXPORT_STATUS=1 pytest tests/test_timm_suite.py -k "torchscript or fx"')


def test_status_records_per_test_and_keeps_other_fields(tmp_path):
    path = tmp_path / 'status.json'
    path.write_text(json.dumps({'m': {'torchscript': None, 'fx': None, 'compile': True, 'onnx': False,
                                      'notes': 'onnx: no kernel'}}))
    write_outcome('m', 'test_model_forward_fx', True, path=path)
    assert read_status(path)['m']['fx'] is True
    write_outcome('m', 'test_model_backward_fx', False, 'TraceError: x; y', path=path)
    write_outcome('m', 'test_model_forward_torchscript', True, path=path)
    write_outcome('n', 'test_model_forward_torchscript', False, 'RuntimeError: z', path=path)
    data = read_status(path)
    assert data['m'] == {'torchscript': True, 'fx': False, 'compile': True, 'onnx': False,
                         'notes': 'onnx: no kernel; fx: test_model_backward_fx: TraceError: x, y'}
    assert data['n'] == {'torchscript': False, 'fx': None, 'compile': None, 'onnx': None,
                         'notes': 'torchscript: test_model_forward_torchscript: RuntimeError: z'}
    assert expected_outcome('m', 'test_model_forward_fx', path) is True
    assert expected_outcome('m', 'test_model_backward_fx', path) is False
    assert expected_outcome('n', 'test_model_forward_fx', path) is None
    assert record_outcome('m', 'test_model_backward_fx', False, path=path) == ''
    assert 'says test_model_backward_fx fails' in record_outcome('m', 'test_model_backward_fx', True, path=path)
    write_outcome('m', 'test_model_backward_fx', True, path=path)
    assert read_status(path)['m']['fx'] is True and read_status(path)['m']['notes'] == 'onnx: no kernel'


def write_status(model: str, values: dict, notes: dict, path: Path = STATUS_PATH) -> None:
    """Set whole fields (e.g. ``compile``, from tests/test_compile.py) and their '<field>: <reason>' notes."""
    with _locked(path):
        data = read_status(path)
        entry = data.setdefault(model, {})
        for k in STATUS_FIELDS:
            entry.setdefault(k, '' if k == 'notes' else None)
        entry.update(values)
        keep = [seg for seg in _segments(entry['notes']) if seg.split(':', 1)[0] not in values]
        entry['notes'] = '; '.join(keep + [f'{f}: {notes[f]}'.replace(';', ',') for f in values if notes.get(f)])
        _atomic_write_json(path, data)
