"""Attention maps of the zoo's attention layers, taken with hooks on the real modules, and a figure.

    from zoo.viz import collect_maps, plot_maps, grad_cam, load_image
    x = load_image(None, model)             # a generated shapes image, or load_image('cat.jpg', model)
    maps = collect_maps(model, x)           # [AttnMap(family, kind, module, stage, data, ...)]
    plot_maps(x, maps, 'maps.png', cam=grad_cam(model, x))

Or from the command line: ``python tools/visualize.py zoo_biformer_tiny --out maps.png``.
Grad-CAM needs ``pip install "timm-attention-zoo[viz]"`` (grad-cam, matplotlib).
"""
from .hooks import FAMILY_CLASSES, AttnMap, collect_maps, find_attention_modules
from .figure import CAM_TARGETS, cam_target, grad_cam, plot_maps
from .image import load_image

__all__ = ['AttnMap', 'CAM_TARGETS', 'cam_target', 'collect_maps', 'find_attention_modules', 'FAMILY_CLASSES',
           'grad_cam', 'plot_maps', 'load_image']
