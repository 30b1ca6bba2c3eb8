#!/usr/bin/env python
"""Export a model to ONNX / torch.export / TorchScript and verify it in its runtime (see --help)."""
from zoo.cli.export import main
if __name__ == '__main__': raise SystemExit(main())  # noqa: E701
