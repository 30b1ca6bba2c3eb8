"""timm's Hub layout: export to a folder, publish to the Hugging Face Hub, and the rules that go with publishing.

:func:`export` writes ``model.safetensors`` + ``config.json`` (``timm.models.save_for_hf``) and ``README.md`` (the
model card); :func:`push` publishes the same with ``timm.models.push_to_hf_hub``. :func:`publish_target` resolves the
model to build, the manifest entry and the repo (``<org>/<arch>.<tag>``, default the entry's ``hub``);
:func:`mark_published` sets ``published: true`` in the manifest entry after a push.
"""
import os
import tempfile
from pathlib import Path
from typing import Any, Dict, NamedTuple, Optional, Sequence, Union

import torch.nn as nn

import timm

from .. import manifest
from ..version import __version__
from ..checkpoint import atomic_write_text, commit_file, disk_full_guard
from ..errors import UserError
from .card import model_card
from .convert import ZOO_CONFIG_KEY

__all__ = ['HubError', 'export', 'hub_data_config', 'push', 'check_repo_id', 'publish_target', 'PublishTarget',
           'publish_cfg', 'require_online', 'mark_published']


class HubError(UserError, ValueError):
    """A publishing request that cannot work as given (repo named after another model, offline mode, ...)."""


def _export_config(model: nn.Module, tag: Optional[str], cfg: Optional[Dict[str, Any]] = None) -> Dict[str, Any]:
    model_config: Dict[str, Any] = {}
    pretrained_cfg = dict(cfg or {})
    if tag:
        pretrained_cfg['tag'] = tag
    if pretrained_cfg:
        model_config['pretrained_cfg'] = pretrained_cfg
    prov = {k: v for k, v in (getattr(model, 'zoo_provenance', None) or {}).items() if k != 'data_config'}
    model_config[ZOO_CONFIG_KEY] = dict(prov, zoo_version=__version__)
    return model_config


def _data_config(model: nn.Module) -> Optional[Dict[str, Any]]:
    return (getattr(model, 'zoo_provenance', None) or {}).get('data_config')


def hub_data_config(data_config: Dict[str, Any]) -> Dict[str, Any]:
    """The keys of a data config that timm's Hub layout holds (lists as tuples)."""
    return {k: (tuple(v) if isinstance(v, list) else v) for k, v in data_config.items()
            if k in ('input_size', 'interpolation', 'mean', 'std', 'crop_pct', 'crop_mode')}


def export(model: nn.Module, out_dir: Union[str, os.PathLike], card: Optional[Dict[str, Any]] = None,
           tag: Optional[str] = None, repo_id: Optional[str] = None, cfg: Optional[Dict[str, Any]] = None, *,
           label_names: Optional[Sequence[str]] = None, data_config: Optional[Dict[str, Any]] = None,
           readme: bool = True) -> Path:
    """Write ``model`` in timm's Hub layout: ``model.safetensors`` + ``config.json`` (``timm.models.save_for_hf``)
    and, with ``readme``, ``README.md`` (the model card, rendered by timm's ``generate_readme``). ``cfg`` overrides
    values of the exported pretrained cfg (e.g. :func:`zoo.manifest.cfg_overrides` of the manifest entry);
    ``label_names`` are the class names written into ``config.json``; ``data_config`` the preprocessing the weights
    were trained / evaluated with (default: the checkpoint's, from ``model.zoo_provenance``; a training run's
    ``data_cfg``: through :func:`hub_data_config`). Reload with
    ``timm.create_model('local-dir:' + out_dir, pretrained=True)``."""
    from timm.models._hub import generate_readme
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tag = tag or model.pretrained_cfg.get('tag')
    model_config = _export_config(model, tag, cfg)
    if label_names:
        model_config['label_names'] = list(label_names)
    # staged beside the files it replaces: a failed write (a full disk: DiskFullError) leaves an earlier export whole
    with tempfile.TemporaryDirectory(prefix='.export.', dir=out) as staged, disk_full_guard(out):
        timm.models.save_for_hf(model, staged, model_config=model_config, safe_serialization=True,
                                data_config=data_config if data_config is not None else _data_config(model))
        for f in sorted(Path(staged).iterdir()):
            commit_file(f, out / f.name)
    if not readme:
        return out
    card = card or model_card(model, repo_id=repo_id)
    arch = model.pretrained_cfg.get('architecture')
    name = repo_id.split('/')[-1] if repo_id else (f'{arch}.{tag}' if tag else arch)
    atomic_write_text(out / 'README.md', generate_readme(card, name))
    return out


