"""Zoo backbones as segmentation_models_pytorch (smp) encoders, for any input size (no mmcv needed).

Either smp's timm universal encoder after ``import zoo`` (``smp.Unet('tu-zoo_biformer_tiny', ...)``; wrap the model
in :class:`PadToStride` for any input size), or :func:`create_model`, which also covers DeepLabV3+ for backbones that
cannot dilate their last stages and returns the model wrapped in :class:`PadToStride`::

    from zoo.smp import create_model
    net = create_model('DeepLabV3Plus', 'zoo_coat_lite_tiny', classes=21)

Needs ``pip install "timm-attention-zoo[smp]"``. How smp reads the encoders' strides: ``docs/smp.md``.
"""
import math
from typing import Any, Optional

import torch
import torch.nn as nn
import torch.nn.functional as F

from .errors import UserError

__all__ = ['PadToStride', 'create_model', 'register_encoders', 'native_reductions', 'supports_output_stride']


def _smp():
    try:
        import segmentation_models_pytorch as smp
    except ImportError:
        raise UserError('segmentation_models_pytorch is not installed: pip install "timm-attention-zoo[smp]"') from None
    return smp


class PadToStride(nn.Module):
    """Pad the input (bottom/right) to a multiple of ``stride`` (default: the smp encoder's output stride), run
    ``model``, crop the mask(s) back to the input size. Aux classification outputs pass through unchanged.

    ``mode``: ``F.pad`` mode ('constant' zeros, 'reflect' or 'replicate'); 'reflect' falls back to 'replicate' when
    the pad is not smaller than the input side.
    """

    def __init__(self, model: nn.Module, stride: Optional[int] = None, mode: str = 'constant', value: float = 0.):
        super().__init__()
        self.model = model
        if stride is None:
            enc = getattr(model, 'encoder', None)
            stride = int(getattr(enc, 'output_stride', 32)) if enc is not None else 32
        self.stride = int(stride)
        self.mode = mode
        self.value = value

    @property
    def encoder(self):
        return self.model.encoder

    def forward(self, x: torch.Tensor):
        H, W = x.shape[-2:]
        s = self.stride
        ph, pw = (s - H % s) % s, (s - W % s) % s
        if ph or pw:
            mode = self.mode
            if mode == 'reflect' and (ph >= H or pw >= W):
                mode = 'replicate'
            x = F.pad(x, [0, pw, 0, ph], mode=mode, value=self.value) if mode == 'constant' else \
                F.pad(x, [0, pw, 0, ph], mode=mode)
        out = self.model(x)
        if isinstance(out, tuple):  # (masks, labels) with an aux classification head
            return (out[0][..., :H, :W],) + tuple(out[1:])
        return out[..., :H, :W]

    @torch.inference_mode()
    def predict(self, x: torch.Tensor):
        self.eval()
        return self(x)


def native_reductions(name: str):
    """Feature reductions of a timm/zoo model (``features_only``), without building its weights twice."""
    import timm

    import zoo.models  # noqa: F401  (registers the zoo models)
    return list(timm.create_model(name.split('.', 1)[0], features_only=True).feature_info.reduction())


def supports_output_stride(name: str, output_stride: int) -> bool:
    """Whether smp's universal encoder can use the model dilated to ``output_stride`` (timm's ``output_stride=``):
    the dilated model must keep the same feature stages (smp indexes them from the undilated model) and reach
    the stride; measured on a small forward pass, since some models accept the argument without dilating. A model
    without dilation refuses the argument (zoo models: a ``ValueError`` naming their stride; others: ``TypeError``)."""
    import timm

    import zoo.models  # noqa: F401  (registers the zoo models)
    base = name.split('.', 1)[0]
    try:
        m = timm.create_model(base, features_only=True, output_stride=output_stride).eval()
    except (TypeError, ValueError):
        return False
    full = [int(f['reduction']) for f in timm.create_model(base).feature_info]
    if native_reductions(base) != full or len(m.feature_info.reduction()) != len(full):
        return False  # smp's tu- encoder indexes features_only's stages as if they were all the model's stages
    size = 4 * output_stride
    with torch.no_grad():
        feats = m(torch.zeros(1, 3, size, size))
    nhwc = getattr(m, 'output_fmt', 'NCHW') == 'NHWC'
    smallest = min(min(f.shape[1:3]) if nhwc else min(f.shape[-2:]) for f in feats)
    return size // smallest <= output_stride


_REGISTERED: dict = {}


def register_encoders() -> None:
    """Register every zoo model with ``features_only`` in smp's encoder table under ``zoo-<model>`` (smp's custom
    encoder mechanism), served by :class:`ZooEncoder`; used by :func:`create_model` for DeepLabV3+."""
    smp = _smp()
    from segmentation_models_pytorch.encoders import encoders

    from ._registry import list_models
    for name in list_models():
        key = f'zoo-{name}'
        if key not in encoders:
            encoders[key] = {'encoder': _encoder_class(), 'pretrained_settings': {}, 'params': {'name': name}}
            _REGISTERED[key] = name
    return smp


_ENCODER_CLASS = None


