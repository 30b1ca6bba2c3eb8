"""``zoo-demo`` / ``tools/demo.py``: the zoo demo (the README's main-job command): generate the shapes data, train
``zoo_resnet18_cbam`` with ``zoo::cls/shapes_resnet18_cbam.yaml``, evaluate it, export it in the Hub layout, reload it
with ``timm.create_model('local-dir:...')`` and print a results table (``--help`` lists the steps)."""
import json
import os
import shutil
import time
from pathlib import Path
from typing import List

from ..configs import config_path
from . import ArgumentParser, add_quiet_argument, command, set_download_progress

DEFAULT_CONFIG = 'zoo::cls/shapes_resnet18_cbam.yaml'
DESCRIPTION = """``zoo-demo`` / ``tools/demo.py``: the zoo demo (the README's main-job command): generate data, train a zoo backbone, evaluate, export, reload.

1. generates the shapes classification dataset (6 classes, 64 px; cached under ~/.cache/zoo/data),
2. trains ``zoo_resnet18_cbam`` (ResNet-18 + CBAM) from scratch at 48 px with
   ``configs/cls/shapes_resnet18_cbam.yaml`` (the same code path as ``tools/train.py``),
3. evaluates the best checkpoint on the validation split (the same code path as ``tools/eval.py``),
4. exports it in the Hugging Face Hub layout (``config.json`` + ``model.safetensors``) to ``output/demo/export``,
5. reloads it with ``timm.create_model('local-dir:output/demo/export', pretrained=True)``, checks that its outputs
   equal the trained model's and re-evaluates it, then prints a results table (also ``output/demo/results.json``).

Works from an installed package as from a clone: the config is the packaged ``zoo::cls/shapes_resnet18_cbam.yaml``
and the outputs go under the current folder. ``--quiet`` hides download progress bars (the demo downloads nothing).

Exits non-zero if the validation top-1 is below ``--min-top1`` (default 90) or the reloaded model differs.

    python tools/demo.py                 # a few minutes on 2 CPU cores
    python tools/demo.py --epochs 3 --min-top1 0      # a quick smoke run
"""


def _fmt_table(rows):
    widths = [max(len(str(r[i])) for r in rows) for i in range(len(rows[0]))]
    lines = ['| ' + ' | '.join(str(c).ljust(w) for c, w in zip(rows[0], widths)) + ' |',
             '|' + '|'.join('-' * (w + 2) for w in widths) + '|']
    lines += ['| ' + ' | '.join(str(c).ljust(w) for c, w in zip(r, widths)) + ' |' for r in rows[1:]]
    return '\n'.join(lines)


def build_parser() -> ArgumentParser:
    p = ArgumentParser(prog='zoo-demo', description=DESCRIPTION)
    p.add_argument('--config', default=DEFAULT_CONFIG, help='training config (YAML file, or a packaged zoo::cls/... name)')
    p.add_argument('--model', default=None, help='override the model of the config')
    p.add_argument('--epochs', type=int, default=None, help='override the epochs of the config')
    p.add_argument('--output', default=os.path.join('output', 'demo'),
                   help='demo folder (a previous demo folder there is replaced)')
    p.add_argument('--data-dir', default='', help='where the shapes dataset is generated (default: the cache)')
    p.add_argument('--threads', type=int, default=0, help='torch threads (default: all cores)')
    p.add_argument('--min-top1', type=float, default=90.0, help='fail below this validation top-1')
    p.add_argument('--set', nargs='*', default=[], metavar='KEY=VALUE', help='more config overrides')
    add_quiet_argument(p)
    return p


def _setup(args) -> None:
    # OpenMP threads that sleep instead of spinning while waiting: much faster on a shared / busy CPU
    # (must be set before torch loads its OpenMP runtime)
    os.environ.setdefault('OMP_WAIT_POLICY', 'PASSIVE')
    import torch
    if args.threads:
        torch.set_num_threads(args.threads)
    import zoo.models  # noqa: F401  (registers the zoo models with timm)
    set_download_progress(not args.quiet)
    from zoo.train.utils import setup_logging
    setup_logging()


