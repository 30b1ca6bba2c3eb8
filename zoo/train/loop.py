"""One training step loop, one epoch, and evaluation -- independent of where the model, data and optimiser come
from (``zoo.train.build`` makes them from a config).

``train_one_epoch(state, batches, ...)`` is the loop ``tools/train.py`` runs (AMP, gradient accumulation, DDP
``no_sync``, clipping, GradScaler, EMA, per-update LR schedule, non-finite loss check, interval logging, a stop at
an update boundary when asked -- e.g. by a signal, see :class:`StopSignals` -- and the exact continuation of such an
epoch).
``evaluate(model, loader, ...)`` returns loss, top-1, top-5, per-class accuracy and images/s (summed over ranks).
"""
import itertools
import logging
import math
import signal
import threading
import time
from contextlib import nullcontext
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, Iterable, List, Optional, Sequence, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F

from .utils import DistInfo, autocast_context, restore_rng_state

__all__ = ['NonFiniteLossError', 'StopSignals', 'agreed_signal', 'TrainState', 'train_one_epoch', 'evaluate',
           'unpack_batch']

_logger = logging.getLogger('zoo.train')


class NonFiniteLossError(RuntimeError):
    """The training loss became NaN or infinite; the step was not applied (``epoch`` / ``step`` are 0-based,
    the message counts from 1)."""

    def __init__(self, epoch: int, step: int, value: float):
        super().__init__(f'loss is {value} at epoch {epoch + 1}, step {step + 1}; stopping (the step was not applied)')
        self.epoch, self.step, self.value = epoch, step, value


class StopSignals:
    """``with StopSignals() as stop:`` -- while inside, SIGTERM and SIGINT only record their number in
    ``stop.signum`` (``stop()`` returns it, 0 before any); the loop reads it at step boundaries. The previous
    handlers are restored on exit. Outside the main thread (where Python cannot install handlers) it does nothing."""

    SIGNALS = (signal.SIGTERM, signal.SIGINT)

    def __init__(self):
        self.signum = 0
        self._previous: Dict[int, Any] = {}

    def __call__(self) -> int:
        return self.signum

    def _handle(self, signum, frame) -> None:
        self.signum = self.signum or signum

    def __enter__(self) -> 'StopSignals':
        if threading.current_thread() is threading.main_thread():
            for s in self.SIGNALS:
                self._previous[s] = signal.signal(s, self._handle)
        return self

    def __exit__(self, *exc) -> None:
        for s, handler in self._previous.items():
            signal.signal(s, handler if handler is not None else signal.SIG_DFL)
        self._previous.clear()


@dataclass
class TrainState:
    """Everything one training step needs; ``model`` may be wrapped by DDP and/or torch.compile."""
    model: nn.Module
    optimizer: torch.optim.Optimizer
    loss_fn: Callable
    device: torch.device = torch.device('cpu')
    scheduler: Any = None
    mixup_fn: Optional[Callable] = None
    model_ema: Any = None
    scaler: Any = None
    amp_dtype: Optional[torch.dtype] = None
    channels_last: bool = False
    grad_accum_steps: int = 1
    clip_grad: Optional[float] = None
    clip_mode: str = 'norm'
    num_updates: int = 0
    dist: DistInfo = field(default_factory=DistInfo)


def agreed_signal(stop: Callable[[], int], dist: DistInfo) -> int:
    """The stop signal any rank has received (0: none); every rank gets the same answer."""
    sig = stop()
    if dist.distributed:
        import torch.distributed as tdist
        flag = torch.tensor([sig], device=dist.device if dist.backend == 'nccl' else 'cpu')
        tdist.all_reduce(flag, op=tdist.ReduceOp.MAX)
        sig = int(flag)
    return sig


def unpack_batch(batch) -> Tuple[Optional[torch.Tensor], Optional[torch.Tensor], List[Tuple[str, str]]]:
    """``(x, y)`` or ``(x, y, corrupt)`` from ``collate_skip_corrupt``."""
    if isinstance(batch, (list, tuple)) and len(batch) == 3:
        return batch[0], batch[1], batch[2]
    return batch[0], batch[1], []


def _lr(optimizer) -> float:
    lrs = [g['lr'] for g in optimizer.param_groups]
    return sum(lrs) / len(lrs)


@dataclass
class _EpochMeter:
    """The running sums of one epoch and the clocks of its log lines."""
    loss_sum: float = 0.0
    n_seen: int = 0
    n_logged: int = 0
    data_time: float = 0.0
    t0: float = 0.0
    t_log: float = 0.0
    stop_sig: int = 0

    @property
    def loss(self) -> float:
        return self.loss_sum / max(self.n_seen, 1)


