"""Command-line entry points (``zoo-train``, ``zoo-eval``, ...); ``tools/*.py`` are thin wrappers around them.

Every entry point runs through :func:`run`, which gives all tools one convention: a user mistake
(:class:`zoo.errors.UserError`, an argparse error, a missing file) or a full disk (:class:`zoo.errors.DiskFullError`,
or any ENOSPC) ends with one line ``error: ...`` on stderr and exit status 2, without a traceback; ``--debug`` (or
``ZOO_DEBUG=1``) re-raises it with the traceback. An entry point's ``main(argv)`` gets this by the decorator
:func:`command`; given the tool's parser
(``@command(parser=build_parser)``), it also parses the arguments and applies ``--quiet`` to the download
progress bars, in one place for all tools. The det/seg tools' parsers are in :mod:`zoo.cli.mm`.
"""
import argparse
import errno
import functools
import os
import sys
from typing import Callable, List, Optional, Sequence

from ..errors import UserError

__all__ = ['run', 'command', 'ArgumentParser', 'USER_ERRORS', 'debug_enabled', 'add_quiet_argument',
           'set_download_progress', 'mm_runner']

# errors that come from what the user asked for; anything else is a bug and keeps its traceback
USER_ERRORS = (UserError, FileNotFoundError, NotADirectoryError, IsADirectoryError, PermissionError,
               FileExistsError)


def debug_enabled(argv: Optional[Sequence[str]] = None) -> bool:
    argv = sys.argv[1:] if argv is None else argv
    return '--debug' in argv or os.environ.get('ZOO_DEBUG', '') not in ('', '0')


class ArgumentParser(argparse.ArgumentParser):
    """argparse with the zoo's error convention: one ``error: ...`` line and exit 2 (no usage dump), and a
    ``--debug`` flag that shows tracebacks."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault('formatter_class', argparse.RawDescriptionHelpFormatter)
        super().__init__(*args, **kwargs)
        self.add_argument('--debug', action='store_true', help='show the full traceback of an error')

    def error(self, message: str):
        raise SystemExit(_fail(f'{message} (see {self.prog} --help)'))


def _fail(message: str) -> int:
    message = ' '.join(str(message).split()) or 'failed'
    print(f'error: {message}', file=sys.stderr)
    return 2


def run(main: Callable[[List[str]], Optional[int]], argv: Optional[Sequence[str]] = None) -> int:
    """Call ``main(argv)`` and turn user errors into ``error: ...`` + exit 2."""
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        return int(main(argv) or 0)
    except USER_ERRORS as e:
        if debug_enabled(argv):
            raise
        msg = str(e)
        if isinstance(e, OSError) and e.filename and str(e.filename) not in msg:
            msg = f'{e.strerror or msg}: {e.filename}'
        return _fail(msg)
    except OSError as e:  # a full disk under a writer that does not raise DiskFullError itself
        if e.errno not in (errno.ENOSPC, errno.EDQUOT) or debug_enabled(argv):
            raise
        from ..checkpoint import disk_full_error
        return _fail(str(disk_full_error(e.filename, e) if e.filename else e))
    except KeyboardInterrupt:
        if debug_enabled(argv):
            raise
        return _fail('interrupted')


def command(main: Optional[Callable[..., Optional[int]]] = None, *,
            parser: Optional[Callable[[], argparse.ArgumentParser]] = None, mm_main: Optional[str] = None):
    """Decorator for an entry point: ``main(argv)`` calls go through :func:`run` (``main()`` reads
    ``sys.argv[1:]``; user errors end as ``error: ...`` and exit status 2).

    ``@command`` gives the decorated function the argument list. ``@command(parser=build_parser)`` gives it the
    namespace of ``build_parser().parse_args(argv)``, with the download progress bars already switched by its
    ``--quiet`` (:func:`add_quiet_argument`, :func:`set_download_progress`). With ``mm_main`` (``'main_train'``,
    ``'main_eval'``), an argument list that starts with a ``.py`` file (an OpenMMLab detection / segmentation
    config) goes unparsed to that function of :mod:`zoo.cli.mm` (:func:`mm_runner`) instead."""
    def decorate(fn: Callable[..., Optional[int]]) -> Callable[[Optional[Sequence[str]]], int]:
        def body(argv: List[str]) -> Optional[int]:
            if mm_main and argv and argv[0].endswith('.py') and not argv[0].startswith('-'):
                return int(mm_runner(mm_main)(argv) or 0)  # detection / segmentation (mmengine)
            if parser is None:
                return fn(argv)
            args = parser().parse_args(argv)
            set_download_progress(not args.quiet)
            return fn(args)

        @functools.wraps(fn)
        def entry(argv: Optional[Sequence[str]] = None) -> int:
            return run(body, argv)
        return entry
    return decorate if main is None else decorate(main)


# ------------------------------------------------------------------------------------------------ download progress
def add_quiet_argument(parser: argparse.ArgumentParser) -> None:
    """``--quiet``: no download progress bars (timm's and huggingface_hub's); shown by default."""
    parser.add_argument('--quiet', action='store_true', help='no download progress bars')


def set_download_progress(enabled: bool = True) -> None:
    """Show (default) or hide the progress bars of weight downloads: timm's URL downloads (off in timm by default)
    and huggingface_hub's (on unless ``HF_HUB_DISABLE_PROGRESS_BARS`` is set)."""
    try:
        import timm.models
        timm.models.set_pretrained_download_progress(enabled)
    except (ImportError, AttributeError):
        pass
    try:
        from huggingface_hub.utils import disable_progress_bars, enable_progress_bars
        if enabled:
            if os.environ.get('HF_HUB_DISABLE_PROGRESS_BARS', '').upper() not in ('1', 'ON', 'YES', 'TRUE'):
                enable_progress_bars()
        else:
            disable_progress_bars()
    except ImportError:
        pass


def mm_runner(name: str):
    """``zoo.cli.mm.<name>`` (main_train / main_eval), or a :class:`UserError` naming the missing OpenMMLab
    package when the detection / segmentation stack is not installed."""
    try:
        import zoo.mm.runner  # noqa: F401  (the stack is importable)
    except ImportError as e:
        raise UserError(f'detection / segmentation configs need the OpenMMLab stack ({e}); '
                        'install it with `pip install "timm-attention-zoo[mm]"` plus mmcv with compiled ops (see README)') from e
    from . import mm
    return getattr(mm, name)
