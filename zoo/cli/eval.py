"""Evaluate an image classifier on a dataset: top-1, top-5, loss, per-class accuracy, images/s -> JSON.

    python tools/eval.py --checkpoint output/train/<run>/best.pth                # model + data from the run
    python tools/eval.py --model zoo_resnet18_cbam --pretrained --data-dir ~/imagenet --split val
    python tools/eval.py --model local-dir:output/demo/export --pretrained --img-size 80 --crop-pct 1.0
    python tools/eval.py --model hf-hub:org/zoo_resnet18_cbam.in1k --pretrained --dataset list --list val.csv

The model, data and preprocessing flags are the training config fields of tools/train.py (same names, same timm
spellings: -m, -b, -j, --img-size, --input-size, ...); unset, they come from the checkpoint's training run or the
model's pretrained cfg. timm validate.py names: --checkpoint, --use-ema, --results-file, --split.

Detection / segmentation: ``python tools/eval.py configs/det/<file>.py <checkpoint> [mmengine args]`` runs
``zoo.mm.runner.main_eval``.
"""
import argparse
import json
import sys
from pathlib import Path
from typing import Optional

from . import ArgumentParser, command

__all__ = ['main', 'build_parser', 'EVAL_FIELDS']

# the training config fields that mean the same for evaluation
EVAL_FIELDS = (
    'model', 'pretrained', 'num_classes', 'model_kwargs', 'dataset', 'data_dir', 'class_names', 'shapes_val',
    'shapes_size', 'shapes_seed', 'corrupt', 'workers', 'img_size', 'input_size', 'crop_pct', 'crop_mode',
    'interpolation', 'mean', 'std', 'batch_size', 'amp', 'amp_dtype', 'channels_last', 'torchcompile', 'device')
_DEFAULTS = dict(model=None, dataset=None, data_dir='', batch_size=128, workers=2, shapes_val=None, shapes_size=None,
                 shapes_seed=None, interpolation=None)
_HELPS = dict(
    model='model name, hf-hub:<repo> or local-dir:<folder> (default: the arch recorded in --checkpoint)',
    dataset="'shapes', 'folder' or 'list' (default: the checkpoint's training dataset, else shapes; a --data-dir "
            "that is an image folder is evaluated as one)",
    data_dir='folder dataset root (data_dir/<split>/<class>/..., or data_dir/<class>/...), list root, or the shapes '
             'cache folder',
    img_size='test-time resolution: S or H W (default: the run / model pretrained cfg)',
    num_classes='class count (default: from the checkpoint)', class_names='class list (default: from the checkpoint)')


def build_parser() -> ArgumentParser:
    from zoo.train.config import add_config_args
    p = ArgumentParser(description=__doc__)
    groups = add_config_args(p, EVAL_FIELDS, config_file=False, defaults=_DEFAULTS, helps=_HELPS,
                             nargs={'img_size': '+'})
    g = groups['model']
    g.add_argument('--checkpoint', default=None, help='weights: a tools/train.py checkpoint, timm checkpoint or '
                                                      '.safetensors')
    g.add_argument('--use-ema', dest='use_ema', action='store_true', default=True,
                   help='from a checkpoint with EMA weights, evaluate those (the default)')
    g.add_argument('--no-ema', '--no-use-ema', dest='use_ema', action='store_false',
                   help='from a checkpoint with EMA weights, evaluate the raw weights')
    g = groups['data']
    g.add_argument('--split', default='val', help='folder under --data-dir ("" for data_dir/<class>/...)')
    g.add_argument('--list', dest='list_file', default='', help='CSV/JSON list of path,label')
    g.add_argument('--use-test-size', action='store_true', help="the pretrained cfg's test_input_size")
    g = groups['output']
    g.add_argument('--output', '--results-file', dest='output', default='',
                   help='write the results JSON here (default: print only)')
    g.add_argument('--no-progress', dest='progress', action='store_false', help='no progress bar')
    g.add_argument('-q', '--quiet', action='store_true', help='no progress bars (evaluation and Hub downloads)')
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


@command(parser=build_parser, mm_main='main_eval')  # a .py config: detection / segmentation (mmengine)
def main(args: argparse.Namespace) -> int:
    import zoo  # noqa: F401  (registers the zoo models with timm)
    from zoo.train import validate
    from zoo.train.config import check_values, given_fields
    from zoo.train.utils import setup_logging
    given = given_fields(args)
    img_size = _img_size(given)
    given = check_values({k: v for k, v in given.items() if k not in ('img_size', 'input_size')})
    setup_logging()
    if not (args.checkpoint or given.get('pretrained')):
        build_parser().error('give --checkpoint and/or --pretrained')
    if args.checkpoint and not Path(args.checkpoint).expanduser().is_file():
        raise FileNotFoundError(f'checkpoint {args.checkpoint} does not exist')
    g = lambda k: given.get(k, _DEFAULTS.get(k))  # noqa: E731
    shapes = {k: given[f] for k, f in (('size', 'shapes_size'), ('n_val', 'shapes_val'), ('seed', 'shapes_seed'))
              if given.get(f) is not None}
    res = validate(g('model'), args.checkpoint, pretrained=bool(given.get('pretrained')), use_ema=args.use_ema,
                   dataset=g('dataset'), data_dir=g('data_dir') or '', split=args.split, list_file=args.list_file,
                   class_names=g('class_names'), shapes=shapes or None, img_size=img_size, crop_pct=g('crop_pct'),
                   crop_mode=g('crop_mode'), interpolation=g('interpolation'), mean=g('mean'), std=g('std'),
                   use_test_size=args.use_test_size, batch_size=g('batch_size'), workers=g('workers'),
                   amp=given.get('amp') or False, amp_dtype=given.get('amp_dtype') or '',
                   channels_last=bool(given.get('channels_last')), device=given.get('device') or '',
                   corrupt=given.get('corrupt') or 'skip', num_classes=g('num_classes'),
                   model_kwargs=given.get('model_kwargs') or {}, torchcompile=given.get('torchcompile'),
                   progress=args.progress and not args.quiet and sys.stderr.isatty())
    print(f'{res["model"]}: top1 {res["top1"]:.2f}  top5 {res["top5"]:.2f}  loss {res["loss"]:.4f}  '
          f'{res["n_images"]} images  {res["images_per_s"]:.1f} img/s  (input {res["img_size"]}, crop_pct '
          f'{res["crop_pct"]}, {res["interpolation"]})')
    for name, acc in res['per_class_top1'].items():
        print(f'  {name:>20s}: {acc if acc is None else round(acc, 2)}  ({res["per_class_count"][name]} images)')
    if args.output:
        from zoo.train.utils import atomic_write_text
        atomic_write_text(args.output, json.dumps(res, indent=2, default=str))
        print(f'wrote {args.output}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
