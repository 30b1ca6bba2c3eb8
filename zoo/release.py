"""The maintainer's flow for official weights, one manifest entry at a time:

download (checksum verified, or recorded into the manifest with ``record``) -> convert to the zoo layout (the family's
checkpoint filter, every tensor checked) -> export in timm's Hub layout -> verify (reload the folder as users will,
strictly, every tensor equal) -> push to the entry's ``hub`` repo -> mark ``published: true`` in the manifest.

``tools/download.py --all --record --verify --push`` runs it for every entry with a downloadable official file.
Nothing is pushed from a file whose SHA-256 is neither in the manifest nor recorded by this run.
"""
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional, Union

from . import manifest
from .errors import UserError
from .hub.card import model_card
from .hub.convert import convert, verify_export
from .hub.download import downloadable, fetch
from .hub.export import HubError, export, mark_published, publish_cfg, push

__all__ = ['Release', 'release']


@dataclass
class Release:
    name: str
    path: Optional[Path] = None  # the downloaded official file
    sha256: Optional[str] = None
    verified: bool = False  # the file's SHA-256 equals the manifest's
    recorded: bool = False  # this run wrote the SHA-256 into the manifest
    out: Optional[Path] = None  # the exported folder
    tensors_checked: int = 0  # tensors compared by the verify step
    pushed: Optional[str] = None  # the Hub repo it was pushed to
    marked: bool = False  # `published: true` was set


def _say(msg: str) -> None:
    print(msg, file=sys.stderr)


def release(name: str, out_root: Union[str, os.PathLike], cache: Optional[Union[str, os.PathLike]] = None,
            progress: bool = True, record: bool = False, convert_: bool = True, verify: bool = False,
            push_: bool = False, mark: bool = True, token: Optional[str] = None, private: bool = False,
            commit_message: str = 'Add model', say: Callable[[str], None] = _say) -> Release:
    """Run the flow for manifest entry ``name`` (see the module docstring); the steps after the download are
    optional (``convert_``, ``verify``, ``push_``; pushing implies converting and verifying; ``mark`` sets
    ``published: true`` after a push). Raises on the first failing step; :class:`ManualDownloadError` when the
    official file must be fetched by hand."""
    entry = manifest.entry(name)
    if entry is None:
        raise UserError(f'{name} is not in the weights manifest ({manifest.manifest_path()})')
    if push_:
        convert_ = verify = True
        if downloadable(entry) and not entry.get('hub'):  # (files to fetch by hand: fetch() says so below)
            raise HubError(f'{name}: the manifest entry has no `hub` repo to push to')
    had_sha = entry.get('sha256') is not None
    dl = fetch(name, cache=cache, progress=progress, record=record)
    r = Release(name, dl.path, dl.sha256, verified=dl.verified, recorded=not had_sha and record)
    state = 'verified' if r.verified else 'recorded in the manifest' if r.recorded else \
        'NOT verified (no SHA-256 in the manifest)'
    say(f'{name}: downloaded {dl.path} sha256={dl.sha256} [{state}]')
    if not convert_:
        return r
    entry = manifest.entry(name) or entry
    if entry.get('task') in manifest.DENSE_TASKS:  # the authors' detector / segmenter: mmengine file, no Hub copy
        from .mm.convert import convert_checkpoint
        r.out = convert_checkpoint(dl.path, entry['config'], Path(out_root) / f'{name}.pth', layout=entry['layout'])
        say(f'{name}: converted -> {r.out}  (load_from={r.out!s} with {entry["config"]})')
        return r
    model = convert(name, dl.path)
    repo = entry.get('hub')
    cfg = publish_cfg(entry)
    card = model_card(model, repo_id=repo, entry=entry)
    r.out = export(model, Path(out_root) / name, card=card, tag=name.partition('.')[2], repo_id=repo, cfg=cfg)
    say(f"{name}: converted -> {r.out}  (load: import zoo; timm.create_model('local-dir:{r.out}', pretrained=True))")
    if verify:
        r.tensors_checked = verify_export(r.out, model)
        say(f'{name}: verified: {r.out} reloads strictly with all {r.tensors_checked} tensors equal')
    if not push_:
        return r
    if not (r.verified or r.recorded):
        raise HubError(f'{name}: not pushing weights whose SHA-256 is not in the manifest; run with --record (after '
                       f'checking the file is the official {entry.get("file")}) or add sha256 to the entry')
    result = push(model, repo, card=card, token=token, private=private, commit_message=commit_message, cfg=cfg)
    r.pushed = repo
    say(f'{name}: pushed to https://huggingface.co/{repo} ({getattr(result, "commit_url", result)})')
    if mark:
        path = mark_published(name, repo)
        r.marked = path is not None
        if r.marked:
            say(f'{name}: marked published: true in {path}')
    return r

