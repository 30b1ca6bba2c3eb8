"""Image classification datasets: an ImageFolder tree and a CSV/JSON list of (path, label).

Both check their class list before any training starts (an empty class folder, a class folder or label that is
not in the given class list, or a list row without a label is a ``DatasetError`` naming the culprits).
Unreadable or corrupt images are found when loaded: with ``corrupt='skip'`` (default) ``__getitem__`` returns a
``CorruptSample`` that ``collate_skip_corrupt`` drops from the batch and passes on (the training / evaluation loops
log each path once and count them); with ``corrupt='error'`` loading raises ``CorruptImageError`` naming the file.
``scan_images()`` decodes every image up front instead (``verify_images`` in the tools).
"""
import csv
import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, List, Optional, Sequence, Tuple, Union

import cv2

# OpenCV's own thread pool does not survive fork(): a DataLoader worker forked after the parent used it can hang
# inside the next cv2 call. Parallelism comes from the loader's worker processes, so OpenCV runs single-threaded.
cv2.setNumThreads(0)
import numpy as np
from torch.utils.data import Dataset, default_collate
from ..errors import UserError

__all__ = [
    'IMG_EXTENSIONS', 'DatasetError', 'CorruptImageError', 'CorruptSample', 'read_image', 'ImageFolderDataset',
    'ImageListDataset', 'collate_skip_corrupt', 'build_dataset', 'is_shapes_folder', 'image_folder_splits',
]

_logger = logging.getLogger(__name__)

IMG_EXTENSIONS = ('.png', '.jpg', '.jpeg', '.bmp', '.webp', '.tif', '.tiff', '.ppm', '.pgm', '.pbm')


class DatasetError(UserError, ValueError):
    """A dataset that cannot be used as given (missing folders, empty classes, unknown labels, ...)."""


class CorruptImageError(RuntimeError):
    """An image file that cannot be read or decoded."""

    def __init__(self, path: str, reason: str):
        super().__init__(f'cannot read image {path}: {reason}')
        self.path, self.reason = str(path), reason


@dataclass
class CorruptSample:
    """Placeholder returned for an unreadable image when corrupt images are skipped."""
    path: str
    reason: str


def read_image(path: Union[str, Path]) -> np.ndarray:
    """Read an image file as RGB uint8 HWC (grey / alpha / 16-bit are converted); CorruptImageError if it fails."""
    try:
        data = np.fromfile(str(path), dtype=np.uint8)
    except OSError as e:
        raise CorruptImageError(str(path), e.strerror or str(e)) from None
    if data.size == 0:
        raise CorruptImageError(str(path), 'empty file')
    img = cv2.imdecode(data, cv2.IMREAD_COLOR)
    if img is None or img.size == 0:
        raise CorruptImageError(str(path), 'not a decodable image')
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)


def _is_image(name: str) -> bool:
    return name.lower().endswith(IMG_EXTENSIONS)


class _ImageDataset(Dataset):
    """Shared behaviour: samples = [(path, label)], albumentations transform, corrupt-image policy."""

    def __init__(self, samples: List[Tuple[str, int]], classes: Sequence[str], transform: Optional[Callable] = None,
                 corrupt: str = 'skip'):
        if corrupt not in ('skip', 'error'):
            raise ValueError(f"corrupt must be 'skip' or 'error', got {corrupt!r}")
        self.samples = samples
        self.classes = list(classes)
        self.class_to_idx = {c: i for i, c in enumerate(self.classes)}
        self.transform = transform
        self.corrupt = corrupt

    @property
    def targets(self) -> List[int]:
        return [s[1] for s in self.samples]

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int):
        path, label = self.samples[index]
        try:
            img = read_image(path)
        except CorruptImageError as e:
            if self.corrupt == 'error':
                raise
            return CorruptSample(path, e.reason)
        if self.transform is not None:
            img = self.transform(image=img)['image']
        return img, label

    def set_transform_seed(self, seed: int) -> None:
        """Re-seed the albumentations pipeline (each DataLoader worker and each epoch gets its own seed)."""
        if self.transform is not None and hasattr(self.transform, 'set_random_seed'):
            self.transform.set_random_seed(int(seed) % (2 ** 32))

    def scan_images(self, drop: bool = True) -> List[Tuple[str, str]]:
        """Decode every image now; return [(path, reason)] of the unreadable ones (and drop them when asked)."""
        bad = []
        for path, _ in self.samples:
            try:
                read_image(path)
            except CorruptImageError as e:
                bad.append((path, e.reason))
        if bad and self.corrupt == 'error':
            more = ', '.join(p for p, _ in bad[:5]) + (' ...' if len(bad) > 5 else '')
            raise CorruptImageError(bad[0][0], f'{bad[0][1]} ({len(bad)} unreadable images in total: {more})')
        if bad and drop:
            bad_set = {p for p, _ in bad}
            self.samples = [s for s in self.samples if s[0] not in bad_set]
        return bad


