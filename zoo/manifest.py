"""The weights manifest (``weights/manifest.yaml``): the single source of truth for every pretrained tag.

Model files describe their architectures with a base pretrained cfg; :func:`pretrained_cfgs` merges in, for every
``arch.tag`` the manifest lists, the weights source, licence, paper and evaluation settings (the fields are described
in the manifest's header), and returns the dict that ``timm.models.generate_default_cfgs`` takes. Entries with
``task: det`` / ``seg`` are the authors' detectors / segmenters, loaded through ``zoo.mm``, never timm tags.

The manifest is the package data ``zoo._weights``; the environment variable ``ZOO_WEIGHTS_MANIFEST`` points at
another file (a fork's or a test's manifest). It must be set before ``import zoo``, since the cfgs are built at import.
"""
import copy
import functools
import json
import os
import re
from importlib import resources
from pathlib import Path
from typing import Any, Dict, List, Optional

import yaml

_ENTRY_FIELDS = {
    'source', 'url', 'page', 'file', 'sha256', 'layout', 'license', 'paper', 'origin_url', 'metrics',
    'hub', 'published', 'cfg', 'notes', 'description', 'paper_name', 'citation', 'params', 'hub_sha256',
    'hf_hub_id', 'hf_hub_sha256', 'task', 'sha256_prefix', 'config',
}
# tasks of an entry (`task`, default cls); det / seg entries are the authors' detectors / segmenters, loaded through
# zoo.mm (their `config`), never registered as timm pretrained tags
TASKS = ('cls', 'det', 'seg')
DENSE_TASKS = ('det', 'seg')
_SHA256_PREFIX_RE = re.compile(r'^[0-9a-f]{8,63}$')
# keys of an entry's `params` mapping
_PARAMS_FIELDS = {'form', 'paper_m', 'paper_form'}
SOURCES = ('url', 'manual', 'hub', 'none')
MANIFEST_ENV = 'ZOO_WEIGHTS_MANIFEST'

_NAME_RE = re.compile(r'^zoo_[a-z0-9_]+\.[a-z0-9_]+$')
_SHA256_RE = re.compile(r'^[0-9a-f]{64}$')
_ORG_RE = r'[A-Za-z0-9][A-Za-z0-9_.-]*'
_HUB_RE = re.compile(rf'^(?P<org>{_ORG_RE})/(?P<name>[^/@]+)(@(?P<rev>[A-Za-z0-9_.-]+))?$')
_HTTP_RE = re.compile(r'^https?://\S+$')
_PAPER_RE = re.compile(r'^(arXiv:\d{4}\.\d{4,5}(v\d+)?|https?://\S+)$')
_LICENSE_RE = re.compile(r'^[a-z0-9][a-z0-9.-]*$')
# pretrained cfg fields a manifest `cfg:` may override (weights sources come from the entry itself)
_CFG_FIELDS = {
    'input_size', 'test_input_size', 'min_input_size', 'fixed_input_size', 'interpolation', 'crop_pct',
    'test_crop_pct', 'crop_mode', 'mean', 'std', 'num_classes', 'label_offset', 'label_names',
    'label_descriptions', 'pool_size', 'test_pool_size', 'first_conv', 'classifier', 'hf_hub_filename',
    'custom_load',
}


def manifest_path() -> Path:
    """Filesystem path of the manifest in use."""
    env = os.environ.get(MANIFEST_ENV)
    if env:
        return Path(env)
    return Path(str(resources.files('zoo._weights').joinpath('manifest.yaml'))).resolve()


@functools.lru_cache(maxsize=None)
def _load() -> Dict[str, Any]:
    path = manifest_path()
    data = yaml.safe_load(path.read_text()) or {}
    models = data.get('models') or {}
    for name, entry in models.items():
        if '.' not in name:
            raise ValueError(f'weights manifest {path}: key {name!r} must be <arch>.<tag>')
        if not isinstance(entry, dict):
            raise ValueError(f'weights manifest {path}: entry {name} must be a mapping of fields')
        unknown = set(entry) - _ENTRY_FIELDS
        if unknown:
            raise ValueError(f'weights manifest {path}: {name} has unknown fields {sorted(unknown)}')
    return data


def reload() -> None:
    """Forget the cached manifest (the next call re-reads the file; registered cfgs are not rebuilt)."""
    _load.cache_clear()


def manifest() -> Dict[str, Any]:
    """A copy of the parsed manifest."""
    return copy.deepcopy(_load())


def entries() -> Dict[str, Dict[str, Any]]:
    return copy.deepcopy(_load().get('models') or {})


def entry(name: str) -> Optional[Dict[str, Any]]:
    """Manifest entry of ``arch.tag`` (None if absent)."""
    e = (_load().get('models') or {}).get(name)
    return copy.deepcopy(e) if e is not None else None


