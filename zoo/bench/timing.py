"""The low-level helpers every benchmark module times with: device sync, a timed loop with its spread, the
tensors of a model output, the resident-set high-water mark, and one case run in a fresh process."""
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from typing import Any, Callable, Dict, List, Optional

import torch
import torch.nn as nn

__all__ = ['DTYPES', 'sync', 'time_fn', 'in_chans', 'tensors', 'rss_mb', 'count_params', 'is_official',
           'run_case_subprocess', 'alternating_rounds']

DTYPES = {'fp32': torch.float32, 'bf16': torch.bfloat16, 'fp16': torch.float16}


def sync(device: torch.device):
    if device.type == 'cuda':
        torch.cuda.synchronize(device)


def time_fn(fn: Callable[[], Any], device: torch.device, warmup: int, repeats: int) -> Dict[str, float]:
    """Median and spread (IQR/2 and min) of ``fn``'s wall time in seconds."""
    for _ in range(warmup):
        fn()
    sync(device)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        sync(device)
        times.append(time.perf_counter() - t0)
    times.sort()
    q = statistics.quantiles(times, n=4) if len(times) >= 2 else [times[0]] * 3
    return {'median': statistics.median(times), 'spread': (q[2] - q[0]) / 2, 'min': times[0], 'n': len(times)}


def in_chans(model: nn.Module) -> int:
    return getattr(model, 'in_chans', None) or (getattr(model, 'pretrained_cfg', None) or {}).get('input_size', (3,))[0]


def tensors(out) -> List[torch.Tensor]:
    """The tensors of a model output: a tensor, a tuple / list of them, or a dict (e.g. ``main`` and ``aux``)."""
    if isinstance(out, dict):
        out = list(out.values())
    return list(out) if isinstance(out, (tuple, list)) else [out]


def rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # Linux: KiB


def count_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def is_official(name: str) -> bool:
    """``/path/file.py:factory(...)``: an official implementation's factory, not a timm / zoo name."""
    return '.py:' in name


def run_case_subprocess(fn: Callable[..., Any], kwargs: Dict[str, Any], timeout: float = 1800,
                        failed: Optional[Dict[str, Any]] = None) -> Dict[str, Any]:
    """``fn(**kwargs)`` (a module-level function of zoo.bench returning a JSON-able dict) in a fresh process; a
    failure (exception, crash, timeout) becomes ``failed`` (default: ``kwargs``) with an ``error`` message."""
    code = (f'import json, sys; from {fn.__module__} import {fn.__name__} as fn; '
            'print("@@" + json.dumps(fn(**json.loads(sys.argv[1]))))')
    failed = dict(kwargs) if failed is None else failed
    try:
        r = subprocess.run([sys.executable, '-c', code, json.dumps(kwargs)], capture_output=True, text=True,
                           timeout=timeout, env=dict(os.environ))
    except subprocess.TimeoutExpired:
        return dict(failed, error=f'timed out after {timeout:.0f}s')
    for line in r.stdout.splitlines():
        if line.startswith('@@'):
            return json.loads(line[2:])
    err = (r.stderr.strip().splitlines() or ['exit code %d' % r.returncode])[-1]
    return dict(failed, error=err[:500])


def alternating_rounds(fns: Dict[str, Callable[[], Any]], device: torch.device, rounds: int,
                       per: int = 1) -> Dict[str, List[float]]:
    """Wall time (s) of one call of each of ``fns`` (name -> no-argument callable), divided by ``per``, in each of
    ``rounds`` rounds; the order is that of ``fns`` in even rounds and reversed in odd ones (the same load on
    every side)."""
    names = list(fns)
    times: Dict[str, List[float]] = {name: [] for name in names}
    for r in range(rounds):
        for name in (names if r % 2 == 0 else names[::-1]):
            sync(device)
            t0 = time.perf_counter()
            fns[name]()
            sync(device)
            times[name].append((time.perf_counter() - t0) / per)
    return times
