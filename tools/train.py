#!/usr/bin/env python
"""Train an image classifier, or dispatch a det/seg config: see ``zoo/cli/train.py`` (``--help``)."""
import sys

from zoo.cli.train import main

if __name__ == '__main__':
    sys.exit(main())
