// Loading a model costs the worker about the weights once, not twice: the safetensors file
// stays a JS buffer and each tensor is copied from it straight into its f32 buffer in the
// wasm memory (an f16 checkpoint's linear weights and embeddings stay f16: half that). A wasm memory never shrinks, so its size once the model is in (the status
// line's "worker memory … MB") is the most the load ever took.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { serve } from './server.mjs';
import { launch, open } from './browser.mjs';
import { FIXTURES } from './models.mjs';
import { f16Bits } from './safetensors.mjs';

const DIST = process.env.WEBFORMER_DIST ?? 'dist';
const BASE = 'bert-uncased-cls';
/** The fixture's BERT made wide and deep enough that its weights dwarf the app's own memory. */
const HIDDEN = 512;
const INTERMEDIATE = 2048;
const LAYERS = 6;
const HEADS = 8;
/**
 * What the worker holds besides the weights: its code's data, the stack, the tokenizer and
 * the allocator's slack (a wasm memory grows in 64 KiB pages, the allocator in larger steps).
 * The worker with the tiny bert-uncased-cls fixture loaded measures 11 MB; 32 MB leaves
 * room for that, the largest tensor (4 MB here) and slack, and is still well below the one
 * more copy of the weights (77.5 MB) that loading used to need (the old build: 169 MB, 2.18×,
 * against this limit of 148 MB).
 */
const MARGIN = 32e6;
/**
 * The same for the f16 model: its linear weights and embeddings stay f16, its LayerNorms
 * and biases are widened (a few KB), and loading widens one tensor at a time (the largest,
 * 2 MB in f16, packed straight into f16 panels). Measured: 54 MB for 38.8 MB of f16
 * weights (the same model in f32: 91 MB).
 */
const F16_MARGIN = 24e6;
let server;
let dir;

