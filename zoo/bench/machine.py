"""How far each model is from what the machine's matmul can do, and the per-op profile of one model."""
from typing import Any, Dict, List

import torch

from .pair import build
from .timing import DTYPES, alternating_rounds, in_chans, run_case_subprocess, sync, time_fn

# ---------------------------------------------------------------------------------------------------------
# Machine peak: how far each model is from what the machine's matmul can do.

def matmul_peak(device: str = 'cpu', dtype: str = 'fp32', n: int = 2048, repeats: int = 5) -> Dict[str, Any]:
    """Measured ``torch.mm`` throughput of two ``n x n`` matrices (FLOP/s = 2 n^3 / median time): the practical
    peak of this machine at this thread count, measured in the same run as the models."""
    dev = torch.device(device)
    dt = DTYPES[dtype]
    g = torch.Generator(device='cpu').manual_seed(0)
    a = torch.randn(n, n, generator=g).to(dev, dt)
    b = torch.randn(n, n, generator=g).to(dev, dt)
    t = time_fn(lambda: torch.mm(a, b), dev, warmup=2, repeats=repeats)
    return dict(dtype=dtype, n=n, flops_s=2.0 * n ** 3 / t['median'], tflops=2.0 * n ** 3 / t['median'] / 1e12,
                threads=torch.get_num_threads(), device=device)


def alternating_times(fns, device: str = 'cpu', rounds: int = 5) -> List[List[float]]:
    """Wall times (s) of each of ``fns`` (no-argument callables) over ``rounds`` rounds in this process; every
    round calls each once, and the order alternates between rounds (forward, then reversed), so all of them see
    the same machine load. One untimed call of each first. Returns one list of per-round times per function."""
    for f in fns:
        f()
    times = alternating_rounds(dict(enumerate(fns)), torch.device(device), rounds)
    return [times[i] for i in range(len(fns))]


def peak_fraction_alternating(fn, flops_per_call: float, device: str = 'cpu', dtype: str = 'fp32', rounds: int = 5,
                              n: int = 2048) -> Dict[str, Any]:
    """Fraction of the matmul peak that ``fn`` (``flops_per_call`` FLOPs) reaches, timed in alternating rounds with
    the ``n x n`` ``torch.mm`` of :func:`matmul_peak` in this process (:func:`alternating_times`), so both see
    the same machine load. Returns the median of the per-round fractions, their range, and the median peak."""
    import statistics
    dev = torch.device(device)
    g = torch.Generator(device='cpu').manual_seed(0)
    a = torch.randn(n, n, generator=g).to(dev, DTYPES[dtype])
    b = torch.randn(n, n, generator=g).to(dev, DTYPES[dtype])
    torch.mm(a, b)  # one more warm-up of the matmul
    t_fn, t_mm = alternating_times([fn, lambda: torch.mm(a, b)], device=device, rounds=rounds)
    peaks = [2.0 * n ** 3 / t for t in t_mm]
    fracs = [flops_per_call / tf / peak for tf, peak in zip(t_fn, peaks)]
    return dict(frac=statistics.median(fracs), frac_min=min(fracs), frac_max=max(fracs),
                peak_flops_s=statistics.median(peaks), rounds=rounds)


def speedup_alternating(fast, slow, device: str = 'cpu', rounds: int = 5) -> Dict[str, Any]:
    """How many times faster ``fast`` is than ``slow`` (both no-argument callables), timed in alternating rounds in
    this process (:func:`alternating_times`): the median of the per-round ratios slow / fast, their range, and
    each side's median time (s)."""
    import statistics
    t_fast, t_slow = alternating_times([fast, slow], device=device, rounds=rounds)
    ratios = [s / f for f, s in zip(t_fast, t_slow)]
    return dict(speedup=statistics.median(ratios), speedup_min=min(ratios), speedup_max=max(ratios),
                fast_s=statistics.median(t_fast), slow_s=statistics.median(t_slow), rounds=rounds)


def matmul_peak_in_subprocess(device: str = 'cpu', dtype: str = 'fp32', timeout: float = 600, **kw) -> Dict[str, Any]:
    """:func:`matmul_peak` in a fresh process, like the models (same threads, same process set-up)."""
    return run_case_subprocess(matmul_peak, dict(device=device, dtype=dtype, **kw), timeout=timeout)


def add_peak_fraction(records: List[Dict[str, Any]], peaks: Dict[str, float]) -> None:
    """``frac_peak_<dtype>`` = 2 x GMACs x img/s / matmul peak (inference at the record's batch): the fraction of
    the machine's measured ``torch.mm`` FLOP/s the model's forward achieves. ``peaks``: dtype -> FLOP/s."""
    for r in records:
        if r.get('gmacs') is None or not r.get('infer_img_s'):
            continue
        for dtype, peak in peaks.items():
            if peak:
                r[f'frac_peak_{dtype}'] = 2.0 * r['gmacs'] * 1e9 * r['infer_img_s'] / peak


# ---------------------------------------------------------------------------------------------------------
# Per-op profile of one model.

def profile(name: str, img_size: int = 224, batch_size: int = 8, device: str = 'cpu', dtype: str = 'fp32',
            warmup: int = 1, repeats: int = 3, row_limit: int = 25, no_native: str = '') -> str:
    """torch.profiler table of a model's inference forward (``repeats`` calls after ``warmup``), top ops by self
    CPU time (and CUDA time on a GPU). ``no_native``: why the device has no native ``dtype``; then nothing is
    profiled and the text says why."""
    if no_native:
        return f'{name}: not profiled in {dtype} at {img_size} px on {device}: {no_native}'
    from torch.profiler import ProfilerActivity
    from torch.profiler import profile as _profile
    dev = torch.device(device)
    model = build(name, dev).eval()
    chans = in_chans(model)
    x = torch.randn(batch_size, chans, img_size, img_size, device=dev)
    autocast = dict(device_type=dev.type, dtype=DTYPES[dtype], enabled=DTYPES[dtype] != torch.float32)
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if dev.type == 'cuda' else [])
    with torch.no_grad(), torch.autocast(**autocast):
        for _ in range(warmup):
            model(x)
        sync(dev)
        with _profile(activities=activities, record_shapes=False) as prof:
            for _ in range(repeats):
                model(x)
            sync(dev)
    sort = 'self_cuda_time_total' if dev.type == 'cuda' else 'self_cpu_time_total'
    head = (f'{name}: {repeats} forward(s) of batch {batch_size} at {img_size} px on {device} ({dtype}), '
            f'{torch.get_num_threads()} threads; top {row_limit} ops by {sort}\n')
    return head + prof.key_averages().table(sort_by=sort, row_limit=row_limit)