def hub_org() -> str:
    return _load().get('hub_org', 'zoo-models')


def split_hub_id(hub_id: str):
    """``'org/arch.tag[@rev]'`` -> ``(org, 'arch.tag', rev or None)``; ValueError if malformed."""
    m = _HUB_RE.match(hub_id or '')
    if not m:
        raise ValueError(f'Hub repo id {hub_id!r} is not of the form <org>/<arch>.<tag>[@revision]')
    return m.group('org'), m.group('name'), m.group('rev')


def _mapping_field(e, bad, field, what, verb, allowed):
    """``e[field]`` when it is a mapping, else None; complains when it is not one or has keys outside
    ``allowed``."""
    value = e.get(field)
    if value is None:
        return None
    if not isinstance(value, dict):
        bad(f'{field} must be {what}')
        return None
    extra = set(value) - allowed
    if extra:
        bad(f'{field} may only {verb} {sorted(allowed)}; got {sorted(extra)}')
    return value


def _check_download(e, bad):
    """Source, checksums, URLs and the fields each source needs."""
    source = e.get('source')
    if source not in SOURCES:
        bad(f'source {source!r} not in {list(SOURCES)}')
    for f in ('sha256', 'hub_sha256', 'hf_hub_sha256'):
        v = e.get(f)
        if v is not None and not (isinstance(v, str) and _SHA256_RE.match(v)):
            bad(f'{f} must be 64 lowercase hex digits or null, got {v!r}')
    sha = e.get('sha256')
    for f in ('url', 'page', 'origin_url'):
        v = e.get(f)
        if v is not None and not (isinstance(v, str) and _HTTP_RE.match(v)):
            bad(f'{f} must be an http(s) URL, got {v!r}')
    if source == 'url' and not e.get('url'):
        bad("source 'url' needs `url`")
    if source == 'manual' and not e.get('page'):
        bad("source 'manual' needs `page` (where to fetch the file by hand)")
    if source in ('url', 'manual'):
        for f in ('file', 'layout'):
            if not (isinstance(e.get(f), str) and e.get(f)):
                bad(f"source {source!r} needs `{f}`")
        if sha is None and 'sha256' not in e:
            bad('official downloads need a `sha256` field (null until known)')
    if source == 'hub' and not e.get('published'):
        bad("source 'hub' means only the published copy exists: set `published: true`")


def _check_provenance(e, bad):
    """License, paper and reported metrics."""
    lic = e.get('license')
    if not (isinstance(lic, str) and _LICENSE_RE.match(lic)):
        bad(f'license must be a Hub licence id (e.g. mit, apache-2.0, other), got {lic!r}')
    paper = e.get('paper')
    if paper is not None and not (isinstance(paper, str) and _PAPER_RE.match(paper)):
        bad(f'paper must be arXiv:NNNN.NNNNN or a URL, got {paper!r}')
    metrics = e.get('metrics')
    if metrics is not None:
        if not isinstance(metrics, dict):
            bad('metrics must be a mapping')
        else:
            for k, v in metrics.items():
                vals = v.values() if isinstance(v, dict) else [v]
                if not all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in vals):
                    bad(f'metric {k!r} must be a number (or a mapping of numbers), got {v!r}')


def _check_hub(name, e, bad):
    """Hub repositories (ours and the Hugging Face one), their checksums and ``published``."""
    hub = e.get('hub')
    if hub is not None:
        try:
            _, repo_name, _ = split_hub_id(hub)
            if repo_name != name:
                bad(f'hub repo {hub!r} must be named after the entry: <org>/{name}')
        except ValueError as ex:
            bad(str(ex))
    if e.get('hf_hub_id') is not None:
        try:
            split_hub_id(e['hf_hub_id'])
        except (ValueError, TypeError):
            bad(f"hf_hub_id must be <org>/<name>[@revision], got {e['hf_hub_id']!r}")
    if e.get('hf_hub_sha256') and not e.get('hf_hub_id'):
        bad('hf_hub_sha256 needs `hf_hub_id`')
    if e.get('hub_sha256') and not hub:
        bad('hub_sha256 needs `hub`')
    published = e.get('published', False)
    if not isinstance(published, bool):
        bad(f'published must be true/false, got {published!r}')
    elif published and not hub:
        bad('published: true needs `hub`')


