"""Export a zoo (or timm) model to ONNX, ``torch.export`` or TorchScript, and verify the artifact where it will run.

Every export is checked in the runtime that will execute it against the eager model's fp32 logits (max abs
difference <= ``atol``); ``dynamic=True`` also verifies at a second input size. The artifact reaches ``out`` only
after it verified. How each format is exported and checked: docs/export.md, "How export works inside".

Optional dependencies: onnxruntime (and onnx/onnxscript) -- ``pip install "timm-attention-zoo[export]"``.
"""
import contextlib
import io
import json
import os
import tempfile
import time
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import torch
import torch.nn as nn

from .checkpoint import disk_full_guard
from .errors import UserError

__all__ = ['FORMATS', 'ExportError', 'ExportResult', 'export_model', 'second_input_size', 'build_model',
           'merge_export_status', 'EXPORT_STATUS_PATH']

FORMATS = ('onnx', 'torch.export', 'torchscript')
EXPORT_STATUS_PATH = Path(str(resources.files('zoo').joinpath('export_status.json')))  # package data


class ExportError(UserError):
    """The model cannot be exported in the requested format/mode, or the artifact did not verify."""


@dataclass
class ExportResult:
    path: Path
    format: str
    input_size: Tuple[int, int, int]
    dynamic: bool
    max_abs_diff: float  # over every verified input size
    diffs: Dict[str, float] = field(default_factory=dict)  # 'BxCxHxW' -> max abs diff
    method: str = ''  # e.g. 'script' / 'trace' for torchscript
    seconds: float = 0.

    def summary(self) -> str:
        sizes = ', '.join(f'{k}: {v:.3g}' for k, v in self.diffs.items())
        how = f' ({self.method})' if self.method else ''
        return (f'{self.format}{how} -> {self.path}  verified, max abs diff {self.max_abs_diff:.3g} '
                f'vs eager fp32 [{sizes}]')


def _require_onnxruntime():
    try:
        import onnxruntime
        import onnxscript  # noqa: F401  (the dynamo exporter's backend)
    except ImportError as e:
        raise UserError(f'ONNX export needs onnxruntime and onnxscript ({e.name} is missing): '
                        f'pip install "timm-attention-zoo[export]"') from None
    return onnxruntime


def build_model(name: str, pretrained: bool = False, checkpoint: Optional[Union[str, os.PathLike]] = None,
                **kwargs) -> nn.Module:
    """A model in eval mode: random init, ``pretrained=True`` weights, or a checkpoint file / Hub-layout folder."""
    import timm

    import zoo.models  # noqa: F401  (registers the zoo models)
    from .errors import check_model_name
    if checkpoint is not None:
        from .hub import load_for_publish
        from .retrofit import attention_record
        from .train.utils import load_checkpoint_file
        if os.path.isfile(checkpoint) and attention_record(load_checkpoint_file(checkpoint)):
            from .train.validate import load_model_for_eval  # re-applies the run's add_attention, then loads
            return load_model_for_eval(name, str(checkpoint), **kwargs)[0].eval()
        try:
            return load_for_publish(name, checkpoint).eval()
        except ValueError as e:
            raise UserError(str(e)) from None
    check_model_name(name)
    return timm.create_model(name, pretrained=pretrained, **kwargs).eval()


def second_input_size(model: nn.Module, input_size: Sequence[int]) -> Tuple[int, int, int]:
    """A second (C, H, W) for dynamic-shape verification: H + r, W + 2r with r the model's largest feature stride."""
    c, h, w = input_size
    r = 32
    info = getattr(model, 'feature_info', None)
    try:
        r = int(info[-1]['reduction']) if info else r
    except (TypeError, KeyError, IndexError):
        pass
    return c, h + r, w + 2 * r


