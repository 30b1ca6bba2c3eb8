#!/usr/bin/env python
"""Benchmark zoo and timm models: ``zoo-benchmark`` (zoo/cli/benchmark.py); this wrapper also runs from a clone, and
its readme subcommand rewrites the clone's README.md."""
import functools
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # a clone without `pip install`
from zoo.cli import command  # noqa: E402
from zoo.cli.benchmark import *  # noqa: E402,F401,F403  (expand, write_outputs, ... for tests)
from zoo.cli.benchmark import build_parser, dispatch  # noqa: E402

main = command(dispatch, parser=functools.partial(build_parser, readme=str(ROOT / 'README.md')))

if __name__ == '__main__':
    sys.exit(main())
