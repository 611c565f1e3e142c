// The in-page half of the browser bench. bench.mjs calls `window.bench.*` through
// playwright; every time is measured here with performance.now().
//
// Ours: webformer's own worker (dist/webformer-worker_loader.js, the same wasm the app
// runs), spoken to in its protocol (src/protocol.rs): probe_backend, load_model with the
// files of all-MiniLM-L6-v2, then classify_text {texts, attentions: false}. For an encoder
// without a classifier the worker asks for a head: we install the sentiment head the app
// ships with MiniLM, so the worker answers tokenize + forward + mean pool + head (384 -> 2)
// + the JSON answer, round trip.
// transformers.js: pipeline('feature-extraction', fp32, pooling 'mean') on the ONNX export
// of the same weights: tokenize + forward + pool.

const state = { ours: {}, tjs: null };

function oursCall(w, request, buffers) {
  const id = w.nextId++;
  const json = JSON.stringify({ id, request });
  return new Promise((ok, fail) => {
    w.pending.set(id, { ok, fail });
    if (buffers) w.worker.postMessage({ json, buffers }, buffers);
    else w.worker.postMessage(json);
  });
}

// The app's probe (src/ui/worker_client.rs): a function using f32x4.relaxed_madd.
const RELAXED_PROBE = new Uint8Array([0, 97, 115, 109, 1, 0, 0, 0, 1, 5, 1, 96, 0, 1, 123, 3, 2, 1, 0,
  10, 28, 1, 26, 0, 67, 0, 0, 128, 63, 253, 19, 67, 0, 0, 128, 63, 253, 19, 67, 0, 0, 128, 63, 253, 19,
  253, 133, 2, 11]);

/** Which worker build to start, as the app chooses: 'auto' takes the relaxed-SIMD (FMA) build
 * where the browser validates it and the site has it; 'simd128' forces the baseline;
 * 'threads' the threaded build (a cross-origin isolated page only). */
async function workerUrl(kernels) {
  if (kernels === 'simd128') return { url: '/webformer-worker_loader.js', kernels: 'simd128' };
  if (kernels === 'threads') {
    if (!self.crossOriginIsolated) throw new Error('the threaded worker needs a cross-origin isolated page');
    return { url: '/webformer-worker-threads_loader.js', kernels: 'threads' };
  }
  const has = (await fetch('/webformer-worker-relaxed_loader.js', { method: 'HEAD' })).ok;
  if (has && WebAssembly.validate(RELAXED_PROBE)) return { url: '/webformer-worker-relaxed_loader.js', kernels: 'relaxed' };
  if (kernels === 'relaxed') throw new Error('the relaxed-SIMD worker is missing or does not validate here');
  return { url: '/webformer-worker_loader.js', kernels: 'simd128' };
}

async function startOurs(kernels = 'auto') {
  const chosen = await workerUrl(kernels);
  const worker = new Worker(chosen.url);
  const w = { worker, nextId: 1, pending: new Map(), kernels: chosen.kernels };
  const ready = new Promise((ok, fail) => {
    worker.onerror = (e) => fail(new Error(`worker failed: ${e.message}`));
    worker.onmessage = (ev) => {
      const msg = JSON.parse(ev.data);
      if (msg.id === 0) {
        if (msg.response.type === 'pong') {
          w.pong = msg.response.kernels;
          ok();
        }
        return;
      }
      if (msg.response.type === 'progress') return;
      const p = w.pending.get(msg.id);
      if (!p) return;
      w.pending.delete(msg.id);
      if (msg.response.type === 'error') p.fail(new Error(msg.response.message));
      else p.ok(msg.response);
    };
  });
  await ready;
  return w;
}

async function setupOurs(key, backend, kernels = 'auto') {
  const w = await startOurs(kernels);
  const info = await oursCall(w, { type: 'probe_backend', choice: backend });
  const names = ['config.json', 'model.safetensors', 'tokenizer.json'];
  const buffers = await Promise.all(names.map(async (n) => (await fetch(`/minilm/${n}`)).arrayBuffer()));
  const loaded = await oursCall(w, { type: 'load_model', source: 'all-MiniLM-L6-v2', names }, buffers);
  // MiniLM has no classifier of its own and classify_text asks for one: the app's offline
  // default installs its trained sentiment head (384 -> 2), as here. Its cost is a tiny
  // linear on the pooled embedding.
  const head = await (await fetch('/heads/minilm-sentiment/head.safetensors')).arrayBuffer();
  const headInfo = await oursCall(w, { type: 'import_head', name: 'head.safetensors' }, [head]);
  state.ours[key] = w;
  return { backend: info, model: loaded, head: headInfo, kernels: w.kernels, pong: w.pong };
}

async function runOurs(key, texts, attentions = false) {
  const w = state.ours[key];
  const t0 = performance.now();
  const r = await oursCall(w, { type: 'classify_text', texts, attentions });
  const ms = performance.now() - t0;
  return { ms, tokens: r.results.map((x) => x.tokens.length) };
}

/** A ping's round trip to our worker: the messaging alone, no model work. */
async function pingOurs(key) {
  const t0 = performance.now();
  await oursCall(state.ours[key], { type: 'ping' });
  return performance.now() - t0;
}

async function setupTjs(threads) {
  const { env, pipeline, AutoTokenizer } = await import('/tjs/transformers.js');
  env.allowRemoteModels = false;
  env.allowLocalModels = true;
  env.localModelPath = '/onnx-models/';
  env.useBrowserCache = false;
  env.backends.onnx.wasm.wasmPaths = `${location.origin}/ort/`;
  env.backends.onnx.wasm.numThreads = threads;
  env.backends.onnx.wasm.proxy = false;
  const extractor = await pipeline('feature-extraction', 'minilm', { device: 'wasm', dtype: 'fp32' });
  const tokenizer = await AutoTokenizer.from_pretrained('minilm');
  state.tjs = { extractor, tokenizer };
  return {
    crossOriginIsolated: self.crossOriginIsolated,
    numThreads: env.backends.onnx.wasm.numThreads,
    version: env.version,
  };
}

