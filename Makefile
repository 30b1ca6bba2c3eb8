# The two commands of the README. Both set up .venv/ first (idempotent, cached).
PY := .venv/bin/python
export HF_HUB_OFFLINE ?= 1
export HF_HUB_DISABLE_TELEMETRY = 1

.PHONY: setup demo test test-fast table

setup:
	bash tools/setup.sh

# main job: train + evaluate a zoo backbone on the generated shapes dataset, print a results table
demo: setup
	$(PY) tools/demo.py

# the whole test suite (unit, conformance over every registered model, slow tier, det/seg)
test: setup
	$(PY) -m pytest -n 2 --dist loadgroup -q -ra tests

test-fast: setup
	$(PY) -m pytest -n 2 --dist loadgroup -q -m "not slow and not mm" tests

# regenerate the README model table from the registry (and benchmark results when present)
table: setup
	$(PY) tools/model_table.py --write-readme
