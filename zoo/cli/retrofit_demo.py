"""``tools/retrofit_demo.py``: attention added to a pretrained CNN, at demo scale, against plain fine-tuning
(``add_attention`` gates vs the plain model, from one pretrained checkpoint; ``--help`` tells the steps)."""
import json
import os
import shutil
import time
from pathlib import Path
from typing import Any, Dict, List

from ..configs import config_path
from . import ArgumentParser, add_quiet_argument, command

__all__ = ['main', 'build_parser', 'run_demo']

BASE_CONFIG = 'zoo::cls/shapes_resnet18_cbam.yaml'
DESCRIPTION = """``tools/retrofit_demo.py``: attention added to a pretrained CNN, at demo scale, against plain fine-tuning.

1. pretrains ``--model`` (default resnet18, no attention) on the generated shapes set (seed 0),
2. fine-tunes it on a new shapes set (seed 1) twice, from the same pretrained checkpoint, same data, epochs and
   schedule (``--set`` changes all three runs): (a) with ``add_attention`` ``--attention`` gates (the gates at
   ``gate_lr_mult`` x lr), (b) as it is,
3. reports the pretrained model's top-1 on the new validation split, the largest logit difference between the
   pretrained and the retrofitted model before the first step, both fine-tuned top-1s (last epoch and best), and that
   the retrofitted checkpoint reloads through zoo-eval's path with the same top-1 (``results.json``).

The training config is ``zoo::cls/shapes_resnet18_cbam.yaml`` (data, augmentation, optimiser) at ``--img-size``
(32 px: the images are generated at that size), batch 16, with the overrides below. Exits non-zero if the
retrofitted model's step-0 logits differ by more than 1e-5 or its reload differs (by more than one image).

    python tools/retrofit_demo.py                       # 16 min on 2 busy CPU cores (numbers: docs/training.md)
    python tools/retrofit_demo.py --attention triplet --finetune-epochs 5
"""


def build_parser() -> ArgumentParser:
    p = ArgumentParser(prog='retrofit_demo', description=DESCRIPTION)
    p.add_argument('--model', default='resnet18', help='a timm CNN with attention slots (ResNet, EfficientNet, ...)')
    p.add_argument('--attention', default='cbam', choices=('cbam', 'triplet'))
    p.add_argument('--img-size', type=int, default=32, help='shapes image size = input size (pixels)')
    p.add_argument('--pretrain-epochs', type=int, default=5)
    p.add_argument('--pretrain-images', type=int, default=2000, help='shapes training images (seed 0)')
    p.add_argument('--finetune-epochs', type=int, default=3)
    p.add_argument('--finetune-images', type=int, default=600, help='shapes training images (seed 1)')
    p.add_argument('--val-images', type=int, default=300)
    p.add_argument('--output', default=os.path.join('output', 'retrofit_demo'),
                   help='demo folder (a previous demo folder there is replaced)')
    p.add_argument('--data-dir', default='', help='where the two shapes sets are generated (default: the cache)')
    p.add_argument('--threads', type=int, default=0, help='torch threads (default: all cores)')
    p.add_argument('--set', nargs='*', default=[], metavar='KEY=VALUE',
                   help='config overrides for all three runs (e.g. batch_size=16)')
    add_quiet_argument(p)
    return p


def _table(rows: List[List[Any]]) -> str:
    widths = [max(len(str(r[i])) for r in rows) for i in range(len(rows[0]))]
    lines = ['| ' + ' | '.join(str(c).ljust(w) for c, w in zip(rows[0], widths)) + ' |',
             '|' + '|'.join('-' * (w + 2) for w in widths) + '|']
    return '\n'.join(lines + ['| ' + ' | '.join(str(c).ljust(w) for c, w in zip(r, widths)) + ' |' for r in rows[1:]])


