#!/usr/bin/env python
"""Attention added to a pretrained CNN vs plain fine-tuning, at demo scale (zoo/cli/retrofit_demo.py)."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # a clone without `pip install`
from zoo.cli.retrofit_demo import main  # noqa: E402

if __name__ == '__main__':
    sys.exit(main())
