import os

os.environ.setdefault('HF_HUB_OFFLINE', '1')
os.environ.setdefault('HF_HUB_DISABLE_TELEMETRY', '1')

import torch  # noqa: E402

torch.set_num_threads(1)  # pytest-xdist runs one worker per core


# --- fixtures shared by the detection / segmentation tests (tests/test_mm_det.py, tests/test_mm_seg.py) ---
import pytest  # noqa: E402

from helpers import MM_SIZE  # noqa: E402


@pytest.fixture(scope='module')
def shapes_det_root(tmp_path_factory):
    """A tiny generated COCO-format detection set (8 train / 4 val scenes of MM_SIZE px)."""
    from zoo.data.shapes import make_detection
    return str(make_detection(tmp_path_factory.mktemp('shapes') / 'det', n_train=8, n_val=4, size=MM_SIZE, seed=0,
                              max_objects=3).root)


@pytest.fixture(scope='module')
def shapes_seg_root(tmp_path_factory):
    """A tiny generated segmentation set (8 train / 4 val label maps of MM_SIZE px)."""
    from zoo.data.shapes import make_segmentation
    return str(make_segmentation(tmp_path_factory.mktemp('shapes') / 'seg', n_train=8, n_val=4, size=MM_SIZE, seed=0,
                                 max_objects=3).root)


def _mm_scope(scope: str):
    import importlib

    import zoo.mm  # noqa: F401  registers ZooBackbone / ZooAlbu
    from mmengine.registry import DefaultScope
    importlib.import_module(f'{scope}.utils').register_all_modules(init_default_scope=False)
    return DefaultScope.overwrite_default_scope(scope)


@pytest.fixture
def mmdet_scope():
    """mmdet as the default registry scope for one test (the Runner and mmseg tests change the global one)."""
    with _mm_scope('mmdet'):
        yield


@pytest.fixture
def mmseg_scope():
    """mmseg as the default registry scope for one test."""
    with _mm_scope('mmseg'):
        yield
