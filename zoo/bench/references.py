"""Implementation-vs-reference comparisons (the references the family issues ask for): BRA vs its expand+gather
reference, ContMix's neighbourhood aggregation vs an unfold reference, the trainer's loop vs a bare loop. Each case
runs in a fresh process: forward time (median of repeats) and peak memory."""
import os
import statistics
import tempfile
import time
import types
from typing import Any, Callable, Dict, List, Sequence

import torch
import torch.nn as nn

import zoo.models  # noqa: F401  (registers the zoo models with timm)
from .timing import alternating_rounds, rss_mb, run_case_subprocess, time_fn

REFERENCE_COLUMNS = ['case', 'impl', 'img_size', 'ms', 'ms_ratio', 'img_s', 'img_s_ratio', 'img_s_ratio_min',
                     'img_s_ratio_max', 'peak_mem_mb', 'peak_mem_mb_ratio', 'max_abs_diff', 'error']


def _bra_forward(impl: str, img_size: int, dev: torch.device) -> Callable[[], Any]:
    """The whole BiFormer-T forward, batch 1; the reference swaps every BRA layer for the expand+gather algorithm."""
    import timm
    from zoo.layers.bra_reference import bra_gather_reference
    from zoo.layers.bra import BiLevelRoutingAttention
    model = timm.create_model('zoo_biformer_tiny').to(dev).eval()
    if impl == 'reference':
        for m in model.modules():
            if isinstance(m, BiLevelRoutingAttention):
                m.forward = types.MethodType(bra_gather_reference, m)
    x = torch.randn(1, 3, img_size, img_size, device=dev)
    return lambda: model(x)


def _contmix_forward(impl: str, img_size: int, dev: torch.device) -> Callable[[], Any]:
    """The neighbourhood aggregation of a stage-3 ContMix (stride 16, 256 channels, 8 groups) at this input size."""
    from zoo.layers.na2d_reference import na2d_av_unfold_reference
    from zoo.layers.na2d import na2d_av
    hw = max(img_size // 16, 13)
    op = na2d_av if impl == 'zoo' else na2d_av_unfold_reference
    ins = []
    for k in (5, 13):
        a = torch.randn(1, 8, hw, hw, k * k, device=dev).softmax(-1)
        v = torch.randn(1, 8, hw, hw, 16, device=dev)
        ins.append((a, v, k))
    return lambda: [op(a, v, k) for a, v, k in ins]


def reference_case(case: str, impl: str, img_size: int, device: str = 'cpu', repeats: int = 3) -> Dict[str, Any]:
    """One (case, implementation, size) measurement; called in a subprocess by :func:`compare_reference`."""
    torch.manual_seed(0)
    dev = torch.device(device)
    rss0 = rss_mb()
    forwards = {'bra': _bra_forward, 'contmix': _contmix_forward}
    if case not in forwards:
        raise ValueError(f'unknown reference case {case!r}')
    fn = forwards[case](impl, img_size, dev)
    if dev.type == 'cuda':
        torch.cuda.reset_peak_memory_stats(dev)
    with torch.no_grad():
        out = fn()
        t = time_fn(fn, dev, warmup=1, repeats=repeats)
    out = out if isinstance(out, torch.Tensor) else torch.cat([o.flatten() for o in out])
    peak = torch.cuda.max_memory_allocated(dev) / 2 ** 20 if dev.type == 'cuda' else rss_mb() - rss0
    return dict(case=case, impl=impl, img_size=img_size, ms=t['median'] * 1e3, peak_mem_mb=peak,
                checksum=float(out.double().abs().sum()), first=out.flatten()[:256].tolist())


def _loader_throughput(img_size: int, steps: int, model_name: str, batch_size: int) -> Dict[str, Any]:
    """Throughput of the trainer's own train loader (generated shapes + albumentations train transforms, workers)."""
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
    return dict(case='train_loop', impl='data', img_size=img_size, img_s=n / dt, ms=dt / steps * 1e3)


def _trainer_state(model: nn.Module, dev: torch.device, updates: int):
    """The training state (optimizer, scheduler, ...) the zoo trainer builds for ``model`` from a plain-SGD config,
    and the config."""
    from zoo.train.build import build_training, wrap_model
    from zoo.train.config import TrainConfig
    from zoo.train.utils import DistInfo
    cfg = TrainConfig.from_dict(dict(opt='momentum', lr=0.01, momentum=0.9, weight_decay=0.0, smoothing=0.0, mixup=0.0,
                                     cutmix=0.0, model_ema=False, amp=False, clip_grad=None, grad_accum_steps=1,
                                     channels_last=False, epochs=1, warmup_epochs=0, cooldown_epochs=0,
                                     sched_on_updates=True))
    parts = build_training(model, cfg, 10, dev, updates_per_epoch=updates)
    return parts.state(wrap_model(model, cfg, DistInfo(device=dev)), cfg, dev), cfg


def _loop_sides(model: nn.Module, dev: torch.device, batches, rounds: int, steps: int):
    """(the zoo trainer's loop, a bare PyTorch loop with the same optimizer), each running ``k`` steps, and the
    trainer's optimizer."""
    from zoo.train.loop import train_one_epoch
    state, cfg = _trainer_state(model, dev, (rounds + 1) * steps)
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)

    def bare(k):
        model.train()
        for i in range(k):
            x, y = batches[i % len(batches)]
            loss = nn.functional.cross_entropy(model(x.to(dev)), y.to(dev))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()

    def zoo_loop(k):
        train_one_epoch(state, (batches[i % len(batches)] for i in range(k)), num_steps=k,
                        log_interval=cfg.output.log_interval)
    same_opt = type(state.optimizer) is type(opt) and all(
        state.optimizer.defaults[k] == opt.defaults[k] for k in ('lr', 'momentum', 'nesterov', 'weight_decay'))
    return {'zoo': zoo_loop, 'reference': bare}, state.optimizer, same_opt


