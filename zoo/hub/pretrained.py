"""``pretrained=True`` for the zoo's tags: the Hub first, the authors' URL as the fallback, checksums, one error.

``import zoo`` installs :func:`build_model` as the builder ``pretrained=True`` goes through
(``zoo.models.use_pretrained_builder``); weights the caller chose (``file`` / ``state_dict`` overlays, ``hf-hub:`` /
``local-dir:`` names) go to timm unchanged. :func:`resolve` tries the cfg's ``hf_hub_id`` through timm's ``_hub`` and
huggingface_hub, then the official ``url`` or a copy saved by hand (under ``$ZOO_CACHE_DIR/checkpoints``), checks the
manifest's SHA-256 where it lists one, and loads through :mod:`zoo.checkpoint`. When nothing loads,
:class:`~zoo.errors.PretrainedUnavailable` names every source tried and the next step.
"""
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional

import torch
from timm.models import build_model_with_cfg, resolve_pretrained_cfg

from .. import manifest
from ..checkpoint import CheckpointError, convert_and_check, load as safe_load, sha256_file
from ..errors import PretrainedUnavailable
from .download import cache_dir, download, downloadable

__all__ = ['Weights', 'resolve', 'build_model', 'HUB_FILES']

_logger = logging.getLogger(__name__)

HUB_FILES = ('model.safetensors', 'pytorch_model.bin')  # timm's order when no hf_hub_filename is set


@dataclass
class Weights:
    path: Path
    origin: str  # where it came from, for messages: 'Hub org/name (revision main) model.safetensors', 'URL ...'
    sha256: str
    expected_sha256: Optional[str]  # the manifest's value (None: not recorded yet)
    sha_field: str  # the manifest field that holds it: hub_sha256, hf_hub_sha256 or sha256

    @property
    def verified(self) -> bool:
        return self.expected_sha256 is not None and self.sha256 == self.expected_sha256


def _reason(e: BaseException) -> str:
    text = ' '.join(str(e).split())
    return f'{type(e).__name__}: {text[:300]}{"..." if len(text) > 300 else ""}'.rstrip(': ')


def _offline() -> bool:
    from huggingface_hub import constants
    return bool(constants.is_offline_mode())


def _checked(path: Path, expected: Optional[str], origin: str, field: str, tried: List[str]) -> Optional[Weights]:
    have = sha256_file(path)
    if expected and have != expected:
        tried.append(f'{origin}: {path.resolve()} has SHA-256 {have}, the manifest lists {expected} (`{field}`); '
                     f'delete it to download it again')
        return None
    return Weights(path, origin, have, expected, field)


def _from_hub(hub_id: str, filename: Optional[str], expected: Optional[str], field: str, tried: List[str]
              ) -> Optional[Weights]:
    from huggingface_hub import constants
    from huggingface_hub.errors import EntryNotFoundError, LocalEntryNotFoundError
    from timm.models._hub import download_from_hf, hf_split
    repo, revision = hf_split(hub_id)
    where = f'Hub {repo} (revision {revision or "main"})'
    names = [filename] if filename else list(HUB_FILES)
    error: Optional[BaseException] = None
    for name in names:
        try:
            path = Path(download_from_hf(hub_id, name))
        except EntryNotFoundError as e:
            unreachable = isinstance(e, LocalEntryNotFoundError) and not _offline()
            error = e if unreachable else error or e
            if unreachable:  # nothing cached and the Hub could not be reached: the next file would fail alike
                break
            continue  # not in the repo (or, offline, not cached): the next file, as timm does
        except Exception as e:  # unreachable, offline and not cached, no such repo or revision, a bad download
            error = e
            break
        return _checked(path, expected, f'{where} {name}', field, tried)
    cache = Path(constants.HF_HUB_CACHE) / ('models--' + repo.replace('/', '--'))
    tried.append(f'{where} {" / ".join(names)}: {_reason(error)} (cache: {cache})')
    return None


