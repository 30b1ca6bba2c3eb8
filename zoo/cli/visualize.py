"""``zoo-visualize`` / ``tools/visualize.py``: one PNG of what each attention layer of a model computes on
one image, plus a Grad-CAM view (``--help`` is :data:`DESCRIPTION`)."""
import argparse
import sys

from . import ArgumentParser, add_quiet_argument, command

DESCRIPTION = """\
``tools/visualize.py``: what each attention layer of a model computes on one image, stage by stage, plus a
Grad-CAM view (grad-cam library) -- one PNG.

    python tools/visualize.py zoo_biformer_tiny --out biformer_maps.png
    python tools/visualize.py zoo_resnet50_cbam --pretrained --image cat.jpg --out cbam.png
    python tools/visualize.py zoo_overlock_xt --checkpoint output/train/<run>/best.pth --image x.png --out ol.png

Maps (forward hooks on the real modules): CBAM channel and spatial gates; the three triplet-attention branch
gates; BiFormer's routed regions of the centre query region and its centre token's attention; HaloNet's halo
attention of the centre query block; CoaT's factorized-attention key softmax and conv position encodings; the LKCA
kernel; the Residual Attention soft masks; OverLoCK's context-guided dynamic kernels. Without --image the input is
a generated shapes scene (zoo.data.shapes).
"""

__all__ = ['main', 'build_parser']


def build_parser() -> ArgumentParser:
    p = ArgumentParser(prog='zoo-visualize', description=DESCRIPTION)
    p.add_argument('model', help='zoo model name')
    p.add_argument('--image', default=None, help='input image (default: a generated shapes scene)')
    w = p.add_mutually_exclusive_group()
    w.add_argument('--pretrained', action='store_true', help='load the default pretrained weights')
    w.add_argument('--checkpoint', default=None, help='weights: a tools/train.py, timm or official checkpoint')
    p.add_argument('--out', required=True, help='output PNG')
    p.add_argument('--size', nargs=2, type=int, metavar=('H', 'W'), default=None,
                   help="input size (default: the model's pretrained_cfg input size)")
    p.add_argument('--target', type=int, default=None, help='Grad-CAM class (default: the top-1 class)')
    p.add_argument('--no-cam', dest='cam', action='store_false', help='skip the Grad-CAM panel')
    p.add_argument('--all-blocks', action='store_true', help='every block, not only the last block of each stage')
    p.add_argument('--seed', type=int, default=0, help='seed of the generated image (and of a random init)')
    add_quiet_argument(p)
    return p


@command(parser=build_parser)
def main(args: argparse.Namespace) -> int:
    if not args.out.lower().endswith('.png'):
        raise SystemExit(build_parser().error('--out must be a .png file'))
    from ..errors import UserError
    from ..export import build_model
    from ..viz import collect_maps, grad_cam, load_image, plot_maps
    import torch
    torch.manual_seed(args.seed)  # a randomly initialised model (no weights given) is the same on every run
    model = build_model(args.model, pretrained=args.pretrained, checkpoint=args.checkpoint)
    x = load_image(args.image, model, size=tuple(args.size) if args.size else None, seed=args.seed)
    maps = collect_maps(model, x, last_per_stage=not args.all_blocks)
    if not maps:
        raise UserError(f'{args.model}: no attention module of a known family found '
                        f'(looked for: {", ".join(sorted(__import__("zoo.viz", fromlist=["x"]).FAMILY_CLASSES))})')
    cam = grad_cam(model, x, args.target) if args.cam else None
    out = plot_maps(x, maps, args.out, cam=cam, title=args.model)
    print(f'{len(maps)} maps from {len({m.module for m in maps})} modules -> {out}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
