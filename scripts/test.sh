#!/usr/bin/env bash
# Every test: formatting, lints, the engine natively, the release wasm build, and the
# browser tests in headless Chromium against the built site.
set -euo pipefail
cd "$(dirname "$0")/.."
START=$SECONDS
step() { printf '\n\033[1m== %s\033[0m (at %ss)\n' "$*" "$((SECONDS - START))"; }

step "set-up"
scripts/setup.sh
source .tools/env.sh

step "cargo fmt --check"
cargo fmt --check

step "cargo clippy --all-targets --features web,webgpu (engine, GPU backend, CLI, page, worker, tests), warnings denied"
cargo clippy --all-targets --locked --features web,webgpu -- -D warnings

step "cargo test (engine, natively)"
cargo test --locked

step "cargo test --features webgpu (WGSL kernels and models on Vulkan: Mesa lavapipe here)"
mkdir -p -m 700 "${XDG_RUNTIME_DIR:=/tmp/webformer-xdg}" && export XDG_RUNTIME_DIR
cargo test --locked --features webgpu --test webgpu_backend

step "release wasm build"
scripts/build-web.sh

step "browser tests (playwright-core, headless Chromium)"
node --test --test-concurrency=1 tests/e2e/

step "all tests passed in $((SECONDS - START))s"
