"""albumentations 2.x pipelines for classification, configured from a model's pretrained cfg.

``resolve_data_cfg(model, **overrides)`` starts from ``timm.data.resolve_model_data_config(model)`` (input size,
interpolation, mean, std, crop_pct, crop_mode) and applies explicit overrides. ``create_train_transform`` gives
random-resized-crop + flips + colour jitter (+ an optional RandAugment-style policy and random erasing);
``create_eval_transform`` gives timm's evaluation geometry (resize to ``size / crop_pct`` then centre crop).
Every pipeline is an ``A.Compose(..., strict=True)`` (so a misspelt or 1.x-style argument raises instead of being
silently ignored) and ends with ``Normalize`` + ``ToTensorV2`` (float CHW tensor). Inputs are RGB uint8 HWC arrays.
"""
import math
import re
from typing import Any, Dict, Optional, Sequence, Tuple, Union

import albumentations as A
import cv2

__all__ = ['INTERPOLATIONS', 'resolve_data_cfg', 'create_train_transform', 'create_eval_transform',
           'parse_rand_augment', 'rand_augment_ops']

INTERPOLATIONS = {
    'nearest': cv2.INTER_NEAREST, 'bilinear': cv2.INTER_LINEAR, 'bicubic': cv2.INTER_CUBIC,
    'area': cv2.INTER_AREA, 'lanczos': cv2.INTER_LANCZOS4, 'random': cv2.INTER_CUBIC, '': cv2.INTER_CUBIC,
}


def _size_hw(input_size) -> Tuple[int, int]:
    if isinstance(input_size, int):
        return input_size, input_size
    s = tuple(int(v) for v in input_size)
    return (s[-2], s[-1]) if len(s) >= 2 else (s[0], s[0])


def resolve_data_cfg(model=None, pretrained_cfg: Optional[Dict[str, Any]] = None, *,
                     img_size: Union[int, Sequence[int], None] = None, crop_pct: Optional[float] = None,
                     interpolation: Optional[str] = None, mean: Optional[Sequence[float]] = None,
                     std: Optional[Sequence[float]] = None, crop_mode: Optional[str] = None,
                     use_test_size: bool = False) -> Dict[str, Any]:
    """Data config (``input_size`` (C, H, W), ``interpolation``, ``mean``, ``std``, ``crop_pct``, ``crop_mode``).

    Values come from the model's pretrained cfg (or ``pretrained_cfg``) unless given here. ``img_size`` is an int
    or ``(H, W)``.
    """
    from timm.data import resolve_data_config, resolve_model_data_config
    if model is not None:
        cfg = dict(resolve_model_data_config(model, use_test_size=use_test_size))
    else:
        cfg = dict(resolve_data_config(pretrained_cfg=dict(pretrained_cfg or {}), use_test_size=use_test_size))
    if img_size:
        h, w = _size_hw(img_size)
        cfg['input_size'] = (cfg['input_size'][0], h, w)
    if crop_pct:
        cfg['crop_pct'] = float(crop_pct)
    if interpolation:
        cfg['interpolation'] = interpolation
    if mean:
        cfg['mean'] = tuple(float(v) for v in mean)
    if std:
        cfg['std'] = tuple(float(v) for v in std)
    if crop_mode:
        cfg['crop_mode'] = crop_mode
    cfg['input_size'] = tuple(int(v) for v in cfg['input_size'])
    cfg['mean'], cfg['std'] = tuple(float(v) for v in cfg['mean']), tuple(float(v) for v in cfg['std'])
    if cfg['interpolation'] not in INTERPOLATIONS:
        raise ValueError(f"unknown interpolation {cfg['interpolation']!r}; use one of {sorted(INTERPOLATIONS)}")
    return cfg


def parse_rand_augment(spec: str) -> Dict[str, float]:
    """``'rand-m9-n2'`` style (timm naming): ``m`` magnitude 0..10 (default 9), ``n`` ops per image (default 2),
    ``mstd`` is accepted for compatibility and ignored (albumentations samples magnitudes uniformly up to ``m``)."""
    parts = spec.split('-')
    if parts[0] != 'rand':
        raise ValueError(f"unsupported auto-augment policy {spec!r}: use 'rand-m<magnitude>-n<num_ops>'")
    out = dict(m=9.0, n=2)
    for p in parts[1:]:
        key = re.match(r'[a-z]+', p)
        if not key:
            raise ValueError(f'bad RandAugment option {p!r} in {spec!r}')
        k, v = key.group(0), p[key.end():]
        if k == 'm':
            out['m'] = float(v)
        elif k == 'n':
            out['n'] = int(v)
        elif k in ('mstd', 'mmax', 'inc', 'w', 'p'):
            continue
        else:
            raise ValueError(f'unknown RandAugment option {k!r} in {spec!r}')
    if not 0 <= out['m'] <= 30:
        raise ValueError(f"RandAugment magnitude must be in [0, 30], got {out['m']}")
    return out


