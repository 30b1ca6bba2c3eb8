#!/usr/bin/env python
"""See ``zoo/cli/convert.py`` (``--help``)."""
import sys

from zoo.cli.convert import main

if __name__ == '__main__':
    sys.exit(main())