def check_repo_id(model: nn.Module, repo_id: str) -> str:
    """``repo_id`` must be ``<org>/<arch>.<tag>`` with the model's architecture; returns the tag."""
    try:
        _, repo_name, _ = manifest.split_hub_id(repo_id)
    except ValueError as e:
        raise HubError(str(e)) from None
    arch = model.pretrained_cfg.get('architecture')
    r_arch, dot, tag = repo_name.partition('.')
    if not dot or not tag or r_arch != arch:
        raise HubError(f'Hub repo {repo_id!r} must be named <org>/{arch}.<tag> (one repo per arch.tag, as timm does)')
    return tag


def require_online() -> None:
    from huggingface_hub import constants
    if constants.HF_HUB_OFFLINE:
        raise HubError('HF_HUB_OFFLINE is set (the Makefile sets it): run with HF_HUB_OFFLINE=0 to push')


def push(model: nn.Module, repo_id: str, card: Optional[Dict[str, Any]] = None, token: Optional[str] = None,
         private: bool = False, revision: Optional[str] = None, create_pr: bool = False,
         commit_message: str = 'Add model', cfg: Optional[Dict[str, Any]] = None) -> Any:
    """Publish ``model`` to ``repo_id`` with ``timm.models.push_to_hf_hub`` (safetensors only; card as README;
    ``cfg`` overrides values of the published pretrained cfg)."""
    from timm.models import _hub
    if '@' in repo_id:
        raise HubError('give the revision with `revision=`, not in the repo id')
    tag = check_repo_id(model, repo_id)
    card = card or model_card(model, repo_id=repo_id)
    return _hub.push_to_hf_hub(
        model, repo_id, commit_message=commit_message, token=token, revision=revision, private=private,
        create_pr=create_pr, model_config=_export_config(model, tag, cfg), model_card=card,
        safe_serialization=True, data_config=_data_config(model))


class PublishTarget(NamedTuple):
    build_name: str  # what to build (arch, or arch.tag when that tag's pretrained cfg is registered)
    repo: str  # <org>/<arch>.<tag>
    repo_name: str  # <arch>.<tag>
    entry: Optional[Dict[str, Any]]  # the manifest entry of that arch.tag, if any


def publish_target(name: str, repo: Optional[str] = None) -> PublishTarget:
    """Resolve a publish request: ``name`` is ``arch`` or ``arch.tag`` (the tag selects the manifest entry), ``repo``
    defaults to that entry's ``hub``. A manifest tag added after ``import zoo`` (no registered cfg yet) builds the
    architecture and takes its tag from the repo; a repo named after a registered entry builds with its cfg."""
    entry = manifest.entry(name) if '.' in name else None
    repo = repo or (entry or {}).get('hub')
    if not repo:
        raise HubError(f'--repo ORG/ARCH.TAG is needed (the manifest has no `hub` for {name})')
    try:
        repo_name = manifest.split_hub_id(repo)[1]
    except ValueError as e:
        raise HubError(str(e)) from None
    arch = name.partition('.')[0]
    build = name
    if '.' in name and timm.is_model(arch) and name not in timm.models.get_arch_pretrained_cfgs(arch):
        build = arch
    if entry is None:  # the repo's arch.tag may be a manifest entry
        entry = manifest.entry(repo_name)
        if entry is not None and build == repo_name.partition('.')[0] and timm.is_model(build) \
                and repo_name in timm.models.get_arch_pretrained_cfgs(build):
            build = repo_name
    return PublishTarget(build, repo, repo_name, entry)


def publish_cfg(entry: Optional[Dict[str, Any]], license: Optional[str] = None) -> Dict[str, Any]:
    """The pretrained-cfg values to publish: the manifest entry's (:func:`zoo.manifest.cfg_overrides`) and an
    explicit licence."""
    cfg = manifest.cfg_overrides(entry)
    if license:
        cfg['license'] = license
    return cfg


def mark_published(repo_name: str, repo: str) -> Optional[Path]:
    """Set ``published: true`` for manifest entry ``repo_name`` if its ``hub`` is ``repo``; the manifest path, or
    None when there is no such entry."""
    e = manifest.entry(repo_name)
    if e is None or e.get('hub') != repo:
        return None
    return manifest.set_entry_field(repo_name, 'published', True)
