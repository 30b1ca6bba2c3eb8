#!/usr/bin/env python
"""Evaluate an image classifier on a dataset: top-1, top-5, loss, per-class accuracy, images/s -> JSON.

    python tools/eval.py --checkpoint output/train/<run>/best.pth                # model + data from the run
    python tools/eval.py --model zoo_resnet18_cbam --pretrained --dataset folder --data-dir ~/imagenet --split val
    python tools/eval.py --model local-dir:output/demo/export --pretrained --img-size 80 --crop-pct 1.0
    python tools/eval.py --model hf-hub:org/zoo_resnet18_cbam.in1k --pretrained --dataset list --list val.csv

Detection / segmentation: ``python tools/eval.py configs/det/<file>.py <checkpoint> [mmengine args]`` runs
``zoo.mm.runner.main_eval``.
"""
import argparse
import json
import os
import sys
from pathlib import Path


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    g = p.add_argument_group('model')
    g.add_argument('--model', default=None, help='model name, hf-hub:<repo> or local-dir:<folder> '
                                                 '(default: the arch recorded in --checkpoint)')
    g.add_argument('--checkpoint', default=None, help='weights: a tools/train.py checkpoint, timm checkpoint or '
                                                      '.safetensors')
    g.add_argument('--pretrained', action='store_true', help="use the model's pretrained weights")
    g.add_argument('--no-ema', dest='use_ema', action='store_false', help='from a checkpoint with EMA weights, '
                                                                         'evaluate the raw weights')
    g.add_argument('--num-classes', type=int, default=None)
    g.add_argument('--model-kwargs', nargs='*', default=[], metavar='K=V')
    g = p.add_argument_group('data')
    g.add_argument('--dataset', default=None, choices=['shapes', 'folder', 'list'],
                   help="default: the checkpoint's training dataset, else 'shapes'")
    g.add_argument('--data-dir', default='', help='folder dataset root (data_dir/<split>/<class>/...), list root, '
                                                  'or the shapes cache folder')
    g.add_argument('--split', default='val', help='folder under --data-dir ("" for data_dir/<class>/...)')
    g.add_argument('--list', dest='list_file', default='', help='CSV/JSON list of path,label')
    g.add_argument('--class-names', nargs='+', default=None, help='class list (default: from the checkpoint)')
    g.add_argument('--shapes-size', type=int, default=None)
    g.add_argument('--shapes-val', type=int, default=None)
    g.add_argument('--shapes-seed', type=int, default=None)
    g.add_argument('--corrupt', default='skip', choices=['skip', 'error'])
    g = p.add_argument_group('preprocessing (default: the run / model pretrained cfg)')
    g.add_argument('--img-size', type=int, nargs='+', default=None, help='test-time resolution: S or H W')
    g.add_argument('--crop-pct', type=float, default=None)
    g.add_argument('--crop-mode', default=None, choices=['center', 'squash', 'border'])
    g.add_argument('--interpolation', default=None)
    g.add_argument('--mean', type=float, nargs=3, default=None)
    g.add_argument('--std', type=float, nargs=3, default=None)
    g.add_argument('--use-test-size', action='store_true', help="the pretrained cfg's test_input_size")
    g = p.add_argument_group('runtime')
    g.add_argument('-b', '--batch-size', type=int, default=128)
    g.add_argument('-j', '--workers', type=int, default=2)
    g.add_argument('--amp', action='store_true')
    g.add_argument('--amp-dtype', default='', choices=['', 'bfloat16', 'float16'])
    g.add_argument('--channels-last', action='store_true')
    g.add_argument('--device', default='')
    g.add_argument('--output', default='', help='write the results JSON here (default: print only)')
    g.add_argument('--no-progress', dest='progress', action='store_false')
    return p


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0].endswith('.py') and not argv[0].startswith('-'):
        from zoo.mm.runner import main_eval  # detection / segmentation (mmengine); imported only here
        return int(main_eval(argv) or 0)

    os.environ.setdefault('HF_HUB_DISABLE_PROGRESS_BARS', '1')
    args = build_parser().parse_args(argv)
    import zoo  # noqa: F401  (registers the zoo models with timm)
    from zoo.train import validate
    from zoo.train.utils import setup_logging
    import yaml
    setup_logging()
    if not (args.checkpoint or args.pretrained):
        build_parser().error('give --checkpoint and/or --pretrained')
    shapes = {k: v for k, v in (('size', args.shapes_size), ('n_val', args.shapes_val), ('seed', args.shapes_seed))
              if v is not None}
    img_size = None
    if args.img_size:
        img_size = args.img_size[0] if len(args.img_size) == 1 else tuple(args.img_size[:2])
    kwargs = {}
    for kv in args.model_kwargs:
        k, v = kv.split('=', 1)
        kwargs[k] = yaml.safe_load(v)
    res = validate(args.model, args.checkpoint, pretrained=args.pretrained, use_ema=args.use_ema,
                   dataset=args.dataset, data_dir=args.data_dir, split=args.split, list_file=args.list_file,
                   class_names=args.class_names, shapes=shapes or None, img_size=img_size, crop_pct=args.crop_pct,
                   crop_mode=args.crop_mode, interpolation=args.interpolation, mean=args.mean, std=args.std,
                   use_test_size=args.use_test_size, batch_size=args.batch_size, workers=args.workers, amp=args.amp,
                   amp_dtype=args.amp_dtype, channels_last=args.channels_last, device=args.device,
                   corrupt=args.corrupt, num_classes=args.num_classes, model_kwargs=kwargs,
                   progress=args.progress and sys.stderr.isatty())
    print(f'{res["model"]}: top1 {res["top1"]:.2f}  top5 {res["top5"]:.2f}  loss {res["loss"]:.4f}  '
          f'{res["n_images"]} images  {res["images_per_s"]:.1f} img/s  (input {res["img_size"]}, crop_pct '
          f'{res["crop_pct"]}, {res["interpolation"]})')
    for name, acc in res['per_class_top1'].items():
        print(f'  {name:>20s}: {acc if acc is None else round(acc, 2)}  ({res["per_class_count"][name]} images)')
    if args.output:
        Path(args.output).parent.mkdir(parents=True, exist_ok=True)
        Path(args.output).write_text(json.dumps(res, indent=2, default=str))
        print(f'wrote {args.output}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
