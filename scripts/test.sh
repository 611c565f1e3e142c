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

step "cargo clippy --all-targets --features web (engine, GPU backend, CLI, page, worker, tests), warnings denied"
cargo clippy --all-targets --locked --features web -- -D warnings
step "cargo clippy: the threaded worker (feature threads), warnings denied"
cargo clippy --locked --lib --bin webformer-worker-threads --features threads -- -D warnings

# The default features include the WebGPU backend, so this also runs the WGSL kernels, the
# models, training steps and the CPU fallback on Vulkan (Mesa lavapipe where there is no GPU).
step "cargo test (engine, CLI and worker service natively; WebGPU on Vulkan)"
mkdir -p -m 700 "${XDG_RUNTIME_DIR:=/tmp/webformer-xdg}" && export XDG_RUNTIME_DIR
cargo test --locked
# On x86-64 with AVX2 + FMA linear layers run the packed kernel (src/engine/backend/cpu/avx2.rs);
# the model tests again on gemm's path, which other CPUs (and WEBFORMER_LINEAR=gemm) take.
step "cargo test: goldens, batch invariance and the real MiniLM on gemm's linear path"
WEBFORMER_LINEAR=gemm cargo test --locked --test engine_goldens --test batch_invariance --test minilm_real
# On CPUs with AVX-512 the packed kernel runs its AVX-512 tiles; the same tests on the AVX2
# tile, which every other x86-64 CPU takes (tests/cpu_avx2.rs compares the two bit for bit).
if grep -qw avx512f /proc/cpuinfo 2>/dev/null; then
  step "cargo test: goldens, batch invariance and the real MiniLM on the AVX2 tile"
  WEBFORMER_AVX512=0 cargo test --locked --test engine_goldens --test batch_invariance --test minilm_real
fi

step "release wasm build (the page, three worker builds)"
scripts/build-web.sh

step "browser tests (playwright-core, headless Chromium)"
node --test --test-concurrency=1 tests/e2e/

step "all tests passed in $((SECONDS - START))s"
