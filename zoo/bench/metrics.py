"""Cost figures of one model, the same way for every model: parameters, GMACs (torch's own FLOP counter,
``torch.utils.flop_counter.FlopCounterMode``; GMACs = FLOPs / 2), inference latency (batch 1) and throughput
(larger batch), training-step throughput (forward + backward + optimizer step) and peak memory (CUDA allocator
peak on GPU; on CPU the resident-set high-water mark of a fresh worker process, so every measurement runs in its
own subprocess and one model's failure cannot stop the run). Timings are medians over repeats with their spread;
compare models by the ratios of one run.
"""
import math
import os
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Optional, Sequence

import torch
import torch.nn as nn

from .machine import peak_fraction_alternating, speedup_alternating
from .pair import build
from .timing import DTYPES, count_params, in_chans, rss_mb, run_case_subprocess, tensors, time_fn


def count_gmacs(model: nn.Module, input_size: Sequence[int], batch_size: int = 1) -> float:
    """Multiply-accumulates (in G) of one forward pass, from torch's FLOP counter (FLOPs / 2)."""
    from torch.utils.flop_counter import FlopCounterMode
    x = torch.randn(batch_size, *input_size, device=next(model.parameters()).device)
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        model(x)
    return counter.get_total_flops() / 2 / 1e9 / batch_size


@dataclass
class MeasureOptions:
    """How :func:`measure` measures. ``peak_alternate`` (needs ``flops``): also ``frac_peak_<dtype>_alt``, the batch
    forward's fraction of the matmul peak timed in alternating rounds with the matmul in this process (robust to a
    shared machine's load). ``vs_fp32`` (with a ``dtype`` other than fp32): also ``speedup_vs_fp32`` (with ``_min``
    / ``_max``), the autocast batch forward's speed over the same forward in fp32, timed in alternating rounds, and
    how far its logits are from fp32's: ``rel_diff_vs_fp32`` = max |autocast - fp32| / max |fp32| and
    ``finite_<dtype>`` (no NaN / inf). ``rounds``: alternating rounds (default ``max(repeats, 3)``).
    ``no_native``: why the device has no native ``dtype``; then ``speedup_vs_fp32`` holds that text and neither the
    speed-up nor ``frac_peak_<dtype>_alt`` is timed."""
    img_size: int = 224
    batch_size: int = 16
    device: str = 'cpu'
    dtype: str = 'fp32'
    channels_last: bool = False
    compile: bool = False
    warmup: int = 2
    repeats: int = 5
    train: bool = True
    infer: bool = True
    flops: bool = True
    peak_alternate: bool = False
    vs_fp32: bool = False
    rounds: int = 0
    no_native: str = ''

    @property
    def alt_rounds(self) -> int:
        return self.rounds or max(self.repeats, 3)

    def autocast(self) -> Dict[str, Any]:
        amp_dtype = DTYPES[self.dtype]
        return dict(device_type=torch.device(self.device).type, dtype=amp_dtype, enabled=amp_dtype != torch.float32)

    def input(self, model_chans: int, batch_size: int) -> torch.Tensor:
        mf = torch.channels_last if self.channels_last else torch.contiguous_format
        x = torch.randn(batch_size, model_chans, self.img_size, self.img_size, device=torch.device(self.device))
        return x.to(memory_format=mf)


def measure(name: str, model_kwargs: Optional[Dict[str, Any]] = None, **options) -> Dict[str, Any]:
    """All figures for one model at one input size (run it in a fresh process for a clean memory peak). ``name``:
    a timm / zoo model (built with ``model_kwargs``) or an official ``/path/file.py:factory(args)``; ``options``:
    the fields of :class:`MeasureOptions`."""
    o = MeasureOptions(**options)
    dev = torch.device(o.device)
    rec: Dict[str, Any] = dict(model=name, img_size=o.img_size, batch_size=o.batch_size, device=o.device,
                               dtype=o.dtype, channels_last=o.channels_last, compile=o.compile,
                               threads=torch.get_num_threads())
    rss0 = rss_mb()
    model = build(name, dev, channels_last=o.channels_last, **(model_kwargs or {}))
    chans = in_chans(model)
    rec['params_m'] = count_params(model) / 1e6
    if o.flops:
        rec['gmacs'] = count_gmacs(model.eval(), (chans, o.img_size, o.img_size))
    if o.compile:
        model = torch.compile(model)
    if dev.type == 'cuda':
        torch.cuda.reset_peak_memory_stats(dev)
    if o.infer:
        rec.update(infer_figures(model, chans, o, rec.get('gmacs')))
    if o.train:
        rec.update(train_figures(model, chans, o))
    rec.update(peak_memory(dev, rss0))
    return rec


def _forward(model: nn.Module, x: torch.Tensor, autocast: Dict[str, Any]) -> Callable[[], None]:
    def step():
        with torch.no_grad(), torch.autocast(**autocast):
            model(x)
    return step


