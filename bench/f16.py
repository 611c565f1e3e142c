"""Does all-MiniLM-L6-v2 hold its accuracy with weights stored in f16 (half the download)?

Writes an f16 copy of models/all-MiniLM-L6-v2/model.safetensors (every float tensor rounded
to float16; the engine widens them to f32 on load, as it does for any f16 checkpoint), then
runs our CLI on both copies and compares:
  1. embeddings of the golden texts (tests/fixtures/minilm-golden) against PyTorch's f32
     goldens and f32 against f16;
  2. the offline sentiment head (models/defaults/minilm-sentiment) on the Pang & Lee test
     split (scripts/get-pang-lee.sh; 800 sentences): accuracy, label flips, max |Δprob|.

    /opt/torchvenv/bin/python bench/f16.py [--cli target/release/webformer] [--limit N]
    /opt/torchvenv/bin/python bench/f16.py --out DIR   # only the f16 copy, e.g. for
                                                       # bench/browser/run.sh --minilm DIR
"""
import argparse
import csv
import json
import os
import shutil
import subprocess
import sys
import tempfile

import numpy as np
import torch
from safetensors.torch import load_file, save_file

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MODEL = os.path.join(ROOT, "models/all-MiniLM-L6-v2")
HEAD = os.path.join(ROOT, "models/defaults/minilm-sentiment/head.safetensors")
GOLDEN = os.path.join(ROOT, "tests/fixtures/minilm-golden")
PANG_LEE = os.path.join(ROOT, ".cache/data/pang-lee/test.csv")


def f16_copy(dst):
    tensors = load_file(os.path.join(MODEL, "model.safetensors"))
    half = {k: (v.half() if v.is_floating_point() else v).contiguous() for k, v in tensors.items()}
    save_file(half, os.path.join(dst, "model.safetensors"))
    for f in ("config.json", "tokenizer.json"):
        shutil.copy(os.path.join(MODEL, f), dst)


def cli(binary, args, texts):
    """One JSON object per text; texts go in chunks to keep command lines short."""
    out = []
    for i in range(0, len(texts), 100):
        r = subprocess.run([binary, *args, *texts[i : i + 100]], capture_output=True, text=True)
        if r.returncode != 0:
            sys.exit(f"{binary} {' '.join(args)} failed: {r.stderr}")
        out += [json.loads(line) for line in r.stdout.splitlines() if line.startswith("{")]
    assert len(out) == len(texts), (len(out), len(texts))
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--cli", default=os.path.join(ROOT, "target/release/webformer"))
    ap.add_argument("--limit", type=int, default=0)
    ap.add_argument("--out", help="only write the f16 copy into this folder (for the browser "
                    "bench's --minilm) and stop")
    a = ap.parse_args()
    if a.out:
        os.makedirs(a.out, exist_ok=True)
        f16_copy(a.out)
        print(f"wrote an f16 copy of {MODEL} to {a.out}")
        return

    meta = json.load(open(os.path.join(GOLDEN, "golden.json")))
    gold = load_file(os.path.join(GOLDEN, "golden.safetensors"))
    texts = meta["texts"]
    with tempfile.TemporaryDirectory() as tmp:
        f16_copy(tmp)
        sizes = [os.path.getsize(os.path.join(d, "model.safetensors")) / 2**20 for d in (MODEL, tmp)]
        print(f"model.safetensors: f32 {sizes[0]:.1f} MB, f16 {sizes[1]:.1f} MB")

        e32 = cli(a.cli, ["embed", "--model", MODEL], texts)
        e16 = cli(a.cli, ["embed", "--model", tmp], texts)
        worst = {"f32 vs PyTorch": 0.0, "f16 vs PyTorch": 0.0, "f16 vs f32": 0.0}
        min_cos = 1.0
        for i, (x, y) in enumerate(zip(e32, e16)):
            g = gold[f"{i}.embedding"].numpy()
            u, v = np.array(x["embedding"]), np.array(y["embedding"])
            worst["f32 vs PyTorch"] = max(worst["f32 vs PyTorch"], np.abs(u - g).max())
            worst["f16 vs PyTorch"] = max(worst["f16 vs PyTorch"], np.abs(v - g).max())
            worst["f16 vs f32"] = max(worst["f16 vs f32"], np.abs(v - u).max())
            min_cos = min(min_cos, float(u @ v / np.linalg.norm(u) / np.linalg.norm(v)))
        print(f"embeddings of {len(texts)} golden texts, max |Δ|: "
              + ", ".join(f"{k} {v:.2e}" for k, v in worst.items())
              + f"; min cosine f16 vs f32 {min_cos:.7f}")

        if not os.path.isfile(PANG_LEE) or not os.path.isfile(HEAD):
            print("Pang & Lee test split or the sentiment head missing: run scripts/setup.sh")
            return
        rows = list(csv.DictReader(open(PANG_LEE, encoding="utf-8")))
        if a.limit:
            rows = rows[: a.limit]
        sents = [r["text"] for r in rows]
        gold_labels = [r["label"] for r in rows]
        p32 = cli(a.cli, ["text", "--model", MODEL, "--head", HEAD], sents)
        p16 = cli(a.cli, ["text", "--model", tmp, "--head", HEAD], sents)
        acc = lambda ps: sum(p["label"] == g for p, g in zip(ps, gold_labels)) / len(ps)
        flips = sum(x["label"] != y["label"] for x, y in zip(p32, p16))
        dprob = max(np.abs(np.array(x["probs"]) - np.array(y["probs"])).max() for x, y in zip(p32, p16))
        print(f"sentiment head on {len(sents)} Pang & Lee test sentences: accuracy f32 {acc(p32):.4f}, "
              f"f16 {acc(p16):.4f}; labels that flip {flips}; max |Δprob| {dprob:.2e}")


if __name__ == "__main__":
    main()
