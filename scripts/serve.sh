#!/usr/bin/env bash
# Set-up (first time only), then `trunk serve` on http://127.0.0.1:8080 with live reload.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
source .tools/env.sh
eval "$WEBFORMER_WASM_ENV"
exec trunk serve "$@"
