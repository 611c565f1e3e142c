"""Exports models/all-MiniLM-L6-v2 (the same safetensors our engine loads) to ONNX for
transformers.js, and checks the export against PyTorch on one input.

    /opt/torchvenv/bin/python bench/browser/export_onnx.py [--out .cache/bench/minilm-onnx]

Writes OUT/onnx/model.onnx beside config.json, tokenizer.json, tokenizer_config.json (the
layout transformers.js reads with env.localModelPath). `onnx` and `onnxruntime` come from
OUT/../pylib (pip --target, by run.sh), appended to sys.path so the venv's own numpy wins.
Idempotent: exits at once when model.onnx exists, unless --force.
"""

import argparse
import os
import shutil
import sys

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default=os.path.join(ROOT, "models", "all-MiniLM-L6-v2"))
    ap.add_argument("--out", default=os.path.join(ROOT, ".cache", "bench", "minilm-onnx"))
    ap.add_argument("--force", action="store_true")
    args = ap.parse_args()
    onnx_path = os.path.join(args.out, "onnx", "model.onnx")
    if os.path.exists(onnx_path) and not args.force:
        print(f"export_onnx: {onnx_path} exists", file=sys.stderr)
        return
    sys.path.append(os.path.join(ROOT, ".cache", "bench", "pylib"))

    import numpy as np
    import torch
    from transformers import AutoModel, AutoTokenizer

    torch.manual_seed(0)
    model = AutoModel.from_pretrained(args.model, attn_implementation="eager").eval()
    tok = AutoTokenizer.from_pretrained(args.model)

    class Wrap(torch.nn.Module):
        def __init__(self, m):
            super().__init__()
            self.m = m

        def forward(self, input_ids, attention_mask, token_type_ids):
            # The additive 4-D mask built here rather than by transformers' masking_utils,
            # whose sequence-length checks the TorchScript tracer bakes in as constants.
            positions = torch.arange(input_ids.shape[1], device=input_ids.device)[None, :]
            h = self.m.embeddings(input_ids=input_ids, token_type_ids=token_type_ids, position_ids=positions)
            mask = attention_mask[:, None, None, :].to(h.dtype)
            mask = (1.0 - mask) * torch.finfo(h.dtype).min
            return self.m.encoder(h, attention_mask=mask).last_hidden_state

    # PyTorch's answer on an input the export is not traced with (computed before the
    # export, which leaves the module changed), with padding in the second row.
    check = tok(["Checking the export on a sentence it was not traced with, of another length.",
                 "And a shorter one."], padding=True, return_tensors="pt")
    with torch.no_grad():
        want = model(**check).last_hidden_state.numpy()

    enc = tok(["The quick brown fox jumps over the lazy dog.", "A second, longer sentence to pad the first one."],
              padding=True, return_tensors="pt")
    inputs = (enc["input_ids"], enc["attention_mask"], enc["token_type_ids"])
    os.makedirs(os.path.dirname(onnx_path), exist_ok=True)
    axes = {0: "batch", 1: "sequence"}
    torch.onnx.export(
        Wrap(model),
        inputs,
        onnx_path,
        dynamo=False,
        opset_version=17,
        input_names=["input_ids", "attention_mask", "token_type_ids"],
        output_names=["last_hidden_state"],
        dynamic_axes={"input_ids": axes, "attention_mask": axes, "token_type_ids": axes,
                      "last_hidden_state": axes},
    )
    for f in ["config.json", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.txt"]:
        src = os.path.join(args.model, f)
        if os.path.exists(src):
            shutil.copyfile(src, os.path.join(args.out, f))

    # Check: the ONNX model against PyTorch.
    import onnxruntime as ort

    sess = ort.InferenceSession(onnx_path, providers=["CPUExecutionProvider"])
    got = sess.run(None, {k: check[k].numpy().astype(np.int64) for k in
                          ["input_ids", "attention_mask", "token_type_ids"]})[0]
    keep = check["attention_mask"].numpy().astype(bool)  # padded positions are not compared
    diff = float(np.abs(got - want)[keep].max())
    print(f"export_onnx: {onnx_path} ({os.path.getsize(onnx_path) / 1e6:.1f} MB); "
          f"max |Δ| last_hidden_state vs PyTorch = {diff:.2e} on {want.shape[1]} tokens", file=sys.stderr)
    if diff > 1e-4:
        os.replace(onnx_path, onnx_path + ".rejected")
        sys.exit(f"export_onnx: the export differs from PyTorch by {diff}")


if __name__ == "__main__":
    main()
