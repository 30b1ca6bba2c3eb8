"""``zoo-benchmark`` / ``tools/benchmark.py``: benchmark zoo and timm models side by side (params, GMACs, latency,
throughput, train step, peak memory), compare an implementation with its reference or with the official code, profile
a model, and write the README model table: the subcommands models, reference, pair, profile and readme. The flags of
the single-command form (``--reference``, ``--pair``, ``--profile``, ``--readme``, models without a subcommand)
select the same subcommands. Outputs and their columns: docs/benchmarking.md.
"""
import argparse
import csv
import json
import os
import sys
from pathlib import Path
from typing import Optional, Sequence

from .. import bench
from ..errors import UserError
from . import ArgumentParser, add_quiet_argument, command

DESCRIPTION = """Benchmark zoo and timm models side by side: params, GMACs, latency, throughput, train step and
peak memory.

  zoo-benchmark models 'zoo_biformer_tiny' zoo_resnet50_cbam --baselines resnet50 convnext_tiny
  zoo-benchmark models 'zoo_coat_lite_*' coat_lite_tiny --sizes 224 384 512 768 1024 --plot   # one PNG per family
  zoo-benchmark models zoo_biformer_tiny --dtype bf16 --vs-fp32 --no-train   # bf16 autocast vs fp32, same process
  zoo-benchmark models 'zoo_*' --device cuda --dtype bf16 --csv docs/benchmark_gpu.csv       # the GPU table
  zoo-benchmark reference bra --sizes 224 512 1024       # BRA vs a straightforward gather
  zoo-benchmark reference contmix --sizes 224 1024       # ContMix vs an unfold reference
  zoo-benchmark reference train_loop                     # tools/train.py step vs a bare loop
  zoo-benchmark pair zoo_biformer_tiny=/src/BiFormer/models/biformer.py:biformer_tiny --train
                                          # zoo vs the official code of a checkout you have (alternating rounds)
  zoo-benchmark profile zoo_coat_lite_tiny                # per-op profile (torch.profiler)
  zoo-benchmark readme README.md                          # regenerate the README model table

Every (model, size) is measured in a fresh process; ratios are to the first baseline of the run. The single-command
form of earlier versions still works: `zoo-benchmark MODEL ... [--reference CASE | --pair SPEC | --profile |
--readme [--readme-file PATH]]`.
"""
COMMANDS = ('models', 'reference', 'pair', 'profile', 'readme')

TABLE_COLUMNS = ['model', 'img_size', 'params_m', 'gmacs', 'latency_ms', 'latency_ms_ratio', 'infer_img_s',
                 'infer_img_s_ratio', 'frac_peak_fp32', 'frac_peak_bf16', 'frac_peak_fp32_alt', 'frac_peak_fp32_alt_min',
                 'frac_peak_fp32_alt_max', 'frac_peak_bf16_alt', 'speedup_vs_fp32', 'speedup_vs_fp32_min',
                 'speedup_vs_fp32_max', 'rel_diff_vs_fp32', 'train_img_s', 'train_img_s_ratio',
                 'peak_mem_mb', 'peak_mem_mb_ratio', 'error']
# the GPU table (--csv): one row per (model, size), with the machine in every row
GPU_COLUMNS = ['model', 'img_size', 'batch_size', 'device', 'gpu', 'dtype', 'channels_last', 'compile', 'params_m',
               'gmacs', 'latency_ms', 'infer_img_s', 'train_img_s', 'peak_mem_mb', 'frac_peak_fp32', 'frac_peak_bf16',
               'speedup_vs_fp32', 'matmul_peak_fp32_tflops', 'matmul_peak_bf16_tflops', 'torch', 'timm', 'error']


def expand(patterns):
    import timm

    from .. import list_models
    names = []
    for p in patterns:
        found = (list_models(p) or timm.list_models(p)) if any(c in p for c in '*?[') else [p]
        names += [n for n in found if n not in names]
    return names


def write_outputs(records, out_dir, env, columns=TABLE_COLUMNS, stem='results'):
    out_dir.mkdir(parents=True, exist_ok=True)
    keys = sorted({k for r in records for k in r})
    with open(out_dir / f'{stem}.csv', 'w', newline='') as f:
        w = csv.DictWriter(f, fieldnames=keys)
        w.writeheader()
        w.writerows(records)
    (out_dir / f'{stem}.json').write_text(json.dumps(dict(environment=env, results=records), indent=1))
    table = bench.markdown_table(records, [c for c in columns if any(c in r for r in records)])
    (out_dir / f'{stem}.md').write_text(table + '\n')
    return table


