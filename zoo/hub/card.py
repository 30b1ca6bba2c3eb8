"""Hub model cards: the ``model_card`` dict that timm's ``generate_readme`` / ``push_to_hf_hub`` render.

The prose (description and usage) comes from the template file ``zoo/hub/model_card.md`` shipped with the package;
the details (params, image size, papers, dataset, metrics, source, licence) and the citation from the model, the
weights manifest entry and the checkpoint's provenance.
"""
import json
import re
from functools import lru_cache
from importlib import resources
from string import Template
from typing import Any, Dict, Optional

import torch.nn as nn

from .. import manifest

__all__ = ['model_card', 'card_template', 'bibtex']

TEMPLATE = 'model_card.md'
_SECTION = re.compile(r'^<!-- section: (\w+) -->\n', re.M)


@lru_cache(maxsize=None)
def card_template() -> Dict[str, str]:
    """The sections of ``zoo/hub/model_card.md`` (``description``, ``usage``) as raw template strings."""
    text = resources.files(__package__).joinpath(TEMPLATE).read_text(encoding='utf-8')
    parts = _SECTION.split(text)
    sections = dict(zip(parts[1::2], parts[2::2]))
    missing = {'description', 'usage'} - set(sections)
    if missing:
        raise RuntimeError(f'zoo/hub/{TEMPLATE} lacks the section(s) {sorted(missing)}')
    return sections


def _render(section: str, **values: str) -> str:
    return Template(card_template()[section]).substitute(values)


def _arxiv(paper: Optional[str]) -> Optional[str]:
    return paper.split(':', 1)[1] if paper and paper.startswith('arXiv:') else None


def bibtex(arch: str, e: Dict[str, Any], cfg: Dict[str, Any]) -> Optional[str]:
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


def _source(e: Dict[str, Any], prov: Dict[str, Any]) -> str:
    """Where the weights come from: the official file (URL, SHA-256), a zoo checkpoint, or the provenance's word."""
    if e.get('source') in ('url', 'manual'):
        where = e.get('url') or e.get('page')
        sha = prov.get('checkpoint_sha256') or e.get('sha256')
        return (f'official checkpoint `{e.get("file")}` from {where} ({e.get("origin_url") or "authors"})'
                + (f', SHA-256 `{sha}`' if sha else '')
                + ', converted to the timm/zoo layout by the zoo (tools/convert.py).')
    if prov.get('checkpoint'):
        return (f'checkpoint `{prov["checkpoint"]}` (SHA-256 `{prov.get("checkpoint_sha256")}`), '
                f'trained or fine-tuned with the zoo.')
    return prov.get('source') or 'weights trained or converted with the zoo.'


def _details(model: nn.Module, cfg: Dict[str, Any], e: Dict[str, Any], metrics: Dict[str, Any],
             dataset: Optional[str]) -> Dict[str, Any]:
    """The card's details up to ``Original``: model type, stats (params, image size), papers, dataset, metrics."""
    params = sum(p.numel() for p in model.parameters()) / 1e6
    size = cfg.get('input_size') or (3, 224, 224)
    stats: Dict[str, Any] = {'Params (M)': f'{params:.2f}', 'Image size': f'{size[-2]} x {size[-1]}'}
    pinfo = e.get('params') or {}
    if pinfo.get('form'):
        stats['Params counted in'] = pinfo['form']
    if pinfo.get('paper_m') is not None:
        stats['Params in the paper (M)'] = (f'{pinfo["paper_m"]}'
                                            + (f' ({pinfo["paper_form"]})' if pinfo.get('paper_form') else ''))
    details: Dict[str, Any] = {'Model Type': 'Image classification / feature backbone', 'Model Stats': stats}
    paper = e.get('paper') or cfg.get('paper_ids')
    paper_name = e.get('paper_name') or cfg.get('paper_name')
    if paper:
        arxiv = _arxiv(paper)
        details['Papers'] = {paper_name or paper: f'https://arxiv.org/abs/{arxiv}' if arxiv else paper}
    if dataset:
        details['Dataset'] = dataset
    if metrics:
        details['Metrics' + (f' ({dataset})' if dataset else '')] = {k: _fmt_metric(v) for k, v in metrics.items()}
    if e.get('origin_url') or cfg.get('origin_url'):
        details['Original'] = e.get('origin_url') or cfg.get('origin_url')
    return details


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
        tag = manifest.split_hub_id(repo_id)[1].partition('.')[2] or tag
    full = f'{arch}.{tag}' if tag else arch
    e = dict(entry or manifest.entry(full) or {})
    prov = dict(getattr(model, 'zoo_provenance', None) or {})
    metrics = dict(metrics or e.get('metrics') or prov.get('metrics') or {})
    license = license or e.get('license') or cfg.get('license') or 'other'
    repo_id = repo_id or e.get('hub') or f'{manifest.hub_org()}/{full}'
    if dataset is None and tag and 'in1k' in tag:
        dataset = 'ImageNet-1k'
    if source is None:
        source = _source(e, prov)
    details = _details(model, cfg, e, metrics, dataset)
    details['Source'] = source
    details['License'] = license
    paper_name = e.get('paper_name') or cfg.get('paper_name')
    values = dict(arch=arch, full=full, repo_id=repo_id, paper_suffix=f', {paper_name}' if paper_name else '')
    card = {
        'description': description or e.get('description') or _render('description', **values).strip(),
        'details': details,
        'usage': _render('usage', **values).lstrip('\n'),
        'license': license,
        'tags': ['image-classification', 'timm', 'zoo'],
        'library_name': 'timm',
    }
    cite = citation or bibtex(arch, e, cfg)
    if cite:
        card['citation'] = cite
    return card
