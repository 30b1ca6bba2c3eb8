"""``zoo-download`` / ``tools/download.py``: download and verify the manifest's weights; for maintainers,
record checksums, check the export and publish it (``--help``; docs/cli.md)."""
import argparse
import os
import sys
from pathlib import Path

from ..errors import PretrainedUnavailable, UserError
from . import ArgumentParser, add_quiet_argument, command

DESCRIPTION = """\
``zoo-download`` / ``tools/download.py``: download the weights listed in weights/manifest.yaml and verify them --
the files ``pretrained=True`` loads, or the official files converted and exported -- and, for maintainers, record
checksums, check the export and publish it, in one command."""


def _parser() -> ArgumentParser:
    ap = ArgumentParser(prog='zoo-download', description=DESCRIPTION)
    ap.add_argument('names', nargs='*', metavar='NAME.TAG', help='manifest entries (arch.tag)')
    ap.add_argument('--all', action='store_true', help='every manifest entry with weights to download')
    ap.add_argument('--source', choices=('auto', 'hub', 'url'), default='auto',
                    help='hub: what pretrained=True loads (the Hub copy, the URL as the fallback); url: the official '
                         'file, converted and exported; auto (default): hub for tags with a Hub copy, unless '
                         '--verify / --push')
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


def _check_args(args: argparse.Namespace) -> None:
    from .. import hub
    if args.all == bool(args.names):
        _parser().error('give NAME.TAG ... or --all')
    if (args.push or args.verify) and args.no_convert:
        _parser().error(f'--{"push" if args.push else "verify"} needs the conversion (drop --no-convert)')
    if args.push:
        hub.require_online()
    if args.source == 'hub' and (args.push or args.verify):
        _parser().error(f'--{"push" if args.push else "verify"} works on the official file (--source url)')


def _from_hub(args: argparse.Namespace, entries, name: str) -> bool:
    from .. import manifest
    return args.source == 'hub' or (args.source == 'auto' and not (args.push or args.verify)
                                     and manifest.hub_source(entries.get(name))[0] is not None)


def _fetch_all(args: argparse.Namespace, entries, names, cache: Path, out_root: Path):
    """Fetch each tag of ``names``; returns the lists ``(failed, manual, done, cached)``."""
    from .. import hub
    from ..release import release
    failed, manual, done, cached = [], [], [], []
    for name in names:
        try:
            if _from_hub(args, entries, name):
                cached.append(_fetch_pretrained(name, args.record, args.cache_dir))
                continue
            r = release(name, out_root, cache=cache, progress=not args.quiet, record=args.record,
                        convert_=not args.no_convert, verify=args.verify, push_=args.push, mark=not args.no_mark,
                        token=args.token, private=args.private, commit_message=args.commit_message,
                        say=lambda msg: print(msg))
            done.append(r)
        except hub.ManualDownloadError as e:
            manual.append(name)
            print(f'{name}: SKIPPED: {e}', file=sys.stderr)
        except PretrainedUnavailable as e:
            if len(names) == 1:
                raise
            failed.append(name)
            print(f'{name}: FAILED: {" ".join(str(e).split())}', file=sys.stderr)
        except (UserError, KeyError, OSError, RuntimeError, ValueError) as e:  # CheckpointError is a ValueError
            failed.append(name)
            print(f'{name}: FAILED: {type(e).__name__}: {e}', file=sys.stderr)
    return failed, manual, done, cached


def _print_totals(done, cached, manual, failed) -> None:
    unverified = [r.name for r in done if not (r.verified or r.recorded)]
    unverified += [n for n, w, recorded in cached if not (w.verified or recorded)]
    if cached:
        print(f'{len(cached)} fetched as pretrained=True loads them '
              f'({sum(w.verified or recorded for _, w, recorded in cached)} checksum-verified)', file=sys.stderr)
    print(f'{len(done)} done ({sum(r.verified or r.recorded for r in done)} checksum-verified, '
          f'{sum(bool(r.pushed) for r in done)} pushed, {sum(r.marked for r in done)} marked published), '
          f'{len(manual)} manual, {len(failed)} failed', file=sys.stderr)
    if unverified:
        print(f'not verified (no SHA-256 in the manifest; run with --record): {", ".join(unverified)}',
              file=sys.stderr)


@command(parser=_parser)
def main(args: argparse.Namespace) -> int:
    from .. import hub, manifest
    _check_args(args)
    entries = manifest.entries()
    if args.all:
        names = [n for n, e in entries.items() if e.get('source') in ('url', 'manual') or _from_hub(args, entries, n)]
        print(f'{len(names)} tags with weights listed in {manifest.manifest_path()}', file=sys.stderr)
    else:
        names = list(args.names)
    cache = Path(args.cache_dir) if args.cache_dir else hub.cache_dir('')
    out_root = Path(args.out) if args.out else cache / 'export'
    failed, manual, done, cached = _fetch_all(args, entries, names, cache, out_root)
    if args.all or len(names) > 1:
        _print_totals(done, cached, manual, failed)
    if manual:
        print(f'{len(manual)} tag(s) need a manual download: {", ".join(manual)}', file=sys.stderr)
    if failed:
        print(f'{len(failed)} tag(s) failed: {", ".join(failed)}', file=sys.stderr)
        return 1
    # naming a manual-only tag explicitly is an error (nothing was produced); --all just reports them
    return 2 if manual and not args.all else 0


def _fetch_pretrained(name: str, record: bool, cache_root=None):
    """Fetch tag ``name``'s weights as ``pretrained=True`` does (``cache_root``: the zoo cache root for its URL
    fallback, as ``ZOO_CACHE_DIR``), build the model with them once, and record an unknown SHA-256 with
    ``record``. Returns ``(name, Weights, recorded)``."""
    import timm

    from .. import manifest
    from ..hub import CACHE_ENV, pretrained
    entry = manifest.entry(name)
    if entry is None:
        raise UserError(f'{name} is not in the weights manifest ({manifest.manifest_path()})')
    before = os.environ.get(CACHE_ENV)
    if cache_root:
        os.environ[CACHE_ENV] = str(Path(cache_root).expanduser())
    try:
        w = pretrained.resolve(name)
        timm.create_model(name, pretrained=True)  # the conversion and strict load users will run
    finally:
        if before is None:
            os.environ.pop(CACHE_ENV, None)
        else:
            os.environ[CACHE_ENV] = before
    recorded = False
    if w.expected_sha256 is None and record:
        manifest.set_entry_field(name, w.sha_field, w.sha256)
        recorded = True
    state = 'verified' if w.verified else f'recorded as {w.sha_field}' if recorded else \
        f'NOT verified (no {w.sha_field} in the manifest; --record writes it)'
    print(f'{name}: {w.origin} -> {w.path} sha256={w.sha256} [{state}]')
    print(f"{name}: ready: import zoo; timm.create_model('{name}', pretrained=True) (also offline now)")
    return name, w, recorded


if __name__ == '__main__':
    sys.exit(main())