def measure_peaks(args, env) -> dict:
    """Matmul peak per dtype (fp32, and the run's dtype where the device has it natively), in fresh processes;
    recorded in ``env``."""
    peaks = {}
    for dtype in dict.fromkeys(['fp32', args.dtype]):
        if dtype != 'fp32' and args.no_native:
            env[f'matmul_peak_{dtype}'] = f'not timed: {args.no_native}'
            continue
        rec = bench.matmul_peak_in_subprocess(device=args.device, dtype=dtype)
        if 'error' in rec:
            env[f'matmul_peak_{dtype}_error'] = rec['error']
            continue
        env.setdefault(f'matmul_peak_{dtype}_runs_tflops', []).append(round(rec['tflops'], 4))
        peaks[dtype] = max(peaks.get(dtype, 0.0), rec['flops_s'])
    return peaks


def pair_items(specs):
    """``--pair`` specs as models to measure like any other (``--plot``): the zoo side, then the official side
    (its record labelled ``official file.py:factory`` and tagged ``counterpart_of`` the zoo model)."""
    items = []
    for spec in specs:
        p = bench.parse_pair(spec)
        name, args, kwargs = bench.parse_call(p['zoo'])
        if args:
            raise UserError(f'--pair {spec!r}: give the zoo side keyword arguments only (name(key=value))')
        items.append(dict(name=name, model_kwargs=kwargs))
        items.append(dict(name=f"{p['path']}:{p['factory']}", record=dict(
            label='official ' + bench.official_label(f"{p['path']}:{p['factory']}"), counterpart_of=name)))
    return items


def run_models(args, env=None, items=()):
    """Every model (baselines first, then models, then ``items``: dicts of name, model_kwargs, record fields) at
    every size, each in a fresh process; ratios to the first baseline (else the first official side, else the
    first model); the matmul peak before and after."""
    env = {} if env is None else env
    baselines = expand(args.baselines)
    todo = [dict(name=m) for m in baselines + expand(args.models) if m] + list(items)
    records = []
    peaks = {} if args.no_peak else measure_peaks(args, env)
    for size in args.sizes:
        for item in todo:
            rec = bench.measure_in_subprocess(
                name=item['name'], img_size=size, batch_size=args.batch_size, device=args.device, dtype=args.dtype,
                channels_last=args.channels_last, compile=args.compile, warmup=args.warmup, repeats=args.repeats,
                train=not args.no_train, flops=not args.no_flops, timeout=args.timeout,
                model_kwargs=item.get('model_kwargs') or None, peak_alternate=args.peak_alternate,
                vs_fp32=args.vs_fp32, rounds=args.rounds or 0, no_native=args.no_native)
            rec.update(item.get('record', {}))
            print(json.dumps(rec), flush=True)
            records.append(rec)
    if todo:
        official = [i['name'] for i in todo if 'counterpart_of' in i.get('record', {})]
        bench.add_ratios(records, baselines[0] if baselines else (official or [todo[0]['name']])[0])
    if not args.no_peak:
        for dtype, flops in measure_peaks(args, env).items():  # after the models too: the higher one is the peak
            peaks[dtype] = max(peaks.get(dtype, 0.0), flops)
        for dtype, flops in peaks.items():
            env[f'matmul_peak_{dtype}_tflops'] = flops / 1e12
        bench.add_peak_fraction(records, peaks)
        if args.no_native:
            for r in records:
                if 'error' not in r:
                    r[f'frac_peak_{args.dtype}'] = args.no_native
    return records


