"""Find the det/seg configs shipped with zoo by name, the way OpenMMLab packages do (``mmdet::<path>``).

The configs of the repository's ``configs/`` folder are package data of the wheel (``zoo/_configs``). Name them
``zoo::<path relative to configs/>``::

    zoo-train zoo::det/retinanet_zoo-resnet18-cbam_fpn_shapes.py --work-dir work_dirs/retina
    python tools/train.py zoo::seg/zoo-resnet18-cbam_fpn_shapes.py

    from zoo.mm.configs import config_path, load_config
    path = config_path('zoo::det/mask-rcnn_zoo-biformer-small_fpn_1x_coco.py')   # a file path
    cfg = load_config('zoo::det/mask-rcnn_zoo-biformer-small_fpn_1x_coco.py')     # an mmengine Config

Inheritance works from the installed location: the configs' relative ``../_base_/...`` files are shipped next to
them, ``mmdet::`` / ``mmseg::`` bases come from the installed mmdet / mmseg, and after :func:`enable_zoo_bases`
(called by :func:`load_config` and the zoo runner) a user's own config may inherit a zoo config by name::

    _base_ = 'zoo::det/retinanet_zoo-resnet50-cbam_fpn_1x_coco.py'

(mmengine itself accepts ``<package>::`` only for its fixed list of OpenMMLab packages, so plain
``mmengine.Config.fromfile`` needs ``enable_zoo_bases()`` first.)
"""
from typing import Optional

from ..cli import CONFIG_SCOPE, ConfigNotFoundError, config_path, configs_root, list_configs

__all__ = ['config_path', 'configs_root', 'list_configs', 'load_config', 'enable_zoo_bases', 'CONFIG_SCOPE',
           'ConfigNotFoundError']

_ENABLED = []


def enable_zoo_bases() -> None:
    """Let mmengine resolve ``_base_ = 'zoo::<path>'`` to the packaged config (idempotent)."""
    if _ENABLED:
        return
    from mmengine.config import Config
    original = Config._get_cfg_path

    def _get_cfg_path(cfg_path, filename):
        if isinstance(cfg_path, str) and cfg_path.startswith(CONFIG_SCOPE):
            return config_path(cfg_path), None  # a local-like base: it does not change the default scope
        return original(cfg_path, filename)

    Config._get_cfg_path = staticmethod(_get_cfg_path)
    _ENABLED.append(original)


def load_config(spec: str, cfg_options: Optional[dict] = None):
    """An mmengine ``Config`` from a file or a ``zoo::`` name (with ``cfg_options`` merged in)."""
    from mmengine.config import Config
    enable_zoo_bases()
    cfg = Config.fromfile(config_path(spec))
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    return cfg
