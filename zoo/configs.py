"""The configs shipped with zoo, found by name the way OpenMMLab names its own (``mmdet::<path>``).

The repository's ``configs/`` folder is the package data ``zoo._configs``. :func:`config_path` turns a file or a
name ``zoo::<path relative to configs/>`` (``zoo::det/<file>.py``, ``zoo::cls/<file>.yaml``) into a file path, and
:func:`list_configs` lists the names; the tools accept these names wherever they take a config file.
"""
import difflib
import fnmatch
import os
from importlib import resources
from pathlib import Path
from typing import List

from .errors import UserError

__all__ = ['CONFIG_SCOPE', 'ConfigNotFoundError', 'configs_root', 'list_configs', 'config_path']

CONFIG_SCOPE = 'zoo::'  # by-name prefix of the packaged configs, as in mmengine's `mmdet::...`


class ConfigNotFoundError(UserError, FileNotFoundError):
    """A config named on the command line is neither a file nor a packaged config."""


def configs_root() -> Path:
    """Folder of the configs shipped with zoo (the package data ``zoo._configs``)."""
    return Path(str(resources.files('zoo._configs').joinpath('README.md'))).resolve().parent


def list_configs(pattern: str = '*') -> List[str]:
    """By-name form (``zoo::det/<file>.py``) of every packaged config whose relative path matches ``pattern``."""
    root = configs_root()
    found = sorted(p.relative_to(root).as_posix() for p in root.rglob('*') if p.suffix in ('.py', '.yaml', '.yml'))
    return [CONFIG_SCOPE + f for f in found if fnmatch.fnmatch(f, pattern) and '_base_' not in f.split('/')]


def config_path(spec: str) -> str:
    """Resolve a config given as a file or by name.

    * an existing file: returned as it is;
    * ``zoo::<relative path>`` (e.g. ``zoo::det/retinanet_zoo-resnet18-cbam_fpn_shapes.py``): the packaged config;
    * ``configs/<relative path>`` that does not exist under the current folder (the README's commands run
      outside a checkout): the packaged config of that name.

    Relative ``_base_`` files (``../_base_/zoo_mm.py``) resolve next to the returned file, and ``mmdet::`` /
    ``mmseg::`` bases from the installed OpenMMLab packages, so inheritance works from an installed zoo.
    Raises :class:`ConfigNotFoundError` (a UserError) naming close matches when there is no such config.
    """
    spec = str(spec)
    if spec.startswith(CONFIG_SCOPE):
        rel = spec[len(CONFIG_SCOPE):].lstrip('/')
    elif os.path.exists(spec):
        return spec
    elif spec.replace(os.sep, '/').startswith('configs/'):
        rel = spec.replace(os.sep, '/')[len('configs/'):]
    else:
        raise ConfigNotFoundError(f'config file {spec} does not exist (packaged configs are named zoo::det/<file>.py, '
                                  f'zoo::seg/..., zoo::cls/<file>.yaml)')
    root = configs_root()
    path = root / rel
    if '..' in Path(rel).parts or not path.is_file():
        names = list_configs()
        close = difflib.get_close_matches(CONFIG_SCOPE + rel, names, n=3, cutoff=0.5)
        hint = f'; closest: {", ".join(close)}' if close else f'; {len(names)} packaged configs (see configs/README.md)'
        raise ConfigNotFoundError(f'no packaged config {CONFIG_SCOPE}{rel} (in {root}){hint}')
    return str(path)
