"""Checkpoints in one place: the only reader of checkpoint files, the one strict check, atomic writes.

* :func:`load` -- safetensors, or ``torch.load(weights_only=True)`` with :data:`SAFE_GLOBALS` (+ ``extra_globals``)
  allowed for that call only: an unsafe pickle raises :class:`UnsafeCheckpointError` before any of it runs.
* :func:`state_dict_from` -- the tensors of a checkpoint (bare or wrapped), prefixes removed, as timm reads them.
* :func:`load_into` / :func:`convert_and_check` -- the family's key filter (:func:`key_filter`), the classifier of
  another class count, and one :class:`CheckpointError` naming every missing, unexpected and mis-shaped tensor.
* :func:`atomic_write` and kin -- temporary file, ``fsync``, ``os.replace``; a full device raises
  :class:`zoo.errors.DiskFullError` naming the file and the space left.
"""
import argparse
import contextlib
import errno
import hashlib
import os
import pickle
import re
import shutil
import tempfile
import warnings
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Callable, Dict, Iterable, Iterator, List, Optional, Sequence, Union

import torch
import torch.nn as nn

from .errors import DiskFullError, UserError

__all__ = [
    'CheckpointError', 'UnsafeCheckpointError', 'CorruptCheckpointError', 'ChecksumError', 'SAFE_GLOBALS',
    'EMA_KEYS', 'RAW_KEYS', 'allow_globals', 'mmengine_checkpoint_globals', 'load', 'is_safetensors', 'sha256_file',
    'unwrap_state_dict',
    'strip_prefix', 'clean_state_dict', 'state_dict_from', 'load_state_dict', 'StateDictDiff', 'compare_state_dict',
    'check_state_dict', 'key_filter', 'convert_and_check', 'load_into', 'classifier_names', 'find_classifier',
    'num_classes', 'atomic_write', 'atomic_save', 'atomic_write_text', 'atomic_copy', 'commit_file', 'disk_full_error',
    'disk_full_guard', 'KeyFilter',
]

PathLike = Union[str, os.PathLike]

# Non-tensor objects that training checkpoints commonly carry and that are safe to rebuild (timm's own loader allows
# argparse.Namespace for the `args` of its train.py checkpoints). Data types only: no callable that could run code.
SAFE_GLOBALS: List[Any] = [argparse.Namespace]
EMA_KEYS = ('state_dict_ema', 'model_ema', 'state_dict', 'model')
RAW_KEYS = ('state_dict', 'model')


class CheckpointError(UserError, ValueError):
    """A checkpoint that cannot be loaded into a zoo model; the message names every offending tensor."""


class UnsafeCheckpointError(CheckpointError):
    """The checkpoint needs arbitrary code to unpickle; it was not loaded."""


class CorruptCheckpointError(CheckpointError):
    """The file is not a readable checkpoint (truncated, damaged, or another format)."""


class ChecksumError(CheckpointError):
    """The file's SHA-256 differs from the expected (manifest) one."""


# --- loading ------------------------------------------------------------------------------------------------

@contextlib.contextmanager
def allow_globals(extra: Iterable[Any] = ()) -> Iterator[None]:
    """``torch.serialization.safe_globals`` for :data:`SAFE_GLOBALS` + ``extra``, for the body of the ``with`` only.

    Only entries not already allowed are added, so on exit exactly those are removed again: nesting this context
    (or using it while something else allowlisted a type) never takes away an entry another caller relies on.
    """
    have = set(torch.serialization.get_safe_globals())
    new = [g for g in dict.fromkeys([*SAFE_GLOBALS, *extra]) if g not in have]
    with torch.serialization.safe_globals(new):
        yield


def mmengine_checkpoint_globals() -> list:
    """Types found in mmengine checkpoints (message hub) that torch's weights-only unpickler must accept (for
    ``extra_globals``; needs mmengine)."""
    import builtins

    import numpy as np
    from mmengine.logging.history_buffer import HistoryBuffer
    core = getattr(np, '_core', None) or np.core
    types = [HistoryBuffer, np.ndarray, np.dtype, core.multiarray._reconstruct, core.multiarray.scalar,
             builtins.getattr]  # numpy 2 pickles dtype classes as getattr(numpy.dtypes, name)
    dtypes = getattr(np, 'dtypes', None)
    if dtypes is not None:
        types += [getattr(dtypes, n) for n in dir(dtypes) if n.endswith('DType')]
    return types


