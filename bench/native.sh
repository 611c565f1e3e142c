#!/usr/bin/env bash
# Our CPU engine vs PyTorch CPU, same weights, same inputs, same thread count: one table.
#
#     bench/native.sh                 # threads 1 and 2, every configuration
#     THREADS=1 bench/native.sh MiniLM   # one thread count, configurations matching MiniLM
#
# Environment: THREADS ("1 2"), RUNS (5), MIN_TIME (2 s), MODELS_DIR, PYTHON
# (/opt/torchvenv/bin/python), ENCODER_BIN (a prebuilt bench binary instead of building).
#
# Builds `cargo bench --bench encoder` (release), writes the random-weight models once
# (target/bench-encoder-models, ~870 MB), then per thread count T starts both engines as
# servers (ours with RAYON_NUM_THREADS=T, which is what candle's gemm and thread pool
# read; PyTorch with torch.set_num_threads(T) and OMP_NUM_THREADS=T) and asks them for
# each configuration in turn, alternating who goes first, so background noise hits both.
# Each answer is a median of >= RUNS runs and >= MIN_TIME seconds after warm-up, and
# carries the first values of the output, which must agree (same weights, same maths).
# See bench/README.md.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -f .tools/env.sh ] && source .tools/env.sh

PY=${PYTHON:-/opt/torchvenv/bin/python}
THREADS=${THREADS:-1 2}
RUNS=${RUNS:-5}
MIN_TIME=${MIN_TIME:-2}
MODELS_DIR=${MODELS_DIR:-target/bench-encoder-models}
FILTER=${1:-}

if [ -n "${ENCODER_BIN:-}" ]; then
    BIN=$ENCODER_BIN   # a prebuilt bench binary, e.g. to compare two builds of the engine
else
    echo "building the encoder bench (release) ..." >&2
    BIN=$(cargo bench --bench encoder --no-run --message-format=json 2>/dev/null |
        grep -o '"executable":"[^"]*/encoder-[^"]*"' | cut -d'"' -f4 | tail -1)
fi
[ -x "$BIN" ] || { echo "native.sh: could not build the encoder bench" >&2; exit 1; }
"$BIN" --write-models "$MODELS_DIR"
mapfile -t CONFIGS < <("$BIN" --list "$FILTER")
[ ${#CONFIGS[@]} -gt 0 ] || { echo "native.sh: no configuration matches '$FILTER'" >&2; exit 1; }

tmp=$(mktemp -d)
pids=()
cleanup() {
    exec 3>&- 4<&- 5>&- 6<&- 2>/dev/null || true
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    rm -rf "$tmp"
}
trap cleanup EXIT
results=$tmp/results.jsonl
: >"$results"
load_before=$(cut -d' ' -f1-3 /proc/loadavg)
started=$(date -u +%FT%TZ)

for T in $THREADS; do
    mkfifo "$tmp/o.in" "$tmp/o.out" "$tmp/p.in" "$tmp/p.out"
    RAYON_NUM_THREADS=$T CANDLE_NUM_THREADS=$T \
        "$BIN" --serve --models "$MODELS_DIR" --runs "$RUNS" --min-time "$MIN_TIME" \
        <"$tmp/o.in" >"$tmp/o.out" &
    pids+=($!)
    exec 3>"$tmp/o.in" 4<"$tmp/o.out"
    OMP_NUM_THREADS=$T MKL_NUM_THREADS=$T \
        "$PY" bench/pytorch_encoder.py --serve --models "$MODELS_DIR" --threads "$T" \
        --runs "$RUNS" --min-time "$MIN_TIME" <"$tmp/p.in" >"$tmp/p.out" 2>"$tmp/p.err" &
    pids+=($!)
    exec 5>"$tmp/p.in" 6<"$tmp/p.out"
    read -r ready <&4 && echo "ours: $ready" >&2 && echo "$ready" >"$tmp/ours-ready.json"
    read -r ready <&6 && echo "pytorch: $ready" >&2
    i=0
    for c in "${CONFIGS[@]}"; do
        echo "[T=$T] $c (load $(cut -d' ' -f1 /proc/loadavg)) ..." >&2
        if (( i % 2 == 0 )); then
            echo "$c" >&3; read -r ours <&4
            echo "$c" >&5; read -r theirs <&6
        else
            echo "$c" >&5; read -r theirs <&6
            echo "$c" >&3; read -r ours <&4
        fi
        [ -n "$ours" ] && [ -n "$theirs" ] || { echo "native.sh: an engine died on '$c'" >&2; cat "$tmp/p.err" >&2; exit 1; }
        echo "{\"ours\": $ours, \"pytorch\": $theirs}" >>"$results"
        i=$((i + 1))
    done
    exec 3>&- 5>&-
    wait "${pids[@]}"
    exec 4<&- 6<&-
    pids=()
    rm -f "$tmp"/o.* "$tmp"/p.in "$tmp"/p.out
done
load_after=$(cut -d' ' -f1-3 /proc/loadavg)

"$PY" - "$results" "$started" "$load_before" "$load_after" "$RUNS" "$MIN_TIME" "$tmp/ours-ready.json" <<'EOF'
import json, platform, subprocess, sys
path, started, before, after, runs, min_time, ready = sys.argv[1:]
kernels = json.load(open(ready)).get("kernels", "?")
rows = [json.loads(l) for l in open(path)]
cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
torch = subprocess.run([sys.executable, "-c", "import torch; print(torch.__version__)"], capture_output=True, text=True).stdout.strip()
attn = rows[0]["pytorch"].get("attn_implementation", "?") if rows else "?"
print(f"Machine: {cpu}, {subprocess.run(['nproc'], capture_output=True, text=True).stdout.strip()} CPUs; "
      f"{started}; load average (1/5/15 min) {before} before, {after} after.")
print(f"Ours: CPU backend ({kernels}), RAYON_NUM_THREADS=T. PyTorch {torch}, torch.set_num_threads(T), "
      f"attention {attn}, inference_mode. Median ms of >= {runs} runs and >= {min_time} s after warm-up, "
      "ours and PyTorch alternated per configuration. The fastest run (min) is less "
      "sensitive to other processes on the machine than the median.")
print()
print("| config | threads | ours ms | PyTorch ms | ours / PyTorch | min: ours / PyTorch ms | min ratio | max output diff |")
print("|---|--:|--:|--:|--:|--:|--:|--:|")
worst = 0.0
for r in rows:
    o, p = r["ours"], r["pytorch"]
    diff = max(abs(a - b) for a, b in zip(o["sample"], p["sample"]))
    worst = max(worst, diff)
    print(f"| {o['label']} | {o['threads']} | {o['median_ms']:.1f} | {p['median_ms']:.1f} | "
          f"{o['median_ms'] / p['median_ms']:.2f} | {o['min_ms']:.1f} / {p['min_ms']:.1f} | "
          f"{o['min_ms'] / p['min_ms']:.2f} | {diff:.1e} |")
if worst > 1e-3:
    print(f"\nWARNING: outputs differ by {worst:.1e}: the two engines do not run the same model.")
    sys.exit(1)
EOF