def _from_url(url: str, entry: Dict[str, Any], tried: List[str]) -> Optional[Weights]:
    """The official file: from the zoo's cache (or timm's old URL cache), else downloaded unless offline."""
    import timm.models._builder as timm_builder
    name = entry.get('file') or os.path.basename(url.split('?', 1)[0].rstrip('/'))
    expected = entry.get('sha256') if url == entry.get('url') else None
    dst = cache_dir() / name
    timm_cached = Path(torch.hub.get_dir()) / 'checkpoints' / os.path.basename(url.split('?', 1)[0])
    if entry.get('source') == 'url' and not dst.is_file() and timm_cached.is_file():  # by timm's URL loader before
        return _checked(timm_cached, expected, f'cached copy of URL {url}', 'sha256', tried)
    if _offline():
        if dst.is_file():
            return _checked(dst, expected, f'cached copy of URL {url}', 'sha256', tried)
        tried.append(f'URL {url}: not downloaded (HF_HUB_OFFLINE is set) and not in the cache {dst}')
        return None
    try:  # a cached copy is reused when it matches the manifest's SHA-256, downloaded again when it does not
        d = download(url, sha256=expected, filename=name, cache=dst.parent,
                     progress=getattr(timm_builder, '_DOWNLOAD_PROGRESS', False))
    except Exception as e:  # URLError, HTTP errors, a checksum mismatch, a damaged or unsafe file
        tried.append(f'URL {url}: {_reason(e)} (cache: {dst})')
        return None
    return Weights(d.path, f'URL {url}', d.sha256, expected, 'sha256')


def _from_hand(entry: Dict[str, Any], tried: List[str]) -> Optional[Weights]:
    """A manual-only official file saved by hand in the cache under its manifest name."""
    dst = cache_dir() / entry['file']
    if dst.is_file():
        return _checked(dst, entry.get('sha256'), 'official file saved by hand', 'sha256', tried)
    tried.append(f'cache {dst}: not there')
    return None


def _overlay(name: str) -> str:
    return f"timm.create_model('{name}', pretrained=True, pretrained_cfg_overlay=dict(file=PATH))"


def _next_step(name: str, entry: Dict[str, Any], online_sources: bool) -> str:
    page = entry.get('page')
    if online_sources:
        step = (f'run `zoo-download {name}` where the network is reachable (it fills the same caches; HF_HOME and '
                f'ZOO_CACHE_DIR choose them), or load a local copy: {_overlay(name)}')
        return step + (f'; the official file is also at {page}' if page and page != entry.get('url') else '')
    if entry.get('file') and page:
        return (f"download {entry['file']} by hand from {page} and save it as {cache_dir() / entry['file']} "
                f"(checked against the manifest's SHA-256 when it lists one), or pass it: {_overlay(name)}")
    if entry:
        return f'its weights are not published yet (source: {entry.get("source")}); pass a checkpoint: {_overlay(name)}'
    return (f'{name} has no pretrained weights in the zoo (zoo.list_pretrained() lists those that do); pass a '
            f'checkpoint: {_overlay(name)}, or use pretrained=False')


def _unavailable(name: str, tried: List[str], next_step: str, what: str = 'no pretrained weights could be loaded'
                 ) -> PretrainedUnavailable:
    lines = [f'{name}: {what}.'] + [f'  tried {t}.' for t in tried] + [f'  next: {next_step}.']
    return PretrainedUnavailable('\n'.join(lines))


def _name_cfg(name: str, cfg: Optional[Dict[str, Any]]):
    if cfg is None:
        arch, _, tag = name.partition('.')
        cfg = resolve_pretrained_cfg(arch, pretrained_cfg=tag or None).to_dict()
    return '.'.join(filter(None, (cfg.get('architecture') or name.partition('.')[0], cfg.get('tag')))), cfg


