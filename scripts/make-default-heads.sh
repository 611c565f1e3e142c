#!/usr/bin/env bash
# The app's offline default heads, trained here by our own fine-tuning (the same
# `webformer train` the tests measure), into the git-ignored models/ folder:
#
#   models/defaults/minilm-sentiment/head.safetensors   sentiment head for all-MiniLM-L6-v2,
#   models/defaults/minilm-sentiment/head.json          trained on the Pang & Lee train split
#                                                        (labels "negative", "positive")
#
# Never committed: the corpus is for personal use only (see scripts/get-pang-lee.sh).
# A head is trained again only when it is missing or older than one of its inputs (the
# encoder's files, the CSV, this script); otherwise this only says it is up to date.
# Prints the validation accuracy of the head it trained. Called by scripts/setup.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -f .tools/env.sh ] && source .tools/env.sh

say() { printf '\033[1m[default-heads]\033[0m %s\n' "$*"; }

MODEL=models/all-MiniLM-L6-v2
CSV=.cache/data/pang-lee/train.csv
OUT=models/defaults/minilm-sentiment/head.safetensors
INPUTS=("$MODEL/config.json" "$MODEL/model.safetensors" "$MODEL/tokenizer.json" "$CSV" scripts/make-default-heads.sh)

for f in "${INPUTS[@]}"; do
  if [ ! -f "$f" ]; then
    echo "make-default-heads: $f is missing; run scripts/setup.sh (it fetches all-MiniLM-L6-v2 and extracts the Pang & Lee corpus)" >&2
    exit 1
  fi
done

stale=""
if [ ! -f "$OUT" ] || [ ! -f "${OUT%.safetensors}.json" ]; then
  stale="missing"
else
  for f in "${INPUTS[@]}"; do
    if [ "$f" -nt "$OUT" ]; then
      stale="$f is newer"
      break
    fi
  done
fi
if [ -z "$stale" ]; then
  say "up to date: $OUT"
  exit 0
fi

say "training $OUT ($stale): all-MiniLM-L6-v2 on $CSV"
dir=$(dirname "$OUT")
mkdir -p "$dir"
tmp="$dir/head.partial.safetensors"
log="$dir/train.log"
# The CLI prints one JSON line per epoch, then the metrics; progress goes to stderr.
cargo run --release --locked --quiet --bin webformer -- \
  train --model "$MODEL" --csv "$CSV" --out "$tmp" >"$log"
mv "$dir/head.partial.json" "${OUT%.safetensors}.json"
mv "$tmp" "$OUT"
python3 - "$log" "$OUT" <<'PY'
import json, sys
done = json.loads(open(sys.argv[1]).read().splitlines()[-1])
print(f"[default-heads] {sys.argv[2]}: labels {done['labels']}, validation accuracy "
      f"{done['val_accuracy'] * 100:.1f}% after {done['epochs']} epochs (best {done['best_epoch']})")
PY
