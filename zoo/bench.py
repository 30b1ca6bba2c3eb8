"""Cost measurement for zoo and timm models, the same way for every model.

Used by ``tools/benchmark.py``. Figures: parameters, GMACs (torch's own FLOP counter,
``torch.utils.flop_counter.FlopCounterMode``; GMACs = FLOPs / 2), inference latency (batch 1) and
throughput (larger batch), training-step throughput (forward + backward + optimizer step) and peak
memory (CUDA allocator peak on GPU; on CPU the resident-set high-water mark of a fresh worker process,
so every measurement runs in its own subprocess and one model's failure cannot stop the run).
Timings are medians over repeats with their spread; compare models by the ratios of one run.
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


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # Linux: KiB


def build(name: str, device: torch.device, channels_last: bool = False, compile: bool = False,
          **kwargs) -> nn.Module:
    import timm
    import zoo  # noqa: F401  (registers zoo models)
    model = timm.create_model(name, **kwargs).to(device)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    if compile:
        model = torch.compile(model)
    return model


def measure(name: str, img_size: int = 224, batch_size: int = 16, device: str = 'cpu', dtype: str = 'fp32',
            channels_last: bool = False, compile: bool = False, warmup: int = 2, repeats: int = 5,
            train: bool = True, infer: bool = True, flops: bool = True) -> Dict[str, Any]:
    """All figures for one model at one input size (run it in a fresh process for a clean memory peak)."""
    dev = torch.device(device)
    amp_dtype = DTYPES[dtype]
    rec: Dict[str, Any] = dict(model=name, img_size=img_size, batch_size=batch_size, device=device, dtype=dtype,
                               channels_last=channels_last, compile=compile)
    rss0 = _rss_mb()
    model = build(name, dev, channels_last=channels_last)
    in_chans = getattr(model, 'in_chans', None) or model.pretrained_cfg.get('input_size', (3,))[0]
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
            x = torch.randn(bs, in_chans, img_size, img_size, device=dev).to(memory_format=mf)

            def step():
                with torch.no_grad(), torch.autocast(**autocast):
                    model(x)
            t = time_fn(step, dev, warmup, repeats)
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
                loss = nn.functional.cross_entropy(model(x).float(), target)
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


def measure_in_subprocess(timeout: float = 1800, **kwargs) -> Dict[str, Any]:
    """``measure`` in a fresh Python process; a failure becomes ``{'error': ...}`` in the record."""
    code = ('import json, sys; from zoo.bench import measure; '
            'print("@@" + json.dumps(measure(**json.loads(sys.argv[1]))))')
    failed = dict(model=kwargs.get('name'), img_size=kwargs.get('img_size'), batch_size=kwargs.get('batch_size'))
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


def plot_scaling(records: List[Dict[str, Any]], path: str, keys: Sequence[str] = ('latency_ms', 'peak_mem_mb'),
                 title: Optional[str] = None) -> Optional[str]:
    """Latency and memory against resolution for every model in ``records`` (PNG via matplotlib)."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(1, len(keys), figsize=(6 * len(keys), 4.5))
    axes = [axes] if len(keys) == 1 else axes
    models = sorted({r['model'] for r in records})
    for ax, key in zip(axes, keys):
        for m in models:
            pts = sorted((r['img_size'], r[key]) for r in records if r['model'] == m and r.get(key) is not None)
            if pts:
                ax.plot(*zip(*pts), marker='o', label=m)
        ax.set_xlabel('input size (px)')
        ax.set_ylabel(key)
        if key != 'peak_mem_mb':
            ax.set_yscale('log')
        ax.grid(True, alpha=0.3)
    axes[0].legend(fontsize=7)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


# ---------------------------------------------------------------------------------------------------------
# Implementation-vs-reference comparisons (the references the family issues ask for), each case measured in
# a fresh process: forward time (median of repeats) and peak memory.

REFERENCE_COLUMNS = ['case', 'impl', 'img_size', 'ms', 'ms_ratio', 'img_s', 'img_s_ratio', 'peak_mem_mb', 'peak_mem_mb_ratio', 'max_abs_diff', 'error']


def _bra_reference():
    """The test-only expand+gather BRA (``zoo.layers._bra_reference``; older trees kept it in ``zoo.layers.bra``)."""
    try:
        from zoo.layers._bra_reference import bra_gather_reference
    except ImportError:
        from zoo.layers.bra import bra_gather_reference
    return bra_gather_reference


