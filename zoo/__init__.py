"""zoo: vision attention backbones for timm.

``import zoo`` registers every zoo architecture with timm, after which
``timm.create_model('zoo_<family>_<variant>', pretrained=..., features_only=...)`` works as for timm's own models.
``zoo.add_attention(model, 'cbam' | 'triplet')`` adds identity-initialised attention gates to a pretrained timm CNN.
"""
from . import layers, models  # noqa: F401  (importing registers the models)
from ._registry import list_models, list_pretrained, model_families
from .hub.pretrained import build_model as _pretrained_build
from .retrofit import add_attention
from .version import __version__

models.use_pretrained_builder(_pretrained_build)

__all__ = ['list_models', 'list_pretrained', 'model_families', 'add_attention', '__version__']
