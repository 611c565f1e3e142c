#!/opt/torchvenv/bin/python
"""PyTorch CPU peer of bench/encoder.rs: the same models (the very same config.json +
model.safetensors that `cargo bench --bench encoder -- --write-models DIR` writes, loaded
with `from_pretrained`), the same inputs (token ids and pixels from the same formulas), the
same timing policy (warm-up, then at least N runs and at least S seconds; the median).

    /opt/torchvenv/bin/python bench/pytorch_encoder.py --models DIR --threads T [FILTER]
        prints one JSON object: {"threads": T, "results": [{config, median_ms, ...}, ...]}
    /opt/torchvenv/bin/python bench/pytorch_encoder.py --models DIR --threads T --serve
        reads 'MODEL BATCH SEQ' lines on stdin, answers one JSON line each (bench/native.sh)

BertModel / ViTModel in eval(), under torch.inference_mode(), with transformers' default
attention (sdpa), attention_mask of ones for text (what a tokenizer passes).
"""

import argparse
import json
import os
import sys
import time

IMAGE = 224
PATCH = 16
LABELS = {"bert-base": "BERT-base", "minilm": "MiniLM-L6", "vit-base": "ViT-base/16"}


def configs():
    out = []
    for key in ("bert-base", "minilm"):
        for batch in (1, 8):
            for seq in (8, 32, 128):
                out.append((key, batch, seq))
    out.append(("vit-base", 1, IMAGE))
    return out


def label(key, batch, seq):
    if key == "vit-base":
        return f"{LABELS[key]} {seq}px b{batch}"
    return f"{LABELS[key]} {seq} tok b{batch}"


def token_ids(torch, batch, seq):
    # bench/encoder.rs: 1000 + (b * 7919 + t * 104729 + 17) % 28000
    rows = [[1000 + (b * 7919 + t * 104729 + 17) % 28000 for t in range(seq)] for b in range(batch)]
    return torch.tensor(rows, dtype=torch.long)


def pixels(torch, batch, size):
    # bench/encoder.rs: ((i * 7919 % 2001) / 1000 - 1) as f32 over the flat batch
    n = 3 * size * size
    i = torch.arange(batch * n, dtype=torch.float64)
    v = torch.remainder(i * 7919, 2001) / 1000.0 - 1.0
    return v.to(torch.float32).reshape(batch, 3, size, size)


def load(torch, models_dir, key):
    from transformers import BertModel, ViTModel

    cls = ViTModel if key == "vit-base" else BertModel
    model, info = cls.from_pretrained(os.path.join(models_dir, key), output_loading_info=True)
    missing = [k for k in info.get("missing_keys", []) if not k.endswith("position_ids")]
    if missing or info.get("mismatched_keys"):
        raise SystemExit(f"{key}: weights not all loaded: missing {missing}, mismatched {info.get('mismatched_keys')}")
    model.eval()
    return model


def time_config(torch, model, key, batch, seq, runs, min_time):
    if key == "vit-base":
        inputs = {"pixel_values": pixels(torch, batch, seq)}
    else:
        ids = token_ids(torch, batch, seq)
        inputs = {"input_ids": ids, "attention_mask": torch.ones_like(ids)}

    def run():
        with torch.inference_mode():
            return model(**inputs).last_hidden_state

    t0 = time.perf_counter()
    sample = run()[0, 0, :8].tolist()
    warm = 1
    while warm < 3 and time.perf_counter() - t0 < 0.5:
        run()
        warm += 1
    times = []
    start = time.perf_counter()
    while len(times) < runs or (time.perf_counter() - start < min_time and len(times) < 200):
        t = time.perf_counter()
        run()
        times.append(time.perf_counter() - t)
    times.sort()
    return {
        "model": key,
        "batch": batch,
        "seq": seq,
        "label": label(key, batch, seq),
        "median_ms": times[len(times) // 2] * 1e3,
        "min_ms": times[0] * 1e3,
        "runs": len(times),
        "threads": torch.get_num_threads(),
        "attn_implementation": model.config._attn_implementation,
        "sample": sample,
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", required=True, help="directory written by the Rust bench (--write-models)")
    ap.add_argument("--threads", type=int, required=True)
    ap.add_argument("--serve", action="store_true")
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--min-time", type=float, default=2.0)
    ap.add_argument("filter", nargs="?")
    a = ap.parse_args()

    import torch

    torch.set_num_threads(a.threads)
    loaded = {}

    def get(key):
        if key not in loaded:
            loaded.clear()
            loaded[key] = load(torch, a.models, key)
        return loaded[key]

    if a.serve:
        print(json.dumps({"ready": True, "engine": "pytorch", "torch": torch.__version__, "threads": torch.get_num_threads()}), flush=True)
        for line in sys.stdin:
            parts = line.split()
            if not parts:
                continue
            key, batch, seq = parts[0], int(parts[1]), int(parts[2])
            r = time_config(torch, get(key), key, batch, seq, a.runs, a.min_time)
            print(json.dumps(r), flush=True)
        return

    results = []
    for key, batch, seq in configs():
        if a.filter and a.filter not in label(key, batch, seq):
            continue
        print(f"{label(key, batch, seq)} ...", file=sys.stderr)
        results.append(time_config(torch, get(key), key, batch, seq, a.runs, a.min_time))
    print(json.dumps({"torch": torch.__version__, "threads": torch.get_num_threads(), "results": results}, indent=1))


if __name__ == "__main__":
    main()
