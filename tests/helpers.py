"""Helpers shared by several test modules (fixtures live in conftest.py; this module holds what is needed at
collection time, e.g. in ``pytest.mark.skipif`` or ``parametrize``).

Numeric tolerances follow tests/README.md: each one is ``tol_from_spread(spread)``, a stated factor times a measured
float32-vs-float64 spread (``golden_spread`` for the official goldens, ``fp32_spread`` measured in the test), and
float64 comparisons use ``fp64_tol``, bfloat16 ones ``bf16_tol``."""
import copy
import importlib.util
import json
import os.path as osp
from typing import Optional

import torch

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
CONFIGS = osp.join(ROOT, 'configs')

# family -> (config slug of the COCO / ADE20K configs, the family's small model used in det/seg tests)
MM_FAMILIES = {
    'cbam': ('zoo-resnet50-cbam', 'zoo_resnet18_cbam'),
    'triplet': ('zoo-resnet50-triplet', 'zoo_resnet18_triplet'),
    'biformer': ('zoo-biformer-small', 'zoo_biformer_tiny'),
    'halonet': ('zoo-halonet-h1', 'zoo_halonet_h0'),
    'coat': ('zoo-coat-lite-small', 'zoo_coat_lite_tiny'),
    'lkca': ('zoo-lkca-vit-2m', 'zoo_lkca_vit_05m'),
    'resattnet': ('zoo-resattnet56', 'zoo_resattnet56'),
    'overlock': ('zoo-overlock-t', 'zoo_overlock_xt'),
}
MM_SIZE = 64  # generated det/seg scenes in the mm tests are MM_SIZE x MM_SIZE

# tolerance = SPREAD_FACTOR x spread: two float32 runs of one computation (ours and the official one, two kernel
# sets) each sit about one spread from the float64 result; measured |ours - official| reach 1.9 spreads
SPREAD_FACTOR = 4.0
# float64 rounding relative to float32 rounding (unit roundoffs): a float64 run's spread is the float32 one x this
FP64_PER_FP32 = torch.finfo(torch.float64).eps / torch.finfo(torch.float32).eps
# bfloat16 rounding relative to float32 rounding: the bf16 autocast spread estimated from the float32 one
BF16_PER_FP32 = torch.finfo(torch.bfloat16).eps / torch.finfo(torch.float32).eps
_SPREADS = osp.join(ROOT, 'tests', 'data', 'parity', 'spreads.json')


def tol_from_spread(spread: float, factor: float = SPREAD_FACTOR) -> float:
    """The tolerance of a comparison whose rounding spread (max |float32 - float64| of the reference) is
    ``spread``: ``factor`` (>= 2) x ``spread``."""
    if factor < 2:
        raise ValueError(f'a tolerance sits at least 2x above its spread, got factor {factor}')
    if not spread > 0:
        raise ValueError(f'spread {spread}: with no rounding spread, compare exactly')
    return factor * float(spread)


def fp64_tol(spread32: float, factor: float = SPREAD_FACTOR) -> float:
    """The tolerance of the same comparison run in float64: the float32 spread scaled to float64 rounding."""
    return tol_from_spread(spread32 * FP64_PER_FP32, factor)


def bf16_tol(spread32: float, factor: float = SPREAD_FACTOR) -> float:
    """The tolerance of the same computation in bfloat16 (autocast, or bf16 inputs) against its float32 result: the
    float32 spread scaled to bfloat16 rounding."""
    return tol_from_spread(spread32 * BF16_PER_FP32, factor)


def golden_spread(golden: dict, name: str, key: str = 'logits') -> float:
    """The official model's own max |float32 - float64| on golden ``name`` (output ``key``): from the golden's
    float64 logits where it has them, else recorded in tests/data/parity/spreads.json."""
    fp32 = golden.get('logits_fp32', golden[key])
    fp64 = golden['logits'] if golden[key].dtype == torch.float64 else golden.get(f'{key}_fp64')
    if fp64 is not None:
        return (fp32.double() - fp64).abs().max().item()
    with open(_SPREADS) as f:
        return json.load(f)[name][key]


