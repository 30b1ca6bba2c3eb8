"""The README's model table, generated from the registry, the weights manifest and measurements.

``zoo-benchmark readme README.md`` (``make table``) rewrites the table between the markers
``<!-- model-table:start -->`` and ``<!-- model-table:end -->``. The export column comes from the package's
``export_status.json`` (written by the export checks; null = not checked). The CPU-throughput column is batch-8
inference at the model's default size, one fresh process per family, as a ratio to resnet50 at 224 px measured
first in the same process. The parity column is each family spec's note (``zoo.models.spec``); the file format:
docs/benchmarking.md.
"""
import copy
import json
import re
from importlib import resources
from pathlib import Path
from typing import Any, Dict, List, Optional

import timm
import torch

from . import bench, manifest
from ._registry import list_models, model_families
from .models.spec import spec_of

COLUMNS = ['model', 'input', 'params_m', 'gmacs', 'top1', 'weights', 'parity', 'export', 'cpu_img_s_ratio']
EXPORT_KEYS = (('torchscript', 'TorchScript'), ('fx', 'FX'), ('compile', 'compile'), ('onnx', 'ONNX'))
HEADERS = {'model': 'model', 'input': 'input', 'params_m': 'params (M)', 'gmacs': 'GMACs', 'top1': 'top-1 (published)',
           'weights': 'weights', 'parity': 'parity with official code', 'export': 'export',
           'cpu_img_s_ratio': 'CPU img/s vs resnet50'}
START, END = '<!-- model-table:start -->', '<!-- model-table:end -->'
BASELINE = 'resnet50'


def _weights(arch: str) -> Dict[str, str]:
    tags = {k: v for k, v in manifest.entries().items()
            if k.split('.', 1)[0] == arch and v.get('task', 'cls') not in manifest.DENSE_TASKS}
    if not tags:
        return dict(weights='none (train with tools/train.py)', top1='')
    key, e = next(iter(tags.items()))
    source = {'url': 'official (auto-download)', 'manual': 'official (manual download)',
              'hub': 'zoo Hub', 'none': 'zoo-trained'}.get(e.get('source'), e.get('source', ''))
    if e.get('hf_hub_id') and e.get('source') == 'url':
        source = f'official via the Hub (`{e["hf_hub_id"]}`, URL fallback)'
    if e.get('published'):
        source += ', zoo Hub copy'
    top1 = (e.get('metrics') or {}).get('top1', '')
    return dict(weights=f'{source} `{key.split(".", 1)[1]}`', top1=str(top1))


def export_status_path():
    """The export status, package data of ``zoo`` (written by the export checks)."""
    return resources.files('zoo').joinpath('export_status.json')


def load_export_status(path: Optional[Path] = None) -> Dict[str, Dict[str, Any]]:
    path = Path(path) if path else export_status_path()
    if not path.is_file():
        return {}
    data = json.loads(path.read_text())
    return data.get('models', data) if isinstance(data, dict) else {}


def export_cell(status: Optional[Dict[str, Any]], torchscript_attr: bool) -> str:
    """'TorchScript ✓ / FX ✓ / compile ✓ / ONNX ✗' from the status file (? = not checked), plus
    ' / dynamic H×W ✓' where a dynamic-shape torch.export was checked; else the attribute."""
    if not status:
        return 'TorchScript + compile' if torchscript_attr else 'torch.compile'
    marks = {True: '✓', False: '✗', None: '?'}
    cell = ' / '.join(f'{label} {marks.get(status.get(key), "?")}' for key, label in EXPORT_KEYS)
    if status.get('dynamic') is not None:  # recorded for the models tests/test_export.py exports that way
        cell += f' / dynamic H×W {marks[bool(status["dynamic"])]}'
    return cell


def _params_note(arch: str, model) -> str:
    if not hasattr(model, 'reparameterize'):
        return ''
    deployed = copy.deepcopy(model).eval()
    deployed.reparameterize()
    return f'{bench.count_params(deployed) / 1e6:.2f} after reparameterize()'