def _na2d_ops():
    """(zoo's neighbourhood aggregation, the test-only unfold reference), wherever this tree keeps them."""
    try:
        from zoo.layers.na2d import na2d_av
    except ImportError:
        from zoo.layers.contmix import na2d_av
    try:
        from zoo.layers._na2d_reference import na2d_av_unfold_reference
    except ImportError:
        from zoo.layers.contmix import na2d_av_unfold_reference
    return na2d_av, na2d_av_unfold_reference


def _reference_case(case: str, impl: str, img_size: int, device: str = 'cpu', repeats: int = 3) -> Dict[str, Any]:
    """One (case, implementation, size) measurement; called in a subprocess by :func:`compare_reference`."""
    import types
    torch.manual_seed(0)
    dev = torch.device(device)
    rss0 = _rss_mb()
    if case == 'bra':
        # whole BiFormer-T forward, batch 1; the reference swaps every BRA layer for the expand+gather algorithm
        import timm

        import zoo  # noqa: F401
        from zoo.layers.bra import BiLevelRoutingAttention
        bra_gather_reference = _bra_reference()
        model = timm.create_model('zoo_biformer_tiny').to(dev).eval()
        if impl == 'reference':
            for m in model.modules():
                if isinstance(m, BiLevelRoutingAttention):
                    m.forward = types.MethodType(bra_gather_reference, m)
        x = torch.randn(1, 3, img_size, img_size, device=dev)
        fn = lambda: model(x)  # noqa: E731
    elif case == 'contmix':
        # the neighbourhood aggregation of a stage-3 ContMix (stride 16, 256 channels, 8 groups) at this input size
        na2d_av, na2d_av_unfold_reference = _na2d_ops()
        hw = max(img_size // 16, 13)
        outs = []
        op = na2d_av if impl == 'zoo' else na2d_av_unfold_reference
        ins = []
        for k in (5, 13):
            a = torch.randn(1, 8, hw, hw, k * k, device=dev).softmax(-1)
            v = torch.randn(1, 8, hw, hw, 16, device=dev)
            ins.append((a, v, k))
        fn = lambda: [op(a, v, k) for a, v, k in ins]  # noqa: E731
    else:
        raise ValueError(f'unknown reference case {case!r}')
    if dev.type == 'cuda':
        torch.cuda.reset_peak_memory_stats(dev)
    with torch.no_grad():
        out = fn()
        t = time_fn(fn, dev, warmup=1, repeats=repeats)
    out = out if isinstance(out, torch.Tensor) else torch.cat([o.flatten() for o in out])
    peak = torch.cuda.max_memory_allocated(dev) / 2 ** 20 if dev.type == 'cuda' else _rss_mb() - rss0
    return dict(case=case, impl=impl, img_size=img_size, ms=t['median'] * 1e3, peak_mem_mb=peak,
                checksum=float(out.double().abs().sum()), first=out.flatten()[:256].tolist())


def _train_loop_case(impl: str, img_size: int = 64, device: str = 'cpu', repeats: int = 3, steps: int = 10,
                     model_name: str = 'zoo_resnet18_cbam', batch_size: int = 32) -> Dict[str, Any]:
    """Training-step throughput of the zoo trainer's loop vs a bare PyTorch loop on the same batches, and the
    throughput of the data pipeline (generated shapes + albumentations train transforms) that feeds it."""
    import tempfile

    import timm

    import zoo  # noqa: F401
    dev = torch.device(device)
    torch.manual_seed(0)
    if impl == 'data':
        # the trainer's own train loader (generated shapes, albumentations train transforms, workers)
        from zoo.train.trainer import Trainer
        with tempfile.TemporaryDirectory() as d:
            trainer = Trainer(dict(model=model_name, dataset='shapes', shapes_train=max(steps + 2, 4) * batch_size,
                                   shapes_val=batch_size, shapes_size=img_size, img_size=img_size,
                                   batch_size=batch_size, data_dir=os.path.join(d, 'data'),
                                   output=os.path.join(d, 'out'), workers=2, epochs=1)).setup()
            it = iter(trainer.train_loader)
            next(it)
            t0 = time.perf_counter()
            n = 0
            for _ in range(steps):
                x, *_ = next(it)
                n += x.shape[0]
            dt = time.perf_counter() - t0
        return dict(case='train_loop', impl=impl, img_size=img_size, img_s=n / dt, ms=dt / steps * 1e3)
    model = timm.create_model(model_name, num_classes=10).to(dev)
    batches = [(torch.randn(batch_size, 3, img_size, img_size), torch.randint(0, 10, (batch_size,))) for _ in range(4)]
    if impl == 'zoo':
        from zoo.train.engine import run_train_steps
        cfg = dict(opt='sgd', lr=0.01, momentum=0.9, weight_decay=0.0, smoothing=0.0, mixup=0.0, cutmix=0.0,
                   model_ema=False, amp=False, clip_grad=None, grad_accum_steps=1, channels_last=False)
        stats = run_train_steps(model, batches, cfg, device=dev, num_steps=steps, num_classes=10, warmup_steps=2)
        return dict(case='train_loop', impl=impl, img_size=img_size, img_s=stats['images_per_s'],
                    ms=batch_size / stats['images_per_s'] * 1e3)
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    model.train()

    def step(i):
        x, y = batches[i % len(batches)]
        loss = nn.functional.cross_entropy(model(x.to(dev)), y.to(dev))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    for i in range(2):
        step(i)
    t0 = time.perf_counter()
    for i in range(steps):
        step(i)
    _sync(dev)
    dt = time.perf_counter() - t0
    return dict(case='train_loop', impl=impl, img_size=img_size, img_s=steps * batch_size / dt, ms=dt / steps * 1e3)


def _run_case_subprocess(fn_name: str, kwargs: Dict[str, Any], timeout: float = 1800) -> Dict[str, Any]:
    code = ('import json, sys; from zoo import bench; '
            f'print("@@" + json.dumps(bench.{fn_name}(**json.loads(sys.argv[1]))))')
    try:
        r = subprocess.run([sys.executable, '-c', code, json.dumps(kwargs)], capture_output=True, text=True,
                           timeout=timeout)
    except subprocess.TimeoutExpired:
        return dict(kwargs, error=f'timed out after {timeout:.0f}s')
    for line in r.stdout.splitlines():
        if line.startswith('@@'):
            return json.loads(line[2:])
    err = (r.stderr.strip().splitlines() or ['exit code %d' % r.returncode])[-1]
    return dict(kwargs, error=err[:500])


def compare_reference(case: str, sizes: Sequence[int] = (224,), device: str = 'cpu', repeats: int = 3) -> List[Dict[str, Any]]:
    """Zoo implementation vs reference at each size: time, peak memory, ratios (zoo / reference), max |diff|."""
    records = []
    for size in sizes:
        pair = {}
        for impl in ('zoo', 'reference'):
            rec = _run_case_subprocess('_reference_case', dict(case=case, impl=impl, img_size=size, device=device,
                                                               repeats=repeats))
            pair[impl] = rec
            records.append(rec)
        z, r = pair['zoo'], pair['reference']
        if 'error' not in z and 'error' not in r:
            z['ms_ratio'] = z['ms'] / r['ms']
            z['peak_mem_mb_ratio'] = z['peak_mem_mb'] / max(r['peak_mem_mb'], 1e-6)
            z['max_abs_diff'] = max(abs(a - b) for a, b in zip(z['first'], r['first']))
    for r in records:
        r.pop('first', None)
    return records


def compare_train_loop(sizes: Sequence[int] = (64,), device: str = 'cpu', repeats: int = 3) -> List[Dict[str, Any]]:
    records = []
    for size in sizes:
        recs = {impl: _run_case_subprocess('_train_loop_case', dict(impl=impl, img_size=size, device=device))
                for impl in ('zoo', 'reference', 'data')}
        z, r = recs['zoo'], recs['reference']
        if 'error' not in z and 'error' not in r:
            z['img_s_ratio'] = z['img_s'] / r['img_s']
            z['ms_ratio'] = z['ms'] / r['ms']
        records += list(recs.values())
    return records


REFERENCES = {
    'bra': lambda **kw: compare_reference('bra', **kw),
    'contmix': lambda **kw: compare_reference('contmix', **kw),
    'train_loop': lambda sizes=(64,), **kw: compare_train_loop(sizes=[s for s in sizes if s <= 128] or [64], **kw),
}


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


def matmul_peak_in_subprocess(device: str = 'cpu', dtype: str = 'fp32', timeout: float = 600, **kw) -> Dict[str, Any]:
    """:func:`matmul_peak` in a fresh process, like the models (same threads, same process set-up)."""
    return _run_case_subprocess('matmul_peak', dict(device=device, dtype=dtype, **kw), timeout=timeout)


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
            warmup: int = 1, repeats: int = 3, row_limit: int = 25) -> str:
    """torch.profiler table of a model's inference forward (``repeats`` calls after ``warmup``), top ops by self
    CPU time (and CUDA time on a GPU)."""
    from torch.profiler import ProfilerActivity
    from torch.profiler import profile as _profile
    dev = torch.device(device)
    model = build(name, dev).eval()
    in_chans = getattr(model, 'in_chans', None) or model.pretrained_cfg.get('input_size', (3,))[0]
    x = torch.randn(batch_size, in_chans, img_size, img_size, device=dev)
    autocast = dict(device_type=dev.type, dtype=DTYPES[dtype], enabled=DTYPES[dtype] != torch.float32)
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if dev.type == 'cuda' else [])
    with torch.no_grad(), torch.autocast(**autocast):
        for _ in range(warmup):
            model(x)
        _sync(dev)
        with _profile(activities=activities, record_shapes=False) as prof:
            for _ in range(repeats):
                model(x)
            _sync(dev)
    sort = 'self_cuda_time_total' if dev.type == 'cuda' else 'self_cpu_time_total'
    head = (f'{name}: {repeats} forward(s) of batch {batch_size} at {img_size} px on {device} ({dtype}), '
            f'{torch.get_num_threads()} threads; top {row_limit} ops by {sort}\n')
    return head + prof.key_averages().table(sort_by=sort, row_limit=row_limit)


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
            in_chans = getattr(model, 'in_chans', None) or model.pretrained_cfg.get('input_size', (3,))[0]
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


