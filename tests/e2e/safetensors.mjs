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

/** The f16 nearest to `x` (ties to even), as its 16 bits. */
export function f16Bits(x) {
  const u = new Uint32Array(new Float32Array([x]).buffer)[0];
  const sign = (u >>> 16) & 0x8000;
  const exp = (u >>> 23) & 0xff;
  let mant = u & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (mant ? 0x200 : 0);
  const e = exp - 127 + 15;
  if (e >= 0x1f) return sign | 0x7c00;
  let shift = 13;
  let h;
  if (e <= 0) {
    // Subnormal half: m · 2⁻²⁴ with the implicit bit made explicit.
    if (e < -10) return sign;
    mant |= 0x800000;
    shift = 14 - e;
    h = mant >>> shift;
  } else {
    h = (e << 10) | (mant >>> 13);
  }
  const rest = mant & ((1 << shift) - 1);
  const half = 1 << (shift - 1);
  if (rest > half || (rest === half && (h & 1))) h += 1;
  return sign | h;
}

/** The value of f16 bits `h`, exactly. */
export function f16Value(h) {
  const sign = h & 0x8000 ? -1 : 1;
  const e = (h >> 10) & 0x1f;
  const m = h & 0x3ff;
  if (e === 0) return sign * m * 2 ** -24;
  if (e === 31) return m ? NaN : sign * Infinity;
  return sign * (1 + m / 1024) * 2 ** (e - 15);
}

/**
 * A safetensors file's bytes with every F32 tensor rounded to f16: stored as F16
 * (`as: 'F16'`), or as F32 holding the same rounded values (`as: 'F32'`). Other tensors
 * are copied as they are.
 */
export function roundedToF16(buf, as) {
  const headerLen = Number(buf.readBigUInt64LE(0));
  const header = JSON.parse(buf.subarray(8, 8 + headerLen).toString('utf8'));
  const base = 8 + headerLen;
  const out = {};
  const parts = [];
  let offset = 0;
  for (const [name, t] of Object.entries(header)) {
    if (name === '__metadata__') continue;
    const bytes = buf.subarray(base + t.data_offsets[0], base + t.data_offsets[1]);
    let data = Buffer.from(bytes);
    let dtype = t.dtype;
    if (t.dtype === 'F32') {
      const n = bytes.length / 4;
      const halves = Array.from({ length: n }, (_, i) => f16Bits(bytes.readFloatLE(i * 4)));
      dtype = as;
      data = Buffer.alloc(as === 'F16' ? 2 * n : 4 * n);
      halves.forEach((h, i) => (as === 'F16' ? data.writeUInt16LE(h, 2 * i) : data.writeFloatLE(f16Value(h), 4 * i)));
    }
    out[name] = { dtype, shape: t.shape, data_offsets: [offset, offset + data.length] };
    parts.push(data);
    offset += data.length;
  }
  let json = JSON.stringify(out);
  json += ' '.repeat((8 - (json.length % 8)) % 8);
  const head = Buffer.alloc(8);
  head.writeBigUInt64LE(BigInt(json.length));
  return Buffer.concat([head, Buffer.from(json, 'utf8'), ...parts]);
}
