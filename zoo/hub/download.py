"""Official files: download with a progress bar, verify the SHA-256 against the manifest, keep checksum records.

A download is staged under a temporary name in the cache folder (``$ZOO_CACHE_DIR/checkpoints``, default
``~/.cache/zoo/checkpoints``), its SHA-256 is compared with the manifest's, it is test-loaded safely
(:func:`zoo.checkpoint.load`), and only then moved into place (:func:`zoo.checkpoint.commit_file`): a failed, corrupt
or tampered download never leaves a file behind. A first download of an entry whose manifest ``sha256`` is still
null is recorded: into the manifest with ``record=True``, otherwise in ``<cache>/sha256_records.json`` with a note.
"""
import contextlib
import json
import logging
import os
import sys
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Union

import torch

from .. import manifest
from ..checkpoint import (CheckpointError, ChecksumError, atomic_write_text, commit_file, disk_full_guard,
                          load as safe_load, sha256_file)
from ..errors import UserError

__all__ = ['CACHE_ENV', 'SHA_RECORDS', 'ManualDownloadError', 'Download', 'cache_dir', 'download', 'fetch',
           'record_sha256_locally', 'check_sha256', 'downloadable']

_logger = logging.getLogger(__name__)

CACHE_ENV = 'ZOO_CACHE_DIR'
SHA_RECORDS = 'sha256_records.json'


class ManualDownloadError(UserError, RuntimeError):
    """The official file cannot be downloaded automatically (e.g. Google Drive); fetch it by hand."""


def cache_dir(sub: str = 'checkpoints') -> Path:
    """``$ZOO_CACHE_DIR/<sub>`` (default ``~/.cache/zoo/<sub>``), created if missing."""
    root = Path(os.environ.get(CACHE_ENV) or Path.home() / '.cache' / 'zoo')
    path = root / sub if sub else root
    path.mkdir(parents=True, exist_ok=True)
    return path


def _note(msg: str) -> None:
    print(msg, file=sys.stderr)


@dataclass
class Download:
    path: Path
    sha256: str
    expected_sha256: Optional[str]  # the manifest's value (None: unknown, see `record_sha256_locally`)

    @property
    def verified(self) -> bool:
        return self.expected_sha256 is not None and self.sha256 == self.expected_sha256


def download(url: str, sha256: Optional[str] = None, filename: Optional[str] = None,
             cache: Optional[Union[str, os.PathLike]] = None, progress: bool = True,
             sha256_prefix: Optional[str] = None, extra_globals=()) -> Download:
    """Fetch ``url`` into the cache and return its path and SHA-256.

    The file is downloaded (with a progress bar unless ``progress=False``) under a temporary name inside the cache
    folder, checked against ``sha256`` when given, test-loaded with :func:`zoo.checkpoint.load`, and only then moved
    into place (``sha256_prefix``: the start of the SHA-256 that the authors publish, checked too; ``extra_globals``:
    data types the test-load may rebuild). Any failure removes the temporary file and raises :class:`ChecksumError`,
    :class:`CorruptCheckpointError`, :class:`UnsafeCheckpointError` or the network error. A cached file is reused
    when its hash still matches.
    """
    folder = Path(cache) if cache else cache_dir()
    folder.mkdir(parents=True, exist_ok=True)
    name = os.path.basename(filename or url.split('?', 1)[0].rstrip('/')) or 'download'
    dst = folder / name
    sha256 = sha256.lower() if sha256 else None
    prefix = sha256_prefix.lower() if sha256_prefix else ''
    if dst.is_file():
        have = sha256_file(dst)
        if (sha256 is None or have == sha256) and have.startswith(prefix):
            return Download(dst, have, sha256)
        _logger.warning(f'cached {dst} has SHA-256 {have}, the manifest says {sha256}: downloading it again')
        dst.unlink()
    staged = folder / f'.{name}.{uuid.uuid4().hex}.download'
    try:
        print(f'Downloading {url} -> {dst}', file=sys.stderr)
        with disk_full_guard(dst):
            torch.hub.download_url_to_file(url, str(staged), hash_prefix=None, progress=progress)
        have = sha256_file(staged)
        if not have.startswith(prefix):
            raise ChecksumError(
                f'SHA-256 mismatch for {url}: the published prefix is {prefix}, got {have} '
                f'({staged.stat().st_size} bytes). The download is incomplete or the file changed; nothing was cached.')
        if sha256 is not None and have != sha256:
            raise ChecksumError(
                f'SHA-256 mismatch for {url}: expected {sha256}, got {have} '
                f'({staged.stat().st_size} bytes). The download is incomplete or the file changed; nothing was cached.')
        try:
            safe_load(staged, extra_globals=extra_globals)
        except CheckpointError as e:
            raise type(e)(f'downloaded {url}: {e}'.replace(str(staged), name)) from None
        commit_file(staged, dst)
    finally:
        for f in (staged, *folder.glob(f'{staged.name}.*.partial')):  # torch keeps its .partial on a write error
            with contextlib.suppress(FileNotFoundError):
                f.unlink()
    return Download(dst, have, sha256)


