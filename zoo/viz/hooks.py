"""Attention maps taken from the real modules of a model during one forward pass.

The attention modules and the way to read their maps come from each family's spec (``zoo.models.spec``): modules
are matched by class name, hooks give their inputs and outputs, and a ``TorchFunctionMode`` active only while one
of them runs records the intermediates their own code computes (gate sigmoids, softmaxes, BiFormer's ``topk``, the
arguments of ``scaled_dot_product_attention``, whose probabilities are ``softmax(q k^T * scale + mask)``).
"""
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional, Tuple

import torch
import torch.nn as nn
from torch.overrides import TorchFunctionMode

from ..layers.lkca import lkca_attention_matrix
from ..models.spec import family_specs

__all__ = ['AttnMap', 'collect_maps', 'FAMILY_CLASSES', 'find_attention_modules']

# class name -> family; matched against type(module).__name__ at run time
FAMILY_CLASSES = {n: spec.name for spec in family_specs().values() for n in spec.attention_names}
_RECORDED = {'sigmoid', 'softmax', 'topk', 'scaled_dot_product_attention'}


@dataclass
class AttnMap:
    """One map of one module for the first image of the batch.

    ``data``: 2-D (H', W') (or 1-D for channel gates) float tensor. ``overlay``: the map lies on the image grid
    (drawn over the image, stretched to it); otherwise it is drawn on its own axes (kernels, channel gates).
    ``unit``: values are probabilities/gates in [0, 1]. ``input_dependent``: the map changes with the input
    (False for learned kernels). ``query``: (row, col) in ``data`` coordinates of the query a map belongs to.
    """
    family: str
    kind: str
    module: str
    stage: str
    data: torch.Tensor
    overlay: bool = True
    unit: bool = True
    input_dependent: bool = True
    query: Optional[Tuple[float, float]] = None
    normalize: bool = False  # draw scaled to the map's max (sparse probabilities), zeros transparent
    note: str = ''
    extra: Dict[str, Any] = field(default_factory=dict)

    @property
    def title(self) -> str:
        return f'{self.stage} · {self.kind}'


class _Recorder(TorchFunctionMode):
    """Records sigmoid/softmax/topk/SDPA calls made while a watched module is running."""

    def __init__(self):
        super().__init__()
        self.stack: List[str] = []
        self.paused = False  # True while the hooks compute the maps (their own ops are not the model's)
        self.calls: Dict[str, List[Tuple[str, tuple, dict, Any]]] = defaultdict(list)

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        if self.stack and not self.paused:
            name = getattr(func, '__name__', '').rstrip('_')
            if name in _RECORDED:
                self.calls[self.stack[-1]].append((name, args, kwargs, out))
        return out


def find_attention_modules(model: nn.Module) -> List[Tuple[str, nn.Module, str]]:
    """(qualified name, module, family) of every attention module, outermost first (a HaloAttn inside a
    PaddedHaloAttn is skipped: the outer one is watched)."""
    specs = family_specs()
    found = []
    for name, m in model.named_modules():
        fam = FAMILY_CLASSES.get(type(m).__name__)
        if fam is None:
            continue
        if specs[fam].maps.outermost and any(name.startswith(n + '.') for n, _, f in found if f == fam):
            continue
        found.append((name, m, fam))
    return found


def _stage_of(name: str, stages: List[str]) -> str:
    """The feature stage holding module ``name``; outside them (CoaT's serial stages 2-4, whose features are
    taken after the parallel blocks) the path up to its first index (``stages.1`` of ``stages.1.blocks.0.attn``)."""
    best = ''
    for s in stages:
        if (name == s or name.startswith(s + '.')) and len(s) > len(best):
            best = s
    if best:
        return best
    parts = name.split('.')
    for i, p in enumerate(parts[:-1]):
        if p.isdigit():
            return '.'.join(parts[:i + 1])
    return name.rsplit('.', 1)[0]


def _stage_names(model: nn.Module) -> List[str]:
    info = getattr(model, 'feature_info', None)
    names = []
    if info is not None:
        try:
            names = [f['module'] for f in info]
        except (TypeError, KeyError):
            names = []
    return names


def _first(t: torch.Tensor) -> torch.Tensor:
    return t.detach()[0].float().cpu()


def _sdpa_probs(args: tuple, kwargs: dict) -> torch.Tensor:
    """Attention probabilities of an SDPA call from its own arguments (q, k, attn_mask, scale)."""
    q, k = args[0], args[1]
    mask = args[3] if len(args) > 3 else kwargs.get('attn_mask')
    scale = kwargs.get('scale')
    if scale is None:
        scale = q.shape[-1] ** -0.5
    logits = (q.float() @ k.float().transpose(-2, -1)) * scale
    if mask is not None:
        logits = logits.masked_fill(~mask, float('-inf')) if mask.dtype == torch.bool else logits + mask.float()
    return logits.softmax(-1)