def sha256_file(path: PathLike) -> str:
    h = hashlib.sha256()
    with open(path, 'rb') as f:
        for chunk in iter(lambda: f.read(1 << 20), b''):
            h.update(chunk)
    return h.hexdigest()


def is_safetensors(path: PathLike) -> bool:
    path = Path(path)
    if path.suffix == '.safetensors':
        return True
    with open(path, 'rb') as f:
        head = f.read(9)
    # safetensors: 8-byte little-endian header length, then a JSON header
    return len(head) == 9 and head[8:9] == b'{' and 0 < int.from_bytes(head[:8], 'little') < 100_000_000


def _pickle_globals(path: Path, limit: int = 8) -> list:
    """Globals referenced by the pickle(s) in a non-zip file, read with pickletools (parses, never executes)."""
    import pickletools
    found, strings = [], []
    with contextlib.suppress(Exception), open(path, 'rb') as f:
        while len(found) < limit:
            ops = 0
            for op, arg, _ in pickletools.genops(f):
                ops += 1
                if op.name in ('SHORT_BINUNICODE', 'BINUNICODE', 'UNICODE', 'BINUNICODE8'):
                    strings.append(arg)
                elif op.name in ('GLOBAL', 'INST'):
                    found.append(arg.replace(' ', '.'))
                elif op.name == 'STACK_GLOBAL' and len(strings) >= 2:
                    found.append(f'{strings[-2]}.{strings[-1]}')
            if not ops:
                break
    safe_prefixes = ('torch.', 'collections.OrderedDict', '__builtin__.set', 'builtins.set', 'argparse.Namespace')
    return [g for g in dict.fromkeys(found) if not g.startswith(safe_prefixes)]


def _unsafe_globals(path: Path, err: Exception) -> str:
    names = []
    if zipfile.is_zipfile(path):
        with contextlib.suppress(Exception):
            names = torch.serialization.get_unsafe_globals_in_checkpoint(str(path))
    if not names:
        # legacy (non-zip) files: the weights-only unpickler names the first offending global
        m = re.search(r'GLOBAL ([\w.]+)', str(err))
        names = [m.group(1)] if m else _pickle_globals(path)
    return ', '.join(names)


