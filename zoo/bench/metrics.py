"""Cost figures of one model, the same way for every model: parameters, GMACs (torch's own FLOP counter,
``torch.utils.flop_counter.FlopCounterMode``; GMACs = FLOPs / 2), inference latency (batch 1) and throughput
(larger batch), training-step throughput (forward + backward + optimizer step) and peak memory (CUDA allocator
peak on GPU; on CPU the resident-set high-water mark of a fresh worker process, so every measurement runs in its
own subprocess and one model's failure cannot stop the run). Timings are medians over repeats with their spread;
compare models by the ratios of one run.
"""
import json
import math
import os
import resource
import statistics
import subprocess
import sys
import time
from typing import Any, Callable, Dict, List, Optional, Sequence

import torch
import torch.nn as nn

DTYPES = {'fp32': torch.float32, 'bf16': torch.bfloat16, 'fp16': torch.float16}


def count_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def count_gmacs(model: nn.Module, input_size: Sequence[int], batch_size: int = 1) -> float:
    """Multiply-accumulates (in G) of one forward pass, from torch's FLOP counter (FLOPs / 2)."""
    from torch.utils.flop_counter import FlopCounterMode
    x = torch.randn(batch_size, *input_size, device=next(model.parameters()).device)
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        model(x)
    return counter.get_total_flops() / 2 / 1e9 / batch_size


def _sync(device: torch.device):
    if device.type == 'cuda':
        torch.cuda.synchronize(device)


def time_fn(fn: Callable[[], Any], device: torch.device, warmup: int, repeats: int) -> Dict[str, float]:
    """Median and spread (IQR/2 and min) of ``fn``'s wall time in seconds."""
    for _ in range(warmup):
        fn()
    _sync(device)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        _sync(device)
        times.append(time.perf_counter() - t0)
    times.sort()
    q = statistics.quantiles(times, n=4) if len(times) >= 2 else [times[0]] * 3
    return {'median': statistics.median(times), 'spread': (q[2] - q[0]) / 2, 'min': times[0], 'n': len(times)}


def _in_chans(model: nn.Module) -> int:
    return getattr(model, 'in_chans', None) or (getattr(model, 'pretrained_cfg', None) or {}).get('input_size', (3,))[0]


def _tensors(out) -> List[torch.Tensor]:
    """The tensors of a model output: a tensor, a tuple / list of them, or a dict (e.g. ``main`` and ``aux``)."""
    if isinstance(out, dict):
        out = list(out.values())
    return list(out) if isinstance(out, (tuple, list)) else [out]


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # Linux: KiB


def is_official(name: str) -> bool:
    """``/path/file.py:factory(...)``: an official implementation's factory, not a timm / zoo name."""
    return '.py:' in name


def build(name: str, device: torch.device, channels_last: bool = False, compile: bool = False,
          **kwargs) -> nn.Module:
    """A timm / zoo model by name, or an official one from ``/path/file.py:factory(literal args)`` (a checkout
    the user has; see :mod:`.pair`)."""
    import timm
    import zoo  # noqa: F401  (registers zoo models)
    fmt = torch.channels_last if channels_last else torch.preserve_format
    if is_official(name):
        from .pair import build_official
        model = build_official(name).to(device, memory_format=fmt)
    else:
        model = timm.create_model(name, **kwargs).to(device, memory_format=fmt)
    if compile:
        model = torch.compile(model)
    return model