def _replay(it, start: int, on_corrupt: Optional[Callable], progress: Any, resume_from: Dict[str, Any]):
    """The part of a resumed epoch that was trained before the stop: read, not trained on; then the RNG state of
    the stop. Returns the last readable batch."""
    last_xy = None
    for batch in itertools.islice(it, start):
        x, y, bad = unpack_batch(batch)
        if bad and on_corrupt is not None:
            on_corrupt(bad)
        last_xy = (x, y) if x is not None else last_xy
        if progress is not None:
            progress.update(1)
    if resume_from.get('rng') is not None:
        restore_rng_state(resume_from['rng'])
    return last_xy


def _forward_backward(state: TrainState, x, y, weight: float, accum_steps: int, need_update: bool,
                      should_stop: Optional[Callable[[], int]], meter: _EpochMeter, epoch: int, step: int) -> float:
    """Forward, loss, backward (scaled for accumulation / a zero-weight batch); returns the loss. Under DDP the
    ranks share a non-finite loss and a stop request (``meter.stop_sig``)."""
    model, device = state.model, state.device
    non_blocking = device.type == 'cuda'
    x = x.to(device, non_blocking=non_blocking)
    y = y.to(device, non_blocking=non_blocking)
    if state.channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    if state.mixup_fn is not None:
        x, y = state.mixup_fn(x, y)
    sync_ctx = _no_sync(model) if (state.dist.distributed and not need_update) else nullcontext()
    with sync_ctx:
        with autocast_context(device, state.amp_dtype):
            out = model(x)
            loss = state.loss_fn(out, y)
        loss_val = float(loss.detach())
        if state.dist.distributed:
            # every rank learns about a non-finite loss, and a stop request, on any rank, so all stop at the same step
            flag = torch.tensor([0.0 if math.isfinite(loss_val) else 1.0,
                                 float(should_stop() if should_stop is not None else 0)],
                                device=device if state.dist.backend == 'nccl' else 'cpu')
            torch.distributed.all_reduce(flag, op=torch.distributed.ReduceOp.MAX)
            if float(flag[0]) > 0 and math.isfinite(loss_val):
                loss_val = float('nan')
            meter.stop_sig = meter.stop_sig or int(flag[1])
        if not math.isfinite(loss_val):
            state.optimizer.zero_grad(set_to_none=True)
            raise NonFiniteLossError(epoch, step, loss_val)
        if accum_steps > 1 or weight != 1.0:
            loss = loss * (weight / accum_steps)
        if state.scaler is not None:
            state.scaler.scale(loss).backward()
        else:
            loss.backward()
    return loss_val


def _update(state: TrainState, meter: _EpochMeter, should_stop: Optional[Callable[[], int]]) -> None:
    """One optimizer update (clipping, GradScaler), then EMA and the per-update schedule."""
    model, optimizer = state.model, state.optimizer
    if state.scaler is not None:
        if state.clip_grad is not None:
            state.scaler.unscale_(optimizer)
            _clip(model, state.clip_grad, state.clip_mode)
        state.scaler.step(optimizer)
        state.scaler.update()
    else:
        if state.clip_grad is not None:
            _clip(model, state.clip_grad, state.clip_mode)
        optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    state.num_updates += 1
    if state.model_ema is not None:
        state.model_ema.update(model, step=state.num_updates)
    if state.scheduler is not None:
        state.scheduler.step_update(num_updates=state.num_updates, metric=meter.loss)
    if should_stop is not None and not state.dist.distributed:
        meter.stop_sig = meter.stop_sig or should_stop()


def _report(state: TrainState, meter: _EpochMeter, epoch: int, done: int, num_steps: int, log_interval: int,
            progress: Any, on_log: Optional[Callable[[Dict[str, float]], None]]) -> None:
    """The progress bar, and every ``log_interval`` steps a log line and ``on_log``."""
    world = state.dist.world_size
    if progress is not None:
        progress.update(1)
    if progress is not None and (done % 5 == 0 or done == num_steps):
        rate = meter.n_seen * world / max(time.perf_counter() - meter.t0, 1e-9)
        progress.set_postfix(loss=f'{meter.loss:.4f}', lr=f'{_lr(state.optimizer):.2e}', img_s=f'{rate:.0f}')
    if log_interval and (done % log_interval == 0 or done == num_steps):
        now = time.perf_counter()
        rate = meter.n_logged * world / max(now - meter.t_log, 1e-9)
        info = dict(epoch=epoch, step=done, steps=num_steps, loss=meter.loss, lr=_lr(state.optimizer),
                    images_per_s=rate, data_time=meter.data_time / done, global_step=state.num_updates)
        if progress is None and state.dist.rank == 0:
            _logger.info(f'Train: {epoch} [{done:>5d}/{num_steps} ({100.0 * done / num_steps:3.0f}%)]  '
                         f'Loss: {info["loss"]:.4f}  LR: {info["lr"]:.3e}  {rate:.1f} img/s  '
                         f'Data: {1e3 * meter.data_time / done:.1f} ms/step')
        if on_log is not None:
            on_log(info)
        meter.t_log, meter.n_logged = now, 0


