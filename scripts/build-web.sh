#!/usr/bin/env bash
# Release build of the site into dist/ (Trunk: the Leptos page and the engine's worker),
# then prints the size of each wasm module, raw and gzipped.
set -euo pipefail
cd "$(dirname "$0")/.."
source .tools/env.sh
eval "$WEBFORMER_WASM_ENV"
trunk build --release "$@"
echo "wasm bundle sizes:"
for f in dist/*.wasm; do
  printf '  %-40s %9d bytes raw  %9d bytes gzip -9\n' "$(basename "$f")" "$(stat -c %s "$f")" "$(gzip -9 -c "$f" | wc -c)"
done