def write_csv(records, path, env, columns=GPU_COLUMNS):
    """The GPU table: fixed columns, the machine (gpu, torch, peaks) repeated in every row."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, 'w', newline='') as f:
        w = csv.DictWriter(f, fieldnames=columns, extrasaction='ignore')
        w.writeheader()
        for r in records:
            w.writerow({**{k: env.get(k, '') for k in ('gpu', 'torch', 'timm', 'matmul_peak_fp32_tflops',
                                                       'matmul_peak_bf16_tflops')}, **r})
    return path


def profile_slow(args, records, out_dir):
    """profile_<model>_<size>.txt (printed too) for each record under ``args.profile_below`` of the fp32 peak."""
    paths = []
    for r in records:
        frac = r.get(f'frac_peak_{args.dtype}_alt', r.get('frac_peak_fp32'))
        if frac is None or frac >= args.profile_below:
            continue
        text = bench.profile(r['model'], img_size=r['img_size'], batch_size=args.batch_size, device=args.device,
                             dtype=args.dtype, warmup=1, repeats=max(1, min(args.repeats, 3)),
                             row_limit=args.profile_rows, no_native=args.no_native)
        text = f'{r["model"]} reached {frac:.1%} of the matmul peak in this run\n' + text
        path = Path(out_dir) / f'profile_{Path(r["model"]).name}_{r["img_size"]}.txt'
        path.write_text(text + '\n')
        print(text)
        paths.append(path)
    return paths



# dest -> (flags, add_argument keywords) of every option, in the single-command form's order
OPTIONS = {
    'models': ((), dict(nargs='*', help='model names or wildcard patterns (zoo or timm)')),
    'baselines': (('--baselines',), dict(nargs='*', default=[], help='comparison models; ratios are to the first')),
    'sizes': (('--sizes',), dict(nargs='+', type=int, default=[224], help='input sizes (a ladder gives scaling)')),
    'batch_size': (('--batch-size',), dict(type=int, default=16, help='batch for throughput and train step')),
    'device': (('--device',), dict(default='cpu')),
    'dtype': (('--dtype',), dict(default='fp32', choices=sorted(bench.DTYPES), help='autocast dtype')),
    'channels_last': (('--channels-last',), dict(action='store_true')),
    'compile': (('--compile',), dict(action='store_true', help='torch.compile the model')),
    'warmup': (('--warmup',), dict(type=int, default=2)),
    'repeats': (('--repeats',), dict(type=int, default=5)),
    'no_train': (('--no-train',), dict(action='store_true', help='skip the training-step measurement')),
    'no_flops': (('--no-flops',), dict(action='store_true')),
    'timeout': (('--timeout',), dict(type=float, default=1800, help='per (model, size) measurement, seconds')),
    'reference': (('--reference',), dict(choices=sorted(bench.REFERENCES),
                                         help='compare an implementation with its reference')),
    'pair': (('--pair',), dict(
        action='append', default=[], metavar='ZOO=FILE.py:FACTORY',
        help="zoo model vs the official implementation's factory in FILE.py of your checkout, e.g. "
             "zoo_biformer_tiny=/src/BiFormer/models/biformer.py:biformer_tiny; literal arguments allowed: "
             "FACTORY(50, num_classes=1000); repeatable. Uses --sizes, --batch-size, --dtype, --device. "
             "With --plot: both sides measured like models (fresh process per size: latency, peak "
             "memory) and drawn in the zoo family's scaling plot, instead of alternating rounds")),
    'train': (('--train',), dict(action='store_true',
                                 help='with --pair: also time forward + backward + SGD step')),
    'rounds': (('--rounds',), dict(type=int, default=None,
                                   help='with --pair / --reference train_loop (default 5), --vs-fp32 / '
                                        '--peak-alternate (default max(--repeats, 3)): alternating rounds '
                                        '(medians over them)')),
    'steps': (('--steps',), dict(type=int, default=2, help='with --pair / --reference train_loop: calls '
                                                           '(training steps) of each side per round')),
    'plot': (('--plot',), dict(action='store_true', help='PNGs of latency and peak memory against input size '
                                                        '(all models, and one per family)')),
    'profile': (('--profile',), dict(action='store_true', help='print a per-op profile (torch.profiler, top ops '
                                                              'by self CPU time) of each model instead')),
    'profile_rows': (('--profile-rows',), dict(type=int, default=25)),
    'profile_below': (('--profile-below',), dict(
        type=float, default=None, metavar='FRAC',
        help='after a run of models: the per-op profile of every model whose fraction of the fp32 matmul '
             'peak (frac_peak_fp32_alt, else frac_peak_fp32) is under FRAC, e.g. 0.35')),
    'csv': (('--csv',), dict(metavar='PATH', help='also write the GPU-table columns to PATH')),
    'no_peak': (('--no-peak',), dict(action='store_true', help='skip the matmul-peak measurement')),
    'peak_alternate': (('--peak-alternate',), dict(
        action='store_true',
        help='also frac_peak_<dtype>_alt (with _min/_max): each model\'s batch forward timed in alternating '
             'rounds with the matmul, in its own process (for a machine shared with other jobs)')),
    'vs_fp32': (('--vs-fp32',), dict(
        action='store_true',
        help='with --dtype bf16 / fp16: also speedup_vs_fp32 (with _min/_max): each model\'s autocast batch '
             'forward timed in alternating rounds with its fp32 forward, in its own process, and '
             'rel_diff_vs_fp32 (max |autocast - fp32| logit / max |fp32| logit) and finite_<dtype>')),
    'readme': (('--readme',), dict(action='store_true', help='regenerate the model table in README.md')),
    'readme_models': (('--readme-models',), dict(
        default='', metavar='PATTERN',
        help="with --readme: only the zoo models matching PATTERN (e.g. 'zoo_coat_lite_t*'; a trial run)")),
    'no_throughput': (('--no-throughput',), dict(action='store_true',
                                                 help='with --readme: leave the CPU img/s column empty')),
    'readme_file': (('--readme-file',), dict(help='README to rewrite with --readme (default: {})')),
    'out_dir': (('--out-dir',), dict(default=os.path.join('output', 'benchmark'))),
}


_RUN = ('sizes', 'batch_size', 'device', 'dtype', 'channels_last', 'compile', 'warmup', 'repeats', 'no_train',
        'no_flops', 'timeout', 'rounds', 'plot', 'profile_rows', 'profile_below', 'csv', 'no_peak', 'peak_alternate',
        'vs_fp32', 'out_dir')


def _subcommands(options: dict) -> dict:
    """subcommand -> (its positional: dest and add_argument keywords, or None; the options it takes)."""
    return {
        'models': (None, ('models', 'baselines') + _RUN),
        'profile': (None, ('models', 'baselines', 'sizes', 'batch_size', 'device', 'dtype', 'warmup', 'repeats',
                           'profile_rows', 'out_dir')),
        'pair': (('pair', dict(nargs='+', metavar='ZOO=FILE.py:FACTORY', help=options['pair'][1]['help'])),
                 ('baselines', 'train', 'steps') + _RUN),
        'reference': (('reference', dict(choices=sorted(bench.REFERENCES), metavar='CASE',
                                         help='compare an implementation with its reference: '
                                              + ', '.join(sorted(bench.REFERENCES)))),
                      ('sizes', 'device', 'repeats', 'rounds', 'steps', 'out_dir')),
        'readme': (('readme_file', dict(nargs='?', metavar='README', default=options['readme_file'][1]['default'],
                                        help=options['readme_file'][1]['help'].replace('with --readme ', ''))),
                   ('readme_models', 'no_throughput', 'device', 'timeout', 'out_dir')),
    }


_HELP = {'models': 'measure models (also: model names without a subcommand)',
         'reference': 'an implementation vs its reference',
         'pair': 'zoo models vs the official code of a checkout you have', 'profile': 'per-op profile of models',
         'readme': 'regenerate the model table in a README'}


class BenchmarkParser(ArgumentParser):
    """The subcommands; an argument list that does not start with one goes to the single-command form
    (``legacy``), whose mode flags pick the subcommand."""

    def __init__(self, *args, legacy: Optional[ArgumentParser] = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.legacy = legacy

    def parse_args(self, args: Optional[Sequence[str]] = None, namespace=None):
        args = list(sys.argv[1:] if args is None else args)
        if args and args[0] in COMMANDS + ('-h', '--help'):
            ns = super().parse_args(args, namespace)
            for dest, value in vars(self.legacy.parse_args([])).items():  # the other subcommands' options
                if not hasattr(ns, dest):
                    setattr(ns, dest, value)
            return ns
        ns = self.legacy.parse_args(args, namespace)
        ns.command = ('readme' if ns.readme else 'reference' if ns.reference else 'pair' if ns.pair
                      else 'profile' if ns.profile else 'models')
        return ns


def build_parser(readme: str = 'README.md') -> BenchmarkParser:
    """``zoo-benchmark``'s parser; ``readme``: the README the readme subcommand rewrites by default."""
    options = dict(OPTIONS, readme_file=(('--readme-file',), dict(
        default=readme, help=OPTIONS['readme_file'][1]['help'].format(readme))))
    legacy = ArgumentParser(prog='zoo-benchmark', description=DESCRIPTION)
    for dest, (flags, kw) in options.items():
        legacy.add_argument(*(flags or (dest,)), **kw)
    add_quiet_argument(legacy)
    p = BenchmarkParser(prog='zoo-benchmark', description=DESCRIPTION, legacy=legacy)
    sub = p.add_subparsers(dest='command', metavar='{' + ','.join(COMMANDS) + '}', parser_class=ArgumentParser)
    for name, (positional, dests) in _subcommands(options).items():
        sp = sub.add_parser(name, help=_HELP[name], description=_HELP[name])
        if positional:
            sp.add_argument(positional[0], **positional[1])
        for dest in dests:
            flags, kw = options[dest]
            sp.add_argument(*(flags or (dest,)), **kw)
        add_quiet_argument(sp)
    return p


