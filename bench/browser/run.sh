#!/usr/bin/env bash
# Browser bench, one command: webformer's wasm worker vs transformers.js (WASM backend) on
# all-MiniLM-L6-v2 in headless Chromium, plus the download sizes. Prints markdown.
#
#   bench/browser/run.sh [--runs N] [--no-threads] [--webgpu] [--webgpu-runs N]
#   bench/browser/run.sh --vit [--runs N] [--no-base] [--dist DIR]
#
# --vit: the image rows instead (bench/browser/vit.mjs): our ViT vs transformers.js's
# image-classification pipeline on ONNX exports of the same weights, per image: the site's
# Fashion-MNIST ViT and (unless --no-base) a random-weight ViT-base/16 at 224 px, both
# written by bench/browser/export_vit_onnx.py under .cache/bench (about 700 MB for the base).
#
# Set-up steps run only when their output is missing: dist/ (scripts/build-web.sh),
# bench/browser/node_modules (npm ci --ignore-scripts, from this folder's own lock file),
# onnx + onnxruntime for the export (pip --target .cache/bench/pylib), the ONNX export
# (bench/browser/export_onnx.py into .cache/bench/minilm-onnx). Needs scripts/setup.sh's
# models/all-MiniLM-L6-v2, Chromium and the root node_modules (playwright-core).
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
cd "$ROOT"
PY="${TORCH_PYTHON:-/opt/torchvenv/bin/python}"

[ -f models/all-MiniLM-L6-v2/model.safetensors ] || { echo "run scripts/setup.sh first (models/all-MiniLM-L6-v2)" >&2; exit 1; }
[ -f models/defaults/minilm-sentiment/head.safetensors ] || { echo "run scripts/setup.sh first (models/defaults/minilm-sentiment)" >&2; exit 1; }
[ -d node_modules/playwright-core ] || { echo "run npm ci at the repository root first (playwright-core)" >&2; exit 1; }
if ! ls dist/webformer-worker_bg.wasm >/dev/null 2>&1; then
  echo "[run.sh] dist/ is missing: scripts/build-web.sh" >&2
  scripts/build-web.sh >&2
fi
if [ ! -d "$HERE/node_modules/@huggingface/transformers" ]; then
  echo "[run.sh] npm ci in bench/browser" >&2
  (cd "$HERE" && npm ci --ignore-scripts --no-audit --no-fund >&2)
fi
if [ ! -d .cache/bench/pylib/onnxruntime ]; then
  echo "[run.sh] pip install onnx onnxruntime into .cache/bench/pylib" >&2
  "$PY" -m pip install -q --target .cache/bench/pylib onnx onnxruntime >&2
fi

MACHINE="nproc $(nproc); uptime:$(uptime); $(/usr/bin/chromium --version 2>/dev/null | head -1)"
if [[ " $* " == *" --vit "* ]]; then
  "$PY" "$HERE/export_vit_onnx.py" --out .cache/bench/vit-fashion-onnx >&2
  if [[ " $* " != *" --no-base "* ]]; then
    "$PY" "$HERE/export_vit_onnx.py" --random-base .cache/bench/vit-base-random --out .cache/bench/vit-base-onnx >&2
  fi
  MACHINE="nproc $(nproc); uptime:$(uptime); $(/usr/bin/chromium --version 2>/dev/null | head -1)"
  rm -rf .cache/bench/vit-images
  node "$HERE/vit.mjs" --save-images .cache/bench/vit-images "$@"
  echo
  echo "Against the reference, PyTorch + PIL on the same PNGs (bench/browser/vit_reference.py):"
  "$PY" "$HERE/vit_reference.py" .cache/bench/vit-images 2>/dev/null
else
  [ -f .cache/bench/minilm-onnx/onnx/model.onnx ] || "$PY" "$HERE/export_onnx.py" >&2
  node "$HERE/bench.mjs" "$@"
fi
echo
echo "Machine at the start: $MACHINE"
