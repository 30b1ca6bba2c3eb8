"""Cost-vs-resolution plots (matplotlib PNGs): every model of a run, and one per zoo family next to its own
counterparts only (timm implementations of the same design, and official implementations measured with
``--pair ... --plot``)."""
import os
from typing import Any, Dict, List, Optional, Sequence

from ..models.spec import family_specs, spec_of


def plot_scaling(records: List[Dict[str, Any]], path: str, keys: Sequence[str] = ('latency_ms', 'peak_mem_mb'),
                 title: Optional[str] = None) -> Optional[str]:
    """Latency and memory against resolution for every model in ``records`` (PNG via matplotlib)."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(1, len(keys), figsize=(5 * len(keys), 3.6))
    axes = [axes] if len(keys) == 1 else axes
    models = sorted({r['model'] for r in records})
    labels = {r['model']: r.get('label') or r['model'] for r in records}
    for ax, key in zip(axes, keys):
        for m in models:
            pts = sorted((r['img_size'], r[key]) for r in records if r['model'] == m and r.get(key) is not None)
            if pts:
                ax.plot(*zip(*pts), marker='o', label=labels[m])
        ax.set_xlabel('input size (px)')
        ax.set_ylabel(key)
        if key != 'peak_mem_mb':
            ax.set_yscale('log')
        ax.grid(True, alpha=0.3)
    axes[0].legend(fontsize=7)
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def family_of(name: str) -> Optional[str]:
    """The zoo family module (``zoo_coat``, ...) of a zoo model, else None."""
    try:
        return spec_of(name).module
    except KeyError:
        return None


def _setting(records: List[Dict[str, Any]]) -> str:
    """What the curves measured: latency at batch 1; peak memory of the whole measurement (batch-N inference,
    and the training step when it ran)."""
    bs = sorted({r['batch_size'] for r in records if r.get('batch_size')})
    dtypes = sorted({r['dtype'] for r in records if r.get('dtype')})
    threads = sorted({r['threads'] for r in records if r.get('threads')})
    train = any(r.get('train_img_s') for r in records)
    mem = f'peak memory: batch-{"/".join(map(str, bs))} inference' + (' + train step' if train else '')
    th = f', {"/".join(map(str, threads))} thread(s)' if threads else ''
    return f'{"/".join(dtypes) or "fp32"}{th}, latency at batch 1, {mem}'


def family_groups(records: List[Dict[str, Any]]) -> Dict[str, List[Dict[str, Any]]]:
    """The records of each zoo family's plot (error records dropped): the family's models and only its own
    counterparts -- the timm models of its spec's ``counterparts`` in the run and the records whose ``counterpart_of``
    is one of the family's models (official code, ``--pair ... --plot``). Other baselines of the run are in no
    family's group."""
    ok = [r for r in records if 'error' not in r]
    fams: Dict[str, List[str]] = {}
    for r in ok:
        f = family_of(r['model']) if not r.get('counterpart_of') else None
        if f and r['model'] not in fams.setdefault(f, []):
            fams[f].append(r['model'])
    counterparts = {spec.module: spec.counterparts for spec in family_specs().values()}
    groups = {}
    for fam, models in sorted(fams.items()):
        own = set(models) | set(counterparts.get(fam, ()))
        groups[fam] = [r for r in ok if (r['model'] in own and not r.get('counterpart_of'))
                       or r.get('counterpart_of') in models]
    return groups


def plot_families(records: List[Dict[str, Any]], out_dir: str, keys: Sequence[str] = ('latency_ms', 'peak_mem_mb')) -> List[str]:
    """``scaling_<family>.png`` per zoo family in ``records`` (:func:`family_groups`: its models and its own
    counterparts) against input size; a family measured at fewer than two sizes gets none. Returns the paths."""
    paths = []
    for fam, sub in family_groups(records).items():
        if len({r['img_size'] for r in sub if family_of(r['model']) == fam}) < 2:
            continue
        path = os.path.join(out_dir, f'scaling_{fam}.png')
        others = sorted({r.get('label') or r['model'] for r in sub if r.get('counterpart_of') or family_of(r['model']) != fam})
        vs = f' vs {", ".join(others)}' if others else ' (no timm / official counterpart measured)'
        names = {r['model'] for r in sub}
        failed: Dict[str, List[int]] = {}
        for r in records:  # the sizes where a drawn model failed (e.g. an official model built for 224 px only)
            if 'error' in r and r.get('model') in names:
                failed.setdefault(r.get('label') or r['model'], []).append(r.get('img_size'))
        note = ''.join(f'\nfailed (not drawn): {m} at {", ".join(map(str, sorted(v)))} px' for m, v in failed.items())
        plot_scaling(sub, path, keys=keys, title=f'{fam}: cost vs input size{vs}\n{_setting(sub)}{note}')
        paths.append(path)
    return paths
