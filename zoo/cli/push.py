"""``zoo-push`` / ``tools/push_to_hub.py``: publish zoo weights to the Hugging Face Hub in timm's format
(``--help``; docs/cli.md)."""
import argparse
import sys
from pathlib import Path

from . import ArgumentParser, add_quiet_argument, command

DESCRIPTION = """\
``zoo-push`` / ``tools/push_to_hub.py``: publish zoo weights to the Hugging Face Hub in timm's format (one repo
per arch.tag)."""


def _metric(text: str):
    key, sep, value = text.partition('=')
    if not sep or not key:
        raise argparse.ArgumentTypeError(f'expected KEY=VALUE, got {text!r}')
    try:
        return key, float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f'metric {key!r} must be a number, got {value!r}')


def _parser() -> ArgumentParser:
    ap = ArgumentParser(prog='zoo-push', description=DESCRIPTION)
    ap.add_argument('name', help='zoo model name, arch or arch.tag (the tag selects the manifest entry)')
    ap.add_argument('--checkpoint', required=True, help='Hub-layout folder or checkpoint file')
    ap.add_argument('--repo', default=None, help="Hub repo ORG/ARCH.TAG (default: the manifest entry's `hub`)")
    ap.add_argument('--token', default=None, help='Hub token (default: HF_TOKEN or the stored login)')
    ap.add_argument('--private', action='store_true')
    ap.add_argument('--revision', default=None, help='branch to push to')
    ap.add_argument('--create-pr', action='store_true')
    ap.add_argument('--commit-message', default='Add model')
    ap.add_argument('--metric', type=_metric, action='append', default=[], metavar='KEY=VALUE',
                    help="evaluation result for the card (repeatable); default: the manifest's or the checkpoint's")
    ap.add_argument('--dataset', default=None, help='dataset the metrics refer to (default: ImageNet-1k for *in1k tags)')
    ap.add_argument('--license', default=None, help="Hub licence id (default: the manifest's / model cfg's)")
    ap.add_argument('--description', default=None)
    ap.add_argument('--source', default=None, help='where the weights come from (default: from manifest/checkpoint)')
    ap.add_argument('--citation-file', default=None, help='BibTeX for the card (default: from the manifest/paper id)')
    ap.add_argument('--num-classes', type=int, default=None, help='for checkpoint files: head size to export')
    ap.add_argument('--no-ema', action='store_true', help='for training checkpoints: push the raw, not the EMA weights')
    ap.add_argument('--dry-run', metavar='DIR', default=None, help='write the files to DIR instead of uploading')
    ap.add_argument('--mark-published', action='store_true',
                    help='after the push, set `published: true` in the manifest entry (so the short name loads it)')
    add_quiet_argument(ap)
    return ap


@command(parser=_parser)
def main(args: argparse.Namespace) -> int:
    from .. import hub, manifest
    from ..errors import check_model_name
    check_model_name(args.name)
    target = hub.publish_target(args.name, args.repo)
    repo = target.repo
    model = hub.load_for_publish(target.build_name, args.checkpoint, use_ema=not args.no_ema,
                                 num_classes=args.num_classes)
    tag = hub.check_repo_id(model, repo)
    cfg = hub.publish_cfg(target.entry, args.license)
    citation = Path(args.citation_file).read_text() if args.citation_file else None
    card = hub.model_card(model, repo_id=repo, entry=target.entry, metrics=dict(args.metric) or None,
                          dataset=args.dataset, license=args.license, source=args.source,
                          description=args.description, citation=citation)
    if args.dry_run:
        out = hub.export(model, args.dry_run, card=card, tag=tag, repo_id=repo, cfg=cfg)
        print(f'dry run: wrote {sorted(p.name for p in out.iterdir())} to {out} (nothing uploaded)')
        return 0
    hub.require_online()
    result = hub.push(model, repo, card=card, token=args.token, private=args.private, revision=args.revision,
                      create_pr=args.create_pr, commit_message=args.commit_message, cfg=cfg)
    print(f'pushed {args.name} to https://huggingface.co/{repo} ({getattr(result, "commit_url", result)})')
    e = manifest.entry(target.repo_name)
    if args.mark_published:
        path = hub.mark_published(target.repo_name, repo)
        if path is None:
            print(f'not marked: the manifest has no entry {target.repo_name} with hub: {repo}', file=sys.stderr)
        else:
            print(f'marked {target.repo_name} as published in {path}')
    elif e is not None and e.get('hub') == repo and not e.get('published'):
        print(f'note: set `published: true` for {target.repo_name} in {manifest.manifest_path()} (or pass '
              f"--mark-published) so that timm.create_model('{target.repo_name}', pretrained=True) loads from the Hub")
    return 0


if __name__ == '__main__':
    sys.exit(main())