def _encoder_class():
    global _ENCODER_CLASS
    if _ENCODER_CLASS is not None:
        return _ENCODER_CLASS
    _smp()
    from segmentation_models_pytorch.encoders import TimmUniversalEncoder

    from .models import OutputStrideError

    class ZooEncoder(TimmUniversalEncoder):
        """smp's timm universal encoder for a zoo model, built from the model's full ``feature_info`` (so the
        stages smp gets are the ones it assumes: strides 2, 4, ... or 4, 8, ... whatever ``features_only``'s default
        ``out_indices`` are), at its native strides: ``output_stride`` must be reached by the first ``depth``
        stages (no dilation). ``pretrained`` loads the zoo's default pretrained weights."""

        def __init__(self, name: str, depth: int = 5, output_stride: int = 32, pretrained: bool = False,
                     in_channels: int = 3, **kwargs: Any):
            import timm
            nn.Module.__init__(self)
            if not 1 <= depth <= 5:
                raise UserError(f'encoder_depth must be in 1..5, got {depth}')
            self.name = name
            probe = timm.create_model(name.split('.', 1)[0])  # the full feature_info (every stage)
            red = [int(f['reduction']) for f in probe.feature_info]
            del probe
            self._is_vgg_style = False
            if red[0] == 2:
                self._is_transformer_style = False
                want = [2 ** (i + 1) for i in range(depth)]
            elif red[0] == 4:
                self._is_transformer_style = True
                want = [2 ** (i + 2) for i in range(depth - 1)]
            else:
                raise UserError(f'{name}: feature strides {red} do not fit smp encoders (need 2, 4, ... or 4, 8, ...)')
            idx = [red.index(r) for r in want if r in red]
            if len(idx) != len(want):
                raise UserError(f'{name}: feature strides {red} lack {sorted(set(want) - set(red))} for '
                                f'encoder_depth={depth}')
            self.model = timm.create_model(name, features_only=True, out_indices=tuple(idx), pretrained=pretrained,
                                           in_chans=in_channels, **kwargs)
            self._is_channel_last = getattr(self.model, 'output_fmt', None) == 'NHWC'
            chs = self.model.feature_info.channels()
            self._out_channels = [in_channels] + ([0] if self._is_transformer_style else []) + list(chs)
            self._in_channels = in_channels
            self._depth = depth
            native = min(32, 2 ** depth)
            if output_stride not in (32, native):
                raise OutputStrideError(f'{name} cannot run at output stride {output_stride} (no dilated stages); with '
                                f'encoder_depth={depth} its output stride is {native}')
            self._output_stride = output_stride

        def set_in_channels(self, in_channels: int, pretrained: bool = True):
            if in_channels != self._in_channels:
                raise UserError('zoo-* smp encoders take in_channels only at construction '
                                f'(got in_channels={in_channels})')

        def make_dilated(self, output_stride: int):
            if output_stride != self.output_stride:
                raise OutputStrideError(f'{self.name} cannot dilate to output stride {output_stride}')

    _ENCODER_CLASS = ZooEncoder
    return ZooEncoder


def create_model(arch: str, encoder: str, encoder_weights: Optional[bool] = None, pad_mode: str = 'constant',
                 **kwargs: Any) -> PadToStride:
    """An smp model (``arch``: 'Unet', 'FPN', 'DeepLabV3Plus', ...) on a zoo backbone, wrapped in
    :class:`PadToStride` (any input size).

    ``encoder``: a zoo model name, optionally with ``.tag`` (other timm models go through smp's ``tu-`` encoder);
    ``encoder_weights``: None (random) or True (the model's pretrained weights). The encoder is
    :class:`ZooEncoder` (registered as ``zoo-<model>``), which takes the stages from the model's full
    ``feature_info``. DeepLabV3+/DeepLabV3 use a dilated backbone where the model supports ``output_stride``,
    else its first ``log2(encoder_output_stride)`` stages at their native strides (stride 16: four stages).
    """
    smp = _smp()
    from ._registry import list_models
    from .errors import check_model_name
    check_model_name(encoder)
    if encoder_weights not in (None, True, False):
        raise UserError(f'encoder_weights for zoo encoders is None or True (the pretrained tag goes in the name, '
                        f'{encoder}.<tag>), got {encoder_weights!r}')
    weights = True if encoder_weights else None
    base = encoder.split('.', 1)[0]
    if base not in list_models():
        return PadToStride(smp.create_model(arch, f'tu-{encoder}', encoder_weights=weights, **kwargs), mode=pad_mode)
    if arch.lower().replace('_', '') in ('deeplabv3plus', 'deeplabv3+', 'deeplabv3'):
        os_ = int(kwargs.get('encoder_output_stride', 16 if 'plus' in arch.lower() or '+' in arch else 8))
        if supports_output_stride(encoder, os_):  # dilated: smp's own universal encoder
            model = smp.create_model(arch, f'tu-{encoder}', encoder_weights=weights, **kwargs)
            return PadToStride(model, mode=pad_mode)
        depth = kwargs.pop('encoder_depth', None)
        need = int(math.log2(os_))  # smp: encoder_depth d ends at stride 2 ** d
        if depth is not None and depth != need:
            raise UserError(f'{encoder} reaches output stride {os_} only with encoder_depth={need}')
        kwargs['encoder_depth'] = need
    register_encoders()
    model = smp.create_model(arch, f'zoo-{base}', encoder_weights=None, **kwargs)
    if weights:
        depth = kwargs.get('encoder_depth', 5)
        pre = _encoder_class()(encoder, depth=depth, output_stride=model.encoder._output_stride, pretrained=True)
        model.encoder.load_state_dict(pre.state_dict())
    return PadToStride(model, mode=pad_mode)
