#!/usr/bin/env bash
# Puts the offline default models next to the site: DEST/models/<id>/ and
# DEST/models/index.json, which the page's model catalogue reads. Trunk runs it after each
# build (Trunk.toml, post_build hook, DEST = its staging dir); it can also be run by hand:
#   scripts/offline-models.sh dist
# Files are hard-linked where the file system allows (the 91 MB MiniLM costs no extra disk),
# else copied. A model whose files are not there (set-up not run) is left out and the page
# says so; the site works either way.
set -euo pipefail
cd "$(dirname "$0")/.."
DEST=${1:-${TRUNK_STAGING_DIR:?give the site folder, e.g. dist}}
OUT="$DEST/models"
rm -rf "$OUT"
mkdir -p "$OUT"

entries=()
# add ID TITLE SRC_DIR HEAD FILE...   (HEAD: a head.safetensors path under models/, or -)
add() {
  local id=$1 title=$2 src=$3 head=$4
  shift 4
  local f
  for f in "$@"; do
    [[ -f "$src/$f" ]] || { echo "offline-models: $id left out ($src/$f is missing)" >&2; return 0; }
  done
  mkdir -p "$OUT/$id"
  local files=()
  for f in "$@"; do
    ln -f "$src/$f" "$OUT/$id/$f" 2>/dev/null || cp "$src/$f" "$OUT/$id/$f"
    files+=("{\"name\": \"$f\", \"size\": $(stat -c %s "$src/$f")}")
  done
  local head_json=null
  if [[ $head != - && -f "models/$head" ]]; then
    mkdir -p "$OUT/$(dirname "$head")"
    ln -f "models/$head" "$OUT/$head" 2>/dev/null || cp "models/$head" "$OUT/$head"
    head_json="\"$head\""
  fi
  local joined
  joined=$(IFS=,; echo "${files[*]}")
  entries+=("{\"id\": \"$id\", \"title\": \"$title\", \"files\": [$joined], \"head\": $head_json}")
}

# MiniLM with the sentiment head that set-up trains (scripts/make-default-heads.sh).
minilm_title="Sentiment: all-MiniLM-L6-v2 + head trained on Pang & Lee (91 MB)"
[[ -f models/defaults/minilm-sentiment/head.safetensors ]] \
  || minilm_title="Encoder: all-MiniLM-L6-v2 (91 MB; no sentiment head yet, run scripts/setup.sh)"
add all-MiniLM-L6-v2 "$minilm_title" models/all-MiniLM-L6-v2 defaults/minilm-sentiment/head.safetensors \
  config.json tokenizer.json model.safetensors
add vit-fashion-mnist "Images: small ViT trained on Fashion-MNIST (0.6 MB)" tests/fixtures/vit-fashion-mnist - \
  config.json preprocessor_config.json model.safetensors

joined=$(IFS=,; echo "${entries[*]-}")
printf '{"models": [%s]}\n' "$joined" > "$OUT/index.json"
echo "offline-models: ${#entries[@]} model(s) in $OUT"
