#!/usr/bin/env python
"""Benchmark zoo and timm models: ``zoo-benchmark`` (zoo/cli/benchmark.py); this wrapper also runs from a clone."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # a clone without `pip install`
from zoo.cli.benchmark import *  # noqa: E402,F401,F403  (expand, write_outputs, ... for tests)
from zoo.cli.benchmark import main  # noqa: E402

if __name__ == '__main__':
    sys.exit(main())
