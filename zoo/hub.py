"""Pretrained weights: verified downloads, safe loading, conversion to the zoo layout, Hub export and publishing.

The pipeline behind ``tools/download.py``, ``tools/convert.py`` and ``tools/push_to_hub.py``:

* :func:`download` / :func:`fetch` -- fetch an official file with a progress bar (``torch.hub.download_url_to_file``)
  into the cache (``$ZOO_CACHE_DIR/checkpoints``, default ``~/.cache/zoo/checkpoints``). The file is staged under a
  temporary name in the cache folder, its SHA-256 is compared with the manifest's, it is test-loaded safely, and only
  then moved into place with ``os.replace``: a failed, corrupt or tampered download never leaves a file behind.
* :func:`safe_load` -- safetensors, or ``torch.load(weights_only=True)``; a pickle that needs arbitrary code is
  refused with :class:`UnsafeCheckpointError` before anything in it runs.
* :func:`convert` -- builds the zoo model through timm's own pretrained path
  (``timm.create_model(name, pretrained=True, pretrained_cfg_overlay=dict(state_dict=...))``), so the family's
  ``checkpoint_filter_fn`` converts the official layout exactly as it does for ``pretrained=True`` users, and
  checks that every converted tensor landed in the model.
* :func:`export` / :func:`push` -- timm's Hub layout (``config.json`` + ``model.safetensors``) written with
  ``timm.models.save_for_hf`` / published with ``timm.models.push_to_hf_hub``, plus a model card.

Loading published weights needs nothing from this module: ``import zoo`` then
``timm.create_model('zoo_<arch>.<tag>', pretrained=True)`` (manifest entries with ``published: true``),
``timm.create_model('hf-hub:<org>/<arch>.<tag>', pretrained=True)`` or ``timm.create_model('local-dir:<dir>', ...)``.
"""
import argparse
import contextlib
import hashlib
import json
import logging
import os
import pickle
import re
import sys
import uuid
import warnings
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, Mapping, Optional, Sequence, Union

import torch
import torch.nn as nn

import timm
from timm.models import clean_state_dict

from . import _manifest
from .models._helpers import CheckpointError, unwrap_state_dict
from .errors import UserError

__all__ = [
    'CheckpointError', 'UnsafeCheckpointError', 'CorruptCheckpointError', 'ChecksumError', 'ManualDownloadError',
    'cache_dir', 'sha256_file', 'safe_load', 'checkpoint_state_dict', 'download', 'fetch', 'record_sha256_locally',
    'convert', 'load_for_publish', 'model_card', 'export', 'push', 'Download',
]

_logger = logging.getLogger(__name__)

CACHE_ENV = 'ZOO_CACHE_DIR'
SHA_RECORDS = 'sha256_records.json'
ZOO_CONFIG_KEY = 'zoo'  # provenance block stored in config.json (ignored by timm's loaders)
_EMA_KEYS = ('state_dict_ema', 'model_ema', 'state_dict', 'model')
_RAW_KEYS = ('state_dict', 'model')
# non-tensor objects that training checkpoints commonly carry and that are safe to rebuild
# (timm's own loader allows argparse.Namespace for the `args` of its train.py checkpoints)
_SAFE_GLOBALS = [argparse.Namespace]


class UnsafeCheckpointError(CheckpointError):
    """The checkpoint needs arbitrary code to unpickle; it was not loaded."""


class CorruptCheckpointError(CheckpointError):
    """The file is not a readable checkpoint (truncated, damaged, or another format)."""


class ChecksumError(CheckpointError):
    """The file's SHA-256 differs from the manifest's."""


class ManualDownloadError(UserError, RuntimeError):
    """The official file cannot be downloaded automatically (e.g. Google Drive); fetch it by hand."""


# --- files ------------------------------------------------------------------------------------------------

def cache_dir(sub: str = 'checkpoints') -> Path:
    """``$ZOO_CACHE_DIR/<sub>`` (default ``~/.cache/zoo/<sub>``), created if missing."""
    root = Path(os.environ.get(CACHE_ENV) or Path.home() / '.cache' / 'zoo')
    path = root / sub if sub else root
    path.mkdir(parents=True, exist_ok=True)
    return path


