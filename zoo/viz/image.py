"""The input image of the attention figure: a file, or a generated shapes image (zoo.data.shapes)."""
import os
from typing import Optional, Tuple, Union

import numpy as np
import torch
import torch.nn as nn

__all__ = ['load_image', 'model_input_size']


def model_input_size(model: nn.Module) -> Tuple[int, int]:
    cfg = getattr(model, 'pretrained_cfg', None) or {}
    size = cfg.get('input_size', (3, 224, 224))
    return int(size[-2]), int(size[-1])


def load_image(path: Optional[Union[str, os.PathLike]], model: Optional[nn.Module] = None,
               size: Optional[Tuple[int, int]] = None, seed: int = 0) -> torch.Tensor:
    """(1, 3, H, W) normalised with the model's mean/std. ``path`` None: a generated multi-shape scene."""
    if size is None:
        size = model_input_size(model) if model is not None else (224, 224)
    cfg = (getattr(model, 'pretrained_cfg', None) or {}) if model is not None else {}
    mean = np.asarray(cfg.get('mean', (0.485, 0.456, 0.406)), np.float32)
    std = np.asarray(cfg.get('std', (0.229, 0.224, 0.225)), np.float32)
    if path is None:
        from ..data.shapes import render_scene
        rgb = render_scene(np.random.default_rng(seed), size, max_objects=4, radius_range=(0.12, 0.25))[0]
    else:
        import cv2
        if not os.path.isfile(path):
            raise FileNotFoundError(2, 'No such image file', str(path))
        bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if bgr is None:
            from ..errors import UserError
            raise UserError(f'cannot read {path} as an image')
        rgb = cv2.resize(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), (size[1], size[0]), interpolation=cv2.INTER_AREA)
    x = (rgb.astype(np.float32) / 255. - mean) / std
    return torch.from_numpy(x).permute(2, 0, 1).unsqueeze(0).contiguous()
