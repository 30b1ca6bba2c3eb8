"""OpenMMLab integration: zoo / timm backbones in mmdetection 3.x and mmsegmentation 1.x.

``import zoo`` never imports this package. Importing ``zoo.mm`` (configs do it through
``custom_imports=dict(imports=['zoo.mm'], allow_failed_imports=False)``) needs only ``mmengine`` and registers

* ``ZooBackbone`` in mmengine's ``MODELS`` and, where they import, in mmdet's and mmseg's ``MODELS``;
* ``ZooAlbu`` (albumentations inside mmdet pipelines, robust to crops that drop every box) in mmdet's
  ``TRANSFORMS``, when mmdet's datasets import (they need mmcv with compiled ops).

Anything that needs mmdet / mmseg / mmcv's compiled ops calls :func:`require`, which fails with a message naming the
missing package and how to install it.

Loading stays safe: mmengine 0.10.7 calls ``torch.load`` without ``weights_only`` (the default, True, since torch 2.6;
open-mmlab/mmengine#1655), and its checkpoints carry a few plain data types (mmengine's ``HistoryBuffer``, numpy
arrays, scalars and dtypes of the message hub; numpy 2 pickles dtype classes through ``builtins.getattr``). Those are
allowed only *during* mmengine's checkpoint loads: ``import zoo.mm`` wraps ``CheckpointLoader.load_checkpoint`` (the
one function behind ``load_checkpoint``, Runner ``load_from`` / ``--resume``, ``init_cfg=dict(type='Pretrained')`` and
``tools/eval.py``) so that it runs inside a ``torch.serialization.safe_globals`` context with
:func:`mmengine_checkpoint_globals`. Nothing is added to torch's allowlist for the process: any other
``torch.load(weights_only=True)``, and :func:`zoo.checkpoint.load`, still refuse a pickle that calls
``builtins.getattr``.
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

from .backbone import ZooBackbone, feature_levels  # noqa: E402

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


def mmengine_checkpoint_globals() -> list:
    """Types found in mmengine checkpoints (message hub) that torch's weights-only unpickler must accept."""
    import builtins

    import numpy as np
    from mmengine.logging.history_buffer import HistoryBuffer
    core = getattr(np, '_core', None) or np.core
    types = [HistoryBuffer, np.ndarray, np.dtype, core.multiarray._reconstruct, core.multiarray.scalar,
             builtins.getattr]  # numpy 2 pickles dtype classes as getattr(numpy.dtypes, name)
    dtypes = getattr(np, 'dtypes', None)
    if dtypes is not None:
        types += [getattr(dtypes, n) for n in dir(dtypes) if n.endswith('DType')]
    return types


def mmengine_checkpoint_allowlist():
    """Context manager: :func:`mmengine_checkpoint_globals` allowed for ``torch.load(weights_only=True)`` inside the
    ``with`` block only (entries that were allowed before stay allowed afterwards)."""
    from ..checkpoint import allow_globals
    return allow_globals(mmengine_checkpoint_globals())


def _scope_mmengine_checkpoint_loads():
    """Wrap mmengine's ``CheckpointLoader.load_checkpoint`` so that its ``torch.load`` runs inside
    :func:`mmengine_checkpoint_allowlist` (idempotent)."""
    import functools

    from mmengine.runner.checkpoint import CheckpointLoader
    current = CheckpointLoader.__dict__['load_checkpoint']
    func = current.__func__ if isinstance(current, classmethod) else current
    if getattr(func, '_zoo_scoped_allowlist', False):
        return

    @functools.wraps(func)
    def load_checkpoint(cls, *args, **kwargs):
        with mmengine_checkpoint_allowlist():
            return func(cls, *args, **kwargs)

    load_checkpoint._zoo_scoped_allowlist = True
    load_checkpoint.__wrapped__ = func
    CheckpointLoader.load_checkpoint = classmethod(load_checkpoint)


def registered() -> dict:
    """Which registries hold the zoo classes (and why the others do not)."""
    return dict(registered=sorted(_REGISTERED), errors=dict(REGISTRATION_ERRORS))


_register()
_scope_mmengine_checkpoint_loads()