def train_loop_case(impl: str, img_size: int = 64, device: str = 'cpu', repeats: int = 3, steps: int = 5,
                    rounds: int = 6, model_name: str = 'zoo_resnet18_cbam', batch_size: int = 32) -> Dict[str, Any]:
    """``impl='alternate'``: training-step time of the zoo trainer's loop (``train_one_epoch`` with what the config
    builds) vs a bare PyTorch loop, on the same model, the same batches in memory and the same optimizer (SGD,
    momentum 0.9: the config's ``opt='momentum'`` is timm's plain SGD, checked), in alternating rounds of
    ``steps`` steps in one process; medians over the rounds and the range of the per-round ratios.
    ``impl='data'``: throughput of the trainer's own train loader that feeds the loop."""
    import timm
    dev = torch.device(device)
    torch.manual_seed(0)
    if impl == 'data':
        return _loader_throughput(img_size, steps, model_name, batch_size)
    if impl != 'alternate':
        raise ValueError(f'train_loop case: impl is alternate or data, not {impl!r}')
    model = timm.create_model(model_name, num_classes=10).to(dev)
    batches = [(torch.randn(batch_size, 3, img_size, img_size), torch.randint(0, 10, (batch_size,))) for _ in range(4)]
    sides, optimizer, same_opt = _loop_sides(model, dev, batches, rounds, steps)
    for fn in sides.values():  # warm-up
        fn(2)
    times = alternating_rounds({side: lambda fn=fn: fn(steps) for side, fn in sides.items()}, dev, rounds, per=steps)
    per_round = [b / z for z, b in zip(times['zoo'], times['reference'])]
    out = {}
    for side in sides:
        t = statistics.median(times[side])
        out[side] = dict(case='train_loop', impl=side, img_size=img_size, model=model_name, batch_size=batch_size,
                         rounds=rounds, steps=steps, ms=t * 1e3, img_s=batch_size / t)
    out['zoo'].update(img_s_ratio_min=min(per_round), img_s_ratio_max=max(per_round), same_optimizer=same_opt,
                      optimizer=repr(optimizer.defaults))
    return dict(records=[out['zoo'], out['reference']])


def compare_reference(case: str, sizes: Sequence[int] = (224,), device: str = 'cpu', repeats: int = 3) -> List[Dict[str, Any]]:
    """Zoo implementation vs reference at each size: time, peak memory, ratios (zoo / reference), max |diff|."""
    records = []
    for size in sizes:
        pair = {}
        for impl in ('zoo', 'reference'):
            rec = run_case_subprocess(reference_case, dict(case=case, impl=impl, img_size=size, device=device,
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


def compare_train_loop(sizes: Sequence[int] = (64,), device: str = 'cpu', repeats: int = 3, rounds: int = 6,
                       steps: int = 5) -> List[Dict[str, Any]]:
    """Trainer loop vs bare loop (``rounds`` alternating rounds of ``steps`` steps, one process per size), and the
    data loader's throughput."""
    records = []
    for size in sizes:
        both = run_case_subprocess(train_loop_case, dict(impl='alternate', img_size=size, device=device,
                                                           rounds=rounds, steps=steps))
        if 'error' in both:
            records.append(dict(case='train_loop', impl='alternate', img_size=size, error=both['error']))
        else:
            z, r = both['records']
            z['img_s_ratio'] = z['img_s'] / r['img_s']
            z['ms_ratio'] = z['ms'] / r['ms']
            records += [z, r]
        records.append(run_case_subprocess(train_loop_case, dict(impl='data', img_size=size, device=device)))
    return records


REFERENCES = {
    'bra': lambda **kw: compare_reference('bra', **kw),
    'contmix': lambda **kw: compare_reference('contmix', **kw),
    'train_loop': lambda sizes=(64,), **kw: compare_train_loop(sizes=[s for s in sizes if s <= 128] or [64], **kw),
}
# the comparisons that take --rounds / --steps (alternating rounds in one process)
REFERENCE_ROUNDS = {'train_loop'}