def sha256_file(path: Union[str, os.PathLike]) -> str:
    h = hashlib.sha256()
    with open(path, 'rb') as f:
        for chunk in iter(lambda: f.read(1 << 20), b''):
            h.update(chunk)
    return h.hexdigest()


def _is_safetensors(path: Path) -> bool:
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


def safe_load(path: Union[str, os.PathLike]) -> Any:
    """Load a checkpoint without running code from it.

    ``.safetensors`` files are read with safetensors; everything else with ``torch.load(weights_only=True)``,
    which rebuilds only tensors, containers and primitive values. A pickle that references any other callable
    (a class to instantiate, ``os.system``, ...) is refused with :class:`UnsafeCheckpointError` before any of it
    runs; a damaged file raises :class:`CorruptCheckpointError`.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f'checkpoint not found: {path}')
    if _is_safetensors(path):
        import safetensors.torch
        try:
            return safetensors.torch.load_file(str(path), device='cpu')
        except Exception as e:  # SafetensorError, OSError, ...
            raise CorruptCheckpointError(
                f'{path} is not a readable safetensors file (truncated or damaged?): {e}') from e
    try:
        with torch.serialization.safe_globals(_SAFE_GLOBALS), warnings.catch_warnings():
            warnings.filterwarnings('ignore', message='Detected pickle protocol')
            return torch.load(str(path), map_location='cpu', weights_only=True)
    except pickle.UnpicklingError as e:
        msg = str(e)
        names = _unsafe_globals(path, e) if ('Weights only load failed' in msg or 'Unsupported' in msg) else ''
        if names or ('Weights only load failed' in msg and 'Unsupported operand' not in msg):
            why = (f'unpickling it would run arbitrary code (it references {names})' if names else
                   'unpickling it would run arbitrary code')
            raise UnsafeCheckpointError(
                f'refusing to load {path}: {why}; nothing in it was executed. zoo only loads safetensors or torch.load(weights_only=True) checkpoints. If you trust '
                'this file, re-save just its tensors in a trusted environment, e.g. '
                'torch.save(torch.load(f, weights_only=False)["state_dict"], "clean.pth"), and convert that.'
            ) from None
        op = re.search(r'Unsupported operand \d+', msg)
        raise CorruptCheckpointError(
            f'{path} is not a readable checkpoint (truncated or damaged?, or a plain pickle that only an unsafe '
            f'loader could read): {op.group(0) if op else msg.strip().splitlines()[-1]}; nothing in it was executed'
        ) from None
    except (RuntimeError, EOFError, ValueError, OSError, zipfile.BadZipFile, UnicodeDecodeError) as e:
        detail = str(e) or ('empty file' if path.stat().st_size == 0 else type(e).__name__)
        raise CorruptCheckpointError(f'{path} is not a readable checkpoint (truncated or damaged?): {detail}') from e


def checkpoint_state_dict(checkpoint: Any, use_ema: bool = True) -> Dict[str, torch.Tensor]:
    """The tensors of a loaded checkpoint, unwrapped and prefix-cleaned exactly as timm's file loader does.

    Picks the first of ``state_dict_ema``, ``model_ema``, ``state_dict``, ``model`` (the EMA ones only with
    ``use_ema``) and strips ``module.`` / ``_orig_mod.`` prefixes.
    """
    return clean_state_dict(unwrap_state_dict(checkpoint, _EMA_KEYS if use_ema else _RAW_KEYS))


# --- download ---------------------------------------------------------------------------------------------

@dataclass
class Download:
    path: Path
    sha256: str
    expected_sha256: Optional[str]  # the manifest's value (None: unknown, see `record_sha256_locally`)

    @property
    def verified(self) -> bool:
        return self.expected_sha256 is not None and self.sha256 == self.expected_sha256


def download(url: str, sha256: Optional[str] = None, filename: Optional[str] = None,
             cache: Optional[Union[str, os.PathLike]] = None, progress: bool = True) -> Download:
    """Fetch ``url`` into the cache and return its path and SHA-256.

    The file is downloaded (with a progress bar) under a temporary name inside the cache folder, checked
    against ``sha256`` when given, test-loaded with :func:`safe_load`, and only then renamed into place.
    Any failure removes the temporary file and raises :class:`ChecksumError`, :class:`CorruptCheckpointError`,
    :class:`UnsafeCheckpointError` or the network error. A cached file is reused when its hash still matches.
    """
    folder = Path(cache) if cache else cache_dir()
    folder.mkdir(parents=True, exist_ok=True)
    name = os.path.basename(filename or url.split('?', 1)[0].rstrip('/')) or 'download'
    dst = folder / name
    sha256 = sha256.lower() if sha256 else None
    if dst.is_file():
        have = sha256_file(dst)
        if sha256 is None or have == sha256:
            return Download(dst, have, sha256)
        _logger.warning(f'cached {dst} has SHA-256 {have}, the manifest says {sha256}: downloading it again')
        dst.unlink()
    staged = folder / f'.{name}.{uuid.uuid4().hex}.download'
    try:
        print(f'Downloading {url} -> {dst}', file=sys.stderr)
        torch.hub.download_url_to_file(url, str(staged), hash_prefix=None, progress=progress)
        have = sha256_file(staged)
        if sha256 is not None and have != sha256:
            raise ChecksumError(
                f'SHA-256 mismatch for {url}: expected {sha256}, got {have} '
                f'({staged.stat().st_size} bytes). The download is incomplete or the file changed; nothing was cached.')
        try:
            safe_load(staged)
        except CheckpointError as e:
            raise type(e)(f'downloaded {url}: {e}'.replace(str(staged), name)) from None
        os.replace(staged, dst)
    finally:
        with contextlib.suppress(FileNotFoundError):
            staged.unlink()
    return Download(dst, have, sha256)


def _note(msg: str) -> None:
    print(msg, file=sys.stderr)


def record_sha256_locally(name: str, result: Download, url: Optional[str] = None,
                          cache: Optional[Union[str, os.PathLike]] = None) -> Path:
    """Remember the SHA-256 of a first download whose manifest entry has none (``<cache>/sha256_records.json``)."""
    root = Path(cache) if cache else cache_dir('')
    path = root / SHA_RECORDS
    records = json.loads(path.read_text()) if path.is_file() else {}
    records[name] = {'sha256': result.sha256, 'file': result.path.name, 'url': url}
    tmp = path.with_name(f'.{path.name}.{os.getpid()}.tmp')
    tmp.write_text(json.dumps(records, indent=2, sort_keys=True) + '\n')
    os.replace(tmp, path)
    return path


def fetch(name: str, cache: Optional[Union[str, os.PathLike]] = None, progress: bool = True,
          record: bool = False) -> Download:
    """Download the official file of manifest entry ``arch.tag`` (verifying or recording its SHA-256).

    With ``record`` an unknown SHA-256 is written into the manifest entry; otherwise it is printed and kept in
    ``<cache>/sha256_records.json`` with a note.
    """
    e = _manifest.entry(name)
    if e is None:
        raise KeyError(f'{name} is not in the weights manifest ({_manifest.manifest_path()})')
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
        result = download(url, sha256=e.get('sha256'), filename=e.get('file'), cache=folder, progress=progress)
    except OSError as ex:
        hint = f'; if the link is dead, fetch the file by hand from {e["page"]} and use tools/convert.py' \
            if e.get('page') else ''
        raise OSError(f'{name}: download of {url} failed: {ex}{hint}') from ex
    if result.expected_sha256 is None:
        if record:
            path = _manifest.record_sha256(name, result.sha256)
            _note(f'NOTE: {name}: the manifest had no SHA-256; recorded {result.sha256} in {path}. '
                  f'Check the file came from the official source before committing it.')
        else:
            rec = record_sha256_locally(name, result, url, folder.parent)
            _note(f'NOTE: {name}: the manifest has no SHA-256, so the download could not be verified.\n'
                  f'  sha256: {result.sha256}\n'
                  f'  kept in {rec}; run again with --record to write it into {_manifest.manifest_path()}.')
    return result


# --- conversion -------------------------------------------------------------------------------------------

def _split_name(name: str):
    arch, _, tag = name.partition('.')
    if not timm.is_model(arch):
        raise ValueError(f'unknown model {arch!r} (did you `import zoo`?)')
    return arch, tag or None


def _filter_fn(arch: str):
    module = sys.modules.get(timm.models.model_entrypoint(arch).__module__)
    return getattr(module, 'checkpoint_filter_fn', None)


def _classifier_names(model: nn.Module) -> Sequence[str]:
    names = (getattr(model, 'pretrained_cfg', None) or {}).get('classifier') or ()
    return (names,) if isinstance(names, str) else tuple(names)


def _checkpoint_num_classes(arch: str, state_dict: Dict[str, torch.Tensor], model_args: Dict[str, Any]) -> int:
    """Classes of the checkpoint's head, read after converting it to the zoo layout (0 if it has no head)."""
    filter_fn = _filter_fn(arch)

    def probe(device):
        with torch.device(device):
            model = timm.create_model(arch, pretrained=False, **model_args)
        sd = filter_fn(dict(state_dict), model) if filter_fn else state_dict
        for cls in _classifier_names(model):
            w = sd.get(f'{cls}.weight')
            if w is not None:
                return int(w.shape[0])
        return 0

    try:
        return probe('meta')
    except CheckpointError:
        raise
    except Exception:  # a filter that needs real tensors
        return probe('cpu')


