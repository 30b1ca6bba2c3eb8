"""torch.compile: the smallest model of every family that declares no TorchScript support compiles and
matches eager (graph capture + AOT autograd with the 'aot_eager' backend, forward and backward), and one small
representative goes through the full inductor code generation (OverLoCK's ContMix has its own inductor test in
tests/test_overlock.py; the whole OverLoCK model takes ~20 min to compile with inductor on 2 cores, so it runs
with 'aot_eager' here). Slow tier: a few representatives only."""
import importlib

import pytest
import timm
import torch

import zoo

FAMILIES = zoo.model_families()


def _smallest(names):
    return min(names, key=lambda n: sum(p.numel() for p in timm.create_model(n).parameters()))


NO_SCRIPT = sorted(_smallest(names) for mod, names in FAMILIES.items()
                   if names and not getattr(importlib.import_module(f'zoo.models.{mod}'), 'TORCHSCRIPT', False))


def _check(name, backend, size=64):
    torch.manual_seed(0)
    torch._dynamo.reset()
    model = timm.create_model(name, num_classes=5).eval()
    x = torch.randn(2, 3, size, size)
    with torch.no_grad():
        ref = model(x)
    compiled = torch.compile(model, backend=backend)
    with torch.no_grad():
        out = compiled(x)
    torch.testing.assert_close(out, ref, rtol=1e-4, atol=1e-4)
    model.train()
    compiled(x).sum().backward()
    assert all(p.grad is not None for p in model.parameters() if p.requires_grad)


@pytest.mark.slow
@pytest.mark.parametrize('name', NO_SCRIPT)
def test_compile_aot_eager(name):
    _check(name, 'aot_eager')


@pytest.mark.slow
def test_compile_inductor_representative():
    _check('zoo_lkca_vit_05m', 'inductor')
