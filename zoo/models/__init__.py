"""Zoo model families. Importing this package registers every zoo architecture with timm.

One file per family, named with the ``zoo_`` prefix so that timm's per-module listing
(``timm.list_models(module='zoo_coat')``) never merges with timm's own modules.
"""
import importlib

from ._helpers import OutputStrideError, checkpoint_filter, use_pretrained_builder
from .spec import FamilySpec, family_specs, spec_of

FAMILY_MODULES = [
    'zoo.models.zoo_cbam',
    'zoo.models.zoo_triplet',
    'zoo.models.zoo_biformer',
    'zoo.models.zoo_halonet',
    'zoo.models.zoo_coat',
    'zoo.models.zoo_lkca',
    'zoo.models.zoo_resattnet',
    'zoo.models.zoo_overlock',
]

for _m in FAMILY_MODULES:
    importlib.import_module(_m)
del _m

__all__ = ['FAMILY_MODULES', 'FamilySpec', 'family_specs', 'spec_of', 'checkpoint_filter', 'OutputStrideError',
           'use_pretrained_builder']
