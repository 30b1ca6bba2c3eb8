"""The parity tests (marker ``parity``) rerun in fresh processes under other ATen CPU kernel sets: avx2 (the
vectorised kernels every x86-64 CPU since 2013 has) and default (no vectorisation); the tolerances of
tests/README.md must hold under each."""
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from helpers import ROOT


@pytest.mark.slow
def test_parity_under_other_kernel_sets(tmp_path):
    if torch.backends.cpu.get_cpu_capability() == 'DEFAULT':
        pytest.skip('this CPU has no AVX2 kernels: the goldens\' random weights (drawn with AVX2) cannot be redrawn')
    env = dict(os.environ, ZOO_TEST_TENSORS=str(tmp_path))  # avx2 draws the weights, default reuses them
    files = [str(f) for f in sorted(Path(__file__).parent.glob('test_*.py')) if '@pytest.mark.parity' in f.read_text()]
    for capability in ('avx2', 'default'):
        cmd = [sys.executable, '-m', 'pytest', '-q', '-x', '-m', 'parity', '-p', 'no:cacheprovider', *files]
        r = subprocess.run(cmd, cwd=ROOT, env=dict(env, ATEN_CPU_CAPABILITY=capability), capture_output=True,
                           text=True, timeout=900)
        assert r.returncode == 0, f'ATEN_CPU_CAPABILITY={capability}:\n{r.stdout[-4000:]}{r.stderr[-2000:]}'
        assert ' passed' in r.stdout
