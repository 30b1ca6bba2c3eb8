"""The one base class for mistakes a user can fix, and the message for an unknown model name.

Library code raises a subclass of :class:`UserError` (bad config value, missing file, unknown model, a checkpoint
that does not fit); the command-line tools (:mod:`zoo.cli`) print such an error as one ``error: ...`` line and exit
with status 2. Anything else is a bug and keeps its traceback. A full disk (:class:`DiskFullError`) is reported the
same way: the message names the file that could not be written and the space left.
"""
import difflib
import errno
from typing import Iterable, List, Optional

__all__ = ['UserError', 'ConfigError', 'UnknownModelError', 'PretrainedUnavailable', 'DiskFullError', 'closest_names',
           'check_model_name']


class UserError(Exception):
    """A mistake in what the user asked for; the message says what is wrong and, where it can, what to do."""


class ConfigError(UserError, ValueError):
    """A configuration that cannot run: a training setting (unknown name, wrong type, bad value) or a det/seg config
    (unknown backbone, out_indices outside the model, missing dataset path)."""


class UnknownModelError(UserError, RuntimeError):
    """A model name that neither timm nor the zoo registers (RuntimeError, as timm's own error, for callers)."""


class PretrainedUnavailable(UserError, RuntimeError):
    """``pretrained=True`` could not load a tag's weights (offline and not cached, fetched by hand only, a checksum
    mismatch, a file of another model). The message names the tag, each source tried and the next step
    (RuntimeError, as timm's "No pretrained weights exist", for callers)."""


def _size(n: int) -> str:
    if n < 1024:
        return f'{n} B'
    k = min(3, (n.bit_length() - 1) // 10)
    return f'{n / 1024 ** k:.1f} {("KiB", "MiB", "GiB")[k - 1]}'


class DiskFullError(UserError, OSError):
    """No space left on the device for ``filename`` (an OSError with errno ENOSPC); ``free`` is the space that was
    left there (bytes). The partial file has been removed and the earlier version of the file, if any, is intact."""

    def __init__(self, filename, free: int):
        super().__init__(errno.ENOSPC, f'no space left on the device to write {filename} ({_size(free)} free there); '
                                       f'free some space and run again', str(filename))
        self.free = free

    def __str__(self) -> str:
        return self.strerror


def closest_names(name: str, candidates: Iterable[str], n: int = 5) -> List[str]:
    return difflib.get_close_matches(name, list(candidates), n=n, cutoff=0.5)


def check_model_name(name: str, candidates: Optional[Iterable[str]] = None) -> str:
    """Return ``name`` when it is a registered architecture (``arch`` or ``arch.tag``), an ``hf-hub:`` or a
    ``local-dir:`` id; raise :class:`UnknownModelError` listing the closest registered names otherwise."""
    if name.startswith(('hf-hub:', 'hf_hub:', 'local-dir:')):
        return name
    import timm  # the zoo architectures are registered: importing any zoo module runs zoo/__init__.py first
    arch = name.split('.', 1)[0]
    if timm.is_model(arch):
        return name
    names = list(candidates) if candidates is not None else timm.list_models()
    close = closest_names(arch, names)
    hint = f'; closest registered names: {", ".join(close)}' if close else ''
    raise UnknownModelError(f'unknown model {name!r}{hint} (zoo.list_models() lists the zoo models)')
