"""Helpers shared by several test modules (fixtures live in conftest.py; this module holds what is needed at
collection time, e.g. in ``pytest.mark.skipif`` or ``parametrize``)."""
import importlib.util
import os.path as osp
from typing import Optional

import torch

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
CONFIGS = osp.join(ROOT, 'configs')

# family -> (config slug of the COCO / ADE20K configs, the family's small model used in det/seg tests)
MM_FAMILIES = {
    'cbam': ('zoo-resnet50-cbam', 'zoo_resnet18_cbam'),
    'triplet': ('zoo-resnet50-triplet', 'zoo_resnet18_triplet'),
    'biformer': ('zoo-biformer-small', 'zoo_biformer_tiny'),
    'halonet': ('zoo-halonet-h1', 'zoo_halonet_h0'),
    'coat': ('zoo-coat-lite-small', 'zoo_coat_lite_tiny'),
    'lkca': ('zoo-lkca-vit-2m', 'zoo_lkca_vit_05m'),
    'resattnet': ('zoo-resattnet56', 'zoo_resattnet56'),
    'overlock': ('zoo-overlock-t', 'zoo_overlock_xt'),
}
MM_SIZE = 64  # generated det/seg scenes in the mm tests are MM_SIZE x MM_SIZE


def mm_missing(*packages: str) -> Optional[str]:
    """Why the OpenMMLab tests cannot run here (a package missing, mmcv without compiled ops), or None."""
    for name in ('mmengine', 'mmcv') + packages:
        if importlib.util.find_spec(name) is None:
            return f'{name} is not installed'
    try:
        if importlib.util.find_spec('mmcv._ext') is None:
            return 'mmcv has no compiled ops (mmcv._ext); run `make setup`'
    except ImportError as e:
        return f'mmcv._ext: {e}'
    return None


def n_params(model) -> int:
    return sum(p.numel() for p in model.parameters())


class DtypeLog(torch.utils._python_dispatch.TorchDispatchMode):
    """Records, while ``active``, every op that turns a bfloat16 input into a float32 output (a fp32 round trip)
    and the dtypes of the fused attention's q/k/v."""

    def __init__(self):
        super().__init__()
        self.active, self.upcasts, self.sdpa = False, [], []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        if self.active:
            ins = [a for a in torch.utils._pytree.tree_leaves((args, kwargs)) if isinstance(a, torch.Tensor)]
            # the op's result (fused attention also returns its float32 log-sum-exp statistics: not a result)
            res = out[0] if isinstance(out, (tuple, list)) else out
            if any(a.dtype == torch.bfloat16 for a in ins) and isinstance(res, torch.Tensor) \
                    and res.dtype == torch.float32:
                self.upcasts.append(str(func))
            if 'scaled_dot_product' in str(func):
                self.sdpa.append(tuple(a.dtype for a in ins[:3]))
        return out
