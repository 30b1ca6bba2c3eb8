"""Plumbing for the training loop: distributed set-up, RNG state capture, AMP, logging (checkpoint files: thin
names for ``zoo.checkpoint``)."""
import logging
import os
import random
import sys
from contextlib import nullcontext, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional, Union

import numpy as np
import torch
import torch.distributed as dist

__all__ = ['DistInfo', 'init_distributed', 'is_primary', 'barrier', 'broadcast_object', 'all_gather_object',
           'capture_rng_state', 'restore_rng_state', 'seed_everything', 'atomic_torch_save', 'atomic_write_text',
           'atomic_copy', 'load_checkpoint_file', 'autocast_context', 'native_dtype_missing', 'resolve_amp_dtype',
           'setup_logging',
           'unwrap_model', 'derive_seed']

_logger = logging.getLogger('zoo.train')


@dataclass
class DistInfo:
    distributed: bool = False
    world_size: int = 1
    rank: int = 0
    local_rank: int = 0
    device: torch.device = torch.device('cpu')
    backend: str = ''


def init_distributed(device: str = '') -> DistInfo:
    """Start the process group when launched by torchrun (WORLD_SIZE > 1): nccl on CUDA, gloo on CPU."""
    world = int(os.environ.get('WORLD_SIZE', '1'))
    rank = int(os.environ.get('RANK', '0'))
    local_rank = int(os.environ.get('LOCAL_RANK', '0'))
    want_cuda = device.startswith('cuda') or (not device and torch.cuda.is_available())
    if want_cuda and not torch.cuda.is_available():
        raise RuntimeError(f'device {device!r} requested but CUDA is not available')
    if want_cuda:
        dev = torch.device(device if ':' in device and world == 1 else f'cuda:{local_rank}')
        torch.cuda.set_device(dev)
    else:
        dev = torch.device('cpu')
    info = DistInfo(world > 1, world, rank, local_rank, dev)
    if world > 1:
        info.backend = 'nccl' if dev.type == 'cuda' else 'gloo'
        if not dist.is_initialized():
            dist.init_process_group(backend=info.backend, rank=rank, world_size=world)
    return info


def is_primary(info: Optional[DistInfo]) -> bool:
    return info is None or info.rank == 0


def barrier(info: DistInfo) -> None:
    if info.distributed:
        dist.barrier()


def broadcast_object(obj: Any, info: DistInfo, src: int = 0) -> Any:
    if not info.distributed:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=src)
    return box[0]


def all_gather_object(obj: Any, info: DistInfo) -> List[Any]:
    if not info.distributed:
        return [obj]
    out = [None] * info.world_size
    dist.all_gather_object(out, obj)
    return out


def unwrap_model(model: torch.nn.Module) -> torch.nn.Module:
    """Strip DDP and torch.compile wrappers."""
    while True:
        if hasattr(model, 'module') and isinstance(model, torch.nn.parallel.DistributedDataParallel):
            model = model.module
        elif hasattr(model, '_orig_mod'):
            model = model._orig_mod
        else:
            return model


def derive_seed(*parts: int) -> int:
    """A 63-bit seed mixed from integers (seed, rank, epoch, ...) with numpy's SeedSequence."""
    words = np.random.SeedSequence([int(p) & 0xFFFFFFFF for p in parts]).generate_state(2, np.uint32)
    return (int(words[0]) | (int(words[1]) << 32)) & 0x7FFFFFFFFFFFFFFF


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % (2 ** 32))
    torch.manual_seed(seed)