def measure_throughput_group_in_subprocess(timeout: float = 3600, **kwargs) -> List[Dict[str, Any]]:
    code = ('import json, sys; from zoo import bench; '
            'print("@@" + json.dumps(bench.measure_throughput_group(**json.loads(sys.argv[1]))))')
    names = list(kwargs.get('names', []))
    try:
        r = subprocess.run([sys.executable, '-c', code, json.dumps(kwargs)], capture_output=True, text=True,
                           timeout=timeout)
    except subprocess.TimeoutExpired:
        return [dict(model=n, error=f'group timed out after {timeout:.0f}s') for n in names]
    for line in r.stdout.splitlines():
        if line.startswith('@@'):
            return json.loads(line[2:])
    err = (r.stderr.strip().splitlines() or ['exit code %d' % r.returncode])[-1][:300]
    return [dict(model=n, error=err) for n in names]


# ---------------------------------------------------------------------------------------------------------
# Cost-vs-resolution plots, one PNG per family, zoo models next to their timm / official counterparts.

# timm models that implement the same design (or the design it extends), plotted with each zoo family
COUNTERPARTS = {
    'zoo_cbam': ['resnet50', 'resnet18'], 'zoo_triplet': ['resnet50', 'resnet18'], 'zoo_halonet': ['halonet26t'],
    'zoo_coat': ['coat_lite_tiny', 'coat_lite_small'], 'zoo_biformer': ['swin_tiny_patch4_window7_224'],
    'zoo_lkca': ['vit_tiny_patch16_224'], 'zoo_resattnet': ['resnet50'], 'zoo_overlock': ['convnext_tiny'],
}


