"""The reference for bench/browser/vit.mjs's image rows: PyTorch + PIL (transformers'
ViTImageProcessor, as in Python) on the very PNGs the page timed, against both sides'
answers, which vit.mjs --save-images wrote beside them (KEY.png, KEY.json).

    /opt/torchvenv/bin/python bench/browser/vit_reference.py [DIR]   # default .cache/bench/vit-images
"""

import glob
import json
import os
import sys

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
FOLDERS = {
    "fashion": os.path.join(ROOT, "tests", "fixtures", "vit-fashion-mnist"),
    "base": os.path.join(ROOT, ".cache", "bench", "vit-base-random"),
}


def main():
    import torch
    from PIL import Image
    from transformers import ViTForImageClassification, ViTImageProcessor

    folder = sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, ".cache", "bench", "vit-images")
    models = {}
    for path in sorted(glob.glob(os.path.join(folder, "*.json"))):
        key = os.path.basename(path)[:-5]
        ans = json.load(open(path))
        if ans["model"] not in models:
            src = FOLDERS[ans["model"]]
            models[ans["model"]] = (ViTForImageClassification.from_pretrained(src).eval(),
                                    ViTImageProcessor.from_pretrained(src))
        model, proc = models[ans["model"]]
        img = Image.open(os.path.join(folder, key + ".png")).convert("RGB")
        with torch.no_grad():
            probs = model(**proc(img, return_tensors="pt")).logits.softmax(-1)[0].tolist()
        ref = {model.config.id2label[i]: p for i, p in enumerate(probs)}
        top = max(ref, key=ref.get)

        def d(side):
            return max(abs(ans[side][label] - ref[label]) for label in ref)

        print(f"- {ans['model']}, {key}.png ({img.width}×{img.height}): PyTorch + PIL top-1 {top} {ref[top]:.4f}; "
              f"max |Δprob| against ours {d('ours'):.1e}, against transformers.js {d('tjs'):.1e}")


if __name__ == "__main__":
    main()
