#!/usr/bin/env bash
# Create (or reuse) .venv/ with what zoo needs, pinned by constraints.txt.
#
#   bash tools/setup.sh demo        # only what `make demo` needs: torch, timm, the zoo (editable) and its core deps
#   bash tools/setup.sh dev         # + the test / export / smp / viz extras (ZOO_SKIP_MM=1 bash tools/setup.sh: same)
#   bash tools/setup.sh [full]      # + the detection/segmentation stack (mmcv with compiled ops, mmdet, mmseg)
#
# Idempotent and cached: a stamp in .venv records the hash of the inputs and the level set up (demo < dev < full);
# a second run at the same or a lower level returns at once, a higher level (e.g. `make test` after `make demo`)
# upgrades the same venv. mmcv 2.1.0 exists only as a source package and its setup.py forces -std=c++14/17, which
# the torch 2.15 headers reject; it is built once with -std=c++20 and the wheel cached in
# ${ZOO_CACHE_DIR:-~/.cache/zoo}/wheels, so later set-ups on the same machine reuse it.
# Every step prints its wall time: `[setup] step <name> ... 12.3 s`.
#   ZOO_VENV=<dir>   another venv location (default .venv);  PYTHON=<python>   the interpreter that creates it
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
PY=${PYTHON:-python3}
VENV="${ZOO_VENV:-$ROOT/.venv}"
CACHE="${ZOO_CACHE_DIR:-$HOME/.cache/zoo}"

LEVEL=${1:-full}
[ "${ZOO_SKIP_MM:-0}" = "1" ] && [ "$LEVEL" = "full" ] && LEVEL=dev
case "$LEVEL" in
  demo) RANK=1 ;; dev) RANK=2 ;; full) RANK=3 ;;
  *) echo "error: unknown set-up level '$LEVEL' (demo, dev or full)" >&2; exit 2 ;;
esac

inputs_hash() { cat constraints.txt pyproject.toml setup.py tools/setup.sh | sha256sum | cut -c1-16; }
STAMP="$VENV/.zoo-setup-stamp"
HASH=$(inputs_hash)
if [ -f "$STAMP" ] && [ "$(sed -n 1p "$STAMP")" = "$HASH" ]; then
  HAVE=$(sed -n 2p "$STAMP" | sed -n 's/^rank=//p')
  if [ -n "$HAVE" ] && [ "$HAVE" -ge "$RANK" ]; then
    echo "[setup] $VENV is up to date ($(sed -n 3p "$STAMP"))"
    exit 0
  fi
  START=$((HAVE + 1))
else
  START=1
fi

T_ALL=$(date +%s%N)
step() {  # step <name> <command...>: run it and print its wall time
  local name=$1 t0 t1 ms
  shift
  echo "[setup] step $name ..."
  t0=$(date +%s%N)
  "$@"
  t1=$(date +%s%N)
  ms=$(((t1 - t0) / 1000000))
  printf '[setup] step %s ... %d.%01d s\n' "$name" $((ms / 1000)) $((ms % 1000 / 100))
}

PIP=("$VENV/bin/python" -m pip --disable-pip-version-check)
if [ "$START" -le 1 ]; then
  [ -x "$VENV/bin/python" ] || step "create venv $VENV" "$PY" -m venv "$VENV"
  step "pip, setuptools, wheel" "${PIP[@]}" install -q --upgrade pip setuptools wheel -c constraints.txt
  step "torch, torchvision" "${PIP[@]}" install -q -c constraints.txt torch torchvision
  step "zoo (editable) + core deps" "${PIP[@]}" install -q -c constraints.txt -e .
fi
if [ "$RANK" -ge 2 ] && [ "$START" -le 2 ]; then
  step "dev extras (tests, export, smp, viz)" "${PIP[@]}" install -q -c constraints.txt ninja -e ".[dev]"
fi

build_mmcv() {
  local build
  build=$(mktemp -d)
  "${PIP[@]}" download -q --no-deps --no-build-isolation --no-binary :all: "mmcv==$MMCV_VER" -d "$build"
  tar xzf "$build/mmcv-$MMCV_VER.tar.gz" -C "$build"
  sed -i -e 's/-std=c++14/-std=c++20/g' -e 's/-std=c++17/-std=c++20/g' "$build/mmcv-$MMCV_VER/setup.py"
  (cd "$build/mmcv-$MMCV_VER" && MMCV_WITH_OPS=1 MAX_JOBS="${MAX_JOBS:-$(nproc)}" \
    "${PIP[@]}" wheel -q --no-build-isolation --no-deps -w "$build/dist" .)
  # move into the cache only once complete, so an interrupted build never leaves a partial wheel
  mv "$build"/dist/mmcv-*.whl "$WHEELS"/
  rm -rf "$build"
}

if [ "$RANK" -ge 3 ] && [ "$START" -le 3 ]; then
  MMCV_VER=$(grep -E '^mmcv==' constraints.txt | cut -d= -f3)
  TORCH_VER=$("$VENV/bin/python" -c 'import torch; print(torch.__version__.split("+")[0])')
  WHEELS="$CACHE/wheels/torch-$TORCH_VER"
  mkdir -p "$WHEELS"
  if ! ls "$WHEELS"/mmcv-"$MMCV_VER"-*.whl >/dev/null 2>&1; then
    step "build mmcv $MMCV_VER with compiled CPU ops (once per machine, ~20 min)" build_mmcv
  fi
  step "mmcv (cached wheel)" "${PIP[@]}" install -q -c constraints.txt "$WHEELS"/mmcv-"$MMCV_VER"-*.whl
  step "mmdet, mmsegmentation" "${PIP[@]}" install -q -c constraints.txt -e ".[dev,mm]"
  "$VENV/bin/python" -c "import mmcv.ops, mmdet.models, mmseg.models" \
    || { echo "[setup] mmcv ops do not import"; exit 1; }
fi

printf '%s\nrank=%s\n%s\n' "$HASH" "$RANK" "$LEVEL" > "$STAMP"
ms=$((($(date +%s%N) - T_ALL) / 1000000))
printf '[setup] done: %s set-up in %d.%01d s\n' "$LEVEL" $((ms / 1000)) $((ms % 1000 / 100))