def convert(name: str, checkpoint: Union[str, os.PathLike, Mapping[str, Any]], num_classes: Optional[int] = None,
            use_ema: bool = True, model_args: Optional[Dict[str, Any]] = None, **kwargs) -> nn.Module:
    """Build zoo model ``name`` (``arch`` or ``arch.tag``) with the weights of ``checkpoint`` (file or loaded).

    Goes through timm's pretrained path, so the family's ``checkpoint_filter_fn`` converts official layouts; the
    head keeps the checkpoint's class count (read from the converted classifier weights) unless ``num_classes``
    is given, and every converted tensor is checked to have been loaded. Returns the model in eval mode.
    """
    arch, tag = _split_name(name)
    model_args = dict(model_args or {})
    is_file = isinstance(checkpoint, (str, os.PathLike))
    obj = safe_load(checkpoint) if is_file else checkpoint
    sd = checkpoint_state_dict(obj, use_ema=use_ema)
    ckpt_classes = _checkpoint_num_classes(arch, sd, model_args)
    model = timm.create_model(
        name, pretrained=True, num_classes=ckpt_classes if num_classes is None else num_classes,
        pretrained_cfg_overlay=dict(state_dict=sd, num_classes=ckpt_classes), **model_args, **kwargs)
    model.pretrained_cfg.pop('state_dict', None)
    # the same conversion once more against the built model: every converted tensor must be in it, unchanged
    filter_fn = _filter_fn(arch)
    converted = filter_fn(dict(sd), model) if filter_fn else sd
    own = model.state_dict()
    skip = _classifier_names(model) if (num_classes is not None and num_classes != ckpt_classes) else ()
    differ = [k for k, v in converted.items()
              if not any(k.startswith(c + '.') for c in skip)
              and (k not in own or own[k].shape != v.shape or not torch.equal(own[k], v.to(own[k].dtype)))]
    if differ:
        raise CheckpointError(f'{name}: {len(differ)} converted tensors did not load into the model: {differ[:10]}')
    if is_file:
        model.zoo_provenance = {'checkpoint': Path(checkpoint).name, 'checkpoint_sha256': sha256_file(checkpoint)}
    return model.eval()