def capture_rng_state() -> Dict[str, Any]:
    """Global RNG states (python, numpy, torch CPU, CUDA) as tensors and plain types (loadable weights_only)."""
    np_state = np.random.get_state()
    state = {
        'python': random.getstate(),
        'numpy': {'kind': str(np_state[0]), 'keys': torch.from_numpy(np_state[1].astype(np.int64)),
                  'pos': int(np_state[2]), 'has_gauss': int(np_state[3]), 'cached_gauss': float(np_state[4])},
        'torch': torch.get_rng_state(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state['cuda'] = torch.cuda.get_rng_state_all()
    return state


def restore_rng_state(state: Dict[str, Any]) -> None:
    py = state['python']
    random.setstate((py[0], tuple(py[1]), py[2]))
    n = state['numpy']
    np.random.set_state((n['kind'], n['keys'].numpy().astype(np.uint32), n['pos'], n['has_gauss'], n['cached_gauss']))
    torch.set_rng_state(state['torch'])
    if 'cuda' in state and torch.cuda.is_available():
        cuda = state['cuda']
        if len(cuda) == torch.cuda.device_count():
            torch.cuda.set_rng_state_all(cuda)


def atomic_torch_save(obj: Any, path: Union[str, Path]) -> Path:
    """torch.save through a temporary file in the same folder, fsync, os.replace (``zoo.checkpoint.atomic_save``):
    a reader (or a crash) never sees a partial checkpoint."""
    from zoo.checkpoint import atomic_save
    return atomic_save(obj, path)


def atomic_write_text(path: Union[str, Path], text: str) -> Path:
    """Write a text file atomically (``zoo.checkpoint.atomic_write_text``)."""
    from zoo.checkpoint import atomic_write_text as _write
    return _write(path, text)


def atomic_copy(src: Union[str, Path], dst: Union[str, Path]) -> Path:
    """Copy ``src`` to ``dst`` atomically (``zoo.checkpoint.atomic_copy``)."""
    from zoo.checkpoint import atomic_copy as _copy
    return _copy(src, dst)


def load_checkpoint_file(path: Union[str, Path], map_location='cpu') -> Dict[str, Any]:
    """A checkpoint loaded safely (``zoo.checkpoint.load``: ``torch.load(weights_only=True)``, or safetensors, whose
    tensors come back under ``state_dict``). A missing file raises FileNotFoundError, an unreadable or unsafe one
    a ``zoo.checkpoint.CheckpointError`` naming it."""
    from zoo.checkpoint import is_safetensors, load
    path = Path(path).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f'checkpoint {path} does not exist')
    ckpt = load(path, map_location=map_location)
    return {'state_dict': ckpt} if is_safetensors(path) else ckpt


def native_dtype_missing(dtype: torch.dtype, device: Union[str, torch.device]) -> Optional[str]:
    """Why ``device`` does not run ``dtype`` natively, e.g. ``'no native bf16 on this CPU (AVX2 only)'``, or None
    when it does. On CPU, bfloat16 / float16 are native where oneDNN has them in hardware (AVX-512 BF16 / FP16,
    AMX); elsewhere they are emulated, many times slower than float32."""
    device = torch.device(device)
    if device.type != 'cpu' or dtype not in (torch.bfloat16, torch.float16):
        return None
    bf16 = dtype == torch.bfloat16
    if (torch.ops.mkldnn._is_mkldnn_bf16_supported() if bf16 else torch.ops.mkldnn._is_mkldnn_fp16_supported()):
        return None
    return f'no native {"bf16" if bf16 else "fp16"} on this CPU ({torch.backends.cpu.get_cpu_capability()} only)'


def resolve_amp_dtype(amp: Union[bool, str], amp_dtype: str, device: torch.device) -> Optional[torch.dtype]:
    """None when AMP is off; bfloat16 on CPU; float16 (default) or bfloat16 on CUDA. On hardware without that
    dtype natively (:func:`native_dtype_missing`): None after one warning, unless ``amp == 'force'``."""
    if not amp:
        return None
    if device.type == 'cpu':
        if amp_dtype == 'float16':
            _logger.warning('float16 autocast is not supported for training on CPU; using bfloat16')
        dtype = torch.bfloat16
    else:
        dtype = torch.bfloat16 if amp_dtype == 'bfloat16' else torch.float16
    why = native_dtype_missing(dtype, device)
    if why and amp != 'force':
        _logger.warning(f'{why}; running in float32 (--amp force keeps {str(dtype).split(".")[-1]})')
        return None
    return dtype


def autocast_context(device: torch.device, dtype: Optional[torch.dtype]):
    if dtype is None:
        return nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)


class _LogFile(logging.FileHandler):
    """The run's ``log.txt``; a full device ends the run with ``DiskFullError`` (instead of logging's printed
    traceback and a log that silently stops)."""

    def handleError(self, record):
        from zoo.checkpoint import disk_full_error
        err = disk_full_error(self.baseFilename, sys.exc_info()[1])
        if err is None:
            return super().handleError(record)
        logging.getLogger('zoo').removeHandler(self)
        with suppress(Exception):
            self.close()
        raise err


class _RankFilter(logging.Filter):
    def __init__(self, rank: int):
        super().__init__()
        self.rank = rank

    def filter(self, record):
        return self.rank == 0 or record.levelno >= logging.WARNING


class _Stderr(logging.StreamHandler):
    """A console handler that writes to the current ``sys.stderr`` (not the one set at set-up, which a caller such
    as a test's capture may since have closed)."""

    @property
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, value):
        pass


def setup_logging(rank: int = 0, log_file: Optional[Union[str, Path]] = None, level=logging.INFO) -> None:
    """Log ``zoo.*`` messages to stderr (rank 0; warnings from every rank) and, on rank 0, to ``log_file``."""
    root = logging.getLogger('zoo')
    root.setLevel(level)
    root.propagate = False
    fmt = logging.Formatter('%(asctime)s %(levelname).1s ' + (f'[rank{rank}] ' if rank else '') + '%(message)s',
                            datefmt='%H:%M:%S')
    if not any(getattr(h, '_zoo_console', False) for h in root.handlers):
        h = _Stderr()
        h._zoo_console = True
        h.setFormatter(fmt)
        h.addFilter(_RankFilter(rank))
        root.addHandler(h)
    for h in list(root.handlers):
        if getattr(h, '_zoo_file', False):
            root.removeHandler(h)
            h.close()
    if log_file and rank == 0:
        fh = _LogFile(log_file)
        fh._zoo_file = True
        fh.setFormatter(fmt)
        root.addHandler(fh)
