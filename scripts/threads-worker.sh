#!/usr/bin/env bash
# Builds the threaded engine worker into the site: webformer-worker-threads.js/_bg.wasm, its
# loader and the helper threads' script (src/worker/js/). It is the relaxed-SIMD worker with
# the `threads` feature: rayon's pool on helper Web Workers sharing the wasm memory
# (src/worker/threads.rs). Trunk cannot build it as one of index.html's links: it needs std
# rebuilt with atomics (-Z build-std; Debian's rustc-web by default, set up by
# scripts/setup.sh, or WEBFORMER_THREADS_TOOLCHAIN, e.g. a nightly with rust-src) and its own
# RUSTFLAGS, hence its own target dir.
#
# Trunk runs it after each build (Trunk.toml, post_build hook, DEST = its staging dir); by
# hand: scripts/threads-worker.sh dist. WEBFORMER_THREADS=0 skips it: the page then starts
# the single-thread worker (it falls back when the threaded one does not load).
set -euo pipefail
cd "$(dirname "$0")/.."
DEST=${1:-${TRUNK_STAGING_DIR:?give the site folder, e.g. dist}}
if [ "${WEBFORMER_THREADS:-1}" = 0 ]; then
  echo "threads-worker: skipped (WEBFORMER_THREADS=0)"
  exit 0
fi
[ -f .tools/env.sh ] && source .tools/env.sh
profile=release
[ "${TRUNK_PROFILE:-release}" = debug ] && profile=dev
target_dir="${CARGO_TARGET_DIR:-target}-threads"
name=webformer-worker-threads

# Atomics, and a memory that is shared, imported (the helpers instantiate the module on the
# worker's) and up to 4 GiB (wasm32's whole address space; reserved, not committed), with the
# thread-local storage exports wasm-bindgen's thread start needs. The rest matches
# .cargo/config.toml.
link=""
# (Link arguments of the binary alone: `cargo rustc`.)
for arg in --shared-memory --max-memory=4294967296 --import-memory --export=__wasm_init_tls \
  --export=__tls_size --export=__tls_align --export=__tls_base; do
  link="$link -C link-arg=$arg"
done
RUSTUP_TOOLCHAIN="${WEBFORMER_THREADS_TOOLCHAIN:-web}" RUSTC_BOOTSTRAP=1 CARGO_UNSTABLE_BUILD_STD=std,panic_abort \
RUSTFLAGS='-C target-feature=+simd128,+atomics,+bulk-memory,+mutable-globals --cfg getrandom_backend="wasm_js"' \
  cargo rustc --profile "$profile" --target wasm32-unknown-unknown --bin "$name" \
  --no-default-features --features threads --target-dir "$target_dir" -- $link

dir=$profile; [ "$profile" = dev ] && dir=debug
wasm="$target_dir/wasm32-unknown-unknown/$dir/$name.wasm"
wasm-bindgen --target no-modules --no-typescript --out-dir "$DEST" --out-name "$name" "$wasm"
if [ "$profile" = release ]; then
  # Only the names and producers sections go: -O3 left the gzip size the same (1.90 MB) and
  # made this worker slower at 10 tokens (bench/README.md, "Browser on an AVX2 host").
  wasm-opt --strip-debug --strip-producers --enable-threads --enable-simd --enable-relaxed-simd --enable-bulk-memory \
    --enable-nontrapping-float-to-int --enable-sign-ext --enable-mutable-globals \
    --enable-multivalue --enable-reference-types \
    -o "$DEST/${name}_bg.wasm" "$DEST/${name}_bg.wasm"
fi
cp src/worker/js/webformer-worker-threads_loader.js src/worker/js/webformer-thread.js "$DEST/"
echo "threads-worker: $DEST/${name}_bg.wasm ($(stat -c %s "$DEST/${name}_bg.wasm") bytes)"