def record_sha256_locally(name: str, result: Download, url: Optional[str] = None,
                          cache: Optional[Union[str, os.PathLike]] = None) -> Path:
    """Remember the SHA-256 of a first download whose manifest entry has none (``<cache>/sha256_records.json``)."""
    root = Path(cache) if cache else cache_dir('')
    path = root / SHA_RECORDS
    records = json.loads(path.read_text()) if path.is_file() else {}
    records[name] = {'sha256': result.sha256, 'file': result.path.name, 'url': url}
    return atomic_write_text(path, json.dumps(records, indent=2, sort_keys=True) + '\n')


def downloadable(entry: dict) -> bool:
    """Whether tools/download.py can fetch an entry's official file by itself (``url``, or ``manual`` + ``url``)."""
    return entry.get('source') in ('url', 'manual') and bool(entry.get('url'))


def fetch(name: str, cache: Optional[Union[str, os.PathLike]] = None, progress: bool = True,
          record: bool = False) -> Download:
    """Download the official file of manifest entry ``arch.tag`` (verifying or recording its SHA-256).

    With ``record`` an unknown SHA-256 is written into the manifest entry; otherwise it is printed and kept in
    ``<cache>/sha256_records.json`` with a note. ``cache`` is the cache root (files go to ``<cache>/checkpoints``).
    """
    e = manifest.entry(name)
    if e is None:
        raise KeyError(f'{name} is not in the weights manifest ({manifest.manifest_path()})')
    source = e.get('source')
    url = e.get('url') if source in ('url', 'manual') else None
    if source == 'manual' and not url:
        raise ManualDownloadError(
            f'{name}: the official file {e.get("file")!r} cannot be downloaded automatically; fetch it by hand '
            f'from {e.get("page")} and run: python tools/convert.py --model {name} --checkpoint <file> --out <dir>')
    if not url:
        where = f'; load the published copy with timm.create_model({name!r}, pretrained=True)' if e.get('published') else ''
        raise ManualDownloadError(f'{name}: no official file to download (source: {source}){where}')
    folder = Path(cache) / 'checkpoints' if cache else cache_dir()
    try:
        # `file` names the cached copy (direct links such as OneDrive's .../content carry no file name)
        extra = ()
        if e.get('task') in manifest.DENSE_TASKS:  # mmcv / mmengine checkpoints keep numpy scalars in `meta`
            from ..checkpoint import mmengine_checkpoint_globals
            extra = mmengine_checkpoint_globals()
        result = download(url, sha256=e.get('sha256'), filename=e.get('file'), cache=folder, progress=progress,
                          sha256_prefix=e.get('sha256_prefix'), extra_globals=extra)
    except OSError as ex:
        hint = f'; if the link is dead, fetch the file by hand from {e["page"]} and use tools/convert.py' \
            if e.get('page') else ''
        raise OSError(f'{name}: download of {url} failed: {ex}{hint}') from ex
    if result.expected_sha256 is None:
        if record:
            path = manifest.record_sha256(name, result.sha256)
            _note(f'NOTE: {name}: the manifest had no SHA-256; recorded {result.sha256} in {path}. '
                  f'Check the file came from the official source before committing it.')
        else:
            rec = record_sha256_locally(name, result, url, folder.parent)
            _note(f'NOTE: {name}: the manifest has no SHA-256, so the download could not be verified.\n'
                  f'  sha256: {result.sha256}\n'
                  f'  kept in {rec}; run again with --record to write it into {manifest.manifest_path()}.')
    return result


def check_sha256(name: str, path: Union[str, os.PathLike], record: bool = False, allow_mismatch: bool = False
                 ) -> str:
    """Check a local copy of manifest entry ``name``'s official file (fetched by hand) against the manifest.

    Returns ``'verified'``, ``'recorded'`` (the manifest had none and ``record`` wrote it), ``'unverified'`` (none
    known; a note prints it), ``'mismatch'`` (only with ``allow_mismatch``; a warning says so) or ``'n/a'`` (no
    official file for this name). A mismatch otherwise raises :class:`ChecksumError`.
    """
    entry = manifest.entry(name) if '.' in name else None
    if entry is None or entry.get('source') not in ('url', 'manual'):
        return 'n/a'
    path = Path(path)
    sha = sha256_file(path)
    expected = entry.get('sha256')
    if expected is None:
        if record:
            where = manifest.record_sha256(name, sha)
            _note(f'NOTE: the manifest had no SHA-256 for {name}; recorded {sha} in {where}. '
                  f'Check the file is the official {entry.get("file")} before committing it.')
            return 'recorded'
        _note(f'NOTE: the manifest has no SHA-256 for {name}, so {path.name} could not be verified.\n'
              f'  sha256: {sha}\n  run again with --record to write it into {manifest.manifest_path()}.')
        return 'unverified'
    if sha != expected:
        msg = (f'SHA-256 of {path} is {sha}, but the manifest lists {expected} for the official '
               f'{entry.get("file")} of {name}')
        if not allow_mismatch:
            raise ChecksumError(msg + ' (use --no-verify to convert it anyway)')
        _note(f'WARNING: {msg}')
        return 'mismatch'
    _note(f'{path.name}: SHA-256 matches the manifest')
    return 'verified'