def fp32_and_fp64(fn, *args):
    """``fn(*args)`` without grad in float32 and in float64 (floating tensors cast; modules, ``fn`` included, run as
    copies in that dtype, so the caller's modules keep their dtype and state): ``(out32, out64)``."""
    outs = []
    for dtype in (torch.float32, torch.float64):
        with torch.no_grad():
            outs.append(_as(fn, dtype)(*(_as(a, dtype) for a in args)))
    return tuple(outs)


def max_diffs(a, b) -> list:
    """max |a - b| of each tensor of two outputs (tensors, or lists / tuples / dicts of them), in float64 (0 for
    empty ones)."""
    pairs = zip(torch.utils._pytree.tree_leaves(a), torch.utils._pytree.tree_leaves(b), strict=True)
    return [(x.double() - y.double()).abs().max().item() if x.numel() else 0. for x, y in pairs]


def max_diff(a, b) -> float:
    """max |a - b| over every tensor of two outputs."""
    return max(max_diffs(a, b))


def fp32_spread(fn, *args) -> float:
    """The rounding spread of ``fn`` on ``args``: max |float32 result - float64 result| (see ``fp32_and_fp64``)."""
    return max_diff(*fp32_and_fp64(fn, *args))


def assert_formulas_agree(fn_a, fn_b, *args, dtypes=(torch.float32,)):
    """Two formulas of one quantity, ``fn_a(*args)`` and ``fn_b(*args)`` (see ``fp32_and_fp64``), agree in each of
    ``dtypes``, output tensor by output tensor. Each formula rounds on its own, so the spread of the comparison is the
    sum of both float32 spreads (``tol_from_spread``; ``fp64_tol`` in float64; exact where both are exact).
    Returns both formulas' ``(out32, out64)``."""
    a, b = fp32_and_fp64(fn_a, *args), fp32_and_fp64(fn_b, *args)
    spreads = [s + t for s, t in zip(max_diffs(*a), max_diffs(*b), strict=True)]
    leaves = torch.utils._pytree.tree_leaves
    for i, (dtype, tol) in enumerate(((torch.float32, tol_from_spread), (torch.float64, fp64_tol))):
        if dtype in dtypes:
            for x, y, spread in zip(leaves(a[i]), leaves(b[i]), spreads, strict=True):
                torch.testing.assert_close(x, y, rtol=0, atol=tol(spread) if spread else 0.)
    return a, b


def with_grads(fn, input_grad: bool = False):
    """``fn(module, x)`` as a function returning ``[out, *gradients]``: the gradients of ``out.square().sum()``
    with respect to ``x`` (with ``input_grad``) and each parameter of ``module`` (computed under ``no_grad`` too)."""
    def run(module, x):
        with torch.enable_grad():
            if input_grad:
                x = x.detach().requires_grad_()
            out = fn(module, x)
            wrt = ([x] if input_grad else []) + list(module.parameters())
            return [out, *torch.autograd.grad(out.square().sum(), wrt)]
    return run


def _as(obj, dtype):
    if isinstance(obj, torch.nn.Module):
        return copy.deepcopy(obj).to(dtype)
    if isinstance(obj, torch.Tensor) and obj.is_floating_point():
        return obj.to(dtype)
    return obj


def mm_missing(*packages: str) -> Optional[str]:
    """Why the OpenMMLab tests cannot run here (a package missing, mmcv without compiled ops), or None."""
    for name in ('mmengine', 'mmcv') + packages:
        if importlib.util.find_spec(name) is None:
            return f'{name} is not installed'
    try:
        if importlib.util.find_spec('mmcv._ext') is None:
            return 'mmcv has no compiled ops (mmcv._ext); run `make setup`'
    except ImportError as e:
        return f'mmcv._ext: {e}'
    return None