def _inputs(input_size: Sequence[int], batch: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn((batch, *input_size), generator=g)


def _first_tensor(out: Any) -> torch.Tensor:
    if isinstance(out, torch.Tensor):
        return out
    if isinstance(out, (list, tuple)) and out:
        return _first_tensor(out[0])
    if isinstance(out, dict) and out:
        return _first_tensor(next(iter(out.values())))
    raise ExportError(f'the model returned {type(out).__name__}, expected a tensor')


def _dynamic_shapes(dynamic: bool):
    if not dynamic:
        return None
    D = torch.export.Dim.DYNAMIC
    return ({0: D, 2: D, 3: D},)


def _short(e: BaseException, limit: int = 400) -> str:
    """One line: the innermost cause (the exporters wrap the real reason in pages of advice)."""
    while e.__cause__ is not None:
        e = e.__cause__
    msg = str(e).split('\nWhile executing')[0].split('\nOriginal traceback')[0]
    msg = ' '.join(msg.split())
    return f'{type(e).__name__}: {msg[:limit]}{"..." if len(msg) > limit else ""}'


@contextlib.contextmanager
def _quiet():
    """The exporters print progress and warnings to stdout/stderr; keep the tool's own output readable."""
    import io
    import logging
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        old = logging.root.manager.disable
        logging.disable(logging.WARNING)
        try:
            with contextlib.redirect_stdout(io.StringIO()):
                yield
        finally:
            logging.disable(old)


@contextlib.contextmanager
def _time_limit(seconds: Optional[float], what: str):
    import signal
    import threading
    if not seconds or threading.current_thread() is not threading.main_thread() or not hasattr(signal, 'SIGALRM'):
        yield
        return

    def handler(signum, frame):
        raise _Timeout()
    old = signal.signal(signal.SIGALRM, handler)
    signal.setitimer(signal.ITIMER_REAL, float(seconds))
    try:
        yield
    except _Timeout:
        raise ExportError(f'{what} did not finish within {seconds:g} s (see --time-limit); the architecture is '
                          f'not practical to export this way') from None
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


class _Timeout(BaseException):
    pass


# --- one exporter + runtime per format ------------------------------------------------------------------------------

def _export_onnx(model, x, dynamic, path: Path):
    ort = _require_onnxruntime()
    try:
        with _quiet():
            prog = torch.onnx.export(model, (x,), dynamo=True, dynamic_shapes=_dynamic_shapes(dynamic),
                                     input_names=['input'], output_names=['logits'], optimize=True,
                                     verify=False, report=False)
            prog.save(str(path))
    except Exception as e:  # exporter failures are model limitations, not bugs of the tool
        raise ExportError(f'ONNX export (dynamo) failed: {_short(e)}') from e
    if dynamic:
        import onnx
        dims = onnx.load(str(path), load_external_data=False).graph.input[0].type.tensor_type.shape.dim
        static = [i for i in (2, 3) if dims[i].HasField('dim_value')]
        if static:
            what = '/'.join(('height', 'width')[i - 2] for i in static)
            raise ExportError(f'the architecture does not allow a dynamic {what} in ONNX: the exporter '
                              f'specialised it to {[dims[i].dim_value for i in static]}')
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = max(1, min(4, torch.get_num_threads()))
    opts.log_severity_level = 3
    sess = ort.InferenceSession(str(path), opts, providers=['CPUExecutionProvider'])
    name = sess.get_inputs()[0].name

    def run(t: torch.Tensor) -> torch.Tensor:
        return torch.from_numpy(sess.run(None, {name: t.numpy()})[0])
    return run, 'dynamo'


def _export_torch_export(model, x, dynamic, path: Path):
    try:
        with _quiet():
            ep = torch.export.export(model, (x,), dynamic_shapes=_dynamic_shapes(dynamic), strict=False)
    except Exception as e:
        raise ExportError(f'torch.export failed: {_short(e)}') from e
    if dynamic:
        shape = ep.graph_signature.user_inputs and [
            n.meta['val'].shape for n in ep.graph.nodes if n.op == 'placeholder'
            and n.name == ep.graph_signature.user_inputs[0]][0]
        static = [i for i in (2, 3) if isinstance(shape[i], int)]
        if static:
            what = '/'.join(('height', 'width')[i - 2] for i in static)
            raise ExportError(f'the architecture does not allow a dynamic {what} under torch.export: the input '
                              f'size was specialised to {[shape[i] for i in static]}')
        ranges = []
        for i, what in ((0, 'batch'), (2, 'height'), (3, 'width')):
            vr = ep.range_constraints.get(getattr(shape[i], 'node', None) and shape[i].node.expr)
            if vr is not None and (int(vr.lower) > 2 or str(vr.upper) not in ('int_oo', 'oo')):
                ranges.append(f'{what} in [{vr.lower}, {vr.upper}]')
        if ranges:
            _RANGES[str(path)] = ', '.join(ranges)
    buf = io.BytesIO()
    torch.export.save(ep, buf)  # in memory first: torch's C++ file writer aborts the process when the disk is full
    path.write_bytes(buf.getbuffer())
    loaded = torch.export.load(str(path)).module()

    def run(t: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return _first_tensor(loaded(t))
    return run, ''


def _export_torchscript(model, x, dynamic, path: Path):
    method = 'script'
    try:
        with _quiet():
            sm = torch.jit.script(model)
    except Exception as script_err:
        method = 'trace'
        try:
            with _quiet(), torch.no_grad():
                sm = torch.jit.trace(model, (x,), check_trace=False)
        except Exception as e:
            raise ExportError(f'TorchScript failed: script: {_short(script_err, 200)}; trace: {_short(e, 200)}') from e
    path.write_bytes(sm.save_to_buffer())  # in memory first, as in _export_torch_export
    loaded = torch.jit.load(str(path), map_location='cpu').eval()

    def run(t: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return _first_tensor(loaded(t))
    return run, method


_RANGES: Dict[str, str] = {}  # artifact -> the dynamic ranges torch.export settled on (for error messages)
_EXPORTERS = {'onnx': _export_onnx, 'torch.export': _export_torch_export, 'torchscript': _export_torchscript}
_SUFFIX = {'onnx': '.onnx', 'torch.export': '.pt2', 'torchscript': '.pt'}


def _checked_target(fmt: str, input_size: Sequence[int], out: Union[str, os.PathLike]) -> Tuple[Tuple[int, ...], Path]:
    """Validate the format, input size and output file; create the output's folder."""
    if fmt not in FORMATS:
        raise ExportError(f'unknown format {fmt!r}; choose one of {", ".join(FORMATS)}')
    input_size = tuple(int(v) for v in input_size)
    if len(input_size) != 3 or min(input_size) < 1:
        raise ExportError(f'input size must be C H W (positive), got {input_size}')
    out = Path(out)
    if out.is_dir():
        raise ExportError(f'--out {out} is a folder; give a file name (e.g. {out / ("model" + _SUFFIX[fmt])})')
    out.parent.mkdir(parents=True, exist_ok=True)
    return input_size, out


def _verify_artifact(run, xs, refs, fmt: str, tmp: Path, atol: float, out: Path) -> Tuple[float, Dict[str, float]]:
    """Run the artifact on each input and compare with the eager logits: (worst, per-size max abs diff)."""
    diffs = {}
    for x, ref in zip(xs, refs):
        key = 'x'.join(str(v) for v in x.shape)
        try:
            y = run(x)
        except Exception as e:
            what = 'at the second input size ' if x is not xs[0] else ''
            rng = _RANGES.pop(str(tmp), '')
            rng = (f' (the export allows only {rng}; torch.export fixes a size that is 1 at the traced input, '
                   f'e.g. one attention region or block per side: trace at a larger --input-size)') if rng else ''
            raise ExportError(f'the {fmt} artifact fails to run {what}{key} in its runtime{rng}: '
                              f'{_short(e)}') from e
        if y.shape != ref.shape:
            raise ExportError(f'{fmt} output shape {tuple(y.shape)} != eager {tuple(ref.shape)} at {key}')
        diffs[key] = float((y.float() - ref.float()).abs().max())
    worst = max(diffs.values())
    if not worst <= atol:  # also catches NaN
        raise ExportError(f'{fmt} artifact does not match eager fp32 logits: max abs diff {worst:.3g} > {atol:g} '
                          f'({diffs}); nothing written to {out}')
    return worst, diffs


def _move_into_place(tmp_dir: str, tmp: Path, out: Path) -> None:
    """Move the verified artifact (and any ONNX external-data files beside it) to ``out``."""
    files = list(Path(tmp_dir).iterdir())
    if len(files) > 1:  # ONNX external data: move the folder's files next to out (same names)
        for f in files:
            if f.name != out.name:
                os.replace(f, out.parent / f.name)
    os.replace(tmp, out)


def export_model(model: nn.Module, fmt: str, input_size: Sequence[int], out: Union[str, os.PathLike], *,
                 dynamic: bool = False, atol: float = 1e-4, batch: int = 2, seed: int = 0,
                 second_size: Optional[Sequence[int]] = None, time_limit: Optional[float] = None) -> ExportResult:
    """Export ``model`` (eval mode, fp32, CPU) to ``out`` and verify it against eager logits.

    ``input_size`` is (C, H, W); the export traces a batch of ``batch`` random inputs. With ``dynamic``, batch,
    height and width are dynamic and the artifact is also verified at ``second_size`` (default
    :func:`second_input_size`) with batch 1. Raises :class:`ExportError` if the export fails, the spatial size is
    specialised although ``dynamic`` was asked for, or the max abs difference exceeds ``atol``; ``out`` is then
    left untouched. ``time_limit`` (seconds, main thread only): give up on an exporter that does not finish
    (dynamic-shape tracing of some architectures spends a very long time in symbolic shape reasoning).
    """
    input_size, out = _checked_target(fmt, input_size, out)
    model = model.eval().float().cpu()
    t0 = time.time()
    sizes: List[Tuple[int, Tuple[int, int, int]]] = [(batch, input_size)]
    if dynamic:
        sizes.append((1, tuple(second_size) if second_size else second_input_size(model, input_size)))
    xs = [_inputs(s, b, seed + i) for i, (b, s) in enumerate(sizes)]
    with torch.no_grad():
        try:
            refs = [_first_tensor(model(x)) for x in xs]
        except Exception as e:
            raise ExportError(f'the eager model fails at input {tuple(xs[0].shape)}: {_short(e)}') from e

    tmp_dir = tempfile.mkdtemp(prefix=f'.{out.name}.', dir=str(out.parent))
    tmp = Path(tmp_dir) / out.name
    try:
        what = f'{fmt} export{" with dynamic shapes" if dynamic else ""}'
        with _time_limit(time_limit, what), disk_full_guard(out):
            run, method = _EXPORTERS[fmt](model, xs[0], dynamic, tmp)
        worst, diffs = _verify_artifact(run, xs, refs, fmt, tmp, atol, out)
        _move_into_place(tmp_dir, tmp, out)
    finally:
        for f in Path(tmp_dir).glob('*'):
            with contextlib.suppress(OSError):
                f.unlink()
        with contextlib.suppress(OSError):
            os.rmdir(tmp_dir)
    return ExportResult(out, fmt, input_size, dynamic, worst, diffs, method, time.time() - t0)


# --- the README export column ---------------------------------------------------------------------------------------

def merge_export_status(updates: Dict[str, Dict[str, Any]], path: Union[str, os.PathLike, None] = None,
                        fields: Sequence[str] = ('onnx',), notes: Optional[Dict[str, str]] = None) -> Optional[Path]:
    """Merge ``{model: {field: value}}`` into the package's ``export_status.json``, touching only ``fields``.

    Other models and other fields of a model (``torchscript``, ``fx``, ``compile``, owned by the timm-suite
    checks) are preserved; a new model gets the other schema fields as ``None``. ``notes`` (model -> reason) sets
    the ``onnx: <reason>`` segment of the model's ``'; '``-separated notes (other segments kept; no reason: the
    segment is removed). Writes only when the environment sets ``ZOO_WRITE_EXPORT_STATUS=1`` (returns None
    otherwise); under the same ``<file>.lock`` flock as the other writers, replaced atomically.
    """
    if os.environ.get('ZOO_WRITE_EXPORT_STATUS', '') != '1':
        return None
    import fcntl
    path = Path(path) if path is not None else EXPORT_STATUS_PATH
    path.parent.mkdir(parents=True, exist_ok=True)
    notes = notes or {}
    with open(path.with_name(path.name + '.lock'), 'w') as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            data = json.loads(path.read_text()) if path.is_file() else {}
            for model, vals in updates.items():
                entry = data.setdefault(model, {})
                for k in ('torchscript', 'fx', 'compile', 'onnx'):
                    entry.setdefault(k, None)
                entry.setdefault('notes', '')
                for k, v in vals.items():
                    if k in fields:
                        entry[k] = v
                mine = [f for f in fields if f in vals]
                keep = [seg for seg in (entry.get('notes') or '').split('; ')
                        if seg and seg.split(':', 1)[0] not in mine]
                reason = notes.get(model)
                entry['notes'] = '; '.join(keep + ([f'{mine[0]}: {reason}'] if reason and mine else []))
            data = {k: data[k] for k in sorted(data)}
            fd, tmp = tempfile.mkstemp(prefix=f'.{path.name}.', dir=str(path.parent))
            with os.fdopen(fd, 'w') as f:
                json.dump(data, f, indent=2)
                f.write('\n')
            os.chmod(tmp, 0o644)
            os.replace(tmp, path)
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
    return path
