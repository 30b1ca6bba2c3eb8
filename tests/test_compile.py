"""torch.compile (timm's own tests do not compile zoo models): the smallest model of every family compiles and
matches eager (graph capture + AOT autograd with the 'aot_eager' backend, forward and backward), and one small
representative goes through the full inductor code generation (OverLoCK's ContMix has its own inductor test in
tests/test_overlock.py; the whole OverLoCK model takes ~20 min to compile with inductor on 2 cores, so it runs
with 'aot_eager' here). Slow tier: a few representatives only.

The 'aot_eager' outcome of each model tested is its ``compile`` field in zoo/export_status.json: a normal run checks
the file agrees, ``ZOO_WRITE_EXPORT_STATUS=1`` writes it (see tests/test_timm_suite.py, which owns the file format).
"""
import os

import pytest
import timm
import torch

import zoo

from helpers import fp32_and_fp64, max_diff, tol_from_spread

FAMILIES = zoo.model_families()


def _nparams(name):
    with torch.device('meta'):
        return sum(p.numel() for p in timm.create_model(name).parameters())


SMALLEST = sorted(min(names, key=_nparams) for names in FAMILIES.values() if names)


def _check(name, backend, size=64):
    torch.manual_seed(0)
    torch._dynamo.reset()
    model = timm.create_model(name, num_classes=5).eval()
    x = torch.randn(2, 3, size, size)
    ref, ref64 = fp32_and_fp64(model, x)
    compiled = torch.compile(model, backend=backend)
    with torch.no_grad():
        out = compiled(x)
    torch.testing.assert_close(out, ref, rtol=0, atol=tol_from_spread(max_diff(ref, ref64)))
    model.train()
    compiled(x).sum().backward()
    missing = [n for n, p in model.named_parameters() if p.requires_grad and p.grad is None]
    assert not missing, f'parameters without gradient through the compiled model: {missing[:5]}'


def _record(name, ok, note=''):
    from test_timm_suite import STATUS_PATH, read_status, write_status  # the export-status file's one writer
    if os.environ.get('ZOO_WRITE_EXPORT_STATUS') == '1':
        write_status(name, {'compile': ok}, {'compile': note})
        return
    recorded = read_status().get(name, {}).get('compile')
    assert recorded is ok, (f'{STATUS_PATH.name} says compile={recorded} for {name}, this run observed {ok}; '
                            'regenerate with ZOO_WRITE_EXPORT_STATUS=1 pytest tests/test_compile.py')


@pytest.mark.slow
@pytest.mark.parametrize('name', SMALLEST)
def test_compile_aot_eager(name):
    try:
        _check(name, 'aot_eager')
    except Exception as e:
        _record(name, False, f'aot_eager: {type(e).__name__}: {str(e).strip().splitlines()[0] if str(e).strip() else ""}'[:300])
        raise
    _record(name, True)


@pytest.mark.slow
def test_compile_inductor_representative():
    _check('zoo_lkca_vit_05m', 'inductor')
