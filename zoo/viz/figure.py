"""The attention figure: the input image, Grad-CAM, then one row per stage with that stage's maps."""
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch
import torch.nn as nn

from ..errors import UserError
from ..models.spec import family_specs
from .hooks import AttnMap

__all__ = ['CAM_TARGETS', 'cam_target', 'grad_cam', 'plot_maps']


def _require(module: str, extra: str):
    import importlib
    try:
        return importlib.import_module(module)
    except ImportError:
        raise UserError(f'{module} is not installed: pip install "timm-attention-zoo[{extra}]"') from None


def _stage_target(model: nn.Module, x: torch.Tensor) -> Tuple[List[nn.Module], Optional[Callable]]:
    """The last feature stage (timm's ``feature_info``), NHWC outputs permuted to NCHW; else the last Conv2d."""
    info = getattr(model, 'feature_info', None)
    mods = dict(model.named_modules())
    try:
        layer, chs = mods[info[-1]['module']], int(info[-1]['num_chs'])
    except (TypeError, KeyError, IndexError):
        convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
        if not convs:
            raise UserError('Grad-CAM: no feature stage or Conv2d layer to target') from None
        return [convs[-1]], None

    def nhwc_to_nchw(t: torch.Tensor) -> torch.Tensor:
        return t.permute(0, 3, 1, 2) if t.dim() == 4 and t.shape[1] != chs and t.shape[-1] == chs else t
    return [layer], nhwc_to_nchw


def _coat_target(model: nn.Module, x: torch.Tensor) -> Tuple[List[nn.Module], Optional[Callable]]:
    """The first norm of the last attention (grad-cam's recipe for ViTs): the head reads class tokens, which take
    no gradient from the image tokens after the last attention. CoaT: one layer per scale of the last parallel
    block (grad-cam averages their maps); CoaT-Lite: the last serial block."""
    if model.parallel_blocks is not None:
        layers = list(model.parallel_blocks[-1].norm1)
    else:
        layers = [model.stages[-1].blocks[-1].norm1]
    with torch.no_grad():
        grids = {m.shape[-2] * m.shape[-1]: tuple(m.shape[-2:])
                 for m in model.forward_intermediates(x, intermediates_only=True)}

    def tokens_to_map(t: torch.Tensor) -> torch.Tensor:  # (B, 1 + h * w, C) -> (B, C, h, w), class token dropped
        h, w = grids[t.shape[1] - 1]
        return t[:, 1:].transpose(1, 2).reshape(t.shape[0], -1, h, w)
    return layers, tokens_to_map


def _lkca_target(model: nn.Module, x: torch.Tensor) -> Tuple[List[nn.Module], Optional[Callable]]:
    """The last block (NHWC): the feature stages are a parameter-free pyramid outside the classification path."""
    return [model.blocks[-1]], lambda t: t.permute(0, 3, 1, 2)


# a FamilySpec's ``cam`` -> the layers it targets
CAM_TARGETS: Dict[str, Callable] = {
    'last_stage': _stage_target, 'last_attention_norm': _coat_target, 'last_block_nhwc': _lkca_target}


def cam_target(model: nn.Module, x: torch.Tensor) -> Tuple[List[nn.Module], Optional[Callable]]:
    """Grad-CAM's ``target_layers`` and ``reshape_transform`` for ``model`` on input ``x``: the ``cam`` of the
    spec of the family whose module defines the model's class, else the last feature stage."""
    module = type(model).__module__
    spec = next((s for s in family_specs().values() if module == f'zoo.models.{s.module}'), None)
    return CAM_TARGETS[spec.cam if spec else 'last_stage'](model, x)


def grad_cam(model: nn.Module, x: torch.Tensor, target: Optional[int] = None) -> np.ndarray:
    """Grad-CAM (``pytorch_grad_cam.GradCAM``) of class ``target`` (default: the top-1 class) on the layers
    :func:`cam_target` picks; returns (H, W) in [0, 1] for the first image."""
    cam_mod = _require('pytorch_grad_cam', 'viz')
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget
    model = model.eval()
    x = x[:1]
    with torch.no_grad():
        logits = model(x)
    tgt = int(logits[0].argmax()) if target is None else int(target)
    layers, reshape = cam_target(model, x)
    with cam_mod.GradCAM(model=model, target_layers=layers, reshape_transform=reshape) as cam:
        out = cam(input_tensor=x, targets=[ClassifierOutputTarget(tgt)])
    return np.asarray(out[0], dtype=np.float32)


def _to_image(x: torch.Tensor, mean: Sequence[float], std: Sequence[float]) -> np.ndarray:
    img = x[0].detach().float().cpu() * torch.tensor(std).view(3, 1, 1) + torch.tensor(mean).view(3, 1, 1)
    return img.clamp(0, 1).permute(1, 2, 0).numpy()


def _resize(a: np.ndarray, h: int, w: int) -> np.ndarray:
    t = torch.from_numpy(np.ascontiguousarray(a, dtype=np.float32))[None, None]
    return torch.nn.functional.interpolate(t, size=(h, w), mode='nearest')[0, 0].numpy()


