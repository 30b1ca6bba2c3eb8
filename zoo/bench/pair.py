"""Zoo model vs its official implementation, from a checkout the user supplies (never downloaded, never committed).

A side is ``name`` or ``name(key=literal, ...)`` (zoo: a timm/zoo model name; official: ``file.py:factory`` with
literal arguments). The factory is imported from the file with its checkout root on ``sys.path``; both models are
timed in alternating rounds in one process (``speed`` = official time / zoo time: above 1.0 the zoo model is
faster). :func:`build` makes either kind of model by name. See docs/benchmarking.md.
"""
import ast
import importlib
import os
import statistics
import sys
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import torch
import torch.nn as nn

import zoo.models  # noqa: F401  (registers the zoo models with timm)
from ..errors import UserError
from .timing import DTYPES, alternating_rounds, count_params, in_chans, is_official, run_case_subprocess, tensors

PAIR_COLUMNS = ['zoo', 'official', 'mode', 'img_size', 'batch_size', 'dtype', 'zoo_ms', 'official_ms', 'speed',
                'speed_min', 'speed_max', 'rounds', 'zoo_params_m', 'official_params_m', 'error']
_ROOT_MARKERS = ('README.md', 'README.rst', 'README', 'LICENSE', 'LICENSE.md', 'LICENSE.txt', 'setup.py',
                 'pyproject.toml', '.git')


def parse_call(text: str) -> Tuple[str, list, dict]:
    """``name`` or ``name(literal args)`` -> (name, args, kwargs); only literals are accepted."""
    text = text.strip()
    if '(' not in text:
        return text, [], {}
    try:
        node = ast.parse(text, mode='eval').body
        if not isinstance(node, ast.Call) or not isinstance(node.func, ast.Name):
            raise ValueError
        args = [ast.literal_eval(a) for a in node.args]
        kwargs = {k.arg: ast.literal_eval(k.value) for k in node.keywords}
    except (SyntaxError, ValueError) as e:
        raise UserError(f'--pair: cannot read {text!r} as name(literal arguments)') from e
    return node.func.id, args, kwargs


def parse_pair(spec: str) -> Dict[str, str]:
    """``zoo_side=path/to/file.py:factory[(args)]`` -> dict(zoo=..., path=..., factory=...)."""
    depth, cut = 0, -1
    for i, c in enumerate(spec):  # the first '=' outside the zoo side's parentheses
        depth += (c == '(') - (c == ')')
        if c == '=' and depth == 0:
            cut = i
            break
    zoo_side, sep, official = (spec[:cut], '=', spec[cut + 1:]) if cut >= 0 else (spec, '', '')
    path, sep2, factory = official.partition('.py:')
    if not sep or not sep2 or not zoo_side or not factory:
        raise UserError(f'--pair {spec!r}: expected ZOO_MODEL=/path/to/official_file.py:factory')
    path = path + '.py'
    if not os.path.isfile(path):
        raise UserError(f'--pair: {path} does not exist (give a file of an official checkout)')
    parse_call(zoo_side), parse_call(factory)  # fail early on a malformed side
    return dict(zoo=zoo_side, path=os.path.abspath(path), factory=factory)


def checkout_root(path: str) -> Path:
    """The nearest folder above ``path`` that looks like a repository root, else the file's folder."""
    here = Path(path).resolve().parent
    for d in [here, *here.parents]:
        if any((d / m).exists() for m in _ROOT_MARKERS):
            return d
    return here


def load_factory(path: str, factory: str):
    """The callable ``factory`` (a name) of the official file ``path``, imported with its checkout on sys.path."""
    root = checkout_root(path)
    for d in (str(Path(path).resolve().parent), str(root)):
        if d not in sys.path:
            sys.path.insert(0, d)
    rel = Path(path).resolve().relative_to(root).with_suffix('')
    module = importlib.import_module('.'.join(rel.parts))
    if not hasattr(module, factory):
        raise UserError(f'--pair: {path} has no {factory!r}')
    return getattr(module, factory)


def build_official(spec: str) -> nn.Module:
    """The official model of ``/path/file.py:factory(literal args)`` (as the right side of a ``--pair``)."""
    path, _, factory = spec.partition('.py:')
    path += '.py'
    if not os.path.isfile(path):
        raise UserError(f'{path} does not exist (give a file of an official checkout)')
    fname, fargs, fkwargs = parse_call(factory)
    return load_factory(path, fname)(*fargs, **fkwargs)


def official_label(spec: str) -> str:
    """``file.py:factory(...)`` of an official spec, without its folder (table and plot label)."""
    path, _, factory = spec.partition('.py:')
    return f'{Path(path).name}.py:{factory}'


def build(name: str, device: torch.device, channels_last: bool = False, compile: bool = False,
          **kwargs) -> nn.Module:
    """A timm / zoo model by name, or an official one from ``/path/file.py:factory(literal args)`` (a checkout
    the user has)."""
    import timm
    fmt = torch.channels_last if channels_last else torch.preserve_format
    if is_official(name):
        model = build_official(name).to(device, memory_format=fmt)
    else:
        model = timm.create_model(name, **kwargs).to(device, memory_format=fmt)
    if compile:
        model = torch.compile(model)
    return model


