#!/usr/bin/env python
"""Train an image classifier (any timm or zoo model) -- or dispatch a detection/segmentation config.

Classification:
    python tools/train.py --config configs/cls/shapes_resnet18_cbam.yaml [--epochs 5] [--set lr=1e-3 ...]
    python tools/train.py --model zoo_resnet18_cbam --pretrained --dataset folder --data-dir ~/data/flowers
    python tools/train.py --config ... --resume output/train/<run>/last.pth      # continue exactly
    torchrun --nproc_per_node=2 tools/train.py --config ...                      # DDP (gloo on CPU, nccl on GPU)
Every config field (see zoo/train/config.py or --help) is also a flag; --set key=value takes YAML values.

Detection / segmentation (mmengine): ``python tools/train.py configs/det/<file>.py [mmengine args]`` runs
``zoo.mm.runner.main_train``.

Exit status: 0 done (or stopped by stop_after_epochs), 2 the loss became NaN/inf (the last good checkpoint is kept),
1 any other error.
"""
import argparse
import os
import sys


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0].endswith('.py') and not argv[0].startswith('-'):
        from zoo.mm.runner import main_train  # detection / segmentation (mmengine); imported only here
        rc = main_train(argv)
        return int(rc or 0)

    os.environ.setdefault('HF_HUB_DISABLE_PROGRESS_BARS', '1')
    import zoo  # noqa: F401  (registers the zoo models with timm)
    from zoo.train import add_config_args, config_from_args, train
    from zoo.train.config import ConfigError

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_config_args(parser)
    args = parser.parse_args(argv)
    try:
        cfg = config_from_args(args)
    except ConfigError as e:
        parser.error(str(e))
    results = train(cfg)
    if results['status'] == 'non_finite_loss':
        return 2
    if results['status'] == 'ok' and results.get('best_metric') is not None:
        print(f'best {cfg["eval_metric"]} {results["best_metric"]:.3f} at epoch {results["best_epoch"]}; '
              f'results in {results["output_dir"]}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