class ImageFolderDataset(_ImageDataset):
    """``root/<class>/**/<image>`` (torchvision ImageFolder layout).

    ``classes``: the class list (e.g. the training set's, when building the validation set). Defaults to the
    sorted class folder names. A class folder without images, a folder not in ``classes``, or a root without
    class folders raise ``DatasetError`` before any image is read.
    """

    def __init__(self, root: Union[str, Path], classes: Optional[Sequence[str]] = None,
                 transform: Optional[Callable] = None, corrupt: str = 'skip'):
        root = Path(root).expanduser()
        if not root.is_dir():
            raise DatasetError(f'image folder {root} does not exist')
        dirs = sorted(d.name for d in os.scandir(root) if d.is_dir() and not d.name.startswith('.'))
        if not dirs:
            raise DatasetError(f'{root} has no class folders (expected {root}/<class>/<image files>)')
        if classes is None:
            classes = dirs
        else:
            unknown = [d for d in dirs if d not in set(classes)]
            if unknown:
                raise DatasetError(f'class folder(s) {unknown} in {root} are not in the class list {list(classes)}')
        cidx = {c: i for i, c in enumerate(classes)}
        samples, empty = [], []
        for d in dirs:
            files = []
            for base, subdirs, names in os.walk(root / d, followlinks=True):
                subdirs.sort()
                files.extend(os.path.join(base, n) for n in sorted(names) if _is_image(n))
            if not files:
                empty.append(str(root / d))
            samples.extend((f, cidx[d]) for f in files)
        if empty:
            raise DatasetError(f'empty class folder(s) (no {"/".join(IMG_EXTENSIONS)} files): {empty}')
        super().__init__(samples, classes, transform, corrupt)
        self.root = root


def _read_list(path: Path) -> Tuple[List[Tuple[str, object, int]], Optional[List[str]]]:
    """Rows (path, label, line/index) and an optional class list from a CSV or JSON file."""
    if path.suffix.lower() == '.json':
        obj = json.loads(path.read_text())
        classes = None
        if isinstance(obj, dict):
            classes = obj.get('classes')
            obj = obj.get('samples', obj.get('images'))
            if obj is None:
                raise DatasetError(f'{path}: a JSON object needs a "samples" list (and optionally "classes")')
        rows = []
        for i, item in enumerate(obj):
            if isinstance(item, dict):
                p, lab = item.get('path', item.get('file')), item.get('label')
            elif isinstance(item, (list, tuple)) and len(item) >= 2:
                p, lab = item[0], item[1]
            else:
                raise DatasetError(f'{path}: entry {i} is not [path, label] or {{"path": ..., "label": ...}}: {item!r}')
            rows.append((p, lab, i))
        return rows, classes
    rows = []
    with open(path, newline='') as f:
        reader = csv.reader(f)
        for lineno, row in enumerate(reader, 1):
            if not row or row[0].startswith('#'):
                continue
            if lineno == 1 and [c.strip().lower() for c in row[:2]] in (['path', 'label'], ['filename', 'label'],
                                                                         ['image', 'label'], ['file', 'label']):
                continue
            rows.append((row[0].strip(), row[1].strip() if len(row) > 1 else None, lineno))
    return rows, None


class ImageListDataset(_ImageDataset):
    """Samples from a CSV (``path,label`` per line, optional header) or JSON list file.

    JSON: ``[["a.jpg", "cat"], ...]``, ``[{"path": "a.jpg", "label": 0}, ...]`` or
    ``{"classes": [...], "samples": [...]}``. Labels are class names or integer indices into ``classes``.
    Relative paths are resolved against ``root`` (default: the list file's folder). ``classes`` defaults to the
    JSON's ``classes``, else the sorted label names (or ``0..max`` for integer labels). Unknown labels or
    missing labels raise ``DatasetError`` naming the rows.
    """

    def __init__(self, list_file: Union[str, Path], root: Optional[Union[str, Path]] = None,
                 classes: Optional[Sequence[str]] = None, transform: Optional[Callable] = None, corrupt: str = 'skip'):
        list_file = Path(list_file).expanduser()
        if not list_file.is_file():
            raise DatasetError(f'list file {list_file} does not exist')
        rows, file_classes = _read_list(list_file)
        if not rows:
            raise DatasetError(f'{list_file} lists no images')
        root = Path(root).expanduser() if root else list_file.parent
        missing = [ln for p, lab, ln in rows if p in (None, '') or lab in (None, '')]
        if missing:
            raise DatasetError(f'{list_file}: rows without a path or label: {missing[:10]}')

        def as_int(v):
            if isinstance(v, (int, np.integer)) and not isinstance(v, bool):
                return int(v)
            if isinstance(v, str) and v.lstrip('-').isdigit():
                return int(v)
            return None

        classes = list(classes) if classes is not None else (list(file_classes) if file_classes else None)
        ints = [as_int(lab) for _, lab, _ in rows]
        if classes is None:
            if all(i is not None for i in ints):
                classes = [str(i) for i in range(max(ints) + 1)]
            else:
                classes = sorted({str(lab) for _, lab, _ in rows})
        cidx = {c: i for i, c in enumerate(classes)}
        samples, bad = [], []
        for (p, lab, ln), li in zip(rows, ints):
            if isinstance(lab, str) and lab in cidx:  # a class name (checked first: names may look like numbers)
                idx = cidx[lab]
            elif li is not None and 0 <= li < len(classes):  # an index into the class list
                idx = li
            else:
                bad.append((ln, lab))
                continue
            samples.append((str(p if os.path.isabs(str(p)) else root / p), idx))
        if bad:
            rows = ', '.join(f'{ln} ({lab!r})' for ln, lab in bad[:10]) + (' ...' if len(bad) > 10 else '')
            raise DatasetError(f'{list_file}: label(s) outside the class list {classes} at rows/entries {rows}')
        super().__init__(samples, classes, transform, corrupt)
        self.root = root


