"""mmengine configs by file or by name (``zoo::det/<file>.py``, :mod:`zoo.configs`), and the error of a config that
cannot run. After :func:`enable_zoo_bases` (called by :func:`load_config`) a config may inherit a zoo config by name,
``_base_ = 'zoo::det/retinanet_zoo-resnet50-cbam_fpn_1x_coco.py'``.
"""
import os.path as osp
from typing import Optional

from ..configs import CONFIG_SCOPE, config_path
from ..errors import ConfigError

__all__ = ['ConfigError', 'load_config', 'enable_zoo_bases']


def _import_stack(cfg) -> None:
    """Import zoo.mm (registers ZooBackbone) and the packages the config's scope needs, with clear errors."""
    from . import require
    scope = cfg.get('default_scope', None)
    if scope == 'mmdet':
        require('mmcv', 'mmcv._ext', 'mmdet', 'pycocotools')
    elif scope == 'mmseg':
        require('mmcv', 'mmcv._ext', 'mmseg')


_ENABLED = []


def enable_zoo_bases() -> None:
    """Let mmengine resolve ``_base_ = 'zoo::<path>'`` to the packaged config (idempotent); mmengine itself accepts
    ``<package>::`` only for its fixed list of OpenMMLab packages."""
    if _ENABLED:
        return
    from mmengine.config import Config
    original = Config._get_cfg_path

    def get_cfg_path(cfg_path, filename):
        if isinstance(cfg_path, str) and cfg_path.startswith(CONFIG_SCOPE):
            return config_path(cfg_path), None  # a local-like base: it does not change the default scope
        return original(cfg_path, filename)

    Config._get_cfg_path = staticmethod(get_cfg_path)
    _ENABLED.append(original)


def load_config(config: str, cfg_options: Optional[dict] = None):
    """The mmengine Config of a file or a packaged config name (``zoo::det/<file>.py``)."""
    from . import require
    require('mmengine')
    try:
        config = config_path(config)
    except FileNotFoundError as e:
        raise ConfigError(str(e)) from None
    if not osp.isfile(config):
        raise ConfigError(f'config file {config} does not exist')
    with open(config, encoding='utf-8') as f:
        text = f.read()
    for scope in ('mmdet', 'mmseg'):  # `_base_ = 'mmdet::...'` reads the configs shipped inside the package
        if f'{scope}::' in text:
            require(scope)
    from mmengine.config import Config
    enable_zoo_bases()
    cfg = Config.fromfile(config)
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    _import_stack(cfg)
    return cfg
