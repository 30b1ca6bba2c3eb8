"""``zoo-convert`` / ``tools/convert.py``: convert a checkpoint you already have into the zoo layout and timm's Hub
layout.

    python tools/convert.py --model zoo_resnet50_cbam.in1k --checkpoint RESNET50_CBAM_new_name_wrap.pth.tar --out out/
    python tools/convert.py --model zoo_resnet18_cbam --checkpoint output/train/model_best.pth.tar --out out/

For official files fetched by hand (the Google Drive weights of CBAM and triplet attention, ...): name the
manifest tag (arch.tag) and the file's SHA-256 is checked against the manifest (printed and, with --record,
written into the manifest when the entry has none). The checkpoint is loaded safely (safetensors or
torch.load(weights_only=True); files that would run pickled code are refused), converted by the model's
checkpoint filter, loaded strictly, and written to OUT as model.safetensors + config.json + README.md
(--verify reloads OUT strictly and compares every tensor). Load the result with
`import zoo; timm.create_model('local-dir:OUT', pretrained=True)`; publish it with
tools/push_to_hub.py NAME --checkpoint OUT --repo ORG/NAME.TAG.
"""
import sys
from pathlib import Path
from typing import List

from . import ArgumentParser, command


@command
def main(argv: List[str]) -> int:
    ap = ArgumentParser(prog='zoo-convert', description=__doc__.split('\n\n')[0])
    ap.add_argument('--model', required=True, help='zoo model name, arch or arch.tag')
    ap.add_argument('--checkpoint', required=True, help='checkpoint file (.pth, .pth.tar, .bin, .safetensors)')
    ap.add_argument('--out', required=True, help='output folder (timm Hub layout)')
    ap.add_argument('--num-classes', type=int, default=None,
                    help='classes of the exported head (default: those of the checkpoint)')
    ap.add_argument('--no-ema', action='store_true', help='use the raw weights even if the checkpoint has EMA ones')
    ap.add_argument('--record', action='store_true', help='write an unknown SHA-256 into weights/manifest.yaml')
    ap.add_argument('--no-verify', action='store_true',
                    help="convert even if the file's SHA-256 differs from the manifest's (a different release)")
    ap.add_argument('--verify', action='store_true', help='reload OUT strictly and compare every tensor')
    args = ap.parse_args(argv)
    from .. import _manifest, hub
    from ..errors import check_model_name
    check_model_name(args.model)
    ckpt = Path(args.checkpoint)
    if not ckpt.is_file():
        raise FileNotFoundError(f'checkpoint not found: {ckpt}')
    hub.check_sha256(args.model, ckpt, record=args.record, allow_mismatch=args.no_verify)
    model = hub.convert(args.model, ckpt, num_classes=args.num_classes, use_ema=not args.no_ema)
    tag = args.model.partition('.')[2] or None
    entry = _manifest.entry(args.model) if tag else None
    out = hub.export(model, args.out, tag=tag, cfg=hub.publish_cfg(entry) if entry else None)
    n = sum(p.numel() for p in model.parameters())
    print(f"{args.model}: {n / 1e6:.2f}M params, {model.num_classes} classes -> {out}\n"
          f"  load: import zoo; timm.create_model('local-dir:{out}', pretrained=True)")
    if args.verify:
        print(f'  verified: reloads strictly, all {hub.verify_export(out, model)} tensors equal')
    return 0


if __name__ == '__main__':
    sys.exit(main())