def run_readme(args, env, out_dir) -> int:
    from zoo import model_table
    rows = model_table.collect(pattern=args.readme_models, throughput=not args.no_throughput,
                               device=args.device, batch_size=8, warmup=1, repeats=3, timeout=args.timeout)
    table = model_table.render(rows)
    readme = Path(args.readme_file)
    if not readme.is_file():
        build_parser().error(f'--readme: {readme} does not exist (give --readme-file)')
    model_table.write_readme(readme, table, env)
    write_outputs(rows, out_dir, env, columns=model_table.COLUMNS, stem='model_table')
    print(table)
    return 0


def run_reference(args, env, out_dir) -> int:
    kw = dict(rounds=args.rounds or 5, steps=args.steps) if args.reference in bench.REFERENCE_ROUNDS else {}
    records = bench.REFERENCES[args.reference](sizes=args.sizes, device=args.device, repeats=args.repeats, **kw)
    table = write_outputs(records, out_dir, env, columns=bench.REFERENCE_COLUMNS, stem=f'reference_{args.reference}')
    print(table)
    return 0


def run_pair(args, env, out_dir) -> int:
    for spec in args.pair:
        bench.parse_pair(spec)  # a malformed spec or a missing file: one error line before any timing
    if args.plot:
        if len(args.sizes) < 2:
            build_parser().error('--pair with --plot: give two or more --sizes (cost against input size)')
        return write_run(args, run_models(args, env, items=pair_items(args.pair)), out_dir, env)
    records = bench.compare_pairs(args.pair, sizes=args.sizes, batch_size=args.batch_size, device=args.device,
                                  dtype=args.dtype, train=args.train, rounds=args.rounds or 5, steps=args.steps,
                                  warmup=max(1, args.warmup // 2), timeout=args.timeout, no_native=args.no_native,
                                  report=lambda rec: print(json.dumps(rec), flush=True))
    table = write_outputs(records, out_dir, env, columns=bench.PAIR_COLUMNS, stem='pair')
    print(table)
    return 0


def _need_models(args) -> None:
    if not args.models and not args.baselines:
        build_parser().error('name models or baselines, or use --reference / --pair / --readme')


def run_profile(args, env, out_dir) -> int:
    from ..errors import check_model_name
    _need_models(args)
    out_dir.mkdir(parents=True, exist_ok=True)
    for name in expand(args.baselines) + expand(args.models):
        check_model_name(name)
        for size in args.sizes:
            text = bench.profile(name, img_size=size, batch_size=args.batch_size, device=args.device,
                                 dtype=args.dtype, warmup=args.warmup, repeats=args.repeats,
                                 row_limit=args.profile_rows, no_native=args.no_native)
            (out_dir / f'profile_{name}_{size}.txt').write_text(text + '\n')
            print(text)
    return 0


def run_measure(args, env, out_dir) -> int:
    _need_models(args)
    return write_run(args, run_models(args, env), out_dir, env)


RUNNERS = {'models': run_measure, 'reference': run_reference, 'pair': run_pair, 'profile': run_profile,
           'readme': run_readme}


def dispatch(args: argparse.Namespace) -> int:
    """The checks every subcommand shares, then the subcommand."""
    out_dir = Path(args.out_dir)
    env = bench.environment(args.device)
    if args.vs_fp32 and args.dtype == 'fp32':
        raise UserError('--vs-fp32 compares an autocast dtype with fp32: give --dtype bf16 or --dtype fp16')
    from zoo.train.utils import native_dtype_missing
    args.no_native = native_dtype_missing(bench.DTYPES[args.dtype], args.device) or ''
    if args.no_native:
        print(f'note: {args.no_native}: its matmul peak, speed-up vs fp32, --pair speed and --profile are not '
              'timed', file=sys.stderr)
    return RUNNERS[args.command](args, env, out_dir)


@command(parser=build_parser)
def main(args: argparse.Namespace) -> int:
    return dispatch(args)


def write_run(args, records, out_dir, env) -> int:
    """results.csv / .json / .md, the GPU-table CSV (--csv) and the plots (--plot) of a run of models."""
    table = write_outputs(records, out_dir, env)
    if args.csv:
        print('csv:', write_csv(records, args.csv, env))
    if args.profile_below is not None:
        for path in profile_slow(args, records, out_dir):
            print('profile:', path)
    if args.plot and len(args.sizes) > 1:
        ok = [r for r in records if 'error' not in r]
        print('plot:', bench.plot_scaling(ok, str(out_dir / 'scaling.png')))
        for path in bench.plot_families(records, str(out_dir)):
            print('plot:', path)
    print(table)
    return 0