def resolve(name: str, cfg: Optional[Dict[str, Any]] = None) -> Weights:
    """The local file of tag ``name``'s weights (``arch`` alone: its default tag), downloaded if needed: the Hub copy
    of its pretrained cfg, else the official URL, else the official file saved by hand in the cache; checksums
    verified. Raises :class:`PretrainedUnavailable` naming every source tried and the next step."""
    name, cfg = _name_cfg(name, cfg)
    entry = manifest.entry(name) or {}
    tried: List[str] = []
    hub_id = cfg.get('hf_hub_id')
    url = cfg.get('url') or (entry.get('url') if downloadable(entry) else None)
    found = None
    if hub_id:
        own_id, own_sha = manifest.hub_source(entry)
        field = 'hub_sha256' if hub_id == entry.get('hub') else 'hf_hub_sha256'
        found = _from_hub(hub_id, cfg.get('hf_hub_filename'), own_sha if hub_id == own_id else None, field, tried)
    if found is None and url:
        found = _from_url(url, entry, tried)
    elif found is None and entry.get('file') and entry.get('source') == 'manual':
        found = _from_hand(entry, tried)
    if found is None:
        if entry.get('hub') and not hub_id:
            tried.insert(0, f'Hub {entry["hub"]}: no copy published yet')
        raise _unavailable(name, tried, _next_step(name, entry, bool(hub_id or url)))
    if tried:
        _logger.warning(f'{name}: loading {found.origin} after: ' + '; '.join(tried))
    return found


def _checked_filter(filter_fn: Callable, name: Optional[str] = None, weights: Optional[Weights] = None) -> Callable:
    """The family's key filter, then the one strict check (:func:`zoo.checkpoint.convert_and_check`); for weights
    the zoo found itself (``weights``), a mismatch says which file holds another model's weights."""
    def convert(state_dict, model):
        model.pretrained_cfg.pop('state_dict', None)  # the tensors go into the model, not into its cfg
        if weights is None:
            return convert_and_check(state_dict, model, filter_fn)
        try:
            return convert_and_check(state_dict, model, filter_fn)
        except CheckpointError as e:
            raise _unavailable(name, [f'{weights.origin}: {weights.path}: {_reason(e)}'], _fix_source(name, weights),
                               'the file found holds the weights of another model') from None
    return convert


def _fix_source(name: str, weights: Weights) -> str:
    return (f'check the weights source of {name} in {manifest.manifest_path()} (or your pretrained_cfg_overlay), '
            f'delete {weights.path.resolve()}, or pass a checkpoint: {_overlay(name)}')


def build_model(model_cls: Callable, variant: str, pretrained: bool, pretrained_filter_fn: Optional[Callable] = None,
                **kwargs):
    """timm's ``build_model_with_cfg``, with the zoo's weight sources for ``pretrained=True`` (see the module)."""
    if pretrained:
        cfg = resolve_pretrained_cfg(variant, pretrained_cfg=kwargs.get('pretrained_cfg'),
                                     pretrained_cfg_overlay=kwargs.get('pretrained_cfg_overlay')).to_dict()
        if cfg.get('state_dict') is None and not cfg.get('file') and cfg.get('source') not in ('hf-hub', 'local-dir'):
            name = _name_cfg(variant, cfg)[0]
            weights = resolve(name, cfg)
            try:
                obj = safe_load(weights.path)
            except CheckpointError as e:
                raise _unavailable(name, [f'{weights.origin}: {_reason(e)}'], _fix_source(name, weights),
                                   'the file found cannot be loaded') from None
            if not isinstance(obj, dict):
                raise _unavailable(name, [f'{weights.origin}: {weights.path} holds a {type(obj).__name__}'],
                                   _fix_source(name, weights), 'the file found holds no state dict')
            kwargs['pretrained_cfg_overlay'] = dict(kwargs.get('pretrained_cfg_overlay') or {}, state_dict=obj)
            return build_model_with_cfg(model_cls, variant, pretrained, **kwargs,
                                        pretrained_filter_fn=_checked_filter(pretrained_filter_fn, name, weights))
        if pretrained_filter_fn is not None:
            pretrained_filter_fn = _checked_filter(pretrained_filter_fn)
    return build_model_with_cfg(model_cls, variant, pretrained, pretrained_filter_fn=pretrained_filter_fn, **kwargs)