def load(path: PathLike, map_location: Any = 'cpu', extra_globals: Iterable[Any] = ()) -> Any:
    """Load a checkpoint file without running code from it.

    ``.safetensors`` files are read with safetensors; everything else with ``torch.load(weights_only=True)``, which
    rebuilds only tensors, containers and primitive values, plus :data:`SAFE_GLOBALS` and ``extra_globals`` (allowed
    for this call only, see :func:`allow_globals`). A pickle that references any other callable (a class to
    instantiate, ``os.system``, ``builtins.getattr``, ...) is refused with :class:`UnsafeCheckpointError` before any
    of it runs; a damaged file raises :class:`CorruptCheckpointError`.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f'checkpoint not found: {path}')
    if is_safetensors(path):
        import safetensors.torch
        device = map_location if isinstance(map_location, str) else 'cpu'
        try:
            return safetensors.torch.load_file(str(path), device=device)
        except Exception as e:  # SafetensorError, OSError, ...
            raise CorruptCheckpointError(
                f'{path} is not a readable safetensors file (truncated or damaged?): {e}') from e
    try:
        with allow_globals(extra_globals), warnings.catch_warnings():
            warnings.filterwarnings('ignore', message='Detected pickle protocol')
            return torch.load(str(path), map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as e:
        msg = str(e)
        names = _unsafe_globals(path, e) if ('Weights only load failed' in msg or 'Unsupported' in msg) else ''
        if names or ('Weights only load failed' in msg and 'Unsupported operand' not in msg):
            why = (f'unpickling it would run arbitrary code (it references {names})' if names else
                   'unpickling it would run arbitrary code')
            raise UnsafeCheckpointError(
                f'refusing to load {path}: {why}; nothing in it was executed. zoo only loads safetensors or '
                'torch.load(weights_only=True) checkpoints. If you trust this file, re-save just its tensors in a '
                'trusted environment, e.g. torch.save(torch.load(f, weights_only=False)["state_dict"], "clean.pth"), '
                'and convert that.'
            ) from None
        op = re.search(r'Unsupported operand \d+', msg)
        raise CorruptCheckpointError(
            f'{path} is not a readable checkpoint (truncated or damaged?, or a plain pickle that only an unsafe '
            f'loader could read): {op.group(0) if op else msg.strip().splitlines()[-1]}; nothing in it was executed'
        ) from None
    except (RuntimeError, EOFError, ValueError, OSError, zipfile.BadZipFile, UnicodeDecodeError,
            KeyError, IndexError, TypeError, AttributeError) as e:  # the unpickler on a text/other file
        if isinstance(e, (KeyError, IndexError, TypeError, AttributeError)):
            detail = 'not a PyTorch or safetensors checkpoint file'
        else:
            detail = str(e) or ('empty file' if path.stat().st_size == 0 else type(e).__name__)
        raise CorruptCheckpointError(f'{path} is not a readable checkpoint (truncated or damaged?): {detail}') from e


# --- state dicts --------------------------------------------------------------------------------------------

def unwrap_state_dict(checkpoint: Any, keys: Sequence[str] = EMA_KEYS) -> Dict[str, torch.Tensor]:
    """Return the tensor dict inside a checkpoint (a bare state dict or one wrapped under one of ``keys``).

    Raises CheckpointError when the object is not a mapping of names to tensors.
    """
    if not isinstance(checkpoint, Mapping):
        raise CheckpointError(f'checkpoint is not a state dict: got {type(checkpoint).__name__}')
    obj = checkpoint
    for k in keys:
        if k in obj and isinstance(obj[k], Mapping):
            obj = obj[k]
            break
    non_tensor = [k for k, v in obj.items() if not isinstance(v, torch.Tensor)]
    if not obj or non_tensor:
        top = sorted(map(str, checkpoint.keys()))[:10]
        raise CheckpointError(
            'checkpoint is not a state dict (expected a mapping of parameter names to tensors, possibly under '
            f'one of {list(keys)}); top-level keys: {top}'
            + (f'; non-tensor entries: {non_tensor[:10]}' if non_tensor else ''))
    return dict(obj)


def strip_prefix(state_dict: Dict[str, torch.Tensor], prefix: str = 'module.') -> Dict[str, torch.Tensor]:
    return {(k[len(prefix):] if k.startswith(prefix) else k): v for k, v in state_dict.items()}


def clean_state_dict(state_dict: Dict[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
    """Remove DDP (``module.``) and ``torch.compile`` (``_orig_mod.``) prefixes, as timm's loader does."""
    from timm.models import clean_state_dict as timm_clean
    return timm_clean(state_dict)


def state_dict_from(checkpoint: Any, use_ema: bool = True) -> Dict[str, torch.Tensor]:
    """The tensors of a loaded checkpoint, unwrapped and prefix-cleaned exactly as timm's file loader does.

    Picks the first of ``state_dict_ema``, ``model_ema``, ``state_dict``, ``model`` (the EMA ones only with
    ``use_ema``) and strips ``module.`` / ``_orig_mod.`` prefixes.
    """
    return clean_state_dict(unwrap_state_dict(checkpoint, EMA_KEYS if use_ema else RAW_KEYS))


def load_state_dict(path: PathLike, use_ema: bool = True, map_location: Any = 'cpu',
                    extra_globals: Iterable[Any] = ()) -> Dict[str, torch.Tensor]:
    """:func:`load` + :func:`state_dict_from`."""
    return state_dict_from(load(path, map_location=map_location, extra_globals=extra_globals), use_ema=use_ema)


def _fmt(names: Iterable[str], limit: int = 20) -> str:
    names = sorted(names)
    more = f' ... (+{len(names) - limit} more)' if len(names) > limit else ''
    return ', '.join(names[:limit]) + more


