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


def randn(*shape, seed: int = 0) -> torch.Tensor:
    """A normal tensor from its own generator (the same values whatever ran before)."""
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


def save_checkpoint(obj, tmp_path, name: str = 'ckpt.pth') -> str:
    """``torch.save(obj)`` as ``tmp_path / name``; returns the path (a string, as timm's ``file`` cfg takes it)."""
    path = tmp_path / name
    torch.save(obj, path)
    return str(path)


def load_pretrained(name: str, path, **kwargs):
    """``timm.create_model(name, pretrained=True, **kwargs)`` with the weights of the checkpoint file ``path``, in
    eval mode."""
    import timm
    return timm.create_model(name, pretrained=True, pretrained_cfg_overlay=dict(file=str(path)), **kwargs).eval()


def mm_family(family: str):
    """``(config slug, small model)`` of an entry of MM_FAMILIES; skips the test when the model is not registered."""
    import pytest
    import timm
    slug, small = MM_FAMILIES[family]
    if not timm.is_model(small):
        pytest.skip(f'{small} is not registered')
    return slug, small


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

    def watch(self, model, types) -> 'DtypeLog':
        """Be ``active`` only while a module of ``model`` that is an instance of ``types`` runs."""
        for m in model.modules():
            if isinstance(m, types):
                m.register_forward_pre_hook(lambda *_: setattr(self, 'active', True))
                m.register_forward_hook(lambda *_: setattr(self, 'active', False))
        return self


def check_bf16_autocast(model, x, attention, n_sdpa: int, rtol: float = 0.05):
    """Under CPU bfloat16 autocast, for an eval-mode classifier: bf16 logits within ``rtol`` (of the largest logit)
    of the fp32 ones, finite forward and backward, and inside the modules of type ``attention`` no op that takes a
    bf16 tensor returns fp32, and all ``n_sdpa`` fused attention calls run on bf16 q/k/v."""
    with torch.no_grad():
        ref = model(x)
    log = DtypeLog().watch(model, attention)
    with log, torch.autocast('cpu', dtype=torch.bfloat16), torch.no_grad():
        out = model(x)
    assert out.dtype == torch.bfloat16 and torch.isfinite(out).all()
    assert log.upcasts == [], log.upcasts
    assert len(log.sdpa) == n_sdpa and all(d == (torch.bfloat16,) * 3 for d in log.sdpa), log.sdpa
    rel = (out.float() - ref).abs().max() / ref.abs().max()
    assert rel < rtol, rel  # bf16 keeps 8 bits of mantissa
    model.train()
    with torch.autocast('cpu', dtype=torch.bfloat16):
        loss = model(x).float().logsumexp(-1).mean()
    loss.backward()
    assert torch.isfinite(loss)
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    assert grads and all(torch.isfinite(g).all() for g in grads)
