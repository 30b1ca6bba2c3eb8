"""OpenMMLab integration: zoo / timm backbones in mmdetection 3.x and mmsegmentation 1.x.

``import zoo`` never imports this package. Importing ``zoo.mm`` (configs do it through ``custom_imports``) needs
only ``mmengine``; it registers ``ZooBackbone`` in mmengine's ``MODELS`` and, where they import, in mmdet's and
mmseg's, and ``ZooAlbu`` in mmdet's ``TRANSFORMS`` when mmdet's datasets import (mmcv with compiled ops).
Anything that needs mmdet / mmseg / mmcv's compiled ops calls :func:`require`, which names the missing package and
how to install it. mmengine's checkpoint loads allow its data types for that call only (:mod:`zoo.mm.weights`).
"""
import importlib
import importlib.util
import warnings

# mmengine / mmdet / mmseg import pkg_resources (deprecated in setuptools): keep their logs readable
warnings.filterwarnings('ignore', message='pkg_resources is deprecated', category=UserWarning)

__all__ = ['ZooBackbone', 'feature_levels', 'require', 'registered', 'mmengine_checkpoint_globals',
           'mmengine_checkpoint_allowlist', 'REGISTRATION_ERRORS']

_INSTALL = {
    'mmengine': 'pip install "mmengine==0.10.7"',
    'mmcv': 'mmcv 2.1.0 with compiled ops: run `make setup` (tools/setup.sh builds and caches the wheel)',
    'mmcv._ext': 'mmcv 2.1.0 *with compiled ops* (mmcv-lite is not enough): run `make setup` (tools/setup.sh)',
    'mmdet': 'pip install "mmdet==3.3.0" pycocotools shapely terminaltables six',
    'mmseg': 'pip install "mmsegmentation==1.2.2" ftfy regex prettytable',
    'pycocotools': 'pip install pycocotools',
}


def require(*packages: str) -> None:
    """Raise ImportError naming each missing package (and how to install it) among ``packages``."""
    missing = []
    for name in packages:
        try:
            found = importlib.util.find_spec(name) is not None
        except (ImportError, ValueError):
            found = False
        if not found:
            missing.append(name)
    if missing:
        lines = [f'  - {m}: {_INSTALL.get(m, "pip install " + m)}' for m in missing]
        raise ImportError('zoo.mm: missing package(s) ' + ', '.join(missing) + ':\n' + '\n'.join(lines))


require('mmengine')

from ..checkpoint import mmengine_checkpoint_globals  # noqa: E402
from .backbone import ZooBackbone, feature_levels  # noqa: E402
from .weights import mmengine_checkpoint_allowlist, scope_mmengine_checkpoint_loads  # noqa: E402

REGISTRATION_ERRORS = {}
_REGISTERED = {}


def _register():
    from mmengine.registry import MODELS
    MODELS.register_module(name='ZooBackbone', module=ZooBackbone, force=True)
    _REGISTERED['mmengine.MODELS'] = True
    for scope in ('mmdet', 'mmseg'):
        if importlib.util.find_spec(scope) is None:
            REGISTRATION_ERRORS[scope] = f'{scope} is not installed'
            continue
        try:
            registry = importlib.import_module(f'{scope}.registry')
        except Exception as e:  # e.g. mmcv missing: mmdet/__init__ imports mmcv
            REGISTRATION_ERRORS[scope] = f'{type(e).__name__}: {e}'
            continue
        registry.MODELS.register_module(name='ZooBackbone', module=ZooBackbone, force=True)
        _REGISTERED[f'{scope}.MODELS'] = True
    if _REGISTERED.get('mmdet.MODELS'):
        try:
            from .transforms import register_transforms
            register_transforms()
            _REGISTERED['mmdet.TRANSFORMS'] = True
        except Exception as e:  # needs mmdet.datasets -> mmcv compiled ops
            REGISTRATION_ERRORS['mmdet.TRANSFORMS'] = f'{type(e).__name__}: {e}'


def registered() -> dict:
    """Which registries hold the zoo classes (and why the others do not)."""
    return dict(registered=sorted(_REGISTERED), errors=dict(REGISTRATION_ERRORS))


_register()
scope_mmengine_checkpoint_loads()
