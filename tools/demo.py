#!/usr/bin/env python
"""The zoo demo (the README's main-job command): ``zoo-demo`` (zoo/cli/demo.py); this wrapper also runs from a clone."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # a clone without `pip install`
from zoo.cli.demo import main  # noqa: E402

if __name__ == '__main__':
    sys.exit(main())