def _check_task(e, bad):
    """Task, the checksum prefix and the config a dense task loads into."""
    sha = e.get('sha256')
    task = e.get('task', 'cls')
    if task not in TASKS:
        bad(f'task {task!r} not in {list(TASKS)}')
    prefix = e.get('sha256_prefix')
    if prefix is not None and not (isinstance(prefix, str) and _SHA256_PREFIX_RE.match(prefix)):
        bad(f'sha256_prefix must be 8-63 lowercase hex digits, got {prefix!r}')
    elif prefix and isinstance(sha, str) and not sha.startswith(prefix):
        bad(f'sha256 {sha} does not start with sha256_prefix {prefix}')
    if task in DENSE_TASKS and not (isinstance(e.get('config'), str) and e['config'].startswith('zoo::')):
        bad(f"task {task!r} needs `config`: the zoo config it loads into (zoo::det/... or zoo::seg/...)")


def _check_details(e, bad):
    """``cfg`` overrides, free-text fields and ``params``."""
    _mapping_field(e, bad, 'cfg', 'a mapping', 'override', _CFG_FIELDS)
    for f in ('notes', 'description', 'paper_name', 'citation', 'file', 'layout'):
        if e.get(f) is not None and not isinstance(e.get(f), str):
            bad(f'{f} must be a string')
    params = _mapping_field(e, bad, 'params', 'a mapping of form / paper_m / paper_form', 'have', _PARAMS_FIELDS)
    if params is not None:
        pm = params.get('paper_m')
        if pm is not None and (isinstance(pm, bool) or not isinstance(pm, (int, float))):
            bad(f'params.paper_m must be a number (millions), got {pm!r}')
        for f in ('form', 'paper_form'):
            if params.get(f) is not None and not isinstance(params.get(f), str):
                bad(f'params.{f} must be a string')


def validate_entry(name: str, e: Dict[str, Any]) -> List[str]:
    """Problems with one manifest entry (empty list when valid)."""
    errs = []

    def bad(msg):
        errs.append(f'{name}: {msg}')

    if not _NAME_RE.match(name):
        bad('key must be zoo_<arch>.<tag> (lowercase letters, digits, underscores; one dot)')
    if not isinstance(e, dict):
        return errs + [f'{name}: entry is not a mapping']
    unknown = set(e) - _ENTRY_FIELDS
    if unknown:
        bad(f'unknown fields {sorted(unknown)}')
    _check_download(e, bad)
    _check_provenance(e, bad)
    _check_hub(name, e, bad)
    _check_task(e, bad)
    _check_details(e, bad)
    return errs


def validate(data: Optional[Dict[str, Any]] = None) -> List[str]:
    """All problems in the manifest (empty list when valid). ``models`` must be the file's last key."""
    errs = []
    if data is None:
        data = _load()
        keys = list(data)
        if keys and keys[-1] != 'models':
            errs.append(f'`models:` must be the last key of {manifest_path()} (entries are appended with cat >>)')
    org = data.get('hub_org', 'zoo-models')
    if not re.match(rf'^{_ORG_RE}$', str(org)):
        errs.append(f'hub_org {org!r} is not a valid Hub organisation name')
    for name, e in (data.get('models') or {}).items():
        errs += validate_entry(name, e)
    return errs


def cfg_overrides(e: Optional[Dict[str, Any]]) -> Dict[str, Any]:
    """The pretrained-cfg values a manifest entry sets over the architecture's base cfg: its ``cfg`` overrides,
    ``license``, ``origin_url``, ``paper_name`` and ``paper`` (as ``paper_ids``). Used for the registered cfgs
    (:func:`pretrained_cfgs`) and for the cfg written into exported / published ``config.json`` files."""
    e = e or {}
    out = dict(e.get('cfg') or {})
    for f in ('license', 'origin_url', 'paper_name'):
        if e.get(f):
            out[f] = e[f]
    if e.get('paper'):
        out['paper_ids'] = e['paper']
    return out


def hub_source(e: Optional[Dict[str, Any]]):
    """``(repo_id[@revision], sha256 or None)`` of the Hub copy ``pretrained=True`` loads first for an entry: the
    zoo's published ``hub`` copy, else ``hf_hub_id`` (e.g. timm's); ``(None, None)`` when there is none."""
    e = e or {}
    if e.get('published') and e.get('hub'):
        return e['hub'], e.get('hub_sha256')
    if e.get('hf_hub_id'):
        return e['hf_hub_id'], e.get('hf_hub_sha256')
    return None, None


