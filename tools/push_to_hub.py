#!/usr/bin/env python
"""See ``zoo/cli/push.py`` (``--help``)."""
import sys

from zoo.cli.push import main

if __name__ == '__main__':
    sys.exit(main())
