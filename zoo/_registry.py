"""Views of timm's registry restricted to zoo architectures."""
import fnmatch
from typing import Dict, List, Union

import timm

from . import models


def _zoo_modules() -> List[str]:
    return [m.rsplit('.', 1)[-1] for m in models.FAMILY_MODULES]


def list_models(pattern: Union[str, List[str]] = '', pretrained: bool = False) -> List[str]:
    """Zoo architecture names (``arch`` or, with ``pretrained=True``, ``arch.tag``) matching a wildcard pattern."""
    names = set()
    for module in _zoo_modules():
        names.update(timm.list_models(module=module, pretrained=pretrained))
    patterns = [pattern] if isinstance(pattern, str) else list(pattern)
    patterns = [p for p in patterns if p] or ['*']
    return sorted(n for n in names if any(fnmatch.fnmatch(n, p) for p in patterns))


def list_pretrained(pattern: str = '') -> List[str]:
    """``arch.tag`` names of zoo models that have weights (official or published)."""
    return list_models(pattern, pretrained=True)


def model_families() -> Dict[str, List[str]]:
    """Family module name -> its architectures."""
    return {m: sorted(timm.list_models(module=m)) for m in _zoo_modules()}