def build_pair(zoo: str, path: str, factory: str, device: torch.device) -> Tuple[nn.Module, nn.Module]:
    import timm
    name, args, kwargs = parse_call(zoo)
    zoo_model = timm.create_model(name, *args, **kwargs).to(device)
    return zoo_model, build_official(f'{path}:{factory}').to(device)


def side_steps(models: Dict[str, nn.Module], x: torch.Tensor, autocast: Dict[str, Any], train: bool,
               calls: Dict[str, int]) -> Dict[Tuple[str, str], Callable[[], Any]]:
    """(side, 'forward' / 'train') -> one call of that side's forward (or SGD training step) on ``x``; each call
    counted in ``calls``."""
    fns = {}
    for side, model in models.items():
        def forward(model=model, side=side):
            calls[side] += 1
            with torch.no_grad(), torch.autocast(**autocast):
                return model(x)
        fns[(side, 'forward')] = forward
        if train:
            opt = torch.optim.SGD(model.parameters(), lr=1e-4, momentum=0.9)

            def train_step(model=model, opt=opt, side=side):
                calls[side] += 1
                with torch.autocast(**autocast):
                    out = model(x)
                outs = tensors(out)  # every logits output (an official model may add auxiliary heads)
                target = torch.zeros(outs[0].shape[0], dtype=torch.long, device=x.device)
                loss = sum(nn.functional.cross_entropy(o.float(), target) for o in outs)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
            fns[(side, 'train')] = train_step
    return fns


def measure_pair(zoo: str, path: str, factory: str, img_size: int = 224, batch_size: int = 8, device: str = 'cpu',
                 dtype: str = 'fp32', train: bool = False, rounds: int = 5, steps: int = 2,
                 warmup: int = 1) -> List[Dict[str, Any]]:
    """Forward (and with ``train`` the training step) of the zoo model and the official one, alternating rounds."""
    dev = torch.device(device)
    torch.manual_seed(0)
    models = dict(zip(('zoo', 'official'), build_pair(zoo, path, factory, dev)))
    x = torch.randn(batch_size, in_chans(models['zoo']), img_size, img_size, device=dev)
    autocast = dict(device_type=dev.type, dtype=DTYPES[dtype], enabled=DTYPES[dtype] != torch.float32)
    calls = {'zoo': 0, 'official': 0}
    fns = side_steps(models, x, autocast, train, calls)
    shapes = {}
    for side in models:
        models[side].eval()
        shapes[side] = list(tensors(fns[(side, 'forward')]())[0].shape)
    same = dict(img_size=img_size, batch_size=batch_size, dtype=dtype, device=device)
    records = []
    for mode in ('forward', 'train') if train else ('forward',):
        for m in models.values():
            m.train(mode == 'train')
        for side in models:
            for _ in range(warmup):
                fns[(side, mode)]()
        times = alternating_rounds({side: lambda f=fns[(side, mode)]: [f() for _ in range(steps)] for side in models},
                                   dev, rounds, per=steps)
        per_round = [o / z for z, o in zip(times['zoo'], times['official'])]
        zm, om = statistics.median(times['zoo']), statistics.median(times['official'])
        records.append(dict(zoo=zoo, official=f'{Path(path).name}:{factory}', mode=mode, **same,
                            zoo_ms=zm * 1e3, official_ms=om * 1e3,
                            speed=om / zm, speed_min=min(per_round), speed_max=max(per_round), rounds=rounds,
                            steps=steps, threads=torch.get_num_threads(),
                            zoo_params_m=count_params(models['zoo']) / 1e6,
                            official_params_m=count_params(models['official']) / 1e6,
                            zoo_out_shape=shapes['zoo'], official_out_shape=shapes['official']))
    for rec in records:
        rec['zoo_calls'], rec['official_calls'] = calls['zoo'], calls['official']
    return records


def measure_pair_json(**kwargs) -> Dict[str, Any]:
    return dict(records=measure_pair(**kwargs))


def compare_pairs(specs: Sequence[str], sizes: Sequence[int] = (224,), timeout: float = 3600,
                  report: Optional[Callable[[Dict[str, Any]], None]] = None, no_native: str = '',
                  **kwargs) -> List[Dict[str, Any]]:
    """Every ``--pair`` spec at every size, each pair in a fresh process (the official code's modules stay there);
    ``report`` is called with each record as it comes. ``no_native``: why the device has no native ``dtype``; then
    nothing is timed and ``speed`` holds that text."""
    records: List[Dict[str, Any]] = []
    n = 0
    for spec in specs:
        p = parse_pair(spec)
        for size in sizes:
            if no_native:
                out = dict(records=[dict(zoo=p['zoo'], official=f"{Path(p['path']).name}:{p['factory']}", mode=mode,
                                         img_size=size, batch_size=kwargs.get('batch_size'), dtype=kwargs.get('dtype'),
                                         speed=no_native)
                                    for mode in (('forward', 'train') if kwargs.get('train') else ('forward',))])
            else:
                out = run_case_subprocess(measure_pair_json, dict(p, img_size=size, **kwargs), timeout=timeout)
            if 'error' in out:
                records.append(dict(zoo=p['zoo'], official=f"{Path(p['path']).name}:{p['factory']}", img_size=size,
                                    error=out['error']))
            else:
                records += out['records']
            for rec in records[n:] if report else ():
                report(rec)
            n = len(records)
    return records