def _layout(maps: List[AttnMap], with_cam: bool) -> List[List]:
    """Figure rows: the input (and Grad-CAM), then one row of ``('map', m)`` per stage, in first-seen order."""
    rows: List[List] = [[('image', None)] + ([('grad-cam', None)] if with_cam else [])]
    stages: List[str] = []
    for m in maps:
        if m.stage not in stages:
            stages.append(m.stage)
    for s in stages:
        rows.append([('map', m) for m in maps if m.stage == s])
    return rows


def _draw_gates(ax, d: np.ndarray) -> None:
    ax.axis('on')
    ax.bar(np.arange(d.size), d, width=1.0, color='tab:blue')
    ax.set_ylim(0, 1)
    ax.set_xticks([])
    ax.tick_params(labelsize=6)
    ax.set_xlabel(f'{d.size} channels', fontsize=6)


def _draw_overlay(ax, m: AttnMap, d: np.ndarray, img: np.ndarray, vmin: float, vmax: float) -> None:
    from matplotlib import patches
    H, W = img.shape[:2]
    h, w = d.shape
    ax.imshow(img)
    if 'grid' in m.extra or m.normalize:  # sparse maps: zeros transparent, scaled to the max
        big = _resize(d, H, W)
        ax.imshow(np.ma.masked_where(big <= 0, big), cmap='autumn' if 'grid' in m.extra else 'jet',
                  alpha=0.55, vmin=0, vmax=float(d.max()) or 1.)
    else:
        ax.imshow(_resize(d, H, W), cmap='jet', alpha=0.5, vmin=vmin, vmax=vmax)
    sy, sx = H / h, W / w
    if 'grid' in m.extra:  # BiFormer regions
        S = m.extra['grid']
        for i in range(1, S):
            ax.axhline(i * H / S, color='w', lw=0.4)
            ax.axvline(i * W / S, color='w', lw=0.4)
        qr, qc = m.query
        ax.add_patch(patches.Rectangle((qc * W / S, qr * H / S), W / S, H / S, fill=False,
                                       ec='magenta', lw=1.5))
    elif m.query is not None:
        qy, qx = m.query
        ax.plot([(qx + .5) * sx], [(qy + .5) * sy], marker='+', color='magenta', ms=8, mew=1.5)
    if 'window' in m.extra:
        y0, x0, n = m.extra['window']
        ax.add_patch(patches.Rectangle((x0 * sx, y0 * sy), n * sx, n * sy, fill=False, ec='w', lw=1))
        y0, x0, n = m.extra['block']
        ax.add_patch(patches.Rectangle((x0 * sx, y0 * sy), n * sx, n * sy, fill=False, ec='magenta',
                                       lw=1))


def _draw_map(ax, m: AttnMap, img: np.ndarray) -> None:
    """One attention map: channel gates as bars, spatial maps over the grey ``img`` or on their own grid."""
    d = m.data.numpy()
    vmin, vmax = (0., 1.) if m.unit else (float(d.min()), float(d.max()) or 1.)
    if d.ndim == 1:  # channel gates
        _draw_gates(ax, d)
    elif m.overlay:
        _draw_overlay(ax, m, d, img, vmin, vmax)
    else:
        ax.imshow(d, cmap='viridis', vmin=vmin, vmax=float(d.max()) if m.normalize else vmax,
                  interpolation='nearest')
        if m.query is not None:
            ax.plot([m.query[1]], [m.query[0]], marker='+', color='magenta', ms=6)
    t = m.title + (f' ({m.note})' if m.note else '')
    ax.set_title(t if len(t) < 44 else t[:42] + '…', fontsize=7)


def plot_maps(image: torch.Tensor, maps: List[AttnMap], out: Union[str, Path], *, cam: Optional[np.ndarray] = None,
              title: str = '', mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225), dpi: int = 80) -> Path:
    """Write the figure to ``out`` (PNG). ``image``: the normalised (1, 3, H, W) model input."""
    _require('matplotlib', 'viz')
    import matplotlib
    matplotlib.use('Agg', force=True)
    import matplotlib.pyplot as plt

    img_rgb = _to_image(image, mean, std)
    img = np.repeat(img_rgb.mean(-1, keepdims=True), 3, -1)  # maps are drawn over the grey image: legible colours
    H, W = img.shape[:2]
    rows = _layout(maps, cam is not None)
    ncols = max(len(r) for r in rows)
    fig, axes = plt.subplots(len(rows), ncols, figsize=(2.3 * ncols, 2.3 * len(rows)), squeeze=False)
    for ax in axes.flat:
        ax.axis('off')
    for r, row in enumerate(rows):
        for c, (what, m) in enumerate(row):
            ax = axes[r][c]
            if what == 'image':
                ax.imshow(img_rgb)
                ax.set_title('input', fontsize=8)
            elif what == 'grad-cam':
                ax.imshow(img)
                ax.imshow(_resize(cam, H, W), cmap='jet', alpha=0.45, vmin=0, vmax=1)
                ax.set_title('Grad-CAM (top-1 class)', fontsize=8)
            else:
                _draw_map(ax, m, img)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=dpi)
    plt.close(fig)
    return out