def infer_figures(model: nn.Module, chans: int, o: MeasureOptions, gmacs: Optional[float]) -> Dict[str, Any]:
    """Latency (batch 1) and throughput (``o.batch_size``) of the inference forward, with the ``vs_fp32`` and
    ``peak_alternate`` figures of the batch forward."""
    model.eval()
    dev, autocast = torch.device(o.device), o.autocast()
    t = time_fn(_forward(model, o.input(chans, 1), autocast), dev, o.warmup, o.repeats)
    rec = {'latency_ms': t['median'] * 1e3, 'latency_spread_ms': t['spread'] * 1e3}
    bs = o.batch_size
    if bs == 1:  # batch 1: the latency run is the throughput run
        rec['infer_img_s'] = 1e3 / rec['latency_ms']
        rec['infer_spread_img_s'] = rec['latency_spread_ms'] * 1e3 / rec['latency_ms'] ** 2
        return rec
    x = o.input(chans, bs)
    step = _forward(model, x, autocast)
    t = time_fn(step, dev, o.warmup, o.repeats)
    if o.vs_fp32 and DTYPES[o.dtype] != torch.float32:
        rec.update(compare_fp32(model, x, autocast, o.device, o.alt_rounds, o.dtype, o.no_native))
    if o.peak_alternate and gmacs and not o.no_native:
        alt = peak_fraction_alternating(step, 2.0 * gmacs * 1e9 * bs, device=o.device, dtype=o.dtype,
                                        rounds=o.alt_rounds)
        k = f'frac_peak_{o.dtype}_alt'
        rec[k], rec[k + '_min'], rec[k + '_max'] = alt['frac'], alt['frac_min'], alt['frac_max']
        rec[f'matmul_peak_{o.dtype}_alt_tflops'] = alt['peak_flops_s'] / 1e12
    rec['infer_img_s'] = bs / t['median']
    rec['infer_spread_img_s'] = bs * t['spread'] / t['median'] ** 2
    return rec


def train_figures(model: nn.Module, chans: int, o: MeasureOptions) -> Dict[str, Any]:
    """Throughput of a training step (forward + backward + SGD step) at ``o.batch_size``."""
    model.train()
    dev, autocast, bs = torch.device(o.device), o.autocast(), o.batch_size
    opt = torch.optim.SGD(model.parameters(), lr=1e-4, momentum=0.9)
    x = o.input(chans, bs)
    target = torch.randint(0, max(getattr(model, 'num_classes', 1000), 1), (bs,), device=dev)

    def train_step():
        with torch.autocast(**autocast):
            out = model(x)
        # every logits output (an official model may return auxiliary heads in a tuple / dict)
        loss = sum(nn.functional.cross_entropy(y.float(), target) for y in tensors(out))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    t = time_fn(train_step, dev, max(1, o.warmup // 2), max(2, o.repeats // 2))
    return {'train_img_s': bs / t['median'], 'train_spread_img_s': bs * t['spread'] / t['median'] ** 2}


def peak_memory(dev: torch.device, rss0: float) -> Dict[str, Any]:
    """The CUDA allocator's peak on a GPU, else the growth of this process's resident-set high-water mark."""
    if dev.type == 'cuda':
        return {'peak_mem_mb': torch.cuda.max_memory_allocated(dev) / 2 ** 20, 'mem_kind': 'cuda_allocator_peak'}
    return {'peak_mem_mb': rss_mb() - rss0, 'mem_kind': 'cpu_rss_high_water_delta'}


def compare_fp32(model: nn.Module, x: torch.Tensor, autocast: Dict[str, Any], device: str, rounds: int,
                 dtype: str, no_native: str = '') -> Dict[str, Any]:
    """The autocast forward of ``model`` on ``x`` against the fp32 forward: speed-up in alternating rounds (or
    ``no_native``, untimed), and the difference of their logits (the fields :class:`MeasureOptions` documents for
    ``vs_fp32``)."""
    def forward(amp: bool):
        with torch.no_grad(), torch.autocast(**dict(autocast, enabled=amp)):
            return model(x)
    ref, low = (torch.cat([t.float().flatten() for t in tensors(forward(amp))]) for amp in (False, True))
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
    return run_case_subprocess(measure, kwargs, timeout=timeout, failed=failed)


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
            x = torch.randn(batch_size, in_chans(model), size, size, device=dev)
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


def throughput_group_json(**kwargs) -> Dict[str, Any]:
    return dict(records=measure_throughput_group(**kwargs))


def measure_throughput_group_in_subprocess(timeout: float = 3600, **kwargs) -> List[Dict[str, Any]]:
    """:func:`measure_throughput_group` in a fresh process; a failure of the whole group is an error per model."""
    out = run_case_subprocess(throughput_group_json, kwargs, timeout=timeout, failed={})
    if 'error' in out:
        return [dict(model=n, error=f"group: {out['error'][:300]}") for n in kwargs.get('names', [])]
    return out['records']
