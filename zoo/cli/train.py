"""``zoo-train`` / ``tools/train.py``: train an image classifier, or dispatch a detection / segmentation config
to :mod:`zoo.cli.mm` (``--help`` is :data:`DESCRIPTION`)."""
import argparse
import sys
from pathlib import Path
from typing import Optional

from . import ArgumentParser, command

DESCRIPTION = """\
Train an image classifier (any timm or zoo model) -- or dispatch a detection/segmentation config.

Classification:
    python tools/train.py --config configs/cls/shapes_resnet18_cbam.yaml [--epochs 5] [--set lr=1e-3 ...]
    python tools/train.py --model zoo_resnet18_cbam --pretrained --data-dir ~/data/flowers   # an ImageFolder tree
    python tools/train.py ~/data/flowers --model zoo_resnet18_cbam -b 64 --drop-path 0.1 --torchcompile  # timm style
    python tools/train.py --config ... --resume output/train/<run>/last.pth      # continue exactly
    torchrun --nproc_per_node=2 tools/train.py --config ...                      # DDP (gloo on CPU, nccl on GPU)

Every config field (zoo/train/config.py) is also a flag, written with '-' for '_' (--drop-path-rate), and timm's
train.py spellings work too (-b, -j, --drop, --drop-path, -vb, --pin-mem, --torchcompile [backend], ...);
--set key=value takes YAML values. A --data-dir holding train/ and val/ class folders (or class folders directly)
is trained on as it is; without one, the generated shapes dataset is used.

Detection / segmentation (mmengine): ``python tools/train.py configs/det/<file>.py [mmengine args]`` runs
``zoo.cli.mm.main_train``.

Exit status: 0 done (or stopped by stop_after_epochs); 2 a mistake in the command (one line 'error: ...'), a full
disk (the earlier files are kept) or the loss became NaN/inf (the last good checkpoint is kept); 128 + the signal's
number (143 SIGTERM, 130 SIGINT) when a signal stopped the run, after writing a checkpoint at that step that
--resume continues exactly; 1 anything else.
"""

__all__ = ['main', 'build_parser']


class _DataDir(argparse.Action):
    """timm's positional dataset folder: the same as --data-dir."""

    def __call__(self, parser, namespace, values, option_string=None):
        if values is None or values is argparse.SUPPRESS:
            return
        items = getattr(namespace, '_overrides', None) or []
        items.append(('data_dir', values))
        namespace._overrides = items


def build_parser() -> ArgumentParser:
    from zoo.train.config import add_config_args
    p = ArgumentParser(description=DESCRIPTION)
    groups = add_config_args(p)
    groups['data'].add_argument('data', nargs='?', action=_DataDir, default=argparse.SUPPRESS, metavar='DIR',
                                help='dataset folder, as --data-dir (timm train.py style)')
    groups['output'].add_argument('-q', '--quiet', action='store_true',
                                  help='no progress bars (training, evaluation and Hub downloads); log lines only')
    return p


def _config_file(path: Optional[str]) -> Optional[str]:
    """``--config``: a file, or a packaged config name (``zoo::cls/<file>.yaml``) where zoo.cli resolves them."""
    if not path:
        return path
    try:
        from ..configs import config_path
    except ImportError:
        return path
    return config_path(path)


def _check_data_dir(cfg, args, config_file: Optional[str]) -> None:
    """A --data-dir that does not exist is a mistake (a typo in the path of one's images), unless the shapes
    dataset was asked for by name: then it is where the generated set goes."""
    if cfg.data.dataset != 'shapes' or not cfg.data.data_dir or Path(cfg.data.data_dir).expanduser().exists():
        return
    import yaml
    from zoo.data.datasets import DatasetError
    from zoo.train.config import given_fields
    named = 'dataset' in given_fields(args)
    if config_file and not named:
        named = 'dataset' in (yaml.safe_load(Path(config_file).read_text()) or {})
    if not named:
        raise DatasetError(f'data folder {cfg.data.data_dir} does not exist (to generate the shapes dataset there, '
                           f'add --dataset shapes)')


@command(parser=build_parser, mm_main='main_train')  # a .py config: detection / segmentation (mmengine)
def main(args: argparse.Namespace) -> int:
    import zoo.models  # noqa: F401  (registers the zoo models with timm)
    from zoo.train import load_config, train
    config_file = _config_file(args.config)
    cfg = load_config(config_file, getattr(args, '_overrides', None) or [])
    _check_data_dir(cfg, args, config_file)
    if args.quiet:
        cfg.output.progress = 'log'
    results = train(cfg)
    if results['status'] == 'non_finite_loss':
        return 2
    if results['status'] == 'interrupted':
        return 128 + results['signal']
    if results['status'] == 'ok' and results.get('best_metric') is not None:
        print(f'best {cfg.output.eval_metric} {results["best_metric"]:.3f} at epoch {results["best_epoch"]}; '
              f'results in {results["output_dir"]}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
