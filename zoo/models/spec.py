"""What the tools need to know about each zoo family: its ``FamilySpec``, declared in its model file.

``family_specs()`` lists them in the order of ``zoo.models.FAMILY_MODULES``; ``spec_of(name)`` finds the family of a
registered zoo model. ``zoo.viz`` reads the attention classes, the map reader and the Grad-CAM target, ``zoo.bench``
the counterparts and benchmark pairs, the README table the parity notes.
"""
import importlib
from dataclasses import dataclass, field
from typing import Dict, Mapping, Tuple

import timm

__all__ = ['FamilySpec', 'MapReader', 'family_specs', 'spec_of']


@dataclass(frozen=True)
class MapReader:
    """How ``zoo.viz`` reads a family's attention maps (``zoo.viz.hooks`` interprets it).

    ``reader``: the name of the reader in ``zoo.viz.hooks`` that turns a module's call into maps;
    ``outermost``: watch only the outermost of nested attention modules of the family;
    ``grid_arg``: the modules take the token grid ``(H, W)`` as a call argument, which the reader needs.
    """
    reader: str
    outermost: bool = False
    grid_arg: bool = False


@dataclass(frozen=True)
class FamilySpec:
    """One zoo family.

    ``name``: the family (``coat``; its module is ``zoo_coat``). ``attention``: the attention module classes,
    matched by class name in a model. ``maps``: how their maps are read. ``cam``: the Grad-CAM target layers,
    ``'last_stage'`` (the last feature stage), ``'last_attention_norm'`` (the first norm of the last attention,
    tokens to a map) or ``'last_block_nhwc'`` (the last block, NHWC). ``counterparts``: timm models of the same
    design. ``parity``: per architecture, how it was checked against the official code. ``pairs``: (zoo model,
    official ``file.py:factory(args)`` in the authors' checkout) for ``zoo-benchmark --pair``.
    """
    name: str
    attention: Tuple[type, ...]
    maps: MapReader
    cam: str = 'last_stage'
    counterparts: Tuple[str, ...] = ()
    parity: Mapping[str, str] = field(default_factory=dict)
    pairs: Tuple[Tuple[str, str], ...] = ()

    @property
    def module(self) -> str:
        """The family's module name in ``zoo.models`` (``zoo_coat``)."""
        return f'zoo_{self.name}'

    @property
    def attention_names(self) -> Tuple[str, ...]:
        return tuple(c.__name__ for c in self.attention)

    def parity_of(self, arch: str) -> str:
        return self.parity.get(arch, 'not checked')


def family_specs() -> Dict[str, FamilySpec]:
    """Family name -> spec, in the order of ``zoo.models.FAMILY_MODULES``."""
    import zoo.models
    specs = {}
    for module in zoo.models.FAMILY_MODULES:
        spec = importlib.import_module(module).SPEC
        if spec.module != module.rsplit('.', 1)[-1]:
            raise ValueError(f'{module}: its SPEC names the family {spec.name!r}')
        specs[spec.name] = spec
    return specs


def spec_of(model_name: str) -> FamilySpec:
    """The spec of the family of a registered zoo model (``arch`` or ``arch.tag``); KeyError for other names."""
    arch = model_name.split('.', 1)[0]
    module = timm.models.model_entrypoint(arch).__module__ if timm.is_model(arch) else ''
    for spec in family_specs().values():
        if module == f'{__package__}.{spec.module}':
            return spec
    raise KeyError(f'{model_name} is not a zoo model')
