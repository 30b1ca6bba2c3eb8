#!/usr/bin/env python
"""Download official pretrained weights listed in weights/manifest.yaml, verify, convert, export.

    python tools/download.py zoo_coat_lite_tiny.in1k          # one tag
    python tools/download.py --all                           # every tag with a downloadable official file

For each tag: the official file is fetched with a progress bar into the cache ($ZOO_CACHE_DIR/checkpoints,
default ~/.cache/zoo/checkpoints), its SHA-256 is checked against the manifest (or, when the manifest has none,
printed and recorded -- into the manifest itself with --record), it is loaded safely (no pickled code runs),
converted to the zoo layout by the model's checkpoint filter, loaded strictly, and written in timm's Hub layout
(model.safetensors + config.json + README.md) to OUT/<arch>.<tag> (default $ZOO_CACHE_DIR/export), from where
`timm.create_model('local-dir:<that folder>', pretrained=True)` loads it (after `import zoo`) and
tools/push_to_hub.py publishes it. Tags whose file must be fetched by hand (Google Drive) are reported with the
page to fetch from; convert those with tools/convert.py. (Tags marked manual that also list a direct `url`, like
BiFormer's OneDrive links, are downloaded from it and cached under their manifest `file` name.)
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
    ap.add_argument('names', nargs='*', metavar='NAME.TAG', help='manifest entries (arch.tag)')
    ap.add_argument('--all', action='store_true', help='every manifest entry with a downloadable official file')
    ap.add_argument('--out', default=None, help='export root (default: $ZOO_CACHE_DIR/export)')
    ap.add_argument('--cache-dir', default=None, help='cache root (default: $ZOO_CACHE_DIR or ~/.cache/zoo)')
    ap.add_argument('--no-convert', action='store_true', help='only download and verify')
    ap.add_argument('--record', action='store_true',
                    help='write the SHA-256 of a first download into weights/manifest.yaml (entry has sha256: null)')
    ap.add_argument('--no-progress', action='store_true')
    args = ap.parse_args(argv)
    entries = _manifest.entries()
    if args.all == bool(args.names):
        ap.error('give NAME.TAG ... or --all')
    names = list(args.names) or [n for n, e in entries.items() if e.get('source') in ('url', 'manual')]
    if args.all:
        print(f'{len(names)} official files listed in {_manifest.manifest_path()}', file=sys.stderr)
    cache = Path(args.cache_dir) if args.cache_dir else hub.cache_dir('')
    out_root = Path(args.out) if args.out else cache / 'export'
    failed, manual = [], []
    for name in names:
        try:
            result = hub.fetch(name, cache=cache, progress=not args.no_progress, record=args.record)
            state = 'verified' if result.verified else 'NOT verified (no SHA-256 in the manifest)'
            print(f'{name}: {result.path} sha256={result.sha256} [{state}]')
            if args.no_convert:
                continue
            model = hub.convert(name, result.path)
            out = hub.export(model, out_root / name, tag=name.partition('.')[2])
            print(f"{name}: converted -> {out}  (load: import zoo; timm.create_model('local-dir:{out}', pretrained=True))")
        except hub.ManualDownloadError as e:
            manual.append(name)
            print(f'{name}: SKIPPED: {e}', file=sys.stderr)
        except (KeyError, OSError, RuntimeError, ValueError) as e:  # CheckpointError is a ValueError
            failed.append(name)
            print(f'{name}: FAILED: {type(e).__name__}: {e}', file=sys.stderr)
    if manual:
        print(f'{len(manual)} tag(s) need a manual download: {", ".join(manual)}', file=sys.stderr)
    if failed:
        print(f'{len(failed)} tag(s) failed: {", ".join(failed)}', file=sys.stderr)
        return 1
    # naming a manual-only tag explicitly is an error (nothing was produced); --all just reports them
    return 2 if manual and not args.all else 0


if __name__ == '__main__':
    sys.exit(main())