@dataclass
class StateDictDiff:
    """How a state dict differs from a model's: names of missing / unexpected tensors, and mis-shaped ones
    (``'name (checkpoint (..), model (..))'``; ``shapes``: name -> (checkpoint shape, model shape), in the state
    dict's order)."""
    missing: List[str] = field(default_factory=list)
    unexpected: List[str] = field(default_factory=list)
    shapes: Dict[str, tuple] = field(default_factory=dict)

    @property
    def wrong_shape(self) -> List[str]:
        return [f'{k} (checkpoint {a}, model {b})' for k, (a, b) in sorted(self.shapes.items())]

    def __bool__(self) -> bool:
        return bool(self.missing or self.unexpected or self.wrong_shape)

    def message(self, source: str, target: str) -> str:
        parts = [f'{source} does not match {target}:']
        for what, names in (('missing', self.missing), ('unexpected', self.unexpected),
                            ('wrongly shaped', self.wrong_shape)):
            if names:
                parts.append(f'{what} {len(names)} tensors: {_fmt(names)}')
        return '\n  '.join(parts)

    def brief(self) -> str:
        """``missing: [..]; unexpected: [..]; wrong shape: [..]`` (eight names each at most)."""
        wrong = [f'{k}: checkpoint {a} vs model {b}' for k, (a, b) in self.shapes.items()]
        return '; '.join(f'{n}: {v[:8]}{" ..." if len(v) > 8 else ""}' for n, v in
                         (('missing', self.missing), ('unexpected', self.unexpected), ('wrong shape', wrong)) if v)


def _shape_exempt(model: nn.Module) -> List[str]:
    """The classifier and first conv of ``model``'s pretrained cfg: timm adapts those after loading when
    ``num_classes`` / ``in_chans`` differ from the checkpoint's, so their shapes are not compared."""
    cfg = getattr(model, 'pretrained_cfg', None) or {}
    out: List[str] = []
    for key in ('classifier', 'first_conv'):
        names = cfg.get(key)
        if names:
            out += [names] if isinstance(names, str) else list(names)
    return out


def compare_state_dict(state_dict: Mapping[str, torch.Tensor],
                       expected: Union[nn.Module, Mapping[str, torch.Tensor]],
                       ignore_shape_prefixes: Sequence[str] = ()) -> StateDictDiff:
    """Missing, unexpected and mis-shaped tensors of ``state_dict`` against a model (or its state dict)."""
    own = expected.state_dict() if isinstance(expected, nn.Module) else expected
    diff = StateDictDiff(sorted(set(own) - set(state_dict)), sorted(set(state_dict) - set(own)))
    for k, v in state_dict.items():
        if k in own and tuple(v.shape) != tuple(own[k].shape) \
                and not any(k.startswith(p + '.') for p in ignore_shape_prefixes):
            diff.shapes[k] = (tuple(v.shape), tuple(own[k].shape))
    return diff


def check_state_dict(state_dict: Dict[str, torch.Tensor], model: nn.Module, source: str = 'checkpoint',
                     ignore_shape_prefixes: Optional[Sequence[str]] = None,
                     allow_missing: Sequence[str] = (), allow_unexpected: bool = False) -> Dict[str, torch.Tensor]:
    """Compare a converted state dict with ``model`` and raise one :class:`CheckpointError` naming all problems.

    Shapes of the classifier and first conv (from the model's pretrained cfg) are not compared unless
    ``ignore_shape_prefixes`` says otherwise, because timm adapts those afterwards when ``num_classes`` or
    ``in_chans`` differ from the checkpoint's. Missing tensors under a prefix in ``allow_missing`` and, with
    ``allow_unexpected``, unexpected tensors are tolerated (the caller reports them). Returns ``state_dict``.
    """
    if ignore_shape_prefixes is None:
        ignore_shape_prefixes = _shape_exempt(model)
    diff = compare_state_dict(state_dict, model, ignore_shape_prefixes)
    diff.missing = [k for k in diff.missing if not any(k.startswith(p) for p in allow_missing)]
    if allow_unexpected:
        diff.unexpected = []
    if diff:
        raise CheckpointError(diff.message(source, type(model).__name__))
    return state_dict


KeyFilter = Callable[[Dict[str, torch.Tensor], nn.Module], Dict[str, torch.Tensor]]


def key_filter(source: str = 'checkpoint') -> Callable[[KeyFilter], KeyFilter]:
    """Mark a family's ``checkpoint_filter_fn`` (a rename of keys, as timm's filters are): ``source`` names the
    checkpoint in the errors of :func:`convert_and_check`."""
    def mark(fn: KeyFilter) -> KeyFilter:
        fn.checkpoint_source = source
        return fn
    return mark


