"""Command-line entry points (``zoo-train``, ``zoo-eval``, ...); ``tools/*.py`` are thin wrappers around them.

Every entry point runs through :func:`run`, which gives all tools one convention: a user mistake
(:class:`zoo.errors.UserError`, an argparse error, a missing file) ends with one line ``error: ...`` on stderr and
exit status 2, without a traceback; ``--debug`` (or ``ZOO_DEBUG=1``) re-raises it with the traceback.
"""
import argparse
import os
import sys
from typing import Callable, List, Optional, Sequence

from ..errors import UserError

__all__ = ['run', 'ArgumentParser', 'USER_ERRORS', 'debug_enabled']

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
    except KeyboardInterrupt:
        if debug_enabled(argv):
            raise
        return _fail('interrupted')