def collate_skip_corrupt(batch):
    """Collate (image, label) pairs, dropping ``CorruptSample`` entries: returns ``(images, labels, bad)``.

    ``bad`` is a list of ``(path, reason)``; ``images``/``labels`` are ``None`` if every sample was corrupt.
    """
    good = [b for b in batch if not isinstance(b, CorruptSample)]
    bad = [(b.path, b.reason) for b in batch if isinstance(b, CorruptSample)]
    if not good:
        return None, None, bad
    x, y = default_collate(good)
    return x, y, bad


def build_dataset(kind: str, *, root: Union[str, Path, None] = None, split: Optional[str] = None,
                  list_file: Union[str, Path, None] = None, classes: Optional[Sequence[str]] = None,
                  transform: Optional[Callable] = None, corrupt: str = 'skip'):
    """One factory for the tools. ``kind``: ``'folder'`` (``root/split/<class>/...``, or ``root/<class>`` when
    ``split`` is empty) or ``'list'`` (``list_file`` with paths relative to ``root``)."""
    if kind in ('folder', 'imagefolder', 'shapes'):
        if root is None:
            raise DatasetError('an image-folder dataset needs a data directory')
        folder = Path(root) / split if split else Path(root)
        return ImageFolderDataset(folder, classes=classes, transform=transform, corrupt=corrupt)
    if kind in ('list', 'csv', 'json'):
        if not list_file:
            raise DatasetError('a list dataset needs a CSV/JSON list file')
        return ImageListDataset(list_file, root=root, classes=classes, transform=transform, corrupt=corrupt)
    raise DatasetError(f"unknown dataset kind {kind!r}: use 'shapes', 'folder' or 'list'")


def is_shapes_folder(root: Union[str, Path]) -> bool:
    """True when ``root`` holds a dataset written by ``zoo.data.shapes`` (its ``meta.json`` says so)."""
    try:
        meta = json.loads((Path(root).expanduser() / 'meta.json').read_text())
    except (OSError, ValueError):
        return False
    return isinstance(meta, dict) and meta.get('generator') == 'zoo.data.shapes'


def _has_class_folders(root: Path) -> bool:
    """Some sub-folder of ``root`` holds an image (directly or nested): an ImageFolder ``root/<class>/...``."""
    for d in sorted(os.scandir(root), key=lambda e: e.name):
        if d.is_dir() and not d.name.startswith('.'):
            for _, _, names in os.walk(d.path, followlinks=True):
                if any(_is_image(n) for n in names):
                    return True
    return False


def image_folder_splits(root: Union[str, Path], train_split: str = 'train', val_split: str = 'val'
                        ) -> Optional[Tuple[str, str]]:
    """The ``(train_split, val_split)`` under which ``root`` is an ImageFolder-layout dataset, or None.

    ``root/<train_split>/<class>/...`` (validation ``root/<val_split>``, else ``root/validation``, else none: ``''``)
    or class folders directly (``('', '')``: train on all of it, no validation). Raises ``DatasetError`` when
    ``root`` is missing or a file.
    """
    root = Path(root).expanduser()
    if not root.exists():
        raise DatasetError(f'data folder {root} does not exist')
    if not root.is_dir():
        raise DatasetError(f'data_dir {root} is a file, not a folder (expected {root}/<class>/<images> or '
                           f'{root}/{train_split or "train"}/<class>/<images>; a CSV/JSON list: dataset list)')
    train_split = train_split or 'train'
    if (root / train_split).is_dir() and _has_class_folders(root / train_split):
        for v in (val_split, 'validation'):
            if v and (root / v).is_dir():
                return train_split, v
        return train_split, ''
    if _has_class_folders(root):
        return '', ''
    return None