async function runTjs(texts) {
  const t0 = performance.now();
  const out = await state.tjs.extractor(texts, { pooling: 'mean', normalize: false });
  const ms = performance.now() - t0;
  if (out.dims[0] !== texts.length || out.dims[1] !== 384) throw new Error(`tjs answered ${out.dims}`);
  return { ms };
}

/** Token counts by transformers.js's tokenizer ([CLS] and [SEP] included). */
function tjsTokens(texts) {
  return texts.map((t) => state.tjs.tokenizer.encode(t).length);
}

// ---- Images (bench/browser/vit.mjs): our ViT vs transformers.js's image-classification
// pipeline on the ONNX export of the same weights. Both sides get the same encoded image
// file (PNG bytes) and answer probabilities over every label: decode, resize, rescale +
// normalise, forward, softmax are inside both timings.

/** Image files by key, as bytes; copied for each run outside the timing. */
const images = {};

/** Fetches an image file (e.g. a fixture PNG) and keeps its bytes under `key`. */
async function loadImage(key, url) {
  images[key] = new Uint8Array(await (await fetch(url)).arrayBuffer());
  return images[key].length;
}

/** Draws a deterministic colour test card of `width`×`height` (default square) and keeps it
 * as PNG bytes. */
async function makeImage(key, width, height = width) {
  const c = new OffscreenCanvas(width, height);
  const g = c.getContext('2d');
  const size = Math.min(width, height);
  const grad = g.createLinearGradient(0, 0, width, height);
  grad.addColorStop(0, '#1b4f8a');
  grad.addColorStop(0.5, '#e8c547');
  grad.addColorStop(1, '#b5342b');
  g.fillStyle = grad;
  g.fillRect(0, 0, width, height);
  for (let i = 0; i < 12; i++) {
    g.fillStyle = `hsl(${(i * 47) % 360} 70% ${30 + (i % 4) * 12}%)`;
    g.beginPath();
    g.arc(((i * 73) % width) + 8, ((i * 131) % height) + 8, 6 + ((i * 17) % (size / 6)), 0, 2 * Math.PI);
    g.fill();
  }
  g.fillStyle = '#000';
  g.font = `${Math.round(size / 7)}px sans-serif`;
  g.fillText('webformer', width * 0.08, height * 0.55);
  images[key] = new Uint8Array(await (await c.convertToBlob({ type: 'image/png' })).arrayBuffer());
  return images[key].length;
}

/** An image's bytes as base64 (for vit.mjs --save-images). */
function imageBase64(key) {
  let bin = '';
  for (const b of images[key]) bin += String.fromCharCode(b);
  return btoa(bin);
}

/** A ViT on our CPU worker: files config.json, preprocessor_config.json, model.safetensors. */
async function setupOursImage(key, folder, source) {
  const w = await startOurs();
  const info = await oursCall(w, { type: 'probe_backend', choice: 'cpu' });
  const names = ['config.json', 'preprocessor_config.json', 'model.safetensors'];
  const buffers = await Promise.all(names.map(async (n) => (await fetch(`${folder}${n}`)).arrayBuffer()));
  const loaded = await oursCall(w, { type: 'load_model', source, names }, buffers);
  state.ours[key] = w;
  return { backend: info, model: loaded };
}

/** One image through our worker: classify_images, the PNG's bytes transferred. */
async function runOursImage(key, image) {
  const w = state.ours[key];
  const bytes = images[image].slice().buffer; // a fresh copy to transfer, before the clock
  const t0 = performance.now();
  const r = await oursCall(w, { type: 'classify_images', names: [`${image}.png`], attentions: false }, [bytes]);
  const ms = performance.now() - t0;
  const x = r.results[0];
  if (x.error) throw new Error(`ours: ${x.error}`);
  return { ms, label: x.label, probs: Object.fromEntries(x.labels.map((l, i) => [l, x.probs[i]])) };
}

/** transformers.js's image-classification pipeline on OUT/onnx/model.onnx, 1 thread. */
async function setupTjsImage(key, name) {
  const { env, pipeline } = await import('/tjs/transformers.js');
  env.allowRemoteModels = false;
  env.allowLocalModels = true;
  env.localModelPath = '/onnx-models/';
  env.useBrowserCache = false;
  env.backends.onnx.wasm.wasmPaths = `${location.origin}/ort/`;
  env.backends.onnx.wasm.numThreads = 1;
  env.backends.onnx.wasm.proxy = false;
  const classifier = await pipeline('image-classification', name, { device: 'wasm', dtype: 'fp32' });
  state.tjsImage ??= {};
  state.tjsImage[key] = classifier;
  return { numThreads: env.backends.onnx.wasm.numThreads, version: env.version, crossOriginIsolated: self.crossOriginIsolated };
}

/** One image through transformers.js: the same PNG bytes as a Blob, every label's score. */
async function runTjsImage(key, image) {
  const blob = new Blob([images[image]], { type: 'image/png' }); // before the clock
  const t0 = performance.now();
  const out = await state.tjsImage[key](blob, { top_k: null });
  const ms = performance.now() - t0;
  return { ms, label: out[0].label, probs: Object.fromEntries(out.map((x) => [x.label, x.score])) };
}

window.bench = {
  setupOurs, runOurs, pingOurs, setupTjs, runTjs, tjsTokens,
  loadImage, makeImage, imageBase64, setupOursImage, runOursImage, setupTjsImage, runTjsImage,
  ready: true,
};