before(async () => {
  server = await serve(DIST);
  dir = mkdtempSync(join(tmpdir(), 'webformer-memory-'));
});
after(async () => {
  await server?.close();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

/**
 * The fixture's config and tensor names at HIDDEN × INTERMEDIATE × LAYERS, written to a
 * folder with every tensor as `dtype` ('F32' or 'F16'): its files and the weights' size.
 */
function writeWideBert(name, dtype = 'F32') {
  const size = dtype === 'F16' ? 2 : 4;
  const src = join(FIXTURES, BASE);
  const config = JSON.parse(readFileSync(join(src, 'config.json'), 'utf8'));
  const resize = { [config.hidden_size]: HIDDEN, [config.intermediate_size]: INTERMEDIATE };
  const buf = readFileSync(join(src, 'model.safetensors'));
  const header = JSON.parse(buf.subarray(8, 8 + Number(buf.readBigUInt64LE(0))).toString('utf8'));
  const tensors = [];
  for (const [tname, t] of Object.entries(header)) {
    if (tname === '__metadata__') continue;
    const shape = t.shape.map((d) => resize[d] ?? d);
    const layer = tname.match(/^bert\.encoder\.layer\.0\.(.*)$/);
    if (layer) {
      for (let l = 0; l < LAYERS; l++) tensors.push({ name: `bert.encoder.layer.${l}.${layer[1]}`, shape });
    } else if (!/^bert\.encoder\.layer\./.test(tname)) {
      tensors.push({ name: tname, shape });
    }
  }
  const out = {};
  let offset = 0;
  for (const t of tensors) {
    const bytes = size * t.shape.reduce((a, b) => a * b, 1);
    out[t.name] = { dtype, shape: t.shape, data_offsets: [offset, offset + bytes] };
    offset += bytes;
  }
  let json = JSON.stringify(out);
  json += ' '.repeat((8 - (json.length % 8)) % 8);
  const file = Buffer.alloc(8 + json.length + offset);
  file.writeBigUInt64LE(BigInt(json.length), 0);
  file.write(json, 8, 'utf8');
  // Small values that are not all alike, so nothing about the load can shortcut them.
  const value = (i) => ((i * 2654435761) % 1000) / 50000 - 0.01;
  for (let i = 0; i < offset / size; i++) {
    const at = 8 + json.length + size * i;
    if (size === 4) file.writeFloatLE(value(i), at);
    else file.writeUInt16LE(f16Bits(value(i)), at);
  }
  const model = join(dir, name);
  mkdirSync(model, { recursive: true });
  writeFileSync(join(model, 'model.safetensors'), file);
  writeFileSync(join(model, 'config.json'), JSON.stringify({ ...config, hidden_size: HIDDEN,
    intermediate_size: INTERMEDIATE, num_hidden_layers: LAYERS, num_attention_heads: HEADS }));
  copyFileSync(join(src, 'tokenizer.json'), join(model, 'tokenizer.json'));
  return { files: ['config.json', 'model.safetensors', 'tokenizer.json'].map((f) => join(model, f)),
    weights: file.length };
}

/** Opens the files through "open local files" and waits for "Loaded …" (as loadFixture does). */
async function loadFiles(page, files) {
  await page.getByTestId('model-files').setInputFiles(files);
  const status = page.getByTestId('model-status').filter({ hasText: 'Loaded' });
  await status.waitFor({ timeout: 120_000 });
  return status.textContent();
}

test('a loaded model leaves the worker at about 1× its weights (not 2×): CPU', async () => {
  const { files, weights } = writeWideBert('wide-bert');
  assert.ok(weights > 70e6, `the wide model is ${weights} bytes`);

  const browser = await launch({ webgpu: false });
  try {
    const { page, problems } = await open(browser.context, `${server.url}?backend=cpu`);
    const status = await loadFiles(page, files);
    assert.match(status, new RegExp(`Loaded BertClassifier \\(${LAYERS} layers × ${HEADS} heads, hidden ${HIDDEN}\\) on CPU`));
    const m = status.match(/worker memory (\d+) MB/);
    assert.ok(m, `the status line gives the worker's memory: ${status}`);
    const memory = Number(m[1]) * 1e6;
    const limit = weights * 1.5 + MARGIN;
    console.log(`weights ${(weights / 1e6).toFixed(1)} MB, worker memory ${m[1]} MB (${(memory / weights).toFixed(2)}×), limit ${(limit / 1e6).toFixed(0)} MB`);
    assert.ok(memory >= weights, `the weights are in the worker's memory: ${memory} < ${weights}`);
    assert.ok(memory < limit, `worker memory ${memory} bytes ≥ ${limit} (weights ${weights} × 1.5 + ${MARGIN})`);
    assert.deepEqual(problems, []);
  } finally {
    await browser.close();
  }
});

test('an f16 checkpoint leaves the worker at about 1× its f16 weights: CPU', async () => {
  const { files, weights } = writeWideBert('wide-bert-f16', 'F16');
  const f32 = 2 * weights;
  const browser = await launch({ webgpu: false });
  try {
    const { page, problems } = await open(browser.context, `${server.url}?backend=cpu`);
    const status = await loadFiles(page, files);
    const m = status.match(/worker memory (\d+) MB/);
    assert.ok(m, `the status line gives the worker's memory: ${status}`);
    const memory = Number(m[1]) * 1e6;
    const limit = weights * 1.2 + F16_MARGIN;
    console.log(`f16 weights ${(weights / 1e6).toFixed(1)} MB (f32: ${(f32 / 1e6).toFixed(1)} MB), worker memory ${m[1]} MB (${(memory / weights).toFixed(2)}× the f16 weights), limit ${(limit / 1e6).toFixed(0)} MB`);
    assert.ok(memory >= weights, `the weights are in the worker's memory: ${memory} < ${weights}`);
    assert.ok(memory < limit, `worker memory ${memory} bytes ≥ ${limit} (f16 weights ${weights} × 1.2 + ${F16_MARGIN})`);
    assert.ok(limit < f32, 'the limit is below what the same model takes in f32');
    assert.deepEqual(problems, []);
  } finally {
    await browser.close();
  }
});
