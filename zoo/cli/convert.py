"""``zoo-convert`` / ``tools/convert.py``: convert a checkpoint into the zoo and Hub layouts, or an authors'
detector / segmenter into the zoo's mmdet 3 / mmseg 1 model (``--help``; docs/cli.md)."""
import sys
from pathlib import Path
from typing import List

from . import ArgumentParser, command

DESCRIPTION = """\
``zoo-convert`` / ``tools/convert.py``: convert a checkpoint you already have into the zoo layout and timm's Hub
layout, or the authors' detector / segmenter into the zoo's mmdet 3 / mmseg 1 model."""


def _dense(args, ap) -> int:
    from ..mm import convert as mmconvert
    entry = mmconvert.dense_entry(args.model) if args.model else None
    if not (entry or args.config):
        ap.error('--config (or --model naming a det / seg manifest entry) is required with --layout / --image')
    if args.model and entry is None:
        ap.error(f'--model {args.model} is not a det / seg manifest entry (needed with --config / --layout / --image)')
    config = args.config or entry['config']
    layout = args.layout or (entry['layout'] if entry else None)
    if args.checkpoint:
        ckpt = Path(args.checkpoint)
        if not ckpt.is_file():
            raise FileNotFoundError(f'checkpoint not found: {ckpt}')
        if entry:
            from ..checkpoint import ChecksumError, sha256_file
            sha, prefix = sha256_file(ckpt), entry.get('sha256_prefix') or ''
            if not args.no_verify and (not sha.startswith(prefix) or entry.get('sha256') not in (None, sha)):
                raise ChecksumError(f'SHA-256 of {ckpt} is {sha}: not the published {entry["file"]} of {args.model} '
                                    f'(use --no-verify to convert it anyway)')
    elif entry:
        from ..hub import fetch
        ckpt = fetch(args.model, record=args.record).path
    else:
        ap.error('--checkpoint is required with --config')
    out = mmconvert.convert_checkpoint(ckpt, config, args.out, layout=layout)
    print(f'{ckpt.name} -> {out} (mmengine checkpoint for {config})')
    if args.image:
        results = mmconvert.inferencer(config, str(out))(args.image, out_dir=str(Path(args.out).parent / 'vis'))
        print(f'  predictions on {args.image} drawn into {Path(args.out).parent / "vis"} '
              f'({len(results.get("predictions", []))} image)')
    return 0


@command
def main(argv: List[str]) -> int:
    ap = ArgumentParser(prog='zoo-convert', description=DESCRIPTION)
    ap.add_argument('--model', default=None, help='zoo model name, arch or arch.tag (a det / seg tag: see below)')
    ap.add_argument('--checkpoint', default=None, help='checkpoint file (.pth, .pth.tar, .bin, .safetensors)')
    ap.add_argument('--out', required=True, help='output folder (timm Hub layout), or the .pth for det / seg')
    ap.add_argument('--num-classes', type=int, default=None,
                    help='classes of the exported head (default: those of the checkpoint)')
    ap.add_argument('--no-ema', action='store_true', help='use the raw weights even if the checkpoint has EMA ones')
    ap.add_argument('--record', action='store_true', help='write an unknown SHA-256 into weights/manifest.yaml')
    ap.add_argument('--no-verify', action='store_true',
                    help="convert even if the file's SHA-256 differs from the manifest's (a different release)")
    ap.add_argument('--verify', action='store_true', help='reload OUT strictly and compare every tensor')
    ap.add_argument('--config', default=None, help='det / seg: the zoo config (file or zoo::name; default: the tag\'s)')
    ap.add_argument('--layout', default=None, help="det / seg: the checkpoint's layout, mmdet2 or mmseg0 "
                                                   '(default: the tag\'s, else read from its meta)')
    ap.add_argument('--image', default=None, help='det / seg: run the converted model on this image')
    args = ap.parse_args(argv)
    from .. import hub, manifest
    if args.config or args.layout or args.image or (manifest.entry(args.model or '') or {}).get('task') in (
            manifest.DENSE_TASKS):
        return _dense(args, ap)
    if not args.model or not args.checkpoint:
        ap.error('--model and --checkpoint are required')
    from ..errors import check_model_name
    check_model_name(args.model)
    ckpt = Path(args.checkpoint)
    if not ckpt.is_file():
        raise FileNotFoundError(f'checkpoint not found: {ckpt}')
    hub.check_sha256(args.model, ckpt, record=args.record, allow_mismatch=args.no_verify)
    model = hub.convert(args.model, ckpt, num_classes=args.num_classes, use_ema=not args.no_ema)
    tag = args.model.partition('.')[2] or None
    entry = manifest.entry(args.model) if tag else None
    out = hub.export(model, args.out, tag=tag, cfg=hub.publish_cfg(entry) if entry else None)
    n = sum(p.numel() for p in model.parameters())
    print(f"{args.model}: {n / 1e6:.2f}M params, {model.num_classes} classes -> {out}\n"
          f"  load: import zoo; timm.create_model('local-dir:{out}', pretrained=True)")
    if args.verify:
        print(f'  verified: reloads strictly, all {hub.verify_export(out, model)} tensors equal')
    return 0


if __name__ == '__main__':
    sys.exit(main())
