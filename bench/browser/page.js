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

async function setupOurs(key, backend) {
  const worker = new Worker('/webformer-worker_loader.js');
  const w = { worker, nextId: 1, pending: new Map() };
  const ready = new Promise((ok, fail) => {
    worker.onerror = (e) => fail(new Error(`worker failed: ${e.message}`));
    worker.onmessage = (ev) => {
      const msg = JSON.parse(ev.data);
      if (msg.id === 0) {
        if (msg.response.type === 'pong') ok();
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
  return { backend: info, model: loaded, head: headInfo };
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

window.bench = { setupOurs, runOurs, pingOurs, setupTjs, runTjs, tjsTokens, ready: true };
