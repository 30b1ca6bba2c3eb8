"""Generated "shapes" datasets: classification, detection (COCO) and semantic segmentation.

Seeded images of filled geometric shapes (``CLASSES``) on a textured, noisy background, at any resolution:
``make_classification`` writes an ImageFolder tree, ``make_detection`` COCO-style annotations with polygon masks and
``make_segmentation`` PNG label maps (0 = background, ``k + 1`` = ``CLASSES[k]``); detection and segmentation with
equal arguments share one folder of scenes. Each image has its own generator seeded with ``(seed, split, index)``.
A dataset is cached under ``default_data_dir()`` and reused while its ``meta.json`` matches the parameters.
Layouts, the caching rules and the drawing are described in docs/data.md.
"""
import functools
import json
import os
import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import List, Optional, Sequence, Tuple, Union

import cv2
import numpy as np

__all__ = [
    'CLASSES', 'SEG_CLASSES', 'GENERATOR_VERSION', 'default_data_dir', 'render_shape_image', 'render_scene',
    'make_classification', 'make_detection', 'make_segmentation', 'ClassificationData', 'DetectionData',
    'SegmentationData',
]

CLASSES: Tuple[str, ...] = ('circle', 'triangle', 'square', 'pentagon', 'star', 'cross')
SEG_CLASSES: Tuple[str, ...] = ('background',) + CLASSES
# a fixed palette for visualising label maps (background black)
SEG_PALETTE: Tuple[Tuple[int, int, int], ...] = (
    (0, 0, 0), (230, 25, 75), (60, 180, 75), (255, 225, 25), (0, 130, 200), (245, 130, 48), (145, 30, 180))
GENERATOR_VERSION = 2
_SPLIT_IDS = {'train': 0, 'val': 1, 'test': 2}
_SHIFT = 4  # cv2 sub-pixel bits for anti-aliased polygons

SizeLike = Union[int, Sequence[int]]


def default_data_dir() -> Path:
    """Where generated datasets are cached when no root is given."""
    if os.environ.get('ZOO_DATA_DIR'):
        return Path(os.environ['ZOO_DATA_DIR']).expanduser()
    cache = os.environ.get('ZOO_CACHE_DIR') or os.path.join('~', '.cache', 'zoo')
    return Path(cache).expanduser() / 'data'


def _hw(size: SizeLike) -> Tuple[int, int]:
    if isinstance(size, (int, np.integer)):
        h = w = int(size)
    else:
        h, w = (int(s) for s in size)
    if h < 16 or w < 16:
        raise ValueError(f'shapes images need a size of at least 16 px, got {h}x{w}')
    return h, w


# ---------------------------------------------------------------- geometry

def _unit_polygon(name: str) -> np.ndarray:
    """Vertices (N, 2) of a shape of circumradius 1 centred at the origin."""
    def regular(n, r=1.0, phase=-np.pi / 2):
        a = phase + 2 * np.pi * np.arange(n) / n
        return np.stack([r * np.cos(a), r * np.sin(a)], 1)

    if name == 'circle':
        return regular(48)
    if name == 'triangle':
        return regular(3)
    if name == 'square':
        return regular(4, phase=np.pi / 4)
    if name == 'pentagon':
        return regular(5)
    if name == 'star':
        outer, inner = regular(5), regular(5, 0.42, -np.pi / 2 + np.pi / 5)
        return np.stack([outer, inner], 1).reshape(-1, 2)
    if name == 'cross':
        t = 0.34  # half-width of the arms
        pts = [(t, 1), (t, t), (1, t), (1, -t), (t, -t), (t, -1),
               (-t, -1), (-t, -t), (-1, -t), (-1, t), (-t, t), (-t, 1)]
        return np.asarray(pts, np.float64) / np.hypot(1, t)
    raise ValueError(f'unknown shape {name!r}; known: {CLASSES}')


_UNIT = {name: _unit_polygon(name) for name in CLASSES}


def _place(name: str, center, radius: float, angle: float) -> np.ndarray:
    c, s = np.cos(angle), np.sin(angle)
    rot = np.array([[c, -s], [s, c]])
    return _UNIT[name] @ rot.T * radius + np.asarray(center, np.float64)


# ---------------------------------------------------------------- appearance

@functools.lru_cache(maxsize=8)
def _grid(h: int, w: int):
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    yy.flags.writeable = False
    xx.flags.writeable = False
    return yy, xx


