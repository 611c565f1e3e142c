// Reads a safetensors file (F32 and I64 tensors) into { name: { shape, data } }.
import { readFileSync } from 'node:fs';

export function readSafetensors(path) {
  const buf = readFileSync(path);
  const headerLen = Number(buf.readBigUInt64LE(0));
  const header = JSON.parse(buf.subarray(8, 8 + headerLen).toString('utf8'));
  const base = 8 + headerLen;
  const out = {};
  for (const [name, t] of Object.entries(header)) {
    if (name === '__metadata__') continue;
    const [start, end] = t.data_offsets;
    const bytes = buf.subarray(base + start, base + end);
    let data;
    if (t.dtype === 'F32') {
      data = Array.from({ length: bytes.length / 4 }, (_, i) => bytes.readFloatLE(i * 4));
    } else if (t.dtype === 'I64') {
      data = Array.from({ length: bytes.length / 8 }, (_, i) => Number(bytes.readBigInt64LE(i * 8)));
    } else {
      throw new Error(`${name}: dtype ${t.dtype} not handled`);
    }
    out[name] = { shape: t.shape, data };
  }
  return out;
}

export function softmax(logits) {
  const max = Math.max(...logits);
  const exps = logits.map((l) => Math.exp(l - max));
  const sum = exps.reduce((a, b) => a + b, 0);
  return exps.map((e) => e / sum);
}
