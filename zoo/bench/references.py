"""Implementation-vs-reference comparisons (the references the family issues ask for): BRA vs its expand+gather
reference, ContMix's neighbourhood aggregation vs an unfold reference, the trainer's loop vs a bare loop."""
import os
import time
from typing import Any, Dict, List, Sequence

import torch
import torch.nn as nn

from .metrics import _rss_mb, _run_case_subprocess, _sync, time_fn

# ---------------------------------------------------------------------------------------------------------
# Implementation-vs-reference comparisons (the references the family issues ask for), each case measured in
# a fresh process: forward time (median of repeats) and peak memory.

REFERENCE_COLUMNS = ['case', 'impl', 'img_size', 'ms', 'ms_ratio', 'img_s', 'img_s_ratio', 'img_s_ratio_min',
                     'img_s_ratio_max', 'peak_mem_mb', 'peak_mem_mb_ratio', 'max_abs_diff', 'error']


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


def _train_loop_case(impl: str, img_size: int = 64, device: str = 'cpu', repeats: int = 3, steps: int = 5,
                     rounds: int = 6, model_name: str = 'zoo_resnet18_cbam', batch_size: int = 32) -> Dict[str, Any]:
    """``impl='alternate'``: training-step time of the zoo trainer's loop (``run_train_steps``'s
    ``train_one_epoch`` with what the config builds) vs a bare PyTorch loop, on the same model, the same batches in
    memory and the same optimizer (SGD, momentum 0.9: the config's ``opt='momentum'`` is timm's plain SGD, checked),
    in alternating rounds of ``steps`` steps (which side goes first alternates) in one process; medians over the
    rounds and the range of the per-round ratios. ``impl='data'``: throughput of the trainer's own train loader
    (generated shapes + albumentations train transforms, workers) that feeds the loop."""
    import statistics
    import tempfile

    import timm

    import zoo  # noqa: F401
    dev = torch.device(device)
    torch.manual_seed(0)
    if impl == 'data':
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
    if impl != 'alternate':
        raise ValueError(f'train_loop case: impl is alternate or data, not {impl!r}')
    from zoo.train.build import build_training, wrap_model
    from zoo.train.config import TrainConfig
    from zoo.train.loop import train_one_epoch
    from zoo.train.utils import DistInfo
    model = timm.create_model(model_name, num_classes=10).to(dev)
    batches = [(torch.randn(batch_size, 3, img_size, img_size), torch.randint(0, 10, (batch_size,))) for _ in range(4)]
    cfg = TrainConfig.from_dict(dict(opt='momentum', lr=0.01, momentum=0.9, weight_decay=0.0, smoothing=0.0, mixup=0.0,
                                     cutmix=0.0, model_ema=False, amp=False, clip_grad=None, grad_accum_steps=1,
                                     channels_last=False, epochs=1, warmup_epochs=0, cooldown_epochs=0,
                                     sched_on_updates=True))
    total = (rounds + 1) * steps
    parts = build_training(model, cfg, 10, dev, updates_per_epoch=total)
    state = parts.state(wrap_model(model, cfg, DistInfo(device=dev)), cfg, dev)
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    same_opt = type(state.optimizer) is type(opt) and all(
        state.optimizer.defaults[k] == opt.defaults[k] for k in ('lr', 'momentum', 'nesterov', 'weight_decay'))

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

    sides = {'zoo': zoo_loop, 'reference': bare}
    for fn in sides.values():  # warm-up
        fn(2)
    times: Dict[str, List[float]] = {'zoo': [], 'reference': []}
    for r in range(rounds):
        for side in (('zoo', 'reference') if r % 2 == 0 else ('reference', 'zoo')):
            _sync(dev)
            t0 = time.perf_counter()
            sides[side](steps)
            _sync(dev)
            times[side].append((time.perf_counter() - t0) / steps)
    per_round = [b / z for z, b in zip(times['zoo'], times['reference'])]
    out = {}
    for side in sides:
        t = statistics.median(times[side])
        out[side] = dict(case='train_loop', impl=side, img_size=img_size, model=model_name, batch_size=batch_size,
                         rounds=rounds, steps=steps, ms=t * 1e3, img_s=batch_size / t)
    out['zoo'].update(img_s_ratio_min=min(per_round), img_s_ratio_max=max(per_round), same_optimizer=same_opt,
                      optimizer=repr(state.optimizer.defaults))
    return dict(records=[out['zoo'], out['reference']])


def compare_reference(case: str, sizes: Sequence[int] = (224,), device: str = 'cpu', repeats: int = 3) -> List[Dict[str, Any]]:
    """Zoo implementation vs reference at each size: time, peak memory, ratios (zoo / reference), max |diff|."""
    records = []
    for size in sizes:
        pair = {}
        for impl in ('zoo', 'reference'):
            rec = _run_case_subprocess(_reference_case, dict(case=case, impl=impl, img_size=size, device=device,
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
        both = _run_case_subprocess(_train_loop_case, dict(impl='alternate', img_size=size, device=device,
                                                           rounds=rounds, steps=steps))
        if 'error' in both:
            records.append(dict(case='train_loop', impl='alternate', img_size=size, error=both['error']))
        else:
            z, r = both['records']
            z['img_s_ratio'] = z['img_s'] / r['img_s']
            z['ms_ratio'] = z['ms'] / r['ms']
            records += [z, r]
        records.append(_run_case_subprocess(_train_loop_case, dict(impl='data', img_size=size, device=device)))
    return records


REFERENCES = {
    'bra': lambda **kw: compare_reference('bra', **kw),
    'contmix': lambda **kw: compare_reference('contmix', **kw),
    'train_loop': lambda sizes=(64,), **kw: compare_train_loop(sizes=[s for s in sizes if s <= 128] or [64], **kw),
}
# the comparisons that take --rounds / --steps (alternating rounds in one process)
REFERENCE_ROUNDS = {'train_loop'}
