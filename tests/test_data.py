"""zoo.data: the generated shapes datasets, image datasets (corrupt / class checks) and albumentations pipelines."""
import json

import cv2
import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from zoo.data.datasets import (CorruptImageError, DatasetError, ImageFolderDataset, ImageListDataset,
                               collate_skip_corrupt, read_image)
from zoo.data.shapes import (CLASSES, SEG_CLASSES, make_classification, make_detection, make_segmentation,
                             render_shape_image)
from zoo.data.transforms import create_eval_transform, create_train_transform, parse_rand_augment, resolve_data_cfg


# ---------------------------------------------------------------- shapes: classification

def _pngs(root):
    return sorted(p.relative_to(root) for p in root.rglob('*.png'))


def test_classification_layout_deterministic_and_seeded(tmp_path):
    a = make_classification(tmp_path / 'a', n_train=12, n_val=6, size=32, seed=3)
    b = make_classification(tmp_path / 'b', n_train=12, n_val=6, size=32, seed=3)
    c = make_classification(tmp_path / 'c', n_train=12, n_val=6, size=32, seed=4)
    files = _pngs(a.root)
    assert len(files) == 18 and files == _pngs(b.root)
    assert all((a.root / f).read_bytes() == (b.root / f).read_bytes() for f in files)
    assert sum((a.root / f).read_bytes() != (c.root / f).read_bytes() for f in files) == len(files)
    assert a.classes == CLASSES and a.train_dir == a.root / 'train'
    counts = {cls: len(list((a.train_dir / cls).glob('*.png'))) for cls in CLASSES}
    assert counts == {cls: 2 for cls in CLASSES}
    img = read_image(a.root / files[0])
    assert img.shape == (32, 32, 3) and img.dtype == np.uint8
    # the same images do not depend on how many are generated (per-image seeding)
    d = make_classification(tmp_path / 'd', n_train=6, n_val=6, size=32, seed=3)
    f0 = 'train/circle/train_000000.png'
    assert (d.root / f0).read_bytes() == (a.root / f0).read_bytes()


def test_classification_is_cached_and_regenerated_on_new_parameters(tmp_path):
    a = make_classification(tmp_path / 'x', n_train=6, n_val=6, size=24, seed=0)
    stamp = (a.root / 'meta.json').stat().st_mtime_ns
    first = (a.root / 'train/circle/train_000000.png').read_bytes()
    again = make_classification(tmp_path / 'x', n_train=6, n_val=6, size=24, seed=0)
    assert (again.root / 'meta.json').stat().st_mtime_ns == stamp
    other = make_classification(tmp_path / 'x', n_train=6, n_val=6, size=24, seed=1)
    assert json.loads((other.root / 'meta.json').read_text())['seed'] == 1
    assert (other.root / 'train/circle/train_000000.png').read_bytes() != first
    assert not [p for p in tmp_path.iterdir() if p.name.startswith('.')]  # no temporary folders left


def test_classification_default_root_and_foreign_folder(tmp_path, monkeypatch):
    monkeypatch.setenv('ZOO_DATA_DIR', str(tmp_path / 'cache'))
    d = make_classification(n_train=6, n_val=6, size=20, seed=0)
    assert d.root.parent == tmp_path / 'cache'
    foreign = tmp_path / 'mine'
    foreign.mkdir()
    (foreign / 'notes.txt').write_text('keep me')
    with pytest.raises(FileExistsError, match='not written by zoo.data.shapes'):
        make_classification(foreign, n_train=6, n_val=6, size=20)
    assert (foreign / 'notes.txt').read_text() == 'keep me'


def test_any_resolution(tmp_path):
    d = make_classification(tmp_path, n_train=6, n_val=0, size=(40, 56), seed=0)
    img = read_image(d.train_dir / 'square' / 'train_000002.png')
    assert img.shape == (40, 56, 3)
    big = render_shape_image(np.random.default_rng(0), 200, 4)
    assert big.shape == (200, 200, 3)
    with pytest.raises(ValueError, match='at least 16'):
        render_shape_image(np.random.default_rng(0), 8, 0)


# ---------------------------------------------------------------- shapes: detection / segmentation

def test_detection_coco_boxes_and_masks(tmp_path):
    from pycocotools.coco import COCO
    d = make_detection(tmp_path / 'scenes', n_train=8, n_val=3, size=(80, 96), seed=0)
    assert d.train_ann_file.is_file() and d.val_img_dir.is_dir()
    coco = COCO(str(d.train_ann_file))
    cats = coco.loadCats(coco.getCatIds())
    assert [c['name'] for c in cats] == list(CLASSES) and [c['id'] for c in cats] == list(range(1, 7))
    assert len(coco.getImgIds()) == 8
    anns = coco.loadAnns(coco.getAnnIds())
    assert len(anns) >= 8
    for ann in anns:
        info = coco.loadImgs(ann['image_id'])[0]
        assert (info['height'], info['width']) == (80, 96)
        x, y, w, h = ann['bbox']
        assert 0 <= x and 0 <= y and x + w <= 96 and y + h <= 80 and w > 2 and h > 2
        assert ann['iscrowd'] == 0
        mask = coco.annToMask(ann)
        ys, xs = np.nonzero(mask)
        assert abs(mask.sum() - ann['area']) <= 0.15 * ann['area'] + 10
        assert abs(xs.min() - x) <= 1.5 and abs(ys.min() - y) <= 1.5
        assert abs(xs.max() + 1 - (x + w)) <= 1.5 and abs(ys.max() + 1 - (y + h)) <= 1.5
    img = read_image(d.train_img_dir / info['file_name'])
    assert img.shape == (80, 96, 3)


