#!/usr/bin/env python
"""See ``zoo/cli/download.py`` (``--help``)."""
import sys

from zoo.cli.download import main

if __name__ == '__main__':
    sys.exit(main())