def _stop_unless_ok(res: Dict[str, Any], what: str) -> None:
    """Ends the demo with the run's message: exit 128 + the signal when a signal stopped it, else 1."""
    if res['status'] != 'ok':
        print(f'{what} stopped: {res["message"]}', flush=True)
        raise SystemExit(128 + res['signal'] if res['status'] == 'interrupted' else 1)


def _fresh_output(path: str) -> Path:
    out = Path(path)
    if out.exists():
        if any(out.iterdir()) and not (out / 'results.json').exists():
            raise FileExistsError(f'--output {out} is not empty and not a previous demo folder; choose another')
        shutil.rmtree(out)
    out.mkdir(parents=True)
    return out


def _pretrain(args, overrides: List[str]):
    """Step 1: trains ``args.model`` as it is; returns ``(result, config, last checkpoint)``."""
    from zoo.train import load_config, train
    print(f'[1/3] pretraining {args.model} (no attention): {args.pretrain_images} images, {args.pretrain_epochs} '
          f'epochs', flush=True)
    pre_cfg = load_config(config_path(BASE_CONFIG), overrides + [
        'experiment=pretrain', 'shapes_seed=0', f'shapes_train={args.pretrain_images}',
        f'epochs={args.pretrain_epochs}', *args.set])
    pre = train(pre_cfg)
    _stop_unless_ok(pre, 'pretraining')
    return pre, pre_cfg, Path(pre['output_dir']) / 'last.pth'


def _finetune_both(args, ft: List[str], pre_ckpt: Path):
    """Step 2: fine-tunes with ``args.attention`` added and as it is; returns ``(runs, step-0 logits difference)``."""
    from zoo.train import Trainer, load_config
    from zoo.train.validate import load_model_for_eval
    print(f'\n[2/3] fine-tuning on new data, (a) with {args.attention} added, (b) as it is: {args.finetune_images} '
          f'images, {args.finetune_epochs} epochs each', flush=True)
    runs: Dict[str, Dict[str, Any]] = {}
    step0 = None
    for name, extra in (('retrofit', [f'add_attention={args.attention}']), ('plain', [])):
        trainer = Trainer(load_config(config_path(BASE_CONFIG), ft + extra + [f'experiment={name}'])).setup()
        if name == 'retrofit':
            step0 = _step0_diff(trainer, load_model_for_eval(checkpoint=str(pre_ckpt))[0])
            print(f'      retrofitted model before the first step: max |logits - pretrained logits| = {step0:.3g}',
                  flush=True)
        res = trainer.fit()
        _stop_unless_ok(res, f'fine-tuning ({name})')
        runs[name] = dict(top1=res['final_eval']['top1'], best_top1=res['best_metric'], num_params=res['num_params'],
                          train_time_s=res['train_time_s'], checkpoint=res['checkpoints']['last'])
    return runs, step0


def _print_summary(args, results: Dict[str, Any], summary: Path) -> None:
    before, step0 = results['pretrained_top1_on_new_data'], results['step0_max_abs_logit_diff']
    rows = [['fine-tuning', 'params', 'val top-1 (last)', 'val top-1 (best)', 'train time'],
            *[[f'{args.model} + {args.attention} (add_attention)' if k == 'retrofit' else f'{args.model} as is',
               f'{results[k]["num_params"] / 1e6:.2f}M', f'{results[k]["top1"]:.2f}%',
               f'{results[k]["best_top1"]:.2f}%', f'{results[k]["train_time_s"] / 60:.1f} min'] for k in ('retrofit', 'plain')]]
    print(f'\npretrained {args.model}: {before:.2f}% on the new validation split before fine-tuning; '
          f'step-0 logits difference after add_attention: {step0:.3g}\n')
    print(_table(rows))
    print(f'\nreloaded retrofitted checkpoint: {results["reloaded_retrofit_top1"]:.2f}%; '
          f'total {results["total_time_s"] / 60:.1f} min; summary {summary}')


