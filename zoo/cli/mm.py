"""The detection / segmentation tools: ``zoo-train`` / ``zoo-eval`` with a ``.py`` (mmengine) config, mmdet-style::

    tools/train.py CONFIG [--work-dir DIR] [--amp] [--auto-scale-lr] [--resume [CKPT]] [--cfg-options k=v ...]
                          [--launcher none|pytorch|slurm|mpi]
    tools/eval.py  CONFIG CHECKPOINT [--work-dir DIR] [--out preds.pkl] [--cfg-options k=v ...] [--launcher ...]

Multi-process: ``torchrun --nproc_per_node=N tools/train.py CONFIG --launcher pytorch``. The work is done by
:mod:`zoo.mm.runner`; a user mistake prints one ``error: ...`` line and exits with status 2 (:func:`zoo.cli.run`).
"""
import argparse
import json
from typing import List, Optional

from ..errors import UserError
from . import ArgumentParser, run

__all__ = ['train_parser', 'eval_parser', 'run_train', 'run_eval', 'main_train', 'main_eval', 'MissingPackageError']


class MissingPackageError(UserError, ImportError):
    """A package the config needs is not installed (the message says how to install it)."""


class DictAction(argparse.Action):
    """``key=value`` pairs parsed like mmengine's DictAction (imported lazily so --help works without mmengine)."""

    def __call__(self, parser, namespace, values, option_string=None):
        from mmengine.config import DictAction as MMDictAction
        MMDictAction(self.option_strings, self.dest)(parser, namespace, values, option_string)


def train_parser() -> argparse.ArgumentParser:
    p = ArgumentParser(prog='tools/train.py', description='Train an mmdet/mmseg config (mmengine Runner)')
    p.add_argument('config', help='config file (.py), or a packaged config by name: zoo::det/<file>.py')
    p.add_argument('--work-dir', help='folder for logs and checkpoints (default ./work_dirs/<config name>)')
    p.add_argument('--amp', action='store_true', help='automatic mixed precision (AmpOptimWrapper, needs CUDA)')
    p.add_argument('--auto-scale-lr', action='store_true', help='scale the lr by total batch / base_batch_size')
    p.add_argument('--resume', nargs='?', type=str, const='auto',
                   help='resume from CKPT, or from the latest checkpoint in the work dir when no CKPT is given')
    p.add_argument('--cfg-options', nargs='+', action=DictAction, default={},
                   help='override config entries, e.g. model.backbone.drop_path_rate=0.2 train_dataloader.batch_size=4')
    p.add_argument('--launcher', choices=['none', 'pytorch', 'slurm', 'mpi'], default='none')
    p.add_argument('--local_rank', '--local-rank', type=int, default=0)
    return p


def eval_parser() -> argparse.ArgumentParser:
    p = ArgumentParser(prog='tools/eval.py', description='Evaluate an mmdet/mmseg checkpoint (mmengine Runner)')
    p.add_argument('config', help='config file (.py), or a packaged config by name: zoo::seg/<file>.py')
    p.add_argument('checkpoint', help='checkpoint file (.pth) written by tools/train.py, or a det / seg manifest tag '
                   '(the authors\' file, downloaded and converted once)')
    p.add_argument('--work-dir', help='folder for the evaluation log and metrics.json')
    p.add_argument('--out', help='also dump the raw predictions to this .pkl file')
    p.add_argument('--cfg-options', nargs='+', action=DictAction, default={})
    p.add_argument('--launcher', choices=['none', 'pytorch', 'slurm', 'mpi'], default='none')
    p.add_argument('--local_rank', '--local-rank', type=int, default=0)
    return p


def _user_errors(fn, *args, **kwargs):
    """Run ``fn(*args, **kwargs)``; a missing package (``zoo.mm.require``) becomes a user error like a bad config."""
    try:
        return fn(*args, **kwargs)
    except ImportError as e:
        if isinstance(e, UserError) or not str(e).startswith('zoo.mm: missing package'):
            raise
        raise MissingPackageError(str(e)) from None


def run_train(argv: Optional[List[str]] = None):
    """Train the config ``argv`` names; returns the mmengine Runner after ``runner.train()``."""
    a = train_parser().parse_args(argv)
    from zoo.mm import runner
    return _user_errors(runner.run_train, a.config, work_dir=a.work_dir, cfg_options=a.cfg_options, amp=a.amp,
                        auto_scale_lr=a.auto_scale_lr, resume=a.resume, launcher=a.launcher, local_rank=a.local_rank)


def run_eval(argv: Optional[List[str]] = None) -> dict:
    """Evaluate the checkpoint ``argv`` names; returns the metrics (also written to work_dir/metrics.json)."""
    a = eval_parser().parse_args(argv)
    from zoo.mm import runner
    return _user_errors(runner.run_eval, a.config, a.checkpoint, work_dir=a.work_dir, out=a.out,
                        cfg_options=a.cfg_options, launcher=a.launcher, local_rank=a.local_rank)


def _main_train(argv: List[str]) -> int:
    run_train(argv)
    return 0


def _main_eval(argv: List[str]) -> int:
    print(json.dumps(run_eval(argv), indent=2, default=str))
    return 0


def main_train(argv: Optional[List[str]] = None) -> int:
    """CLI entry (``tools/train.py CONFIG ...``); returns the exit code: 0, or 2 with one ``error: ...`` line for a
    user mistake (bad config, missing file or package, existing checkpoints without --resume)."""
    return run(_main_train, argv)


def main_eval(argv: Optional[List[str]] = None) -> int:
    """CLI entry (``tools/eval.py CONFIG CHECKPOINT ...``); prints the metrics, returns the exit code (0 or 2)."""
    return run(_main_eval, argv)


if __name__ == '__main__':  # python -m zoo.cli.mm {train,eval} ...
    import sys
    if len(sys.argv) < 2 or sys.argv[1] not in ('train', 'eval'):
        print('error: usage: python -m zoo.cli.mm {train,eval} CONFIG ...', file=sys.stderr)
        sys.exit(2)
    sys.exit(main_train(sys.argv[2:]) if sys.argv[1] == 'train' else main_eval(sys.argv[2:]))
