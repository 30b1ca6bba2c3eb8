# The two commands of the README. Both set up .venv/ first (idempotent, cached; see tools/setup.sh).
PY := .venv/bin/python
export HF_HUB_OFFLINE ?= 1
export HF_HUB_DISABLE_TELEMETRY = 1

.PHONY: setup setup-demo setup-dev demo test test-fast table

# everything: core + dev extras + the detection/segmentation stack (mmcv built once, cached in ~/.cache/zoo/wheels)
setup:
	bash tools/setup.sh full

# only what the demo needs (no mmcv / mmdet / mmseg, no dev extras)
setup-demo:
	bash tools/setup.sh demo

setup-dev:
	bash tools/setup.sh dev

# main job: train + evaluate a zoo backbone on the generated shapes dataset, print a results table
demo: setup-demo
	$(PY) tools/demo.py

# the whole test suite (unit, conformance over every registered model, slow tier, packaging, det/seg)
test: setup
	$(PY) -m pytest -n 2 --dist loadgroup -q -ra --durations=25 tests

test-fast: setup-dev
	$(PY) -m pytest -n 2 --dist loadgroup -q -m "not slow and not mm" tests

# regenerate the README model table from the registry and the manifest, with a CPU-throughput measurement
table: setup-dev
	$(PY) tools/benchmark.py --readme