def test_segmentation_label_maps_match_detection(tmp_path):
    from pycocotools.coco import COCO
    det = make_detection(tmp_path / 'scenes', n_train=6, n_val=2, size=64, seed=1)
    seg = make_segmentation(tmp_path / 'scenes', n_train=6, n_val=2, size=64, seed=1)
    assert seg.root == det.root and seg.train_img_dir == det.train_img_dir
    assert seg.classes == SEG_CLASSES and seg.classes[0] == 'background' and len(seg.palette) == len(seg.classes)
    coco = COCO(str(det.train_ann_file))
    for img_id in coco.getImgIds():
        name = coco.loadImgs(img_id)[0]['file_name']
        lab = cv2.imread(str(seg.train_ann_dir / name), cv2.IMREAD_UNCHANGED)
        assert lab.shape == (64, 64) and lab.dtype == np.uint8 and lab.max() <= len(CLASSES)
        anns = coco.loadAnns(coco.getAnnIds(imgIds=img_id))
        assert set(np.unique(lab)) - {0} == {a['category_id'] for a in anns}
        for a in anns:  # each instance mask is labelled with its class in the label map
            m = coco.annToMask(a).astype(bool)
            assert (lab[m] == a['category_id']).mean() > 0.9


# ---------------------------------------------------------------- image datasets

def _write(path, value=128, size=(12, 12)):
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), np.full((*size, 3), value, np.uint8))


def _tree(root, classes=('cat', 'dog'), n=3):
    for c in classes:
        for i in range(n):
            _write(root / c / f'{i}.png', 40 * i)
    return root


def _eval_tf(size=16):
    return create_eval_transform(dict(input_size=(3, size, size), interpolation='bilinear', mean=(0.5,) * 3,
                                      std=(0.25,) * 3, crop_pct=1.0, crop_mode='center'))


def test_image_folder_corrupt_images_reported_and_skipped(tmp_path):
    root = _tree(tmp_path / 'train')
    (root / 'dog' / 'broken.png').write_bytes(b'\x89PNG\r\n\x1a\n not really a png')
    (root / 'cat' / 'empty.jpg').write_bytes(b'')
    (root / 'cat' / 'readme.txt').write_text('ignored: not an image extension')
    _write(root / 'cat' / 'nested' / 'deep.png')
    ds = ImageFolderDataset(root, transform=_eval_tf())
    assert ds.classes == ['cat', 'dog'] and len(ds) == 9
    bad = []
    n_good = 0
    for x, y, b in DataLoader(ds, batch_size=4, collate_fn=collate_skip_corrupt):
        bad += b
        if x is not None:
            n_good += len(x)
            assert x.shape[1:] == (3, 16, 16) and x.dtype == torch.float32
    assert n_good == 7
    assert sorted(p.rsplit('/', 1)[-1] for p, _ in bad) == ['broken.png', 'empty.jpg']
    strict = ImageFolderDataset(root, transform=_eval_tf(), corrupt='error')
    with pytest.raises(CorruptImageError, match='broken.png|empty.jpg'):
        for i in range(len(strict)):
            strict[i]
    dropped = ds.scan_images()
    assert len(dropped) == 2 and len(ds) == 7


def test_image_folder_class_errors(tmp_path):
    root = _tree(tmp_path / 'train', ('a', 'b', 'c'))
    for f in (root / 'b').iterdir():
        f.unlink()
    with pytest.raises(DatasetError, match=r'empty class folder.*[/\\]b'):
        ImageFolderDataset(root)
    val = _tree(tmp_path / 'val', ('a', 'z'))
    with pytest.raises(DatasetError, match=r"\['z'\].*not in the class list"):
        ImageFolderDataset(val, classes=['a', 'b'])
    with pytest.raises(DatasetError, match='does not exist'):
        ImageFolderDataset(tmp_path / 'nope')
    (tmp_path / 'flat').mkdir()
    _write(tmp_path / 'flat' / 'x.png')
    with pytest.raises(DatasetError, match='no class folders'):
        ImageFolderDataset(tmp_path / 'flat')