# --- the readers a family's MapReader names: (family, name, module, stage, inputs, output, calls) -> [AttnMap] -----

def _channel_spatial_gates(fam, name, m, stage, inp, out, calls) -> List[AttnMap]:
    x = inp[0]
    B, C, H, W = x.shape
    maps = []
    for fn, _, _, o in calls:
        if fn != 'sigmoid':
            continue
        if o.numel() == B * C:  # channel gate (B, C) or (B, C, 1, 1)
            maps.append(AttnMap(fam, 'channel gate', name, stage, _first(o).reshape(C), overlay=False))
        elif o.shape[-2:] == (H, W) and o.numel() == B * H * W:
            maps.append(AttnMap(fam, 'spatial gate', name, stage, _first(o).reshape(H, W)))
    return maps


def _branch_gates(fam, name, m, stage, inp, out, calls) -> List[AttnMap]:
    x = inp[0]
    B, C, H, W = x.shape
    sig = [o for fn, _, _, o in calls if fn == 'sigmoid']
    maps = []
    # the three branch gates in the module's call order; named by their shape where it is unambiguous
    names = {(C, W): 'C-W gate (pools H)', (H, C): 'H-C gate (pools W)', (H, W): 'H-W gate (pools C)'}
    order = ['C-W gate (pools H)', 'H-C gate (pools W)', 'H-W gate (pools C)']
    for i, o in enumerate(sig):
        g = _first(o).reshape(o.shape[-2], o.shape[-1])
        key = tuple(g.shape)
        kind = names[key] if list(names).count(key) == 1 and len(set(names)) == 3 else order[min(i, 2)]
        if kind.startswith('H-W'):
            maps.append(AttnMap(fam, kind, name, stage, g))
        else:
            maps.append(AttnMap(fam, kind, name, stage, g, overlay=False))
    return maps


