"""``zoo-eval`` / ``tools/eval.py``: evaluate an image classifier -> JSON, or dispatch a detection /
segmentation config to :mod:`zoo.cli.mm` (``--help`` is :data:`DESCRIPTION`)."""
import argparse
import json
import sys
from pathlib import Path
from typing import Optional

from . import ArgumentParser, command

DESCRIPTION = """\
Evaluate an image classifier on a dataset: top-1, top-5, loss, per-class accuracy, images/s -> JSON.

    python tools/eval.py --checkpoint output/train/<run>/best.pth                # model + data from the run
    python tools/eval.py --model zoo_resnet18_cbam --pretrained --data-dir ~/imagenet --split val
    python tools/eval.py --model local-dir:output/demo/export --pretrained --img-size 80 --crop-pct 1.0
    python tools/eval.py --model hf-hub:org/zoo_resnet18_cbam.in1k --pretrained --dataset list --list val.csv

The model, data and preprocessing flags are the training config fields of tools/train.py (same names, same timm
spellings: -m, -b, -j, --img-size, --input-size, ...); unset, they come from the checkpoint's training run or the
model's pretrained cfg. timm validate.py names: --checkpoint, --use-ema, --results-file, --split.

Detection / segmentation: ``python tools/eval.py configs/det/<file>.py <checkpoint> [mmengine args]`` runs
``zoo.cli.mm.main_eval``.
"""

__all__ = ['main', 'build_parser']


def build_parser() -> ArgumentParser:
    from zoo.train.config import add_eval_args
    p = ArgumentParser(description=DESCRIPTION)
    groups = add_eval_args(p)
    groups['output'].add_argument('-q', '--quiet', action='store_true',
                                  help='no progress bars (evaluation and Hub downloads)')
    return p


def _img_size(given) -> Optional[object]:
    from zoo.train.config import ConfigError
    if given.get('input_size'):
        return tuple(given['input_size'][-2:])
    v = given.get('img_size')
    if v is None:
        return None
    v = v if isinstance(v, list) else [v]
    if len(v) not in (1, 2) or not all(isinstance(i, int) and i > 0 for i in v):
        raise ConfigError(f'--img-size takes S or H W (positive integers), got {v}')
    return v[0] if len(v) == 1 else tuple(v)


def _print(res) -> None:
    print(f'{res["model"]}: top1 {res["top1"]:.2f}  top5 {res["top5"]:.2f}  loss {res["loss"]:.4f}  '
          f'{res["n_images"]} images  {res["images_per_s"]:.1f} img/s  (input {res["img_size"]}, crop_pct '
          f'{res["crop_pct"]}, {res["interpolation"]})')
    for name, acc in res['per_class_top1'].items():
        print(f'  {name:>20s}: {acc if acc is None else round(acc, 2)}  ({res["per_class_count"][name]} images)')


@command(parser=build_parser, mm_main='main_eval')  # a .py config: detection / segmentation (mmengine)
def main(args: argparse.Namespace) -> int:
    import zoo.models  # noqa: F401  (registers the zoo models with timm)
    from zoo.train import validate
    from zoo.train.config import eval_config, given_fields
    from zoo.train.utils import setup_logging
    given = given_fields(args)
    img_size = _img_size(given)
    given = {k: v for k, v in given.items() if k not in ('img_size', 'input_size')}
    cfg = eval_config(**given, img_size=img_size, checkpoint=args.checkpoint, use_ema=args.use_ema, split=args.split,
                      list_file=args.list_file, use_test_size=args.use_test_size, output=args.output,
                      progress=args.progress and not args.quiet and sys.stderr.isatty())
    setup_logging()
    if not (args.checkpoint or cfg.model.pretrained):
        build_parser().error('give --checkpoint and/or --pretrained')
    if args.checkpoint and not Path(args.checkpoint).expanduser().is_file():
        raise FileNotFoundError(f'checkpoint {args.checkpoint} does not exist')
    res = validate(cfg)
    _print(res)
    if args.output:
        from zoo.checkpoint import atomic_write_text
        atomic_write_text(args.output, json.dumps(res, indent=2, default=str))
        print(f'wrote {args.output}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