def train_one_epoch(state: TrainState, batches: Iterable, epoch: int = 0, *, num_steps: Optional[int] = None,
                    log_interval: int = 50, on_corrupt: Optional[Callable] = None, progress: Any = None,
                    on_log: Optional[Callable[[Dict[str, float]], None]] = None,
                    should_stop: Optional[Callable[[], int]] = None,
                    resume_from: Optional[Dict[str, Any]] = None) -> Dict[str, Any]:
    """One pass over ``batches`` (at most ``num_steps``); returns loss, lr, images/s, steps and updates.

    Raises NonFiniteLossError before applying a step whose loss is NaN/inf. ``should_stop()`` is read after each
    optimizer update (so, with gradient accumulation, a stop waits for the end of the group); a non-zero value (a
    signal number) ends the epoch there, with ``stopped_by`` set to it and ``loss_sum`` / ``n_seen`` in the result.
    Under DDP the ranks share it at every step, so all stop after the same update. ``resume_from`` (``step``,
    ``loss_sum``, ``n_seen``, ``seconds`` and the global RNG state ``rng`` of such a stop) continues that epoch
    exactly: the first ``step`` batches are read but not trained on (the sampler, the loader workers and the
    augmentation RNGs advance as they did), then ``rng`` is restored.
    """
    state.model.train()
    if num_steps is None:
        num_steps = len(batches)
    accum = max(1, state.grad_accum_steps)
    last_accum = num_steps % accum or accum
    first_of_last_group = num_steps - last_accum
    resume_from = resume_from or {}
    start = int(resume_from.get('step', 0))
    meter = _EpochMeter(float(resume_from.get('loss_sum', 0.0)), int(resume_from.get('n_seen', 0)))
    it = iter(batches) if start < num_steps else iter(())
    last_xy = _replay(it, start, on_corrupt, progress, resume_from)
    meter.t_log = meter.t0 = time.perf_counter()
    t_data = time.perf_counter()
    state.optimizer.zero_grad(set_to_none=True)
    step = start - 1
    for step, batch in enumerate(it, start):
        if step >= num_steps:
            break
        x, y, bad = unpack_batch(batch)
        if bad and on_corrupt is not None:
            on_corrupt(bad)
        meter.data_time += time.perf_counter() - t_data
        need_update = step + 1 == num_steps or (step + 1) % accum == 0
        weight = 1.0
        if x is None and state.dist.distributed:
            # every image of this batch was unreadable: keep the ranks' collectives in step with a zero-weight
            # pass over the previous batch
            if last_xy is None:
                raise RuntimeError('the first batch of a distributed epoch had only unreadable images; '
                                   'run with verify_images=true to drop them up front')
            x, y, weight = last_xy[0], last_xy[1], 0.0
        if x is not None:
            last_xy = (x, y) if weight else last_xy
            loss_val = _forward_backward(state, x, y, weight, last_accum if step >= first_of_last_group else accum,
                                         need_update, should_stop, meter, epoch, step)
            bs = x.shape[0] if weight else 0
            meter.loss_sum += loss_val * bs
            meter.n_seen += bs
            meter.n_logged += bs
        if need_update:
            _update(state, meter, should_stop)
        _report(state, meter, epoch, step + 1, num_steps, log_interval, progress, on_log)
        if need_update and meter.stop_sig:
            break
        t_data = time.perf_counter()
    return _epoch_stats(state, meter, step, num_steps, float(resume_from.get('seconds', 0.0)))


def _epoch_stats(state: TrainState, meter: _EpochMeter, step: int, num_steps: int,
                 seconds_before: float) -> Dict[str, Any]:
    if state.device.type == 'cuda':
        torch.cuda.synchronize(state.device)
    world = state.dist.world_size
    elapsed = time.perf_counter() - meter.t0 + seconds_before
    steps = step + 1 if step >= 0 else 0
    return dict(loss=meter.loss, lr=_lr(state.optimizer), images=meter.n_seen * world, seconds=elapsed,
                images_per_s=meter.n_seen * world / max(elapsed, 1e-9), steps=min(steps, num_steps),
                updates=state.num_updates, stopped_by=meter.stop_sig, loss_sum=meter.loss_sum, n_seen=meter.n_seen)