def convert_and_check(state_dict: Any, model: nn.Module, filter_fn: Optional[KeyFilter] = None,
                       **check: Any) -> Dict[str, torch.Tensor]:
    """The family's key filter ``filter_fn(state_dict, model)`` (none: ``state_dict`` as it is), then
    :func:`check_state_dict` (``check``: its keywords), naming the checkpoint as the filter's ``source``."""
    sd = filter_fn(state_dict, model) if filter_fn is not None else state_dict
    check.setdefault('source', getattr(filter_fn, 'checkpoint_source', 'checkpoint'))
    return check_state_dict(sd, model, **check)


def load_into(model: nn.Module, source: Any, *, filter_fn: Optional[KeyFilter] = None, use_ema: bool = True,
              new_head: bool = False, label: str = 'checkpoint', target: Optional[str] = None,
              error: Optional[Callable[[StateDictDiff], Exception]] = None, map_location: Any = 'cpu',
              extra_globals: Iterable[Any] = ()) -> List[str]:
    """Load the checkpoint ``source`` (a file, read with :func:`load`, or an object already loaded) into ``model``.

    Unwraps and cleans it (EMA weights with ``use_ema``, :func:`state_dict_from`), applies the family's key filter
    ``filter_fn``, and with ``new_head`` leaves out classifier tensors shaped for another class count (the model
    keeps its own). Then one strict check: every missing, unexpected or mis-shaped tensor is named in one error,
    ``CheckpointError('<label> does not match <target>: ...')``, or ``error(diff)``. Returns the keys left out.
    """
    obj = load(source, map_location, extra_globals) if isinstance(source, (str, os.PathLike)) else source
    sd = state_dict_from(obj, use_ema=use_ema)
    if filter_fn is not None:
        sd = filter_fn(sd, model)
    own = model.state_dict()
    skipped: List[str] = []
    if new_head:
        heads = classifier_names(model)
        skipped = [k for k, v in sd.items() if k in own and own[k].shape != v.shape
                   and any(k == h or k.startswith(h + '.') for h in heads)]
        sd = {k: v for k, v in sd.items() if k not in skipped}
    diff = compare_state_dict(sd, own)
    diff.missing = [k for k in diff.missing if k not in skipped]
    if diff:
        raise error(diff) if error is not None else CheckpointError(
            diff.message(label, target or type(model).__name__))
    model.load_state_dict(sd, strict=not skipped)
    return skipped


# --- the classifier -----------------------------------------------------------------------------------------

def classifier_names(model: Union[nn.Module, Mapping[str, Any], None]) -> tuple:
    """Module names of the classifier, from a model's (or a pretrained cfg's) ``classifier`` entry."""
    cfg = model if isinstance(model, Mapping) else (getattr(model, 'pretrained_cfg', None) or {})
    names = cfg.get('classifier') or ()
    return (names,) if isinstance(names, str) else tuple(names)


def find_classifier(state_dict: Mapping[str, Any], names: Union[nn.Module, Mapping[str, Any], Sequence[str]]
                    ) -> Optional[str]:
    """The first of the classifier ``names`` (or a model's / cfg's) whose ``.weight`` is in ``state_dict``."""
    if isinstance(names, (nn.Module, Mapping)) and not isinstance(names, str):
        names = classifier_names(names)
    elif isinstance(names, str):
        names = (names,)
    for n in names:
        w = state_dict.get(f'{n}.weight')
        if isinstance(w, torch.Tensor):
            return n
    return None


def num_classes(state_dict: Mapping[str, Any], names: Union[nn.Module, Mapping[str, Any], Sequence[str]]
                ) -> Optional[int]:
    """Classes of the head in ``state_dict`` (rows of the classifier weight), None when it has no head."""
    name = find_classifier(state_dict, names)
    return None if name is None else int(state_dict[f'{name}.weight'].shape[0])


# --- atomic writes ------------------------------------------------------------------------------------------

_NO_SPACE = (errno.ENOSPC, errno.EDQUOT)
_NO_SPACE_TEXT = ('No space left on device', 'Disk quota exceeded', 'StorageFull')
_WRITER_ERROR = re.compile(r'inline_container|iostream error|write failed|writing file')  # torch's C++ file writer
_NEARLY_FULL = 1 << 20  # bytes: a write error with less than this left is taken for a full device


