"""Cost-vs-resolution plots (matplotlib PNGs): every model of a run, and one per zoo family next to its timm
counterparts."""
import os
from typing import Any, Dict, List, Optional, Sequence

def plot_scaling(records: List[Dict[str, Any]], path: str, keys: Sequence[str] = ('latency_ms', 'peak_mem_mb'),
                 title: Optional[str] = None) -> Optional[str]:
    """Latency and memory against resolution for every model in ``records`` (PNG via matplotlib)."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(1, len(keys), figsize=(6 * len(keys), 4.5))
    axes = [axes] if len(keys) == 1 else axes
    models = sorted({r['model'] for r in records})
    for ax, key in zip(axes, keys):
        for m in models:
            pts = sorted((r['img_size'], r[key]) for r in records if r['model'] == m and r.get(key) is not None)
            if pts:
                ax.plot(*zip(*pts), marker='o', label=m)
        ax.set_xlabel('input size (px)')
        ax.set_ylabel(key)
        if key != 'peak_mem_mb':
            ax.set_yscale('log')
        ax.grid(True, alpha=0.3)
    axes[0].legend(fontsize=7)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


# ---------------------------------------------------------------------------------------------------------
# Cost-vs-resolution plots, one PNG per family, zoo models next to their timm / official counterparts.

# timm models that implement the same design (or the design it extends), plotted with each zoo family
COUNTERPARTS = {
    'zoo_cbam': ['resnet50', 'resnet18'], 'zoo_triplet': ['resnet50', 'resnet18'], 'zoo_halonet': ['halonet26t'],
    'zoo_coat': ['coat_lite_tiny', 'coat_lite_small'], 'zoo_biformer': ['swin_tiny_patch4_window7_224'],
    'zoo_lkca': ['vit_tiny_patch16_224'], 'zoo_resattnet': ['resnet50'], 'zoo_overlock': ['convnext_tiny'],
}


def family_of(name: str) -> Optional[str]:
    """The zoo family module (``zoo_coat``, ...) of a zoo model, else None."""
    try:
        from zoo._registry import model_families
    except ImportError:
        return None
    arch = name.split('.', 1)[0]
    for module, names in model_families().items():
        if arch in names:
            return module
    return None


def plot_families(records: List[Dict[str, Any]], out_dir: str, keys: Sequence[str] = ('latency_ms', 'peak_mem_mb')) -> List[str]:
    """``scaling_<family>.png`` per zoo family in ``records``: its models and the counterparts (COUNTERPARTS, or
    any non-zoo model of the run) against input size. Returns the written paths."""
    ok = [r for r in records if 'error' not in r]
    fams: Dict[str, List[str]] = {}
    others = sorted({r['model'] for r in ok if family_of(r['model']) is None})
    for r in ok:
        f = family_of(r['model'])
        if f:
            fams.setdefault(f, [])
            if r['model'] not in fams[f]:
                fams[f].append(r['model'])
    paths = []
    for fam, models in sorted(fams.items()):
        refs = [m for m in others if m in COUNTERPARTS.get(fam, [])] or others
        sub = [r for r in ok if r['model'] in set(models) | set(refs)]
        if len({r['img_size'] for r in sub}) < 2:
            continue
        path = os.path.join(out_dir, f'scaling_{fam}.png')
        plot_scaling(sub, path, keys=keys, title=f'{fam}: cost vs input size (batch 1 latency, peak memory)')
        paths.append(path)
    return paths