def test_list_datasets_csv_and_json(tmp_path):
    root = _tree(tmp_path / 'imgs')
    (tmp_path / 'train.csv').write_text('path,label\nimgs/cat/0.png,cat\nimgs/dog/1.png,dog\nimgs/dog/2.png,dog\n')
    ds = ImageListDataset(tmp_path / 'train.csv', transform=_eval_tf())
    assert ds.classes == ['cat', 'dog'] and ds.targets == [0, 1, 1]
    assert ds[1][0].shape == (3, 16, 16) and ds[1][1] == 1
    (tmp_path / 'ints.csv').write_text(f'{root}/cat/0.png,0\n{root}/dog/0.png,1\n')
    assert ImageListDataset(tmp_path / 'ints.csv', classes=['cat', 'dog']).targets == [0, 1]
    (tmp_path / 'l.json').write_text(json.dumps({'classes': ['dog', 'cat'], 'samples': [
        {'path': 'imgs/cat/0.png', 'label': 'cat'}, ['imgs/dog/0.png', 0]]}))
    js = ImageListDataset(tmp_path / 'l.json')
    assert js.classes == ['dog', 'cat'] and js.targets == [1, 0]
    (tmp_path / 'bad.csv').write_text('imgs/cat/0.png,cat\nimgs/dog/0.png,horse\nimgs/dog/1.png,7\n')
    with pytest.raises(DatasetError, match=r"outside the class list.*2 \('horse'\), 3 \('7'\)"):
        ImageListDataset(tmp_path / 'bad.csv', classes=['cat', 'dog'])
    (tmp_path / 'nolabel.csv').write_text('imgs/cat/0.png\n')
    with pytest.raises(DatasetError, match='without a path or label'):
        ImageListDataset(tmp_path / 'nolabel.csv')
    (tmp_path / 'missing.csv').write_text('imgs/cat/none.png,cat\nimgs/cat/0.png,cat\n')
    ms = ImageListDataset(tmp_path / 'missing.csv', transform=_eval_tf())
    assert type(ms[0]).__name__ == 'CorruptSample' and 'none.png' in ms[0].path


# ---------------------------------------------------------------- transforms

def test_data_cfg_from_model_and_overrides():
    import timm
    from timm.data import resolve_model_data_config
    m = timm.create_model('resnet10t', pretrained=False)
    cfg = resolve_data_cfg(m)
    ref = resolve_model_data_config(m)
    assert cfg['input_size'] == tuple(ref['input_size']) and cfg['crop_pct'] == ref['crop_pct']
    assert cfg['mean'] == tuple(ref['mean']) and cfg['interpolation'] == ref['interpolation']
    o = resolve_data_cfg(m, img_size=(40, 48), crop_pct=0.5, interpolation='bilinear', mean=(0, 0, 0),
                         std=(1, 1, 1))
    assert o['input_size'] == (3, 40, 48) and o['crop_pct'] == 0.5 and o['mean'] == (0.0, 0.0, 0.0)
    with pytest.raises(ValueError, match='interpolation'):
        resolve_data_cfg(m, interpolation='cubicish')


def test_eval_transform_resize_then_centre_crop():
    cfg = dict(input_size=(3, 32, 32), interpolation='bilinear', mean=(0.0,) * 3, std=(1 / 255,) * 3,
               crop_pct=0.5, crop_mode='center')
    tf = create_eval_transform(cfg)
    assert tf.strict
    # a 100 x 200 image with a distinct 2 px border: shortest side -> 64, so the 32 px centre crop sees none of it
    img = np.full((100, 200, 3), 200, np.uint8)
    img[:2] = img[-2:] = img[:, :2] = img[:, -2:] = 0
    out = tf(image=img)['image']
    assert out.shape == (3, 32, 32)
    assert torch.allclose(out, torch.full_like(out, 200.0), atol=0.5)
    assert create_eval_transform(dict(cfg, crop_mode='squash'))(image=img)['image'].shape == (3, 32, 32)
    border = create_eval_transform(dict(cfg, crop_mode='border', crop_pct=1.0, input_size=(3, 40, 40)))
    assert border(image=img)['image'].shape == (3, 40, 40)
    non_square = create_eval_transform(dict(cfg, input_size=(3, 24, 40)))
    assert non_square(image=img)['image'].shape == (3, 24, 40)


def test_train_transform_seeded_and_rand_augment():
    cfg = dict(input_size=(3, 24, 24), interpolation='bicubic', mean=(0.5,) * 3, std=(0.5,) * 3, crop_pct=0.9)
    img = np.random.default_rng(0).integers(0, 255, (40, 50, 3), dtype=np.uint8)
    a = create_train_transform(cfg, seed=7)
    b = create_train_transform(cfg, seed=7)
    assert a.strict
    xa, xb = a(image=img)['image'], b(image=img)['image']
    assert xa.shape == (3, 24, 24) and torch.equal(xa, xb)
    a.set_random_seed(8)
    assert not torch.equal(a(image=img)['image'], xb)
    ra = create_train_transform(cfg, auto_augment='rand-m9-n3-mstd0.5', re_prob=0.5, vflip=0.5, seed=0)
    for _ in range(5):
        assert ra(image=img)['image'].shape == (3, 24, 24)
    assert parse_rand_augment('rand-m7-n1') == dict(m=7.0, n=1)
    with pytest.raises(ValueError):
        parse_rand_augment('autoaug-v0')
    with pytest.raises(ValueError):
        parse_rand_augment('rand-q3')