def _free_bytes(path: Path) -> Optional[int]:
    for folder in (path, *path.parents):
        with contextlib.suppress(OSError):
            return shutil.disk_usage(folder).free
    return None


def disk_full_error(path: PathLike, exc: BaseException) -> Optional[DiskFullError]:
    """A :class:`DiskFullError` for ``path`` when ``exc`` comes from a full device, else None.

    Full means an ENOSPC / EDQUOT OSError anywhere in the exception's chain (torch's zip writer turns one into
    ``RuntimeError: [enforce fail at inline_container.cc] unexpected pos``; safetensors into its own error), or an
    OSError or a torch file-writer error while less than 1 MiB is left on ``path``'s device (torch's C++ writer
    keeps no errno)."""
    if isinstance(exc, DiskFullError):
        return None
    path = Path(path)
    chain, e = [], exc
    while e is not None and e not in chain and len(chain) < 8:
        chain.append(e)
        e = e.__cause__ or e.__context__
    free = _free_bytes(path)
    explicit = any((isinstance(e, OSError) and e.errno in _NO_SPACE) or any(t in str(e) for t in _NO_SPACE_TEXT)
                   for e in chain)
    nearly_full = (free is not None and free < _NEARLY_FULL
                   and any(isinstance(e, OSError) or (isinstance(e, RuntimeError) and _WRITER_ERROR.search(str(e)))
                           for e in chain))
    return DiskFullError(path, free or 0) if explicit or nearly_full else None


@contextlib.contextmanager
def disk_full_guard(path: PathLike) -> Iterator[None]:
    """Re-raise an error of the body that comes from a full device as :class:`DiskFullError` naming ``path``."""
    try:
        yield
    except Exception as e:
        err = disk_full_error(path, e)
        if err is None:
            raise
        raise err from e


def _fsync_dir(folder: Path) -> None:
    with contextlib.suppress(OSError):  # not every platform/filesystem can open a directory
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _file_mode(path: Path) -> int:
    if path.exists():
        return path.stat().st_mode & 0o7777
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


def commit_file(tmp: PathLike, dst: PathLike) -> Path:
    """Make the finished temporary file ``tmp`` (in ``dst``'s folder) the file ``dst``: fsync, keep ``dst``'s
    permissions (or the umask's), ``os.replace``, fsync the folder."""
    tmp, dst = Path(tmp), Path(dst)
    mode = _file_mode(dst)
    with disk_full_guard(dst):
        with open(tmp, 'rb+') as f:
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, dst)
    _fsync_dir(dst.parent)
    return dst


@contextlib.contextmanager
def atomic_write(path: PathLike, mode: str = 'wb', encoding: Optional[str] = None) -> Iterator[IO]:
    """Write ``path`` through a temporary file in its folder: ``with atomic_write(p) as f: f.write(...)``.

    On success the data is fsynced and moved into place with ``os.replace``; on any error the temporary file is
    removed and ``path`` is left as it was (a full device raises :class:`DiskFullError`).
    """
    if 'w' not in mode:
        raise ValueError(f'atomic_write writes a whole new file; mode {mode!r} has no "w"')
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = None
    try:
        with disk_full_guard(path):
            fd, tmp = tempfile.mkstemp(prefix=f'.{path.name}.', suffix='.tmp', dir=path.parent)
            with os.fdopen(fd, mode, encoding=encoding) as f:
                yield f
                f.flush()
                os.fsync(f.fileno())
            commit_file(tmp, path)
    except BaseException:
        if tmp is not None:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
        raise


def atomic_save(obj: Any, path: PathLike) -> Path:
    """``torch.save`` through :func:`atomic_write`."""
    with atomic_write(path) as f:
        torch.save(obj, f)
    return Path(path)


def atomic_write_text(path: PathLike, text: str, encoding: str = 'utf-8') -> Path:
    with atomic_write(path, 'w', encoding=encoding) as f:
        f.write(text)
    return Path(path)


def atomic_copy(src: PathLike, dst: PathLike) -> Path:
    """Copy ``src`` to ``dst`` through :func:`atomic_write`."""
    with open(src, 'rb') as fin, atomic_write(dst) as fout:
        shutil.copyfileobj(fin, fout, 1 << 20)
    return Path(dst)