def pretrained_cfgs(arch_cfgs: Dict[str, Dict[str, Any]]) -> Dict[str, Dict[str, Any]]:
    """Build the ``default_cfgs`` input for a family: ``{arch: base_cfg}`` -> ``{arch[.tag]: cfg}``.

    Tags come from the manifest in manifest order (the first one is timm's default tag). ``hf_hub_id`` is the Hub
    copy of :func:`hub_source`, ``url`` the official file (the fallback); :mod:`zoo.hub.pretrained` loads them.
    """
    models = _load().get('models') or {}
    out: Dict[str, Dict[str, Any]] = {}
    for arch, base in arch_cfgs.items():
        tags = [k for k in models if k.split('.', 1)[0] == arch and models[k].get('task', 'cls') not in DENSE_TASKS]
        if not tags:
            out[arch] = dict(base)
            continue
        for key in tags:
            e = models[key]
            cfg = dict(base)
            cfg.update(cfg_overrides(e))
            notes = []
            hub_id, _ = hub_source(e)
            if hub_id:
                cfg['hf_hub_id'] = hub_id
            if e.get('source') == 'url' and e.get('url'):
                cfg['url'] = e['url']  # the fallback when the Hub cannot be reached
            elif e.get('source') == 'manual' and not hub_id:
                notes.append(f"official weights must be downloaded by hand from {e.get('page')}; then "
                             f"pretrained_cfg_overlay=dict(file=PATH) or tools/convert.py")
            if e.get('notes'):
                notes.append(e['notes'])
            if notes:
                cfg['notes'] = tuple(notes)
            if e.get('description'):
                cfg['description'] = e['description']
            out[key] = cfg
    return out


# --- recording facts back into the manifest -------------------------------------------------------------
# The manifest is shared and appended to with `cat >>`; these edits touch one line of one entry in place
# and never re-serialise the file, so comments, order and everyone else's entries stay byte-identical.

def _format_scalar(value: Any) -> str:
    if value is None:
        return 'null'
    if isinstance(value, bool):
        return 'true' if value else 'false'
    if isinstance(value, str):
        if re.match(r'^[A-Za-z0-9_./:@-]+$', value) and yaml.safe_load(value) == value:
            return value
        return json.dumps(value)
    return yaml.safe_dump(value, default_flow_style=True).strip().removesuffix('...').strip()


def set_entry_field(name: str, field: str, value: Any, path: Optional[os.PathLike] = None) -> Path:
    """Set ``models.<name>.<field>`` to a scalar ``value`` by editing that single line of the manifest."""
    if field not in _ENTRY_FIELDS:
        raise ValueError(f'unknown manifest field {field!r}')
    path = Path(path) if path else manifest_path()
    for _ in range(5):
        stat = path.stat()
        text = path.read_text()
        lines = text.splitlines(keepends=True)
        head = re.compile(rf'^(\s+){re.escape(name)}:\s*(#.*)?$')
        start = indent = None
        for i, line in enumerate(lines):
            m = head.match(line.rstrip('\n'))
            if m:
                start, indent = i, len(m.group(1))
                break
        if start is None:
            raise KeyError(f'{name} is not in {path}')
        end = len(lines)
        for j in range(start + 1, len(lines)):
            s = lines[j]
            if s.strip() and not s.lstrip().startswith('#') and len(s) - len(s.lstrip()) <= indent:
                end = j
                break
        field_indent = None
        new_line = None
        for j in range(start + 1, end):
            m = re.match(rf'^(\s+){re.escape(field)}:(\s.*)?$', lines[j].rstrip('\n'))
            if m and (field_indent is None or len(m.group(1)) == field_indent):
                new_line = j
                field_indent = len(m.group(1))
                break
            if field_indent is None and lines[j].strip() and not lines[j].lstrip().startswith('#'):
                field_indent = len(lines[j]) - len(lines[j].lstrip())
        field_indent = field_indent if field_indent is not None else indent + 2
        text_line = ' ' * field_indent + f'{field}: {_format_scalar(value)}\n'
        if new_line is not None:
            lines[new_line] = text_line
        else:
            lines.insert(start + 1, text_line)
        new_text = ''.join(lines)
        parsed = (yaml.safe_load(new_text) or {}).get('models', {}).get(name, {})
        if parsed.get(field) != value:
            raise RuntimeError(f'could not set {name}.{field} in {path} (edited text does not parse back)')
        from .checkpoint import commit_file
        tmp = path.with_name(f'.{path.name}.{os.getpid()}.tmp')
        tmp.write_text(new_text)
        cur = path.stat()
        if (cur.st_size, cur.st_mtime_ns) != (stat.st_size, stat.st_mtime_ns):
            tmp.unlink()  # someone appended meanwhile: redo the edit on the new text
            continue
        commit_file(tmp, path)  # fsync, keep the manifest's permissions, os.replace
        reload()
        return path
    raise RuntimeError(f'{path} kept changing while recording {name}.{field}; try again')


def record_sha256(name: str, sha256: str, path: Optional[os.PathLike] = None) -> Path:
    """Write a verified SHA-256 into ``name``'s manifest entry."""
    if not _SHA256_RE.match(sha256 or ''):
        raise ValueError(f'not a SHA-256 hex digest: {sha256!r}')
    return set_entry_field(name, 'sha256', sha256, path)
