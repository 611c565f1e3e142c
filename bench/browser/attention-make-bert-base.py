"""Writes a randomly initialised BERT-base-shaped classifier (12 layers x 12 heads, hidden
768, 2 labels; transformers' default init, seed 0) for the attention-explorer bench, with
all-MiniLM-L6-v2's tokenizer.json (the same 30522-piece uncased vocabulary as
bert-base-uncased). Weights are written at bench time, never committed. F16 halves the
file (the engine widens it to f32 on load), so the browser reads 220 MB, not 440 MB.

    /opt/torchvenv/bin/python bench/browser/attention-make-bert-base.py OUT_DIR [TOKENIZER_JSON]
"""

import os
import shutil
import sys

import torch
from transformers import BertConfig, BertForSequenceClassification

out = sys.argv[1]
tokenizer = sys.argv[2] if len(sys.argv) > 2 else "models/all-MiniLM-L6-v2/tokenizer.json"
torch.manual_seed(0)
os.makedirs(out, exist_ok=True)
config = BertConfig(num_labels=2, id2label={0: "NEGATIVE", 1: "POSITIVE"},
                    label2id={"NEGATIVE": 0, "POSITIVE": 1})
model = BertForSequenceClassification(config).eval().half()
model.save_pretrained(out, safe_serialization=True)
shutil.copy(tokenizer, os.path.join(out, "tokenizer.json"))
print(f"{out}: {config.num_hidden_layers} layers x {config.num_attention_heads} heads, "
      f"hidden {config.hidden_size}, "
      f"{os.path.getsize(os.path.join(out, 'model.safetensors')) / 1e6:.0f} MB")