def _config(args, p: ArgumentParser, out: Path):
    """The training config, and an empty demo folder ``out``."""
    from zoo.train import load_config
    overrides = [f'output={out}', 'experiment=train', 'resume=', 'progress=log'] + list(args.set)
    overrides += [f'{key}={value}' for key, value in
                  (('data_dir', args.data_dir), ('model', args.model), ('epochs', args.epochs)) if value]
    cfg = load_config(args.config, overrides)
    if cfg.data.dataset != 'shapes':
        p.error('the demo trains on the generated shapes dataset (dataset: shapes)')
    if out.exists():
        if any(out.iterdir()) and not (out / 'results.json').exists() and not (out / 'train').exists():
            p.error(f'--output {out} is not empty and not a previous demo folder; choose another')
        shutil.rmtree(out)
    out.mkdir(parents=True)
    return cfg


def _stage(i, text):
    print(f'\n[{i}/5] {text}', flush=True)


def _data_train_eval(cfg, times: dict):
    """Steps 1-3: the shapes data, training, the best checkpoint evaluated; (train result, eval result)."""
    import torch

    from zoo.data.shapes import make_classification
    from zoo.train import eval_config, train, validate
    _stage(1, f'shapes dataset: {cfg.data.shapes_train} train / {cfg.data.shapes_val} val images, '
              f'{cfg.data.shapes_size} px')
    t = time.time()
    data = make_classification(cfg.data.data_dir or None, n_train=cfg.data.shapes_train, n_val=cfg.data.shapes_val,
                               size=cfg.data.shapes_size, seed=cfg.data.shapes_seed)
    times['data_s'] = time.time() - t
    print(f'      {data.root}  classes: {", ".join(data.classes)}  ({times["data_s"]:.1f}s)')

    _stage(2, f'training {cfg.model.model} for {cfg.sched.epochs} epochs (torch threads: {torch.get_num_threads()})')
    t = time.time()
    res = train(cfg)
    times['train_s'] = time.time() - t
    if res['status'] != 'ok':
        return res, None
    best = Path(res['output_dir']) / 'best.pth'

    _stage(3, f'evaluating {best} on the validation split')
    t = time.time()
    ev = validate(eval_config(checkpoint=str(best), dataset='shapes', data_dir=cfg.data.data_dir,
                              workers=cfg.data.workers, batch_size=256))
    times['eval_s'] = time.time() - t
    print(f'      top-1 {ev["top1"]:.2f}%  top-5 {ev["top5"]:.2f}%  loss {ev["loss"]:.4f}  '
          f'{ev["images_per_s"]:.0f} img/s')
    return res, ev