def _background(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """A float32 (h, w, 3) background in [0, 255]: gradient + smooth blobs + optional stripes + noise."""
    c0 = rng.uniform(0, 255, 3)
    c1 = np.clip(c0 + rng.normal(0, 50, 3), 0, 255)
    theta = rng.uniform(0, 2 * np.pi)
    yy, xx = _grid(h, w)
    t = np.float32(np.cos(theta) / w) * xx + np.float32(np.sin(theta) / h) * yy
    t0, t1 = float(t.min()), float(t.max())
    t = ((t - t0) / max(t1 - t0, 1e-6))[..., None]
    img = c0.astype(np.float32) + (c1 - c0).astype(np.float32) * t
    # low-frequency colour blobs
    g = int(rng.integers(3, 8))
    blobs = rng.normal(0, rng.uniform(5, 20), (g, g, 3)).astype(np.float32)
    img += cv2.resize(blobs, (w, h), interpolation=cv2.INTER_CUBIC)
    # stripes / grid texture
    if rng.random() < 0.5:
        phi = rng.uniform(0, np.pi)
        freq = rng.uniform(2, 8) * 2 * np.pi / min(h, w)
        wave = np.sin(np.float32(freq * np.cos(phi)) * xx + np.float32(freq * np.sin(phi)) * yy
                      + np.float32(rng.uniform(0, 2 * np.pi)))
        img += (wave * np.float32(rng.uniform(4, 12)))[..., None]
    return img


def _shape_colour(rng: np.random.Generator, bg_mean: np.ndarray) -> np.ndarray:
    """A colour that stands out from the mean background colour (Euclidean RGB distance >= 120)."""
    best, best_d = None, -1.0
    for _ in range(16):
        col = rng.uniform(0, 255, 3)
        d = float(np.linalg.norm(col - bg_mean))
        if d >= 120:
            return col
        if d > best_d:
            best, best_d = col, d
    return 255.0 - bg_mean if best_d < 80 else best


def _fill(canvas: np.ndarray, poly: np.ndarray, value, antialias: bool) -> None:
    pts = np.round(poly * (1 << _SHIFT)).astype(np.int32)[None]
    cv2.fillPoly(canvas, pts, value, lineType=cv2.LINE_AA if antialias else cv2.LINE_8, shift=_SHIFT)


def _finish(rng: np.random.Generator, img: np.ndarray) -> np.ndarray:
    img += rng.standard_normal(img.shape, dtype=np.float32) * np.float32(rng.uniform(2, 8))
    return np.clip(img, 0, 255).astype(np.uint8)


def _draw(rng, img: np.ndarray, poly: np.ndarray, colour: np.ndarray) -> None:
    """Anti-aliased fill (on a float canvas, via a uint8 coverage mask) with a faint shading gradient."""
    h, w = img.shape[:2]
    cover = np.zeros((h, w), np.uint8)
    _fill(cover, poly, 255, antialias=True)
    alpha = cover.astype(np.float32)[..., None] / 255.0
    shade = 1.0 + rng.uniform(-0.15, 0.15) * (np.arange(w, dtype=np.float32)[None, :, None] / w - 0.5)
    img *= 1 - alpha
    img += alpha * colour[None, None].astype(np.float32) * shade


def render_shape_image(rng: np.random.Generator, size: SizeLike, label: int,
                       radius_range: Tuple[float, float] = (0.22, 0.45)) -> np.ndarray:
    """One RGB uint8 image containing one shape of class ``CLASSES[label]`` (radius relative to the short side)."""
    h, w = _hw(size)
    img = _background(rng, h, w)
    r = rng.uniform(*radius_range) * min(h, w)
    cx, cy = rng.uniform(r, w - r), rng.uniform(r, h - r)
    poly = _place(CLASSES[label], (cx, cy), r, rng.uniform(0, 2 * np.pi))
    _draw(rng, img, poly, _shape_colour(rng, np.asarray(cv2.mean(img)[:3])))
    return _finish(rng, img)


def render_scene(rng: np.random.Generator, size: SizeLike, max_objects: int = 5,
                 radius_range: Tuple[float, float] = (0.07, 0.2)):
    """A multi-object scene: ``(image uint8 (H, W, 3), labels int64 (N,), polygons [(V, 2) float], label_map uint8)``.

    Objects do not overlap (their circumscribed circles are disjoint), so each polygon is its instance mask.
    ``label_map`` is 0 for background and ``label + 1`` inside each shape.
    """
    h, w = _hw(size)
    img = _background(rng, h, w)
    label_map = np.zeros((h, w), np.uint8)
    n = int(rng.integers(1, max_objects + 1))
    placed: List[Tuple[float, float, float]] = []
    labels, polys = [], []
    for _ in range(n):
        for _try in range(30):
            r = rng.uniform(*radius_range) * min(h, w)
            cx, cy = rng.uniform(r, w - r), rng.uniform(r, h - r)
            if all((cx - x) ** 2 + (cy - y) ** 2 > (r + q + 2) ** 2 for x, y, q in placed):
                break
        else:
            continue
        placed.append((cx, cy, r))
        lab = int(rng.integers(len(CLASSES)))
        poly = _place(CLASSES[lab], (cx, cy), r, rng.uniform(0, 2 * np.pi))
        _draw(rng, img, poly, _shape_colour(rng, np.asarray(cv2.mean(img)[:3])))
        _fill(label_map, poly, lab + 1, antialias=False)
        labels.append(lab)
        polys.append(poly)
    return _finish(rng, img), np.asarray(labels, np.int64), polys, label_map


# ---------------------------------------------------------------- caching

def _rng(seed: int, split: str, index: int) -> np.random.Generator:
    return np.random.default_rng([int(seed), _SPLIT_IDS[split], int(index)])


def _write_png(path: Path, rgb: np.ndarray) -> None:
    arr = rgb[..., ::-1] if rgb.ndim == 3 else rgb
    ok, buf = cv2.imencode('.png', np.ascontiguousarray(arr), [cv2.IMWRITE_PNG_COMPRESSION, 1])
    if not ok:
        raise OSError(f'could not encode {path}')
    path.write_bytes(buf.tobytes())


def _cached(root: Optional[Union[str, Path]], default_name: str, meta: dict, build) -> Path:
    """Return ``root`` when its meta.json equals ``meta``; otherwise build into a temp folder and rename it in."""
    root = Path(root).expanduser() if root else default_data_dir() / default_name
    meta = dict(meta, generator='zoo.data.shapes', version=GENERATOR_VERSION)

    def matches() -> bool:
        try:
            return json.loads((root / 'meta.json').read_text()) == meta
        except (OSError, ValueError):
            return False

    if matches():
        return root
    if root.exists():
        ours = (root / 'meta.json').is_file()
        if not ours and any(root.iterdir()):
            raise FileExistsError(f'{root} exists, is not empty and was not written by zoo.data.shapes; '
                                  f'choose another folder')
    root.parent.mkdir(parents=True, exist_ok=True)
    tmp = root.parent / f'.{root.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}'
    try:
        build(tmp)
        (tmp / 'meta.json').write_text(json.dumps(meta, indent=1))
        if root.exists():
            if matches():  # another process finished first
                return root
            shutil.rmtree(root)  # an older zoo.data.shapes dataset with other parameters (checked above)
        try:
            os.rename(tmp, root)
        except OSError:
            if not matches():
                raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return root


# ---------------------------------------------------------------- public API

@dataclass
class ClassificationData:
    """Paths of a generated classification dataset (ImageFolder layout)."""
    root: Path
    train_dir: Path
    val_dir: Path
    classes: Tuple[str, ...]


@dataclass
class DetectionData:
    """Paths of a generated COCO-style detection dataset (category ids are ``1..len(classes)``)."""
    root: Path
    train_img_dir: Path
    train_ann_file: Path
    val_img_dir: Path
    val_ann_file: Path
    classes: Tuple[str, ...]


@dataclass
class SegmentationData:
    """Paths of a generated semantic segmentation dataset (label maps: 0 = background, k = ``classes[k]``)."""
    root: Path
    train_img_dir: Path
    train_ann_dir: Path
    val_img_dir: Path
    val_ann_dir: Path
    classes: Tuple[str, ...]
    palette: Tuple[Tuple[int, int, int], ...]


def make_classification(root: Optional[Union[str, Path]] = None, n_train: int = 3000, n_val: int = 600,
                        size: SizeLike = 64, seed: int = 0) -> ClassificationData:
    """Write (or reuse) a balanced classification set: ``root/{train,val}/<class>/<split>_<index>.png``.

    Image ``i`` of a split has class ``i % len(CLASSES)``. ``root`` defaults to a folder under
    ``default_data_dir()`` named after the parameters.
    """
    h, w = _hw(size)
    meta = dict(task='classification', n_train=int(n_train), n_val=int(n_val), size=[h, w], seed=int(seed),
                classes=list(CLASSES))

    def build(tmp: Path):
        for split, n in (('train', n_train), ('val', n_val)):
            for c in CLASSES:
                (tmp / split / c).mkdir(parents=True, exist_ok=True)
            for i in range(n):
                lab = i % len(CLASSES)
                img = render_shape_image(_rng(seed, split, i), (h, w), lab)
                _write_png(tmp / split / CLASSES[lab] / f'{split}_{i:06d}.png', img)
        (tmp / 'classes.txt').write_text('\n'.join(CLASSES) + '\n')

    root = _cached(root, f'shapes-cls-{h}x{w}-{n_train}-{n_val}-seed{seed}', meta, build)
    return ClassificationData(root, root / 'train', root / 'val', CLASSES)


def _make_scenes(root, n_train, n_val, size, seed, max_objects) -> Path:
    h, w = _hw(size)
    meta = dict(task='scenes', n_train=int(n_train), n_val=int(n_val), size=[h, w], seed=int(seed),
                max_objects=int(max_objects), classes=list(CLASSES))

    def build(tmp: Path):
        categories = [dict(id=k + 1, name=c, supercategory='shape') for k, c in enumerate(CLASSES)]
        for split, n in (('train', n_train), ('val', n_val)):
            img_dir, lab_dir = tmp / 'images' / split, tmp / 'labels' / split
            img_dir.mkdir(parents=True)
            lab_dir.mkdir(parents=True)
            images, anns = [], []
            for i in range(n):
                img, labels, polys, label_map = render_scene(_rng(seed, split, i), (h, w), max_objects)
                name = f'{i:06d}.png'
                _write_png(img_dir / name, img)
                _write_png(lab_dir / name, label_map)
                images.append(dict(id=i + 1, file_name=name, height=h, width=w))
                for lab, poly in zip(labels, polys):
                    x0, y0 = np.clip(poly.min(0), 0, [w, h])
                    x1, y1 = np.clip(poly.max(0), 0, [w, h])
                    anns.append(dict(
                        id=len(anns) + 1, image_id=i + 1, category_id=int(lab) + 1, iscrowd=0,
                        bbox=[round(float(x0), 2), round(float(y0), 2), round(float(x1 - x0), 2),
                              round(float(y1 - y0), 2)],
                        area=round(float(abs(cv2.contourArea(poly.astype(np.float32)))), 2),
                        segmentation=[[round(float(v), 2) for v in poly.reshape(-1)]]))
            (tmp / 'annotations').mkdir(exist_ok=True)
            coco = dict(info=dict(description=f'zoo shapes {split}', version=str(GENERATOR_VERSION)),
                        licenses=[], images=images, annotations=anns, categories=categories)
            (tmp / 'annotations' / f'instances_{split}.json').write_text(json.dumps(coco))
        (tmp / 'classes.txt').write_text('\n'.join(CLASSES) + '\n')

    return _cached(root, f'shapes-scenes-{h}x{w}-{n_train}-{n_val}-seed{seed}-max{max_objects}', meta, build)


def make_detection(root: Optional[Union[str, Path]] = None, n_train: int = 400, n_val: int = 100,
                   size: SizeLike = 128, seed: int = 0, max_objects: int = 5) -> DetectionData:
    """Write (or reuse) a COCO-style detection set with instance masks (polygons); returns its paths.

    Layout: ``root/images/{train,val}/NNNNNN.png``, ``root/annotations/instances_{train,val}.json``.
    Use with pycocotools ``COCO(ann_file)`` or mmdet ``CocoDataset(metainfo=dict(classes=CLASSES), ...)``.
    """
    root = _make_scenes(root, n_train, n_val, size, seed, max_objects)
    return DetectionData(root, root / 'images' / 'train', root / 'annotations' / 'instances_train.json',
                         root / 'images' / 'val', root / 'annotations' / 'instances_val.json', CLASSES)


def make_segmentation(root: Optional[Union[str, Path]] = None, n_train: int = 400, n_val: int = 100,
                      size: SizeLike = 128, seed: int = 0, max_objects: int = 5) -> SegmentationData:
    """Write (or reuse) a semantic segmentation set; returns image and label-map folders.

    Layout: ``root/images/{train,val}/NNNNNN.png`` and ``root/labels/{train,val}/NNNNNN.png`` (same names,
    uint8 label maps, 0 = background, ``k + 1`` = ``CLASSES[k]``; mmseg: ``reduce_zero_label=False``,
    ``classes=SEG_CLASSES``).
    """
    root = _make_scenes(root, n_train, n_val, size, seed, max_objects)
    return SegmentationData(root, root / 'images' / 'train', root / 'labels' / 'train', root / 'images' / 'val',
                            root / 'labels' / 'val', SEG_CLASSES, SEG_PALETTE)