def _no_sync(model: nn.Module):
    """DDP's no_sync() (skip the gradient all-reduce on accumulation steps), also through torch.compile."""
    for m in (model, getattr(model, '_orig_mod', None)):
        if m is not None and isinstance(m, torch.nn.parallel.DistributedDataParallel):
            return m.no_sync()
    return nullcontext()


def _clip(model: nn.Module, value: float, mode: str) -> None:
    from timm.utils import dispatch_clip_grad
    dispatch_clip_grad([p for p in model.parameters() if p.requires_grad], value=value, mode=mode)


def _reduce_sums(sums, cls_total, cls_correct, elapsed: float, model_time: float, dist: DistInfo):
    """The evaluation sums of all ranks (the times averaged)."""
    import torch.distributed as tdist
    num_classes = len(cls_total)
    buf = torch.cat([sums, cls_total, cls_correct, torch.tensor([elapsed, model_time], dtype=torch.float64)])
    buf = buf.to(dist.device) if dist.backend == 'nccl' else buf
    tdist.all_reduce(buf)
    buf = buf.cpu()
    sums, cls_total, cls_correct = buf[:4], buf[4:4 + num_classes], buf[4 + num_classes:4 + 2 * num_classes]
    return sums, cls_total, cls_correct, float(buf[-2]) / dist.world_size, float(buf[-1]) / dist.world_size


@torch.no_grad()
def evaluate(model: nn.Module, loader: Iterable, device: torch.device, num_classes: int, *,
             amp_dtype: Optional[torch.dtype] = None, channels_last: bool = False,
             dist: Optional[DistInfo] = None, on_corrupt: Optional[Callable] = None,
             class_names: Optional[Sequence[str]] = None, progress: bool = False,
             desc: str = 'eval') -> Dict[str, Any]:
    """Loss (cross-entropy), top-1 / top-5 (%), per-class accuracy (%), images/s (end to end and model only).

    With ``dist`` (distributed), each rank evaluates its shard and the sums are all-reduced.
    """
    model.eval()
    non_blocking = device.type == 'cuda'
    k5 = min(5, num_classes)
    sums = torch.zeros(4, dtype=torch.float64)  # loss, n, correct1, correct5
    cls_total = torch.zeros(num_classes, dtype=torch.float64)
    cls_correct = torch.zeros(num_classes, dtype=torch.float64)
    model_time = 0.0
    it = loader
    bar = None
    if progress:
        from tqdm import tqdm
        bar = it = tqdm(loader, desc=desc, dynamic_ncols=True, leave=False)
    t0 = time.perf_counter()
    for batch in it:
        x, y, bad = unpack_batch(batch)
        if bad and on_corrupt is not None:
            on_corrupt(bad)
        if x is None:
            continue
        x = x.to(device, non_blocking=non_blocking)
        y = y.to(device, non_blocking=non_blocking)
        if channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        tm = time.perf_counter()
        with autocast_context(device, amp_dtype):
            out = model(x)
        out = out.float()
        if device.type == 'cuda':
            torch.cuda.synchronize(device)
        model_time += time.perf_counter() - tm
        loss = F.cross_entropy(out, y, reduction='sum')
        top = out.topk(k5, dim=1).indices
        hit = top == y[:, None]
        c1 = hit[:, 0]
        sums += torch.tensor([float(loss), y.numel(), float(c1.sum()), float(hit.any(1).sum())], dtype=torch.float64)
        yc = y.cpu()
        cls_total += torch.bincount(yc, minlength=num_classes)[:num_classes].double()
        cls_correct += torch.bincount(yc[c1.cpu()], minlength=num_classes)[:num_classes].double()
    elapsed = time.perf_counter() - t0
    if bar is not None:
        bar.close()
    if dist is not None and dist.distributed:
        sums, cls_total, cls_correct, elapsed, model_time = _reduce_sums(sums, cls_total, cls_correct, elapsed,
                                                                         model_time, dist)
    n = int(sums[1])
    names = list(class_names) if class_names is not None else [str(i) for i in range(num_classes)]
    per_class = {names[i]: (100.0 * float(cls_correct[i] / cls_total[i]) if cls_total[i] > 0 else None)
                 for i in range(num_classes)}
    return dict(
        loss=float(sums[0]) / max(n, 1), top1=100.0 * float(sums[2]) / max(n, 1),
        top5=100.0 * float(sums[3]) / max(n, 1), n_images=n, per_class_top1=per_class,
        per_class_count={names[i]: int(cls_total[i]) for i in range(num_classes)},
        images_per_s=n / max(elapsed, 1e-9), model_images_per_s=n / max(model_time, 1e-9), seconds=elapsed,
        topk=k5)