def _export_reload(cfg, best: Path, out: Path):
    """Steps 4-5: the Hub-layout export, reloaded and compared; (checkpoint, export dir, max diff, reloaded eval)."""
    import timm
    import torch

    from zoo.hub.export import export, hub_data_config
    from zoo.train import eval_config, validate
    from zoo.train.utils import load_checkpoint_file
    _stage(4, f'exporting to the Hub layout: {out / "export"}')
    ckpt = load_checkpoint_file(best)
    model = timm.create_model(ckpt['arch'], num_classes=ckpt['num_classes'], **(ckpt.get('model_kwargs') or {}))
    model.load_state_dict(ckpt['state_dict_ema'] if ckpt.get('state_dict_ema') is not None else ckpt['state_dict'])
    model.eval()
    export_dir = export(model, out / 'export', label_names=ckpt['class_names'],
                        data_config=hub_data_config(ckpt['data_cfg']), readme=False)
    print('      ' + ', '.join(sorted(f.name for f in export_dir.iterdir())))

    _stage(5, f"reloading with timm.create_model('local-dir:{export_dir}', pretrained=True)")
    reloaded = timm.create_model(f'local-dir:{export_dir}', pretrained=True).eval()
    x = torch.randn(8, *ckpt['data_cfg']['input_size'], generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        diff = float((model(x) - reloaded(x)).abs().max())
    d = cfg.data
    ev2 = validate(eval_config(dataset='shapes', data_dir=d.data_dir, workers=d.workers, batch_size=256,
                               num_classes=ckpt['num_classes'], shapes_train=d.shapes_train, shapes_val=d.shapes_val,
                               shapes_size=d.shapes_size, shapes_seed=d.shapes_seed), model=reloaded)
    data_cfg = timm.data.resolve_model_data_config(reloaded)
    print(f'      max |logits diff| = {diff:.3g}; reloaded top-1 {ev2["top1"]:.2f}%; '
          f'data cfg from config.json: input {data_cfg["input_size"]}, crop_pct {data_cfg["crop_pct"]}; '
          f'label names: {reloaded.pretrained_cfg.get("label_names")}')
    return ckpt, export_dir, diff, ev2


def _report(args, cfg, res, ev, ckpt, export_dir, diff, ev2, times, out: Path) -> bool:
    """The results table and ``results.json``; whether the demo passed."""
    import torch
    run_dir = Path(res['output_dir'])
    last = res['history'][-1]
    rows = [
        ['model', 'params', 'input', 'epochs', 'train img/s', 'train time', 'val top-1', 'val top-5', 'val loss',
         'eval img/s', 'reloaded top-1', 'reload max diff', 'total time'],
        [cfg.model.model, f'{res["num_params"] / 1e6:.2f}M',
         f'{ckpt["data_cfg"]["input_size"][-1]} px (data {cfg.data.shapes_size} px)', res['epochs_done'],
         f'{last["train_images_per_s"]:.0f}', f'{times["train_s"] / 60:.1f} min', f'{ev["top1"]:.2f}%',
         f'{ev["top5"]:.2f}%', f'{ev["loss"]:.3f}', f'{ev["images_per_s"]:.0f}', f'{ev2["top1"]:.2f}%',
         f'{diff:.1g}', f'{times["total_s"] / 60:.1f} min'],
    ]
    print('\nResults (shapes, 6 classes, validation split of ' f'{ev["n_images"]} images; CPU threads: '
          f'{torch.get_num_threads()})\n')
    print(_fmt_table(rows))
    print('\nper-class top-1: ' + ', '.join(f'{k} {v:.1f}%' for k, v in ev['per_class_top1'].items()))
    summary = dict(model=cfg.model.model, config=str(args.config), params=res['num_params'], epochs=res['epochs_done'],
                   times=times, eval=ev, reloaded_eval_top1=ev2['top1'], reload_max_abs_diff=diff,
                   run_dir=str(run_dir), export_dir=str(export_dir), torch_threads=torch.get_num_threads())
    (out / 'results.json').write_text(json.dumps(summary, indent=2, default=str))
    print(f'\nrun folder {run_dir}; export {export_dir}; summary {out / "results.json"}')
    ok = ev['top1'] >= args.min_top1 and diff == 0.0 and abs(ev2['top1'] - ev['top1']) < 1e-9
    if not ok:
        print(f'FAILED: top-1 {ev["top1"]:.2f} (need >= {args.min_top1}), reload diff {diff}, '
              f'reloaded top-1 {ev2["top1"]:.2f}')
    return ok


@command
def main(argv: List[str]) -> int:
    p = build_parser()
    args = p.parse_args(argv)
    args.config = config_path(args.config)
    t_total = time.time()
    _setup(args)
    out = Path(args.output)
    cfg = _config(args, p, out)
    times = {}
    res, ev = _data_train_eval(cfg, times)
    if res['status'] != 'ok':
        print(f'training failed: {res["message"]}')
        return 128 + res['signal'] if res['status'] == 'interrupted' else 1
    ckpt, export_dir, diff, ev2 = _export_reload(cfg, Path(res['output_dir']) / 'best.pth', out)
    times['total_s'] = time.time() - t_total
    return 0 if _report(args, cfg, res, ev, ckpt, export_dir, diff, ev2, times, out) else 1