def family_of(name: str) -> Optional[str]:
    """The zoo family module (``zoo_coat``, ...) of a zoo model, else None."""
    try:
        from zoo._registry import model_families
    except ImportError:
        return None
    arch = name.split('.', 1)[0]
    for module, names in model_families().items():
        if arch in names:
            return module
    return None


def plot_families(records: List[Dict[str, Any]], out_dir: str, keys: Sequence[str] = ('latency_ms', 'peak_mem_mb')) -> List[str]:
    """``scaling_<family>.png`` per zoo family in ``records``: its models and the counterparts (COUNTERPARTS, or
    any non-zoo model of the run) against input size. Returns the written paths."""
    ok = [r for r in records if 'error' not in r]
    fams: Dict[str, List[str]] = {}
    others = sorted({r['model'] for r in ok if family_of(r['model']) is None})
    for r in ok:
        f = family_of(r['model'])
        if f:
            fams.setdefault(f, [])
            if r['model'] not in fams[f]:
                fams[f].append(r['model'])
    paths = []
    for fam, models in sorted(fams.items()):
        refs = [m for m in others if m in COUNTERPARTS.get(fam, [])] or others
        sub = [r for r in ok if r['model'] in set(models) | set(refs)]
        if len({r['img_size'] for r in sub}) < 2:
            continue
        path = os.path.join(out_dir, f'scaling_{fam}.png')
        plot_scaling(sub, path, keys=keys, title=f'{fam}: cost vs input size (batch 1 latency, peak memory)')
        paths.append(path)
    return paths
