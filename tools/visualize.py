#!/usr/bin/env python
"""Attention maps of a zoo model on one image, stage by stage, plus Grad-CAM (see --help)."""
from zoo.cli.visualize import main
if __name__ == '__main__': raise SystemExit(main())  # noqa: E701