def collect(pattern: str = '', throughput: bool = True, device: str = 'cpu', batch_size: int = 8,
            timeout: float = 3600, warmup: int = 1, repeats: int = 3,
            export_status: Optional[Dict[str, Dict[str, Any]]] = None) -> List[Dict[str, Any]]:
    """One row per zoo architecture matching ``pattern``: registry, manifest, params/GMACs (in this process) and,
    with ``throughput``, the CPU img/s ratio to resnet50 (one subprocess per family, see the module doc)."""
    status = load_export_status() if export_status is None else export_status
    rows = []
    for arch in list_models(pattern):
        cfg = timm.models.get_pretrained_cfg(arch).to_dict()
        size = cfg['input_size'][-1]
        row: Dict[str, Any] = dict(model=arch, input=size)
        try:
            model = timm.create_model(arch).eval()
            row['params_m'] = round(bench.count_params(model) / 1e6, 2)
            row['gmacs'] = round(bench.count_gmacs(model, cfg['input_size']), 2)
            note = _params_note(arch, model)
            if note:
                row['params_note'] = note
            del model
        except Exception as e:  # reported in the table, not fatal
            row['error'] = f'{type(e).__name__}: {e}'[:200]
        row.update(_weights(arch))
        row['parity'] = spec_of(arch).parity_of(arch)
        row['export'] = export_cell(status.get(arch), True)
        if status.get(arch, {}).get('notes'):
            row['export_notes'] = status[arch]['notes']
        rows.append(row)
    if throughput:
        add_throughput(rows, device=device, batch_size=batch_size, timeout=timeout, warmup=warmup, repeats=repeats)
    return rows


def add_throughput(rows: List[Dict[str, Any]], device: str = 'cpu', batch_size: int = 8, timeout: float = 3600,
                   warmup: int = 1, repeats: int = 3) -> None:
    """Fill ``cpu_img_s_ratio`` (and ``cpu_img_s``) of each row: one process per family, baseline first."""
    by_name = {r['model']: r for r in rows}
    groups: Dict[str, List[str]] = {}
    for module, names in model_families().items():
        picked = [n for n in names if n in by_name]
        if picked:
            groups[module] = picked
    rest = [n for n in by_name if not any(n in g for g in groups.values())]
    if rest:
        groups['other'] = rest
    for module, names in groups.items():
        recs = bench.measure_throughput_group_in_subprocess(
            names=names, baseline=BASELINE, img_sizes={n: by_name[n]['input'] for n in names}, batch_size=batch_size,
            device=device, warmup=warmup, repeats=repeats, timeout=timeout)
        base = next((r for r in recs if r.get('role') == 'baseline'), None)
        for rec in recs:
            row = by_name.get(rec['model'])
            if row is None or rec.get('role') == 'baseline':
                continue
            if 'error' in rec:
                row['cpu_img_s_ratio'] = 'error: ' + rec['error'][:80]
            elif base is not None and 'error' in base:
                row['cpu_img_s_ratio'] = 'baseline failed: ' + base['error'][:60]
            else:
                row['cpu_img_s'] = round(rec['infer_img_s'], 2)
                row['cpu_img_s_ratio'] = round(rec['infer_img_s_ratio'], 3)


def render(rows: List[Dict[str, Any]]) -> str:
    lines = ['| ' + ' | '.join(HEADERS[c] for c in COLUMNS) + ' |', '|' + '---|' * len(COLUMNS)]
    for r in rows:
        cells = []
        for c in COLUMNS:
            v = str(r[c]) if c in r else ''
            if c == 'params_m' and r.get('params_note'):
                v += f' ({r["params_note"]})'
            if c == 'model' and 'error' in r:
                v += f' (error: {r["error"]})'
            cells.append(v.replace('|', '\\|'))
        lines.append('| ' + ' | '.join(cells) + ' |')
    return '\n'.join(lines)


def write_readme(path: Path, table: str, env: Dict[str, Any]) -> None:
    text = path.read_text()
    note = (f'\n_Generated by `python tools/benchmark.py --readme` (torch {env.get("torch")}, timm {env.get("timm")}, '
            f'{env.get("cpu_count")} CPU cores, {env.get("threads")} threads). GMACs = FLOPs / 2 from torch\'s FLOP '
            f'counter at the model\'s default input size; CPU img/s is batch-8 inference at that size (1 warm-up, '
            f'3 timed rounds) divided by {BASELINE} at 224 px measured just before, in the same process (one per '
            f'family). Export: {export_status_path().name} (? = not checked)._\n')
    block = f'{START}\n{table}\n{note}{END}'
    if START in text and END in text:
        text = re.sub(re.escape(START) + '.*?' + re.escape(END), lambda _: block, text, flags=re.S)
    else:
        text = text.rstrip() + '\n\n' + block + '\n'
    path.write_text(text)