def load_for_publish(name: Optional[str], checkpoint: Union[str, os.PathLike], use_ema: bool = True,
                     num_classes: Optional[int] = None) -> nn.Module:
    """A model ready to export/publish from a checkpoint file (official, training or zoo layout) or a folder in
    timm's Hub layout (``config.json`` + weights, e.g. the output of ``tools/convert.py``)."""
    path = Path(checkpoint)
    if path.is_dir():
        if not (path / 'config.json').is_file():
            raise FileNotFoundError(f'{path} is a folder without config.json (expected timm\'s Hub layout)')
        cfg = json.loads((path / 'config.json').read_text())
        if name and name.partition('.')[0] != cfg.get('architecture'):
            raise ValueError(f'{path} holds a {cfg.get("architecture")!r} model, not {name.partition(".")[0]!r}')
        weights = next((path / f for f in ('model.safetensors', 'pytorch_model.bin') if (path / f).is_file()), None)
        if weights is not None:
            safe_load(weights)  # clear refusal of unsafe pickles before timm touches the folder
        model = timm.create_model(f'local-dir:{path}', pretrained=True)
        model.pretrained_cfg.pop('file', None)
        model.pretrained_cfg.pop('source', None)
        model.zoo_provenance = cfg.get(ZOO_CONFIG_KEY) or {}
        return model.eval()
    if not name:
        raise ValueError('a model name is needed to convert a checkpoint file')
    obj = safe_load(path)
    # tools/train.py checkpoints name these model_kwargs / data_cfg / history; accept both spellings
    args = {}
    if isinstance(obj, Mapping):
        args = next((obj[k] for k in ('model_args', 'model_kwargs') if isinstance(obj.get(k), Mapping)), {})
    model = convert(name, obj, num_classes=num_classes, use_ema=use_ema, model_args=dict(args))
    model.zoo_provenance = {'checkpoint': path.name, 'checkpoint_sha256': sha256_file(path)}
    if isinstance(obj, Mapping):
        metrics = obj.get('metrics')
        if not isinstance(metrics, Mapping) and isinstance(obj.get('metric'), (int, float)):
            metrics = {'top1': obj['metric']}
        if isinstance(metrics, Mapping):
            model.zoo_provenance['metrics'] = {k: v for k, v in metrics.items() if isinstance(v, (int, float))}
        data_cfg = next((obj[k] for k in ('data_config', 'data_cfg') if isinstance(obj.get(k), Mapping)), None)
        if data_cfg is not None:
            model.zoo_provenance['data_config'] = dict(data_cfg)
    return model