def n_params(model) -> int:
    return sum(p.numel() for p in model.parameters())


def randn(*shape, seed: int = 0) -> torch.Tensor:
    """A normal tensor from its own generator (the same values whatever ran before)."""
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


def save_checkpoint(obj, tmp_path, name: str = 'ckpt.pth') -> str:
    """``torch.save(obj)`` as ``tmp_path / name``; returns the path (a string, as timm's ``file`` cfg takes it)."""
    path = tmp_path / name
    torch.save(obj, path)
    return str(path)


def load_pretrained(name: str, path, **kwargs):
    """``timm.create_model(name, pretrained=True, **kwargs)`` with the weights of the checkpoint file ``path``, in
    eval mode."""
    import timm
    return timm.create_model(name, pretrained=True, pretrained_cfg_overlay=dict(file=str(path)), **kwargs).eval()


def mm_family(family: str):
    """``(config slug, small model)`` of an entry of MM_FAMILIES; skips the test when the model is not registered."""
    import pytest
    import timm
    slug, small = MM_FAMILIES[family]
    if not timm.is_model(small):
        pytest.skip(f'{small} is not registered')
    return slug, small


class DtypeLog(torch.utils._python_dispatch.TorchDispatchMode):
    """Records, while ``active``, every op that turns a bfloat16 input into a float32 output (a fp32 round trip)
    and the dtypes of the fused attention's q/k/v."""

    def __init__(self):
        super().__init__()
        self.active, self.upcasts, self.sdpa = False, [], []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        if self.active:
            ins = [a for a in torch.utils._pytree.tree_leaves((args, kwargs)) if isinstance(a, torch.Tensor)]
            # the op's result (fused attention also returns its float32 log-sum-exp statistics: not a result)
            res = out[0] if isinstance(out, (tuple, list)) else out
            if any(a.dtype == torch.bfloat16 for a in ins) and isinstance(res, torch.Tensor) \
                    and res.dtype == torch.float32:
                self.upcasts.append(str(func))
            if 'scaled_dot_product' in str(func):
                self.sdpa.append(tuple(a.dtype for a in ins[:3]))
        return out

    def watch(self, model, types) -> 'DtypeLog':
        """Be ``active`` only while a module of ``model`` that is an instance of ``types`` runs."""
        for m in model.modules():
            if isinstance(m, types):
                m.register_forward_pre_hook(lambda *_: setattr(self, 'active', True))
                m.register_forward_hook(lambda *_: setattr(self, 'active', False))
        return self


def check_bf16_autocast(model, x, attention, n_sdpa: int):
    """Under CPU bfloat16 autocast, for an eval-mode classifier: bf16 logits within ``bf16_tol`` of the fp32 ones
    (from the model's float32 spread on ``x``), finite forward and backward, and inside the modules of type
    ``attention`` no op that takes a bf16 tensor returns fp32, and all ``n_sdpa`` fused attention calls run on bf16
    q/k/v."""
    ref, ref64 = fp32_and_fp64(model, x)
    log = DtypeLog().watch(model, attention)
    with log, torch.autocast('cpu', dtype=torch.bfloat16), torch.no_grad():
        out = model(x)
    assert out.dtype == torch.bfloat16 and torch.isfinite(out).all()
    assert log.upcasts == [], log.upcasts
    assert len(log.sdpa) == n_sdpa and all(d == (torch.bfloat16,) * 3 for d in log.sdpa), log.sdpa
    torch.testing.assert_close(out.float(), ref, rtol=0, atol=bf16_tol(max_diff(ref, ref64)))
    model.train()
    with torch.autocast('cpu', dtype=torch.bfloat16):
        loss = model(x).float().logsumexp(-1).mean()
    loss.backward()
    assert torch.isfinite(loss)
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    assert grads and all(torch.isfinite(g).all() for g in grads)
