"""``zoo-export`` / ``tools/export.py``: export a model to ONNX, torch.export or TorchScript and verify it in
its runtime against the eager logits (``--help`` is :data:`DESCRIPTION`)."""
import argparse
import sys

from . import ArgumentParser, add_quiet_argument, command

DESCRIPTION = """\
``zoo-export`` / ``tools/export.py``: export a model to ONNX, torch.export or TorchScript and verify it in the
runtime that will run it (onnxruntime, ``torch.export.load(...).module()``, ``torch.jit.load``) against the eager
fp32 logits on random inputs.

    python tools/export.py zoo_resnet18_cbam --format onnx --input-size 3 224 224 --out r18_cbam.onnx --dynamic
    python tools/export.py zoo_coat_lite_tiny --format torch.export --input-size 3 224 224 --out coat.pt2 --pretrained
    python tools/export.py zoo_biformer_tiny --format torchscript --input-size 3 224 224 --out bf.pt \\
        --checkpoint output/train/<run>/best.pth

``--dynamic`` makes batch, height and width dynamic and verifies at a second input size too (H + r, W + 2r, r the
model's largest stride); an architecture whose export fixes the size fails with ``error: ...``. BiFormer and HaloNet
export with a dynamic height/width when traced at a size where each attention stage has at least two regions /
blocks per side (the default 224 / 256 px do):

    python tools/export.py zoo_biformer_tiny --format torch.export --input-size 3 224 224 --dynamic --out bf.pt2 Nothing is written
to --out unless the artifact verified (max abs diff <= --atol, default 1e-4).
"""

__all__ = ['main', 'build_parser']


def build_parser() -> ArgumentParser:
    from ..export import FORMATS
    p = ArgumentParser(prog='zoo-export', description=DESCRIPTION)
    p.add_argument('model', help='model name (zoo_* or any timm model), or with --checkpoint a timm Hub-layout folder')
    p.add_argument('--format', required=True, choices=FORMATS)
    p.add_argument('--input-size', nargs=3, type=int, metavar=('C', 'H', 'W'), default=None,
                   help="input size to trace and verify at (default: the model's pretrained_cfg input_size)")
    p.add_argument('--out', required=True, help='artifact path (.onnx / .pt2 / .pt)')
    p.add_argument('--dynamic', action='store_true', help='dynamic batch, height and width')
    w = p.add_mutually_exclusive_group()
    w.add_argument('--pretrained', action='store_true', help='load the default pretrained weights')
    w.add_argument('--checkpoint', default=None, help='weights: a tools/train.py, timm or official checkpoint')
    p.add_argument('--num-classes', type=int, default=None, help='classifier classes (random init only)')
    p.add_argument('--atol', type=float, default=1e-4, help='max abs difference to eager fp32 logits')
    p.add_argument('--batch', type=int, default=2, help='batch of the traced/verified inputs')
    p.add_argument('--time-limit', type=float, default=1800., help='give up on an export that takes longer (s, 0: '
                   'no limit)')
    add_quiet_argument(p)
    return p


@command(parser=build_parser)
def main(args: argparse.Namespace) -> int:
    from ..export import build_model, export_model
    kw = {} if args.num_classes is None else {'num_classes': args.num_classes}
    model = build_model(args.model, pretrained=args.pretrained, checkpoint=args.checkpoint, **kw)
    size = args.input_size or tuple(model.pretrained_cfg.get('input_size', (3, 224, 224)))
    res = export_model(model, args.format, size, args.out, dynamic=args.dynamic, atol=args.atol, batch=args.batch,
                       time_limit=args.time_limit or None)
    print(res.summary())
    return 0


if __name__ == '__main__':
    sys.exit(main())
