"""Deterministic checkpoints in the *official* parameter layout, for converter and parity tests.

``official_state_dict(name, seed)`` builds, from the official model's parameter names and shapes
(tests/data/official_keys/<name>.json, recorded from the authors' code), a state dict of seeded random
tensors with sane scales. Parity goldens in tests/data/parity/ were produced by running the official
model code on exactly these tensors (see tests/data/parity/README.md), so a test can convert the same
checkpoint into the zoo model and compare logits against the official code's output.
"""
import json
import math
import os
from pathlib import Path
from typing import Dict

import torch

DATA = Path(__file__).parent / 'data'
KEYS = DATA / 'official_keys'
PARITY = DATA / 'parity'

_DTYPES = {'float32': torch.float32, 'float16': torch.float16, 'int64': torch.int64, 'bool': torch.bool}


def official_keys(name: str, folder: Path = KEYS) -> Dict[str, list]:
    """{key: [shape, dtype]} of the official model ``name`` (recorded in ``folder``)."""
    return json.loads((Path(folder) / f'{name}.json').read_text())['keys']


def _kept(key: str, make):
    """``make()``, kept in the folder $ZOO_TEST_TENSORS when set: torch's float32 normal sampler is vectorised
    only in the AVX2 / AVX-512 kernel sets, so a run under ATEN_CPU_CAPABILITY=default reuses the tensors a run
    under avx2 drew (those the goldens were made from) instead of drawing different ones."""
    root = os.environ.get('ZOO_TEST_TENSORS')
    if not root:
        return make()
    path = Path(root) / f'{key}.pt'
    if path.exists():
        return torch.load(path, weights_only=True)
    out = make()
    torch.save(out, path)
    return out


def official_state_dict(name: str, seed: int = 0, folder: Path = KEYS) -> Dict[str, torch.Tensor]:
    return _kept(f'sd-{Path(folder).name}-{name}-{seed}', lambda: _official_state_dict(name, seed, folder))


def _official_state_dict(name: str, seed: int, folder: Path) -> Dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    out = {}
    for key, (shape, dtype) in official_keys(name, folder).items():
        dt = _DTYPES[dtype]
        leaf = key.rsplit('.', 1)[-1]
        if not dt.is_floating_point:
            t = torch.zeros(shape, dtype=dt)
        elif leaf == 'running_var':
            t = 0.5 + torch.rand(shape, generator=g)
        elif leaf == 'running_mean':
            t = 0.1 * torch.randn(shape, generator=g)
        elif len(shape) >= 2:
            fan_in = math.prod(shape[1:]) or 1
            t = torch.randn(shape, generator=g) / math.sqrt(fan_in)
        elif len(shape) == 1 and leaf == 'weight':
            t = 1.0 + 0.1 * torch.randn(shape, generator=g)
        else:
            t = 0.1 * torch.randn(shape, generator=g)
        out[key] = t.to(dt)
    return out


def parity_input(shape, seed: int = 1) -> torch.Tensor:
    key = 'x-' + 'x'.join(map(str, shape)) + f'-{seed}'
    return _kept(key, lambda: torch.randn(*shape, generator=torch.Generator().manual_seed(seed)))


def load_golden(name: str):
    """The official code's output on official_state_dict(name): dict(input=..., logits=..., ...)."""
    path = PARITY / f'{name}.pt'
    return torch.load(path, weights_only=True) if path.exists() else None