# --- model cards, export, publishing ----------------------------------------------------------------------

def _arxiv(paper: Optional[str]) -> Optional[str]:
    return paper.split(':', 1)[1] if paper and paper.startswith('arXiv:') else None


def _citation(arch: str, e: Dict[str, Any], cfg: Dict[str, Any]) -> Optional[str]:
    """The entry's BibTeX, else a minimal one from the paper id (title when the manifest/cfg has ``paper_name``)."""
    if e.get('citation'):
        return e['citation'].strip()
    paper = e.get('paper') or cfg.get('paper_ids')
    if not paper:
        return None
    arxiv = _arxiv(paper)
    title = e.get('paper_name') or cfg.get('paper_name')
    fields = [f'title={{{title}}}'] if title else []
    if arxiv:
        key = 'arxiv_' + arxiv.replace('.', '_')
        fields += [f'journal={{arXiv preprint arXiv:{arxiv}}}', f'url={{https://arxiv.org/abs/{arxiv}}}']
        kind = 'article'
    else:
        key, kind = arch.replace('zoo_', ''), 'misc'
        fields.append(f'howpublished={{\\url{{{paper}}}}}')
    return f'@{kind}{{{key},\n  ' + ',\n  '.join(fields) + '\n}'


def _fmt_metric(v: Any) -> str:
    return json.dumps(v) if isinstance(v, dict) else str(v)