def _routed_regions(fam, name, m, stage, inp, out, calls) -> List[AttnMap]:
    x = inp[0]  # (N, H, W, C)
    H, W = x.shape[1], x.shape[2]
    S = int(getattr(m, 'n_win'))
    R = S * S
    topk = [o for fn, _, _, o in calls if fn == 'topk']
    if topk:
        r_idx = topk[0].indices[0]  # (R, k): routed key regions of every query region, best first
    elif int(getattr(m, 'topk', 0)) >= R:  # every region routed: the layer may skip the top-k
        r_idx = torch.arange(R, device=x.device).expand(R, R)
    else:
        return []
    rq = (S // 2) * S + S // 2  # the query region: the centre one
    routed = torch.zeros(R)
    routed[r_idx[rq].cpu()] = 1.  # 1 = routed key region of the query region (marked by `query`)
    region = routed.view(S, S)
    qr, qc = divmod(rq, S)
    maps = [AttnMap(fam, f'routed regions (top-{r_idx.shape[1]})', name, stage, region,
                    query=(qr, qc), extra={'grid': S})]
    # token attention of the query region's centre token over the routed regions
    Hp, Wp = -(-H // S) * S, -(-W // S) * S
    rh, rw = Hp // S, Wp // S
    T = rh * rw
    t = (rh // 2) * rw + rw // 2
    probs = None
    for fn, a, kw, o in calls:
        if fn == 'scaled_dot_product_attention' and a[0].dim() == 4 and a[1].shape[-2] == r_idx.shape[1] * T:
            q, k = a[0], a[1]
            mask = a[3] if len(a) > 3 else kw.get('attn_mask')
            N = x.shape[0]
            heads = int(getattr(m, 'num_heads', q.shape[1]))
            if q.shape[0] == N * R and q.shape[1] == heads:  # (N * R, heads, T, d): first image's rows come first
                qh, kh, mh = q[rq, :, t:t + 1], k[rq], None if mask is None else mask[rq]
            elif q.shape[0] == N * heads and q.shape[1] == R:  # (N * heads, R, T, d)
                qh, kh = q[:heads, rq, t:t + 1], k[:heads, rq]
                mh = None if mask is None else mask[:heads, rq]
            else:
                continue
            sub_kw = {k_: v_ for k_, v_ in kw.items() if k_ != 'attn_mask'}
            probs = _sdpa_probs((qh, kh, None, mh), sub_kw).reshape(-1, kh.shape[-2]).mean(0)  # (k * T,)
            break
        if fn == 'softmax' and o.dim() >= 3 and o.shape[-1] == r_idx.shape[1] * T:
            p = o.reshape(x.shape[0], -1, R, T, o.shape[-1]) if o.shape[-3] == R or o.shape[-2] == T else None
            if p is not None:
                probs = p[0, :, rq, t].float().mean(0)
                break
    if probs is not None:
        img = torch.zeros(S, S, rh, rw)
        for j, r in enumerate(r_idx[rq].tolist()):
            img[r // S, r % S] = probs[j * T:(j + 1) * T].reshape(rh, rw).cpu()
        img = img.permute(0, 2, 1, 3).reshape(Hp, Wp)[:H, :W]
        qy, qx = qr * rh + rh // 2, qc * rw + rw // 2
        maps.append(AttnMap(fam, 'token attention', name, stage, img, query=(qy, qx), normalize=True))
    return maps


def _halo_window(fam, name, m, stage, inp, out, calls) -> List[AttnMap]:
    x = inp[0]
    H, W = x.shape[-2:]
    attn = m.attn if hasattr(m, 'attn') and hasattr(m.attn, 'halo_size') else m
    b, h = int(attn.block_size), int(attn.halo_size)
    stride = int(getattr(attn, 'block_stride', 1))
    bq = b // stride if b % stride == 0 else b
    win = b + 2 * h
    B = x.shape[0]
    Hp, Wp = -(-H // b) * b, -(-W // b) * b
    nbh, nbw = Hp // b, Wp // b
    nb = nbh * nbw
    probs = None  # (B, blocks, heads, queries, win * win)
    for fn, a, kw, o in calls:
        if fn == 'softmax' and o.dim() == 4 and o.shape[-1] == win * win and o.shape[1] == nb:
            # timm HaloAttn: (B * heads, blocks, queries, win^2)
            probs = o.reshape(B, -1, nb, o.shape[2], o.shape[3]).transpose(1, 2)
            break
        if fn == 'scaled_dot_product_attention' and a[1].shape[-2] == win * win and a[0].shape[0] == B * nb:
            p = _sdpa_probs(a, kw)  # (B * blocks, heads, queries, win^2)
            probs = p.reshape(B, nb, p.shape[1], p.shape[2], p.shape[3])
            break
    if probs is None:
        return []
    blk = (nbh // 2) * nbw + nbw // 2  # centre query block
    qi = (bq // 2) * bq + bq // 2  # its centre query
    p = probs[0, blk, :, qi].float().mean(0).reshape(win, win).cpu()
    by, bx = divmod(blk, nbw)
    canvas = torch.zeros(Hp + 2 * h, Wp + 2 * h)
    canvas[by * b:by * b + win, bx * b:bx * b + win] = p
    img = canvas[h:h + H, h:h + W]
    q = (by * b + (bq // 2) * stride, bx * b + (bq // 2) * stride)
    return [AttnMap(fam, f'halo attention ({b}+2x{h} window)', name, stage, img, query=q, normalize=True,
                    extra={'block': (by * b, bx * b, b), 'window': (by * b - h, bx * b - h, win)})]


def _factorized_attention(fam, name, m, stage, inp, out, calls, size=None) -> List[AttnMap]:
    cls = type(m).__name__
    if size is None:
        return []
    H, W = size
    if cls == 'ConvPosEnc':
        x = inp[0]
        enc = (out - x)[0, 1:].float()  # the depthwise-conv encoding added to the image tokens
        return [AttnMap(fam, 'conv pos. encoding |CPE|', name, stage, enc.norm(dim=-1).reshape(H, W).cpu(),
                        unit=False)]
    if cls == 'ConvRelPosEnc':
        ev = out[0, :, 1:].float()  # (heads, HW, d)
        return [AttnMap(fam, 'conv rel. pos. enc. |CRPE|', name, stage,
                        ev.norm(dim=-1).mean(0).reshape(H, W).cpu(), unit=False)]
    for fn, a, kw, o in calls:
        if fn == 'softmax' and o.dim() == 4 and o.shape[2] == 1 + H * W:
            # softmax over the tokens of every key channel: how much each token feeds the context k^T v
            k = o[0, :, 1:].float().mean((0, 2)).reshape(H, W).cpu()
            return [AttnMap(fam, 'factorized attn softmax(K)', name, stage, k * (H * W), unit=False,
                            note='x N (1 = uniform)')]
    return []


def _shared_kernel(fam, name, m, stage, inp, out, calls) -> List[AttnMap]:
    x = inp[0]  # (B, H, W, C)
    H, W = x.shape[1], x.shape[2]
    kernel = m.kernel.detach().float().reshape(m.kernel.shape[-2], m.kernel.shape[-1]).cpu()
    maps = [AttnMap(fam, f'kernel {kernel.shape[0]}x{kernel.shape[1]}', name, stage, kernel, overlay=False,
                    unit=False, input_dependent=False)]
    a = lkca_attention_matrix(m.kernel.detach().float(), H, W)
    c = (H // 2) * W + W // 2
    maps.append(AttnMap(fam, 'attention row of centre token', name, stage,
                        a[c].reshape(H, W).cpu(), unit=False, input_dependent=False, query=(H // 2, W // 2),
                        normalize=True))
    maps.append(AttnMap(fam, '|output|', name, stage, out[0].float().norm(dim=-1).cpu(), unit=False))
    return maps


def _soft_mask(fam, name, m, stage, inp, out, calls) -> List[AttnMap]:
    return [AttnMap(fam, 'soft mask (mean over C)', name, stage, _first(out).mean(0))]


def _dynamic_kernels(fam, name, m, stage, inp, out, calls) -> List[AttnMap]:
    value = inp[0]
    H, W = value.shape[-2:]
    maps = []
    for fn, a, kw, o in calls:
        if fn != 'softmax' or o.dim() != 5:
            continue
        dim = kw.get('dim', a[1] if len(a) > 1 else -1)
        p = o[0].float().movedim(int(dim) - 1 if int(dim) > 0 else int(dim), -1)  # (G, h, w, k*k): taps last
        k = int(round(p.shape[-1] ** 0.5))
        if k * k != p.shape[-1]:
            continue
        h, w = p.shape[1], p.shape[2]
        c = p[:, h // 2, w // 2].mean(0).reshape(k, k).cpu()
        maps.append(AttnMap(fam, f'dynamic {k}x{k} kernel @ centre', name, stage, c, overlay=False,
                            query=(k // 2, k // 2)))
        peak = p.amax(-1).mean(0).cpu()  # how concentrated each pixel's kernel is
        maps.append(AttnMap(fam, f'{k}x{k} kernel peak weight', name, stage, peak,
                            note='resized input' if (h, w) != (H, W) else ''))
    return maps


READERS: Dict[str, Callable] = {
    'channel_spatial_gates': _channel_spatial_gates, 'branch_gates': _branch_gates, 'routed_regions': _routed_regions,
    'halo_window': _halo_window, 'factorized_attention': _factorized_attention, 'shared_kernel': _shared_kernel,
    'soft_mask': _soft_mask, 'dynamic_kernels': _dynamic_kernels,
}


def _grid_size(args: tuple, kwargs: dict) -> Optional[Tuple[int, int]]:
    """The token grid ``(H, W)`` a module was called with (``size=`` or a positional pair of ints)."""
    size = kwargs.get('size')
    if size is None:
        size = next((a for a in args if isinstance(a, (tuple, list)) and len(a) == 2
                     and all(isinstance(v, int) for v in a)), None)
    return tuple(int(v) for v in size) if isinstance(size, (tuple, list)) and len(size) == 2 else None


def _last_per_stage(maps: List[AttnMap]) -> List[AttnMap]:
    last: Dict[Tuple[str, str], AttnMap] = {}
    for mp in maps:
        last[(mp.stage, mp.kind)] = mp
    return list(last.values())


def collect_maps(model: nn.Module, x: torch.Tensor, last_per_stage: bool = True) -> List[AttnMap]:
    """Run ``model(x)`` once (eval, no grad) and return the attention maps of every attention module.

    ``last_per_stage``: keep only the maps of the last module of each (stage, kind) -- the figure's rows.
    """
    specs = family_specs()
    fams = {name: (m, specs[fam]) for name, m, fam in find_attention_modules(model)}
    stages = _stage_names(model)
    rec = _Recorder()
    sizes: Dict[str, Any] = {}
    maps: List[AttnMap] = []

    def pre(name):
        def fn(mod, args, kwargs):
            rec.stack.append(name)
            rec.calls[name] = []
            if fams[name][1].maps.grid_arg:
                sizes[name] = _grid_size(args, kwargs)
        return fn

    def post(name):
        # extract at once: later code may modify the module's output in place (e.g. a residual ``x += shortcut``)
        def fn(mod, args, kwargs, output):
            rec.stack.pop()
            calls = rec.calls.pop(name, [])
            inp = tuple(a for a in args if isinstance(a, torch.Tensor))
            m, spec = fams[name]
            extra = {'size': sizes.get(name)} if spec.maps.grid_arg else {}
            rec.paused = True
            try:
                maps.extend(READERS[spec.maps.reader](spec.name, name, m, _stage_of(name, stages), inp, output,
                                                      calls, **extra))
            finally:
                rec.paused = False
        return fn

    handles = []
    for name, (m, _) in fams.items():
        handles.append(m.register_forward_pre_hook(pre(name), with_kwargs=True))
        handles.append(m.register_forward_hook(post(name), with_kwargs=True))
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad(), rec:
            model(x)
    finally:
        for h in handles:
            h.remove()
        model.train(was_training)
    return _last_per_stage(maps) if last_per_stage else maps
