"""Exports a ViT image classifier (the same safetensors our engine loads) to ONNX for
transformers.js, and checks the export against PyTorch.

    /opt/torchvenv/bin/python bench/browser/export_vit_onnx.py --model DIR --out OUT
    /opt/torchvenv/bin/python bench/browser/export_vit_onnx.py --random-base DIR --out OUT

--model: an existing ViTForImageClassification folder (config.json, preprocessor_config.json,
model.safetensors), e.g. tests/fixtures/vit-fashion-mnist, the offline ViT the site ships.
--random-base: first writes a ViT-base/16 at 224 px with random weights (ViTConfig()'s
defaults, 2 labels, torch seed 0) into DIR for our worker, then exports that. Bench-time
files only: DIR and OUT belong under the git-ignored .cache/bench, never committed.

Writes OUT/onnx/model.onnx (input pixel_values, output logits) beside config.json and
preprocessor_config.json: the layout transformers.js reads with env.localModelPath. `onnx`
and `onnxruntime` come from .cache/bench/pylib (pip --target, by run.sh), appended to
sys.path so the venv's own numpy wins. Idempotent: exits at once when model.onnx exists,
unless --force.
"""

import argparse
import json
import os
import shutil
import sys

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))


def make_random_base(folder):
    import torch
    from transformers import ViTConfig, ViTForImageClassification

    if os.path.exists(os.path.join(folder, "model.safetensors")):
        return
    torch.manual_seed(0)
    model = ViTForImageClassification(ViTConfig()).eval()
    model.save_pretrained(folder, safe_serialization=True)
    # ViTImageProcessor's defaults, written out (224 x 224, bilinear, mean = std = 0.5).
    pre = {
        "do_normalize": True,
        "do_rescale": True,
        "do_resize": True,
        "image_mean": [0.5, 0.5, 0.5],
        "image_processor_type": "ViTImageProcessor",
        "image_std": [0.5, 0.5, 0.5],
        "resample": 2,
        "rescale_factor": 1 / 255,
        "size": {"height": 224, "width": 224},
    }
    with open(os.path.join(folder, "preprocessor_config.json"), "w") as f:
        json.dump(pre, f, indent=2)
    print(f"export_vit_onnx: random ViT-base/16 written to {folder}", file=sys.stderr)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default=os.path.join(ROOT, "tests", "fixtures", "vit-fashion-mnist"))
    ap.add_argument("--random-base", default=None, help="write a random ViT-base/16 224 px here and export it")
    ap.add_argument("--out", required=True)
    ap.add_argument("--force", action="store_true")
    args = ap.parse_args()
    if args.random_base:
        make_random_base(args.random_base)
        args.model = args.random_base
    onnx_path = os.path.join(args.out, "onnx", "model.onnx")
    if os.path.exists(onnx_path) and not args.force:
        print(f"export_vit_onnx: {onnx_path} exists", file=sys.stderr)
        return
    sys.path.append(os.path.join(ROOT, ".cache", "bench", "pylib"))

    import numpy as np
    import torch
    from transformers import ViTForImageClassification

    model = ViTForImageClassification.from_pretrained(args.model, attn_implementation="eager").eval()
    cfg = model.config
    shape = (cfg.num_channels, cfg.image_size, cfg.image_size)

    class Wrap(torch.nn.Module):
        def __init__(self, m):
            super().__init__()
            self.m = m

        def forward(self, pixel_values):
            return self.m(pixel_values=pixel_values).logits

    # PyTorch's answer on inputs the export is not traced with (a batch of 3, computed before
    # the export).
    gen = torch.Generator().manual_seed(1)
    check = torch.rand((3, *shape), generator=gen) * 2 - 1
    with torch.no_grad():
        want = model(pixel_values=check).logits.numpy()

    traced_with = torch.rand((2, *shape), generator=gen) * 2 - 1
    os.makedirs(os.path.dirname(onnx_path), exist_ok=True)
    torch.onnx.export(
        Wrap(model),
        (traced_with,),
        onnx_path,
        dynamo=False,
        opset_version=17,
        input_names=["pixel_values"],
        output_names=["logits"],
        dynamic_axes={"pixel_values": {0: "batch"}, "logits": {0: "batch"}},
    )
    for f in ["config.json", "preprocessor_config.json"]:
        shutil.copyfile(os.path.join(args.model, f), os.path.join(args.out, f))

    import onnxruntime as ort

    sess = ort.InferenceSession(onnx_path, providers=["CPUExecutionProvider"])
    got = sess.run(None, {"pixel_values": check.numpy()})[0]
    diff = float(np.abs(got - want).max())

    def softmax(x):
        e = np.exp(x - x.max(axis=-1, keepdims=True))
        return e / e.sum(axis=-1, keepdims=True)

    pdiff = float(np.abs(softmax(got) - softmax(want)).max())
    same_top1 = bool((got.argmax(-1) == want.argmax(-1)).all())
    print(f"export_vit_onnx: {onnx_path} ({os.path.getsize(onnx_path) / 1e6:.1f} MB); vs PyTorch on 3 random "
          f"{shape[1]}x{shape[2]} inputs: max |Δ logits| = {diff:.2e}, max |Δ prob| = {pdiff:.2e}, "
          f"top-1 equal: {same_top1}", file=sys.stderr)
    if diff > 1e-4 or not same_top1:
        os.replace(onnx_path, onnx_path + ".rejected")
        sys.exit(f"export_vit_onnx: the export differs from PyTorch by {diff}")


if __name__ == "__main__":
    main()
