#!/usr/bin/env python
"""Convert a checkpoint you already have into the zoo layout and timm's Hub layout.

    python tools/convert.py --model zoo_resnet50_cbam.in1k --checkpoint RESNET50_CBAM_new_name_wrap.pth.tar --out out/
    python tools/convert.py --model zoo_resnet18_cbam --checkpoint output/train/model_best.pth.tar --out out/

For official files fetched by hand (the Google Drive weights of CBAM and triplet attention, ...): name the
manifest tag (arch.tag) and the file's SHA-256 is checked against the manifest (printed and, with --record,
written into the manifest when the entry has none). The checkpoint is loaded safely (safetensors or
torch.load(weights_only=True); files that would run pickled code are refused), converted by the model's
checkpoint filter, loaded strictly, and written to OUT as model.safetensors + config.json + README.md.
Load the result with `import zoo; timm.create_model('local-dir:OUT', pretrained=True)`; publish it with
tools/push_to_hub.py NAME --checkpoint OUT --repo ORG/NAME.TAG.
"""
import argparse
import sys
from pathlib import Path

try:
    import zoo  # noqa: F401
except ImportError:  # running from a checkout that is not installed
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    import zoo  # noqa: F401
from zoo import _manifest, hub


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    ap.add_argument('--model', required=True, help='zoo model name, arch or arch.tag')
    ap.add_argument('--checkpoint', required=True, help='checkpoint file (.pth, .pth.tar, .bin, .safetensors)')
    ap.add_argument('--out', required=True, help='output folder (timm Hub layout)')
    ap.add_argument('--num-classes', type=int, default=None,
                    help='classes of the exported head (default: those of the checkpoint)')
    ap.add_argument('--no-ema', action='store_true', help='use the raw weights even if the checkpoint has EMA ones')
    ap.add_argument('--record', action='store_true', help='write an unknown SHA-256 into weights/manifest.yaml')
    ap.add_argument('--no-verify', action='store_true',
                    help="convert even if the file's SHA-256 differs from the manifest's (a different release)")
    args = ap.parse_args(argv)
    ckpt = Path(args.checkpoint)
    entry = _manifest.entry(args.model) if '.' in args.model else None
    try:
        sha = hub.sha256_file(ckpt)
        if entry is not None and entry.get('source') in ('url', 'manual'):
            expected = entry.get('sha256')
            if expected is None:
                if args.record:
                    path = _manifest.record_sha256(args.model, sha)
                    print(f'NOTE: the manifest had no SHA-256 for {args.model}; recorded {sha} in {path}. '
                          f'Check the file is the official {entry.get("file")} before committing it.', file=sys.stderr)
                else:
                    print(f'NOTE: the manifest has no SHA-256 for {args.model}, so {ckpt.name} could not be verified.\n'
                          f'  sha256: {sha}\n  run again with --record to write it into {_manifest.manifest_path()}.',
                          file=sys.stderr)
            elif sha != expected:
                msg = (f'SHA-256 of {ckpt} is {sha}, but the manifest lists {expected} for the official '
                       f'{entry.get("file")} of {args.model}')
                if not args.no_verify:
                    raise hub.ChecksumError(msg + ' (use --no-verify to convert it anyway)')
                print(f'WARNING: {msg}', file=sys.stderr)
            else:
                print(f'{ckpt.name}: SHA-256 matches the manifest', file=sys.stderr)
        model = hub.convert(args.model, ckpt, num_classes=args.num_classes, use_ema=not args.no_ema)
        tag = args.model.partition('.')[2] or None
        out = hub.export(model, args.out, tag=tag)
    except (OSError, RuntimeError, ValueError) as e:  # CheckpointError is a ValueError
        print(f'error: {type(e).__name__}: {e}', file=sys.stderr)
        return 1
    n = sum(p.numel() for p in model.parameters())
    print(f"{args.model}: {n / 1e6:.2f}M params, {model.num_classes} classes -> {out}\n"
          f"  load: import zoo; timm.create_model('local-dir:{out}', pretrained=True)")
    return 0


if __name__ == '__main__':
    sys.exit(main())