def measure(name: str, img_size: int = 224, batch_size: int = 16, device: str = 'cpu', dtype: str = 'fp32',
            channels_last: bool = False, compile: bool = False, warmup: int = 2, repeats: int = 5,
            train: bool = True, infer: bool = True, flops: bool = True,
            model_kwargs: Optional[Dict[str, Any]] = None, peak_alternate: bool = False,
            vs_fp32: bool = False, rounds: int = 0, no_native: str = '') -> Dict[str, Any]:
    """All figures for one model at one input size (run it in a fresh process for a clean memory peak). ``name``:
    a timm / zoo model (built with ``model_kwargs``) or an official ``/path/file.py:factory(args)``.
    ``peak_alternate`` (needs ``flops``): also ``frac_peak_<dtype>_alt``, the batch forward's fraction of the
    matmul peak timed in alternating rounds with the matmul in this process (robust to a shared machine's load).
    ``vs_fp32`` (with a ``dtype`` other than fp32): also ``speedup_vs_fp32`` (with ``_min`` / ``_max``), the
    autocast batch forward's speed over the same forward in fp32, timed in alternating rounds in this process, and
    how far its logits are from fp32's: ``rel_diff_vs_fp32`` = max |autocast - fp32| / max |fp32| and
    ``finite_<dtype>`` (no NaN / inf). ``rounds``: alternating rounds (default ``max(repeats, 3)``).
    ``no_native``: why the device has no native ``dtype``; then ``speedup_vs_fp32`` holds that text and neither the
    speed-up nor ``frac_peak_<dtype>_alt`` is timed."""
    dev = torch.device(device)
    amp_dtype = DTYPES[dtype]
    alt_rounds = rounds or max(repeats, 3)  # --vs-fp32 / --peak-alternate
    rec: Dict[str, Any] = dict(model=name, img_size=img_size, batch_size=batch_size, device=device, dtype=dtype,
                               channels_last=channels_last, compile=compile, threads=torch.get_num_threads())
    rss0 = _rss_mb()
    model = build(name, dev, channels_last=channels_last, **(model_kwargs or {}))
    in_chans = _in_chans(model)
    rec['params_m'] = count_params(model) / 1e6
    if flops:
        rec['gmacs'] = count_gmacs(model.eval(), (in_chans, img_size, img_size))
    if compile:
        model = torch.compile(model)
    mf = torch.channels_last if channels_last else torch.contiguous_format
    autocast = dict(device_type=dev.type, dtype=amp_dtype, enabled=amp_dtype != torch.float32)
    if dev.type == 'cuda':
        torch.cuda.reset_peak_memory_stats(dev)
    if infer:
        model.eval()
        for bs, key in ((1, 'latency_ms'), (batch_size, 'infer_img_s')):
            if key == 'infer_img_s' and bs == 1:  # batch 1: the latency run is the throughput run
                rec['infer_img_s'] = 1e3 / rec['latency_ms']
                rec['infer_spread_img_s'] = rec['latency_spread_ms'] * 1e3 / rec['latency_ms'] ** 2
                continue
            x = torch.randn(bs, in_chans, img_size, img_size, device=dev).to(memory_format=mf)

            def step():
                with torch.no_grad(), torch.autocast(**autocast):
                    model(x)
            t = time_fn(step, dev, warmup, repeats)
            if key == 'infer_img_s' and vs_fp32 and amp_dtype != torch.float32:
                rec.update(_compare_fp32(model, x, autocast, device, alt_rounds, dtype, no_native))
            if key == 'infer_img_s' and peak_alternate and rec.get('gmacs') and not no_native:
                from .machine import peak_fraction_alternating
                alt = peak_fraction_alternating(step, 2.0 * rec['gmacs'] * 1e9 * bs, device=device, dtype=dtype,
                                                rounds=alt_rounds)
                k = f'frac_peak_{dtype}_alt'
                rec[k], rec[k + '_min'], rec[k + '_max'] = alt['frac'], alt['frac_min'], alt['frac_max']
                rec[f'matmul_peak_{dtype}_alt_tflops'] = alt['peak_flops_s'] / 1e12
            if key == 'latency_ms':
                rec['latency_ms'], rec['latency_spread_ms'] = t['median'] * 1e3, t['spread'] * 1e3
            else:
                rec['infer_img_s'] = bs / t['median']
                rec['infer_spread_img_s'] = bs * t['spread'] / t['median'] ** 2
    if train:
        model.train()
        opt = torch.optim.SGD(model.parameters(), lr=1e-4, momentum=0.9)
        x = torch.randn(batch_size, in_chans, img_size, img_size, device=dev).to(memory_format=mf)
        target = torch.randint(0, max(getattr(model, 'num_classes', 1000), 1), (batch_size,), device=dev)

        def train_step():
            with torch.autocast(**autocast):
                out = model(x)
            # every logits output (an official model may return auxiliary heads in a tuple / dict)
            loss = sum(nn.functional.cross_entropy(o.float(), target) for o in _tensors(out))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        t = time_fn(train_step, dev, max(1, warmup // 2), max(2, repeats // 2))
        rec['train_img_s'] = batch_size / t['median']
        rec['train_spread_img_s'] = batch_size * t['spread'] / t['median'] ** 2
    if dev.type == 'cuda':
        rec['peak_mem_mb'] = torch.cuda.max_memory_allocated(dev) / 2 ** 20
        rec['mem_kind'] = 'cuda_allocator_peak'
    else:
        rec['peak_mem_mb'] = _rss_mb() - rss0
        rec['mem_kind'] = 'cpu_rss_high_water_delta'
    return rec


def _compare_fp32(model: nn.Module, x: torch.Tensor, autocast: Dict[str, Any], device: str, rounds: int,
                  dtype: str, no_native: str = '') -> Dict[str, Any]:
    """The autocast forward of ``model`` on ``x`` against the fp32 forward: speed-up in alternating rounds (or
    ``no_native``, untimed), and the difference of their logits (the fields :func:`measure` documents for
    ``vs_fp32``)."""
    from .machine import speedup_alternating

    def forward(amp: bool):
        with torch.no_grad(), torch.autocast(**dict(autocast, enabled=amp)):
            return model(x)
    ref, low = (torch.cat([t.float().flatten() for t in _tensors(forward(amp))]) for amp in (False, True))
    diff = {'rel_diff_vs_fp32': float((low - ref).abs().max() / ref.abs().max().clamp_min(1e-12)),
            f'finite_{dtype}': bool(torch.isfinite(low).all())}
    if no_native:
        return {'speedup_vs_fp32': no_native, **diff}
    ab = speedup_alternating(lambda: forward(True), lambda: forward(False), device=device, rounds=rounds)
    return {'speedup_vs_fp32': ab['speedup'], 'speedup_vs_fp32_min': ab['speedup_min'],
            'speedup_vs_fp32_max': ab['speedup_max'], 'speedup_vs_fp32_rounds': rounds, **diff}


def measure_in_subprocess(timeout: float = 1800, **kwargs) -> Dict[str, Any]:
    """``measure`` in a fresh Python process; a failure becomes ``{'error': ...}`` in the record."""
    failed = dict(model=kwargs.get('name'), img_size=kwargs.get('img_size'), batch_size=kwargs.get('batch_size'))
    return _run_case_subprocess(measure, kwargs, timeout=timeout, failed=failed)


def add_ratios(records: List[Dict[str, Any]], baseline: str,
               keys: Sequence[str] = ('latency_ms', 'infer_img_s', 'train_img_s', 'peak_mem_mb', 'gmacs')) -> None:
    """Add ``<key>_ratio`` = value / baseline's value at the same size (the first baseline of the run)."""
    ref = {(r['img_size'], r.get('batch_size')): r for r in records if r.get('model') == baseline and 'error' not in r}
    for r in records:
        b = ref.get((r.get('img_size'), r.get('batch_size')))
        for k in keys:
            if b is not None and r.get(k) is not None and b.get(k):
                r[k + '_ratio'] = r[k] / b[k]


def environment(device: str = 'cpu') -> Dict[str, Any]:
    import platform

    import timm
    env = dict(torch=torch.__version__, timm=timm.__version__, python=platform.python_version(),
               threads=torch.get_num_threads(), device=device, machine=platform.machine(),
               processor=platform.processor() or platform.machine(), cpu_count=os.cpu_count())
    if device.startswith('cuda') and torch.cuda.is_available():
        env['gpu'] = torch.cuda.get_device_name(0)
    return env


def markdown_table(records: List[Dict[str, Any]], columns: Sequence[str]) -> str:
    def fmt(v):
        if v is None:
            return ''
        if isinstance(v, float):
            if math.isnan(v):
                return ''
            return f'{v:.3g}' if abs(v) < 100 else f'{v:.1f}'
        return str(v)
    lines = ['| ' + ' | '.join(columns) + ' |', '|' + '---|' * len(columns)]
    for r in records:
        lines.append('| ' + ' | '.join(fmt(r.get(c)) for c in columns) + ' |')
    return '\n'.join(lines)



def _run_case_subprocess(fn: Callable[..., Any], kwargs: Dict[str, Any], timeout: float = 1800,
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


# ---------------------------------------------------------------------------------------------------------
# Cheap throughput of many models: one process per group (family), models measured back to back.

def measure_throughput_group(names: Sequence[str], baseline: Optional[str] = None, img_sizes: Optional[Dict[str, int]] = None,
                             batch_size: int = 8, device: str = 'cpu', warmup: int = 1, repeats: int = 3) -> List[Dict[str, Any]]:
    """Batch inference img/s of each model (its own default size from ``img_sizes``, else 224) in this process;
    ``baseline`` (e.g. resnet50 at 224 px) is measured first, and each model's ``infer_img_s_ratio`` is to it.
    A model that fails gets ``error`` and does not stop the group."""
    import gc
    dev = torch.device(device)
    out = []
    base = None
    items = ([(baseline, True)] if baseline else []) + [(n, False) for n in names]
    for name, is_base in items:
        size = 224 if is_base else (img_sizes or {}).get(name, 224)
        rec: Dict[str, Any] = dict(model=name, img_size=size, batch_size=batch_size)
        try:
            model = build(name, dev).eval()
            in_chans = _in_chans(model)
            x = torch.randn(batch_size, in_chans, size, size, device=dev)
            with torch.no_grad():
                t = time_fn(lambda: model(x), dev, warmup, repeats)
            rec['infer_img_s'] = batch_size / t['median']
            del model, x
        except Exception as e:  # reported, not fatal
            rec['error'] = f'{type(e).__name__}: {e}'[:300]
        gc.collect()
        if is_base:
            base = rec
            rec['role'] = 'baseline'
        elif base and base.get('infer_img_s') and rec.get('infer_img_s'):
            rec['infer_img_s_ratio'] = rec['infer_img_s'] / base['infer_img_s']
        out.append(rec)
    return out


def _throughput_group_json(**kwargs) -> Dict[str, Any]:
    return dict(records=measure_throughput_group(**kwargs))


def measure_throughput_group_in_subprocess(timeout: float = 3600, **kwargs) -> List[Dict[str, Any]]:
    """:func:`measure_throughput_group` in a fresh process; a failure of the whole group is an error per model."""
    out = _run_case_subprocess(_throughput_group_json, kwargs, timeout=timeout, failed={})
    if 'error' in out:
        return [dict(model=n, error=f"group: {out['error'][:300]}") for n in kwargs.get('names', [])]
    return out['records']