def run_demo(args) -> Dict[str, Any]:
    """Runs the demo of :data:`DESCRIPTION`; returns (and writes to ``<output>/results.json``) its numbers."""
    import torch

    from zoo.train import eval_config, validate
    out = _fresh_output(args.output)
    data_dir = Path(args.data_dir) if args.data_dir else None
    common = [f'output={out}', 'resume=', 'progress=log', f'model={args.model}', f'shapes_val={args.val_images}',
              f'shapes_size={args.img_size}', f'img_size={args.img_size}', 'batch_size=16']

    def data(name: str) -> List[str]:
        return [f'data_dir={data_dir / name}'] if data_dir else []

    t0 = time.time()
    pre, pre_cfg, pre_ckpt = _pretrain(args, common + data('pretrain'))
    ft = common + data('finetune') + [
        'shapes_seed=1', f'shapes_train={args.finetune_images}', f'epochs={args.finetune_epochs}',
        f'initial_checkpoint={pre_ckpt}', 'lr=3e-4', 'warmup_epochs=0', 'backbone_warmup_epochs=1',
        'gate_lr_mult=10', *args.set]
    before = validate(eval_config(checkpoint=str(pre_ckpt), dataset='shapes', data_dir=str(data_dir / 'finetune')
                                  if data_dir else '', shapes_train=args.finetune_images,
                                  shapes_val=args.val_images, shapes_seed=1, workers=pre_cfg.data.workers))
    runs, step0 = _finetune_both(args, ft, pre_ckpt)

    print('\n[3/3] reloading the retrofitted checkpoint through zoo-eval (the gates are rebuilt from its record)',
          flush=True)
    reloaded = validate(eval_config(checkpoint=runs['retrofit']['checkpoint'], workers=pre_cfg.data.workers))
    results = dict(
        model=args.model, attention=args.attention, pretrain=dict(epochs=args.pretrain_epochs,
                                                                  images=args.pretrain_images, top1=pre['best_metric']),
        finetune=dict(epochs=args.finetune_epochs, images=args.finetune_images, val_images=args.val_images,
                      overrides=ft[len(common):]),
        pretrained_top1_on_new_data=before['top1'], step0_max_abs_logit_diff=step0,
        retrofit=runs['retrofit'], plain=runs['plain'], reloaded_retrofit_top1=reloaded['top1'],
        torch_threads=torch.get_num_threads(), total_time_s=time.time() - t0)
    (out / 'results.json').write_text(json.dumps(results, indent=2, default=str))
    _print_summary(args, results, out / 'results.json')
    return results


def _step0_diff(trainer, pretrained) -> float:
    """Largest |logit difference| between the trainer's (retrofitted) model and the pretrained one, eval mode, on the
    first validation batch (as the trainer feeds it)."""
    import torch
    model = trainer.model
    x = next(iter(trainer.val_loader))[0].to(trainer.dist.device)
    mode = model.training
    model.eval()
    pretrained.to(trainer.dist.device).eval()
    with torch.no_grad():
        diff = float((model(x) - pretrained(x)).abs().max())
    model.train(mode)
    return diff


@command(parser=build_parser)
def main(args) -> int:
    os.environ.setdefault('OMP_WAIT_POLICY', 'PASSIVE')  # see zoo.cli.demo
    import torch
    if args.threads:
        torch.set_num_threads(args.threads)
    import zoo.models  # noqa: F401  (registers the zoo models with timm)
    from zoo.train.utils import setup_logging
    setup_logging()
    res = run_demo(args)
    # the reload evaluates in batches of another size: at most one image may flip
    same = abs(res['reloaded_retrofit_top1'] - res['retrofit']['top1']) <= 100.0 / args.val_images + 1e-9
    ok = res['step0_max_abs_logit_diff'] <= 1e-5 and same
    if not ok:
        print(f'FAILED: step-0 logits difference {res["step0_max_abs_logit_diff"]} (> 1e-5) or the reloaded top-1 '
              f'{res["reloaded_retrofit_top1"]} differs from {res["retrofit"]["top1"]}')
    return 0 if ok else 1