def model_card(model: nn.Module, repo_id: Optional[str] = None, entry: Optional[Dict[str, Any]] = None,
               metrics: Optional[Dict[str, Any]] = None, dataset: Optional[str] = None,
               license: Optional[str] = None, source: Optional[str] = None,
               description: Optional[str] = None, citation: Optional[str] = None) -> Dict[str, Any]:
    """The ``model_card`` dict for ``timm.models.push_to_hf_hub`` / ``generate_readme``: description, details
    (params, image size, papers, dataset, metrics, source, licence), usage (``import zoo`` first), citation,
    licence and tags (``image-classification``, ``timm``, ``zoo``)."""
    cfg = dict(getattr(model, 'pretrained_cfg', None) or {})
    arch = cfg.get('architecture') or type(model).__name__
    tag = cfg.get('tag')
    if repo_id:
        tag = _manifest.split_hub_id(repo_id)[1].partition('.')[2] or tag
    full = f'{arch}.{tag}' if tag else arch
    e = dict(entry or _manifest.entry(full) or {})
    prov = dict(getattr(model, 'zoo_provenance', None) or {})
    metrics = dict(metrics or e.get('metrics') or prov.get('metrics') or {})
    license = license or e.get('license') or cfg.get('license') or 'other'
    repo_id = repo_id or e.get('hub') or f'{_manifest.hub_org()}/{full}'
    if dataset is None and tag and 'in1k' in tag:
        dataset = 'ImageNet-1k'
    if source is None:
        if e.get('source') in ('url', 'manual'):
            where = e.get('url') or e.get('page')
            sha = prov.get('checkpoint_sha256') or e.get('sha256')
            source = (f'official checkpoint `{e.get("file")}` from {where} ({e.get("origin_url") or "authors"})'
                      + (f', SHA-256 `{sha}`' if sha else '')
                      + ', converted to the timm/zoo layout by the zoo (tools/convert.py).')
        elif prov.get('checkpoint'):
            source = (f'checkpoint `{prov["checkpoint"]}` (SHA-256 `{prov.get("checkpoint_sha256")}`), '
                      f'trained or fine-tuned with the zoo.')
        else:
            source = prov.get('source') or 'weights trained or converted with the zoo.'
    params = sum(p.numel() for p in model.parameters()) / 1e6
    size = cfg.get('input_size') or (3, 224, 224)
    details: Dict[str, Any] = {
        'Model Type': 'Image classification / feature backbone',
        'Model Stats': {'Params (M)': f'{params:.2f}', 'Image size': f'{size[-2]} x {size[-1]}'},
    }
    paper = e.get('paper') or cfg.get('paper_ids')
    if paper:
        title = e.get('paper_name') or cfg.get('paper_name') or paper
        arxiv = _arxiv(paper)
        details['Papers'] = {title: f'https://arxiv.org/abs/{arxiv}' if arxiv else paper}
    if dataset:
        details['Dataset'] = dataset
    if metrics:
        details['Metrics' + (f' ({dataset})' if dataset else '')] = {k: _fmt_metric(v) for k, v in metrics.items()}
    if e.get('origin_url') or cfg.get('origin_url'):
        details['Original'] = e.get('origin_url') or cfg.get('origin_url')
    details['Source'] = source
    details['License'] = license
    usage = (
        '```python\n'
        'import zoo  # first: registers the zoo architectures with timm (the Hub config only names the architecture)\n'
        'import timm\n'
        'import torch\n'
        'from PIL import Image\n\n'
        f"model = timm.create_model('hf-hub:{repo_id}', pretrained=True).eval()\n"
        'data_config = timm.data.resolve_model_data_config(model)\n'
        'transform = timm.data.create_transform(**data_config, is_training=False)\n'
        "img = Image.open('image.jpg').convert('RGB')\n"
        'with torch.no_grad():\n'
        '    probs = model(transform(img).unsqueeze(0)).softmax(-1)\n\n'
        '# feature maps for detection / segmentation, or a new head:\n'
        f"backbone = timm.create_model('hf-hub:{repo_id}', pretrained=True, features_only=True)\n"
        f"finetune = timm.create_model('hf-hub:{repo_id}', pretrained=True, num_classes=10)\n"
        '```\n'
        f"Install the zoo (`pip install -e .` in its repository). Once the zoo's weights manifest marks this "
        f"repository as published, the short name `timm.create_model('{full}', pretrained=True)` loads it too.\n"
    )
    card = {
        'description': description or e.get('description') or (
            f'`{arch}` image classification model from the `zoo` model zoo of vision attention backbones'
            + (f', {e.get("paper_name") or cfg.get("paper_name")}' if (e.get('paper_name') or cfg.get('paper_name')) else '')
            + '. Weights are in the timm layout (safetensors); the architecture is defined by the `zoo` package.'),
        'details': details,
        'usage': usage,
        'license': license,
        'tags': ['image-classification', 'timm', 'zoo'],
        'library_name': 'timm',
    }
    cite = citation or _citation(arch, e, cfg)
    if cite:
        card['citation'] = cite
    return card


