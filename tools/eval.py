#!/usr/bin/env python
"""Evaluate an image classifier, or dispatch a det/seg config: see ``zoo/cli/eval.py`` (``--help``)."""
import sys

from zoo.cli.eval import main

if __name__ == '__main__':
    sys.exit(main())
