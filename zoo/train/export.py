"""Export a trained classifier in the Hugging Face Hub layout timm loads (``config.json`` + ``model.safetensors``)."""
from pathlib import Path
from typing import Any, Dict, Optional, Sequence, Union

import torch

__all__ = ['export_hf']


def export_hf(model: torch.nn.Module, out_dir: Union[str, Path], *, class_names: Optional[Sequence[str]] = None,
              data_cfg: Optional[Dict[str, Any]] = None) -> Path:
    """``timm.models.save_for_hf(model, out_dir, safe_serialization=True)`` with the class names as ``label_names``
    and the training run's preprocessing (input size, crop, mean/std) as the exported data config.

    Reload with ``timm.create_model('local-dir:' + out_dir, pretrained=True)`` (after ``import zoo`` for zoo models)
    or push the folder to the Hub.
    """
    from timm.models import save_for_hf
    out_dir = Path(out_dir)
    model_config = {}
    if class_names:
        model_config['label_names'] = list(class_names)
    dc = None
    if data_cfg:
        dc = {k: (tuple(v) if isinstance(v, list) else v) for k, v in data_cfg.items()
              if k in ('input_size', 'interpolation', 'mean', 'std', 'crop_pct', 'crop_mode')}
    save_for_hf(model, str(out_dir), model_config=model_config or None, safe_serialization=True, data_config=dc)
    return out_dir