def entry_cfg_overrides(e: Optional[Dict[str, Any]]) -> Dict[str, Any]:
    """Pretrained-cfg values a manifest entry sets (as ``pretrained_cfgs`` does for the registry)."""
    e = e or {}
    out = dict(e.get('cfg') or {})
    for f in ('license', 'origin_url', 'paper_name'):
        if e.get(f):
            out[f] = e[f]
    if e.get('paper'):
        out['paper_ids'] = e['paper']
    return out


def _export_config(model: nn.Module, tag: Optional[str], cfg: Optional[Dict[str, Any]] = None) -> Dict[str, Any]:
    model_config: Dict[str, Any] = {}
    pretrained_cfg = dict(cfg or {})
    if tag:
        pretrained_cfg['tag'] = tag
    if pretrained_cfg:
        model_config['pretrained_cfg'] = pretrained_cfg
    prov = {k: v for k, v in (getattr(model, 'zoo_provenance', None) or {}).items() if k != 'data_config'}
    from . import __version__
    model_config[ZOO_CONFIG_KEY] = dict(prov, zoo_version=__version__)
    return model_config


def _data_config(model: nn.Module) -> Optional[Dict[str, Any]]:
    return (getattr(model, 'zoo_provenance', None) or {}).get('data_config')


def export(model: nn.Module, out_dir: Union[str, os.PathLike], card: Optional[Dict[str, Any]] = None,
           tag: Optional[str] = None, repo_id: Optional[str] = None, cfg: Optional[Dict[str, Any]] = None) -> Path:
    """Write ``model`` in timm's Hub layout: ``model.safetensors`` + ``config.json`` (``timm.models.save_for_hf``)
    and ``README.md`` (the model card, rendered by timm's ``generate_readme``). ``cfg`` overrides values of the
    exported pretrained cfg (e.g. :func:`entry_cfg_overrides` of the manifest entry)."""
    from timm.models._hub import generate_readme
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tag = tag or model.pretrained_cfg.get('tag')
    timm.models.save_for_hf(model, out, model_config=_export_config(model, tag, cfg), safe_serialization=True,
                            data_config=_data_config(model))
    card = card or model_card(model, repo_id=repo_id)
    arch = model.pretrained_cfg.get('architecture')
    name = repo_id.split('/')[-1] if repo_id else (f'{arch}.{tag}' if tag else arch)
    (out / 'README.md').write_text(generate_readme(card, name), encoding='utf-8')
    return out


def check_repo_id(model: nn.Module, repo_id: str) -> str:
    """``repo_id`` must be ``<org>/<arch>.<tag>`` with the model's architecture; returns the tag."""
    _, repo_name, _ = _manifest.split_hub_id(repo_id)
    arch = model.pretrained_cfg.get('architecture')
    r_arch, dot, tag = repo_name.partition('.')
    if not dot or not tag or r_arch != arch:
        raise ValueError(f'Hub repo {repo_id!r} must be named <org>/{arch}.<tag> (one repo per arch.tag, as timm does)')
    return tag


def push(model: nn.Module, repo_id: str, card: Optional[Dict[str, Any]] = None, token: Optional[str] = None,
         private: bool = False, revision: Optional[str] = None, create_pr: bool = False,
         commit_message: str = 'Add model', cfg: Optional[Dict[str, Any]] = None) -> Any:
    """Publish ``model`` to ``repo_id`` with ``timm.models.push_to_hf_hub`` (safetensors only; card as README;
    ``cfg`` overrides values of the published pretrained cfg)."""
    from timm.models import _hub
    if '@' in repo_id:
        raise ValueError('give the revision with `revision=`, not in the repo id')
    tag = check_repo_id(model, repo_id)
    card = card or model_card(model, repo_id=repo_id)
    return _hub.push_to_hf_hub(
        model, repo_id, commit_message=commit_message, token=token, revision=revision, private=private,
        create_pr=create_pr, model_config=_export_config(model, tag, cfg), model_card=card,
        safe_serialization=True, data_config=_data_config(model))
