"""``zoo-download`` / ``tools/download.py``: download the official weights listed in weights/manifest.yaml, verify,
convert, export -- and, for maintainers, record checksums, check the export and publish it, in one command.

    python tools/download.py zoo_coat_lite_tiny.in1k          # one tag: download, verify, convert, export
    python tools/download.py --all                           # every tag with a downloadable official file
    python tools/download.py --all --record --verify --push  # maintainer: record SHA-256s, check, publish, mark

For each tag: the official file is fetched with a progress bar (``--quiet``: none) into the cache
($ZOO_CACHE_DIR/checkpoints, default ~/.cache/zoo/checkpoints), its SHA-256 is checked against the manifest (or,
when the manifest has none, printed and kept in the cache's sha256_records.json -- written into the manifest itself
with --record), it is loaded safely (no pickled code runs), converted to the zoo layout by the model's checkpoint
filter, loaded strictly, and written in timm's Hub layout (model.safetensors + config.json + README.md) to
OUT/<arch>.<tag> (default $ZOO_CACHE_DIR/export), from where `timm.create_model('local-dir:<that folder>',
pretrained=True)` loads it (after `import zoo`). --verify reloads that folder strictly and compares every tensor;
--push (implies --verify) publishes it to the entry's `hub` repo with timm.models.push_to_hf_hub and sets
`published: true` in the manifest (--no-mark: don't); files whose SHA-256 is neither in the manifest nor recorded
are never pushed. Tags whose file must be fetched by hand (Google Drive) are reported with the page to fetch from;
convert those with tools/convert.py. (Tags marked manual that also list a direct `url`, like BiFormer's OneDrive
links, are downloaded from it and cached under their manifest `file` name.)
"""
import argparse
import sys
from pathlib import Path

from ..errors import UserError
from . import ArgumentParser, add_quiet_argument, command


def _parser() -> ArgumentParser:
    ap = ArgumentParser(prog='zoo-download', description=__doc__.split('\n\n')[0])
    ap.add_argument('names', nargs='*', metavar='NAME.TAG', help='manifest entries (arch.tag)')
    ap.add_argument('--all', action='store_true', help='every manifest entry with a downloadable official file')
    ap.add_argument('--out', default=None, help='export root (default: $ZOO_CACHE_DIR/export)')
    ap.add_argument('--cache-dir', default=None, help='cache root (default: $ZOO_CACHE_DIR or ~/.cache/zoo)')
    ap.add_argument('--no-convert', action='store_true', help='only download and verify the checksum')
    ap.add_argument('--record', action='store_true',
                    help='write the SHA-256 of a first download into weights/manifest.yaml (entry has sha256: null)')
    ap.add_argument('--verify', action='store_true',
                    help='reload each exported folder strictly and check every tensor against the conversion')
    ap.add_argument('--push', action='store_true',
                    help="publish each export to the entry's `hub` repo (implies --verify) and mark it published")
    ap.add_argument('--no-mark', action='store_true', help='with --push: do not set `published: true`')
    ap.add_argument('--token', default=None, help='Hub token for --push (default: HF_TOKEN or the stored login)')
    ap.add_argument('--private', action='store_true', help='with --push: create private repos')
    ap.add_argument('--commit-message', default='Add model')
    add_quiet_argument(ap)
    ap.add_argument('--no-progress', dest='quiet', action='store_true', help=argparse.SUPPRESS)
    return ap


@command(parser=_parser)
def main(args: argparse.Namespace) -> int:
    from .. import _manifest, hub
    if args.all == bool(args.names):
        _parser().error('give NAME.TAG ... or --all')
    if (args.push or args.verify) and args.no_convert:
        _parser().error(f'--{"push" if args.push else "verify"} needs the conversion (drop --no-convert)')
    if args.push:
        hub.require_online()
    entries = _manifest.entries()
    if args.all:
        names = [n for n, e in entries.items() if e.get('source') in ('url', 'manual')]
        print(f'{len(names)} official files listed in {_manifest.manifest_path()}', file=sys.stderr)
    else:
        names = list(args.names)
    cache = Path(args.cache_dir) if args.cache_dir else hub.cache_dir('')
    out_root = Path(args.out) if args.out else cache / 'export'
    failed, manual, done = [], [], []
    for name in names:
        try:
            r = hub.release(name, out_root, cache=cache, progress=not args.quiet, record=args.record,
                            convert_=not args.no_convert, verify=args.verify, push_=args.push, mark=not args.no_mark,
                            token=args.token, private=args.private, commit_message=args.commit_message,
                            say=lambda msg: print(msg))
            done.append(r)
        except hub.ManualDownloadError as e:
            manual.append(name)
            print(f'{name}: SKIPPED: {e}', file=sys.stderr)
        except (UserError, KeyError, OSError, RuntimeError, ValueError) as e:  # CheckpointError is a ValueError
            failed.append(name)
            print(f'{name}: FAILED: {type(e).__name__}: {e}', file=sys.stderr)
    if args.all or len(names) > 1:
        unverified = [r.name for r in done if not (r.verified or r.recorded)]
        print(f'{len(done)} done ({sum(r.verified or r.recorded for r in done)} checksum-verified, '
              f'{sum(bool(r.pushed) for r in done)} pushed, {sum(r.marked for r in done)} marked published), '
              f'{len(manual)} manual, {len(failed)} failed', file=sys.stderr)
        if unverified:
            print(f'not verified (no SHA-256 in the manifest; run with --record): {", ".join(unverified)}',
                  file=sys.stderr)
    if manual:
        print(f'{len(manual)} tag(s) need a manual download: {", ".join(manual)}', file=sys.stderr)
    if failed:
        print(f'{len(failed)} tag(s) failed: {", ".join(failed)}', file=sys.stderr)
        return 1
    # naming a manual-only tag explicitly is an error (nothing was produced); --all just reports them
    return 2 if manual and not args.all else 0


if __name__ == '__main__':
    sys.exit(main())