def rand_augment_ops(magnitude: float, fill: Tuple[int, ...] = (124, 116, 104)):
    """A RandAugment-style op list (each ``p=1``; magnitudes scale with ``magnitude / 10`` like timm's)."""
    m = min(magnitude, 30.0) / 10.0
    return [
        A.NoOp(p=1.0),
        A.AutoContrast(p=1.0),
        A.Equalize(p=1.0),
        A.Affine(rotate=(-30 * m, 30 * m), fill=fill, p=1.0),
        A.Affine(shear={'x': (-16.7 * m, 16.7 * m), 'y': (0, 0)}, fill=fill, p=1.0),
        A.Affine(shear={'x': (0, 0), 'y': (-16.7 * m, 16.7 * m)}, fill=fill, p=1.0),
        A.Affine(translate_percent={'x': (-0.45 * m, 0.45 * m), 'y': (0, 0)}, fill=fill, p=1.0),
        A.Affine(translate_percent={'x': (0, 0), 'y': (-0.45 * m, 0.45 * m)}, fill=fill, p=1.0),
        A.Posterize(num_bits=(max(1, 8 - round(4 * m)), 8), p=1.0),
        A.Solarize(threshold_range=(max(0.0, 1.0 - m), 1.0), p=1.0),
        A.RandomBrightnessContrast(brightness_limit=0.9 * m, contrast_limit=0.0, p=1.0),
        A.RandomBrightnessContrast(brightness_limit=0.0, contrast_limit=0.9 * m, p=1.0),
        A.ColorJitter(brightness=0, contrast=0, saturation=(max(0.0, 1 - 0.9 * m), 1 + 0.9 * m), hue=0, p=1.0),
        A.Sharpen(alpha=(0.0, min(1.0, 0.9 * m)), p=1.0),
    ]


def create_train_transform(data_cfg: Dict[str, Any], *, scale: Sequence[float] = (0.08, 1.0),
                           ratio: Sequence[float] = (3 / 4, 4 / 3), hflip: float = 0.5, vflip: float = 0.0,
                           color_jitter: Union[float, Sequence[float], None] = 0.4, color_jitter_prob: float = 0.8,
                           auto_augment: Optional[str] = None, re_prob: float = 0.0,
                           seed: Optional[int] = None) -> A.Compose:
    """Training pipeline: RandomResizedCrop -> flips -> colour jitter | RandAugment -> [erasing] -> normalise."""
    h, w = _size_hw(data_cfg['input_size'])
    interp = INTERPOLATIONS[data_cfg.get('interpolation', 'bicubic')]
    fill = tuple(int(round(255 * v)) for v in data_cfg['mean'])
    ops = [A.RandomResizedCrop(size=(h, w), scale=tuple(scale), ratio=tuple(ratio), interpolation=interp)]
    if hflip > 0:
        ops.append(A.HorizontalFlip(p=hflip))
    if vflip > 0:
        ops.append(A.VerticalFlip(p=vflip))
    if auto_augment:
        ra = parse_rand_augment(auto_augment)
        ops.append(A.SomeOf(rand_augment_ops(ra['m'], fill), n=int(ra['n']), replace=True, p=1.0))
    elif color_jitter:
        cj = [float(color_jitter)] * 3 if isinstance(color_jitter, (int, float)) else [float(v) for v in color_jitter]
        cj = (cj + [0.0])[:4] if len(cj) == 3 else cj[:4]
        ops.append(A.ColorJitter(brightness=cj[0], contrast=cj[1], saturation=cj[2], hue=cj[3] if cj[3] else 0,
                                 p=color_jitter_prob))
    if re_prob > 0:
        ops.append(A.Erasing(scale=(0.02, 1 / 3), fill='random', p=re_prob))
    ops += [A.Normalize(mean=data_cfg['mean'], std=data_cfg['std']), A.ToTensorV2()]
    return A.Compose(ops, strict=True, seed=seed)


def create_eval_transform(data_cfg: Dict[str, Any], seed: Optional[int] = None) -> A.Compose:
    """Evaluation pipeline following timm: resize to ``floor(size / crop_pct)`` (``crop_mode='center'``: shortest
    side, keeping aspect; ``'squash'``: both sides; ``'border'``: longest side, then pad), centre crop to
    ``input_size``, normalise."""
    h, w = _size_hw(data_cfg['input_size'])
    interp = INTERPOLATIONS[data_cfg.get('interpolation', 'bicubic')]
    crop_pct = data_cfg.get('crop_pct') or 0.875
    sh, sw = math.floor(h / crop_pct), math.floor(w / crop_pct)
    mode = data_cfg.get('crop_mode') or 'center'
    if mode == 'squash':
        ops = [A.Resize(sh, sw, interpolation=interp)]
    elif mode == 'border':
        # keep the whole image: fit the longest side, pad with the mean colour
        fill = tuple(int(round(255 * v)) for v in data_cfg['mean'])
        ops = [A.LongestMaxSize(max_size_hw=(sh, sw), interpolation=interp),
               A.PadIfNeeded(min_height=h, min_width=w, position='center', border_mode=cv2.BORDER_CONSTANT, fill=fill)]
    elif mode == 'center':
        ops = [A.SmallestMaxSize(max_size=sh, interpolation=interp) if sh == sw
               else A.SmallestMaxSize(max_size_hw=(sh, sw), interpolation=interp)]
    else:
        raise ValueError(f"unknown crop_mode {mode!r}: use 'center', 'squash' or 'border'")
    ops += [A.CenterCrop(h, w), A.Normalize(mean=data_cfg['mean'], std=data_cfg['std']), A.ToTensorV2()]
    return A.Compose(ops, strict=True, seed=seed)
