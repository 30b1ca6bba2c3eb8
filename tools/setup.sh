#!/usr/bin/env bash
# Create (or reuse) .venv/ with everything zoo needs, pinned by constraints.txt.
#
#   bash tools/setup.sh            # core + dev + detection/segmentation stack
#   ZOO_SKIP_MM=1 bash tools/setup.sh   # skip mmcv/mmdet/mmseg
#
# Idempotent: a stamp in .venv records the hash of the inputs; a second run returns at once.
# mmcv 2.1.0 exists only as a source package and its setup.py forces -std=c++14/17, which the
# torch 2.15 headers reject; we build it once with -std=c++20 and cache the wheel in
# ${ZOO_CACHE_DIR:-~/.cache/zoo}/wheels so later set-ups on the same machine reuse it.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
PY=${PYTHON:-python3}
VENV="$ROOT/.venv"
CACHE="${ZOO_CACHE_DIR:-$HOME/.cache/zoo}"
WITH_MM=1; [ "${ZOO_SKIP_MM:-0}" = "1" ] && WITH_MM=0

stamp_of() { cat constraints.txt pyproject.toml tools/setup.sh | sha256sum | cut -c1-16; echo "mm=$WITH_MM"; }
STAMP="$VENV/.zoo-setup-stamp"
if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$(stamp_of)" ]; then
  echo "[setup] .venv is up to date"
  exit 0
fi

[ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV"
PIP=("$VENV/bin/python" -m pip --disable-pip-version-check)
"${PIP[@]}" install -q --upgrade pip setuptools wheel -c constraints.txt
echo "[setup] installing torch, timm and the zoo (editable) ..."
"${PIP[@]}" install -q -c constraints.txt torch torchvision ninja
"${PIP[@]}" install -q -c constraints.txt -e ".[dev]"

if [ "$WITH_MM" = "1" ]; then
  MMCV_VER=$(grep -E '^mmcv==' constraints.txt | cut -d= -f3)
  TORCH_VER=$("$VENV/bin/python" -c 'import torch; print(torch.__version__.split("+")[0])')
  WHEELS="$CACHE/wheels/torch-$TORCH_VER"
  mkdir -p "$WHEELS"
  if ! ls "$WHEELS"/mmcv-"$MMCV_VER"-*.whl >/dev/null 2>&1; then
    echo "[setup] building mmcv $MMCV_VER with compiled CPU ops (once per machine, ~20 min) ..."
    BUILD=$(mktemp -d)
    "${PIP[@]}" download -q --no-deps --no-build-isolation --no-binary :all: "mmcv==$MMCV_VER" -d "$BUILD"
    tar xzf "$BUILD/mmcv-$MMCV_VER.tar.gz" -C "$BUILD"
    sed -i -e 's/-std=c++14/-std=c++20/g' -e 's/-std=c++17/-std=c++20/g' "$BUILD/mmcv-$MMCV_VER/setup.py"
    (cd "$BUILD/mmcv-$MMCV_VER" && MMCV_WITH_OPS=1 MAX_JOBS="${MAX_JOBS:-$(nproc)}" \
      "${PIP[@]}" wheel -q --no-build-isolation --no-deps -w "$BUILD/dist" .)
    # move into the cache only once complete, so an interrupted build never leaves a partial wheel
    mv "$BUILD"/dist/mmcv-*.whl "$WHEELS"/
    rm -rf "$BUILD"
  fi
  echo "[setup] installing mmcv (cached wheel), mmdet, mmsegmentation ..."
  "${PIP[@]}" install -q -c constraints.txt "$WHEELS"/mmcv-"$MMCV_VER"-*.whl
  "${PIP[@]}" install -q -c constraints.txt -e ".[dev,mm]"
  "$VENV/bin/python" -c "import mmcv.ops, mmdet.models, mmseg.models" \
    || { echo "[setup] mmcv ops do not import"; exit 1; }
fi

stamp_of > "$STAMP"
echo "[setup] done"
