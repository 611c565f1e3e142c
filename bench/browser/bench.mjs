// Browser bench: webformer's wasm worker vs transformers.js (ONNX Runtime Web, WASM backend)
// on all-MiniLM-L6-v2 in headless Chromium. Run through bench/browser/run.sh, which prepares
// the ONNX export and node_modules; prints markdown to stdout, progress to stderr.
//
//   node bench/browser/bench.mjs [--runs N] [--no-threads] [--webgpu] [--webgpu-runs N] [--raw] [--blocks]
//                                [--dist DIR] [--base DIR] [--kernels K] [--base-kernels K]
//
// --dist DIR: our site to time (default dist/). --base DIR: a second build of our site
// (e.g. before a change), timed in the same run on its own page, interleaved with the others.
// --kernels / --base-kernels auto|simd128|relaxed: which worker build each side starts (auto,
// the default, chooses as the app does: relaxed SIMD's FMA build where it validates).
// `--base-kernels simd128` without --base times our own dist's two worker builds side by side.
// --minilm DIR / --base-minilm DIR: the all-MiniLM-L6-v2 files each side loads (default
// models/all-MiniLM-L6-v2), e.g. an f16 copy (`bench/f16.py --keep DIR`) against the f32 one;
// the log line "ours: …" gives the worker's memory with it loaded.
import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { gzipSync } from 'node:zlib';
import { createHash } from 'node:crypto';
import { cpus, loadavg } from 'node:os';
import { join } from 'node:path';
import { launch } from '../../tests/e2e/browser.mjs';
import { serve } from './server.mjs';
import { HERE, ROOT, INPUTS, args, opt, num, median, fmt } from './common.mjs';

const RUNS = num('--runs', 9);
const BLOCKS = args.includes('--blocks');
const WEBGPU = args.includes('--webgpu');
const WEBGPU_RUNS = num('--webgpu-runs', 1); // SwiftShader: 9-60 s a run
const THREADS2 = !args.includes('--no-threads');
const DIST = opt('--dist', join(ROOT, 'dist'));
const BASE_KERNELS = opt('--base-kernels', null);
const BASE = opt('--base', BASE_KERNELS ? DIST : null);
const KERNELS = opt('--kernels', 'auto');
const MINILM = opt('--minilm', join(ROOT, 'models/all-MiniLM-L6-v2'));
const BASE_MINILM = opt('--base-minilm', MINILM);
const log = (...a) => console.error('[bench]', ...a);

const mountsFor = (dist, minilm) => [
  ['/', dist],
  ['/bench/', HERE],
  ['/tjs/', join(HERE, 'node_modules/@huggingface/transformers/dist')],
  ['/ort/', join(HERE, 'node_modules/onnxruntime-web/dist')],
  ['/onnx-models/minilm/', join(ROOT, '.cache/bench/minilm-onnx')],
  ['/minilm/', minilm],
  ['/heads/', join(ROOT, 'models/defaults')],
];
const mounts = mountsFor(DIST, MINILM);

async function openPage(context, base) {
  const page = await context.newPage();
  page.on('pageerror', (e) => log('page error:', e.message));
  page.on('console', (m) => m.type() === 'error' && log('console error:', m.text()));
  await page.goto(`${base}bench/page.html`);
  await page.waitForFunction(() => window.bench?.ready, null, { timeout: 60_000 });
  return page;
}

async function main() {
  const plain = await serve(mounts);
  const isolated = await serve(mounts, { isolate: true });
  const baseServer = BASE ? await serve(mountsFor(BASE, BASE_MINILM)) : null;
  const browser = await launch({ webgpu: WEBGPU });
  const version = browser.context.browser()?.version() ?? execFileSync('/usr/bin/chromium', ['--version']).toString().trim();
  try {
    const main = await openPage(browser.context, plain.url);
    log('loading ours (cpu) and transformers.js (1 thread) …');
    const ours = await main.evaluate((k) => window.bench.setupOurs('cpu', 'cpu', k), KERNELS);
    log('ours:', JSON.stringify(ours.backend), ours.model.backend ?? '', 'kernels:', ours.kernels,
      'worker memory:', ours.model.memory_bytes ?? '?', 'bytes');
    const tjs1 = await main.evaluate(() => window.bench.setupTjs(1));
    log('transformers.js:', JSON.stringify(tjs1));
    let basePage = null;
    let baseKernels = null;
    if (baseServer) {
      basePage = await openPage(browser.context, baseServer.url);
      const b = await basePage.evaluate((k) => window.bench.setupOurs('cpu', 'cpu', k), BASE_KERNELS ?? 'auto');
      log('base (--base):', JSON.stringify(b.backend), 'kernels:', b.kernels);
      baseKernels = b.kernels;
    }
    let threaded = null;
    let tjs2 = null;
    let ours2 = null;
    if (THREADS2) {
      threaded = await openPage(browser.context, isolated.url);
      tjs2 = await threaded.evaluate(() => window.bench.setupTjs(2));
      log('transformers.js, isolated page:', JSON.stringify(tjs2));
      if (!tjs2.crossOriginIsolated) throw new Error('the COOP/COEP page is not cross-origin isolated');
      ours2 = await threaded.evaluate(() => window.bench.setupOurs('cpu', 'cpu', 'threads'));
      log('ours, isolated page:', JSON.stringify(ours2.backend), 'kernels:', ours2.kernels, ours2.pong ?? '');
    }

    // Token counts, by both tokenizers.
    for (const input of INPUTS) {
      const theirs = await main.evaluate((t) => window.bench.tjsTokens(t), input.texts);
      const mine = (await main.evaluate((t) => window.bench.runOurs('cpu', t), input.texts)).tokens;
      for (const n of [...theirs, ...mine]) {
        if (n !== input.tokens) throw new Error(`${input.label}: tokenizers give ${theirs} / ${mine}`);
      }
    }

    const sides = [
      { name: 'ours', run: (t) => main.evaluate((x) => window.bench.runOurs('cpu', x), t), page: main },
      { name: 'tjs1', run: (t) => main.evaluate((x) => window.bench.runTjs(x), t), page: main },
    ];
    if (basePage) sides.push({ name: 'base', run: (t) => basePage.evaluate((x) => window.bench.runOurs('cpu', x), t), page: basePage });
    if (threaded) {
      sides.push({ name: 'tjs2', run: (t) => threaded.evaluate((x) => window.bench.runTjs(x), t), page: threaded });
      sides.push({ name: 'ours2', run: (t) => threaded.evaluate((x) => window.bench.runOurs('cpu', x), t), page: threaded });
    }

    // Global warm-up: V8 tiers big wasm modules up in the background.
    log('warm-up …');
    for (let round = 0; round < 3; round++) {
      for (const input of INPUTS) for (const s of sides) {
        await s.page.bringToFront();
        await s.run(input.texts);
      }
    }
    await new Promise((ok) => setTimeout(ok, 3000));

    const times = {};
    for (const input of INPUTS) {
      times[input.label] = Object.fromEntries(sides.map((s) => [s.name, []]));
      // `--blocks`: each side's runs back to back instead of interleaved, so a side never
      // starts while another's thread pool may still be spinning from its last run.
      const order = BLOCKS
        ? sides.flatMap((s) => Array.from({ length: RUNS }, () => [s]))
        : Array.from({ length: RUNS }, (_, r) => sides.map((_, i) => sides[(i + r) % sides.length]));
      for (const round of order) {
        // The order rotates run by run, so that neither side always follows the other.
        for (const s of round) {
          await s.page.bringToFront();
          times[input.label][s.name].push((await s.run(input.texts)).ms);
        }
      }
      log(input.label, Object.entries(times[input.label]).map(([k, v]) => `${k} ${fmt(median(v))}`).join(', '));
      if (args.includes('--raw')) {
        for (const [k, v] of Object.entries(times[input.label])) log('  raw', k, v.map(fmt).join(' '));
      }
    }

    const pings = [];
    for (let r = 0; r < 21; r++) pings.push(await main.evaluate(() => window.bench.pingOurs('cpu')));

    let gpu = null;
    if (WEBGPU) {
      log('ours on WebGPU (SwiftShader) …');
      const info = await main.evaluate(() => window.bench.setupOurs('gpu', 'webgpu'));
      gpu = { info: info.backend, times: {} };
      if (info.backend.kind !== 'webgpu') throw new Error(`no WebGPU: ${JSON.stringify(info.backend)}`);
      log('webgpu backend:', JSON.stringify(info.backend));
      for (const input of INPUTS) {
        await main.evaluate((x) => window.bench.runOurs('gpu', x), input.texts);
        const ts = [];
        for (let r = 0; r < WEBGPU_RUNS; r++) ts.push((await main.evaluate((x) => window.bench.runOurs('gpu', x), input.texts)).ms);
        gpu.times[input.label] = ts;
        log('webgpu', input.label, fmt(median(ts)));
      }
    }

    // Report.
    const load = loadavg().map((x) => x.toFixed(2)).join(', ');
    const out = [];
    out.push('## Browser: all-MiniLM-L6-v2, webformer wasm (CPU) vs transformers.js (WASM)');
    out.push('');
    out.push(`Machine: ${cpus().length} CPUs (${cpus()[0]?.model ?? '?'}), load average ${load} (at the end of the run); ${version}, headless.`);
    out.push(`transformers.js ${tjs1.version}, onnxruntime-web ${pkgVersion('onnxruntime-web')}, fp32 ONNX export of the same weights.`);
    out.push(`ms: median (minimum) of ${RUNS} runs per input after a global warm-up, ${BLOCKS ? 'each side\'s runs in one block (--blocks)' : 'the sides interleaved run by run, their order rotating'}; ratios are of the medians. ` +
      'Ours: the worker round trip of classify_text (tokenize, forward, mean pool, the app\'s 384→2 sentiment head, JSON answer), 1 thread. ' +
      'transformers.js: feature-extraction pipeline with mean pooling, ' +
      `numThreads=1${threaded ? '; the 2-thread columns are a second, cross-origin isolated page (COOP/COEP): transformers.js with numThreads=2, ours with the threaded worker' : ''}.`);
    out.push('');
    const head = ['input', 'ours ms (1 thread)', 'transformers.js ms (1 thread)', 'ratio ours/tjs (1 thread)'];
    if (basePage) head.push('base ms (--base, 1 thread)', 'ratio base/tjs (1 thread)', 'ours/base');
    if (threaded) head.push('transformers.js ms (2 threads)', 'ours ms (threaded worker)', 'ratio ours/tjs (2 threads)');
    if (gpu) head.push(`ours WebGPU on ${gpu.info.adapter ?? 'SwiftShader'} ms, median of ${WEBGPU_RUNS} (CPU emulation: not GPU speed)`);
    out.push(`| ${head.join(' | ')} |`);
    out.push(`|${head.map((_, i) => (i ? '--:' : '---')).join('|')}|`);
    for (const input of INPUTS) {
      const t = times[input.label];
      const o = median(t.ours);
      const j1 = median(t.tjs1);
      const cell = (xs) => `${fmt(median(xs))} (${fmt(Math.min(...xs))})`;
      const row = [input.label, cell(t.ours), cell(t.tjs1), `${(o / j1).toFixed(2)}×`];
      if (basePage) {
        const b = median(t.base);
        row.push(cell(t.base), `${(b / j1).toFixed(2)}×`, `${(o / b).toFixed(2)}×`);
      }
      if (threaded) {
        const j2 = median(t.tjs2);
        row.push(cell(t.tjs2), cell(t.ours2), `${(median(t.ours2) / j2).toFixed(2)}×`);
      }
      if (gpu) row.push(fmt(median(gpu.times[input.label])));
      out.push(`| ${row.join(' | ')} |`);
    }
    out.push('');
    out.push(`Our worker's ping round trip (messaging alone): median ${median(pings).toFixed(2)} ms.`);
    const missing = [...plain.log, ...isolated.log].filter((e) => e.status === 404).map((e) => e.path);
    if (missing.length) out.push(`Not found (404) during the run: ${[...new Set(missing)].join(', ')}.`);
    out.push('');
    out.push(`Ours: ${DIST}, worker build ${ours.kernels}${BASE ? `; base: ${BASE}, worker build ${baseKernels}` : ''}.`);
    out.push('');
    out.push(sizeTable([...plain.log, ...isolated.log, ...(baseServer ? baseServer.log.map((e) => ({ ...e, path: `[base]${e.path}` })) : [])]));
    console.log(out.join('\n'));
  } finally {
    await browser.close();
    await plain.close();
    await isolated.close();
    await baseServer?.close();
  }
}

function pkgVersion(name) {
  return JSON.parse(readFileSync(join(HERE, 'node_modules', name, 'package.json'), 'utf8')).version;
}

function sizeTable(served) {
  // What the pages fetched, as served: our worker's and app's wasm (the app's page is not
  // opened, so its wasm is read from dist/) and the ORT-web wasm transformers.js chose.
  const rows = [];
  const add = (label, raw, when) => {
    const gz = gzipSync(raw, { level: 9 });
    const sha = createHash('sha256').update(raw).digest('hex').slice(0, 12);
    rows.push(`| ${label} (sha256 ${sha}…${when ? `, ${when}` : ''}) | ${(raw.length / 1e6).toFixed(2)} MB | ${(gz.length / 1e6).toFixed(2)} MB |`);
  };
  const fetched = new Map();
  for (const e of served) if (e.body && !fetched.has(e.path)) fetched.set(e.path, e);
  const ours = [...fetched.values()].filter((e) => !e.path.startsWith('/ort/'));
  for (const e of ours) add(`ours: ${e.path.startsWith('[base]') ? `base ${e.path.slice(6)}` : `dist${e.path}`} (served, timed)`, e.body);
  const dist = DIST;
  for (const f of readdirSync(dist).filter((f) => f.endsWith('.wasm') && !fetched.has(`/${f}`))) {
    const what = f.startsWith('webformer-app') ? "the page's UI" : 'the worker build this run did not start';
    add(`ours: dist/${f} (${what}, not in the timing)`, readFileSync(join(dist, f)), `${statSync(join(dist, f)).mtime.toISOString().slice(0, 16)}Z`);
  }
  const theirs = [...fetched.values()].filter((e) => e.path.startsWith('/ort/'));
  for (const e of theirs) add(`transformers.js: onnxruntime-web/dist/${e.path.slice(5)} (the wasm it loaded)`, e.body);
  if (!theirs.length) rows.push('| transformers.js: (no ORT wasm was fetched from /ort/ — check wasmPaths) | | |');
  const onnx = statSync(join(ROOT, '.cache/bench/minilm-onnx/onnx/model.onnx')).size;
  const st = statSync(join(ROOT, 'models/all-MiniLM-L6-v2/model.safetensors')).size;
  return ['| download | raw | gzip -9 |', '|---|--:|--:|', ...rows,
    `| weights: model.safetensors (ours) / model.onnx (tjs), fp32 | ${(st / 1e6).toFixed(1)} / ${(onnx / 1e6).toFixed(1)} MB | |`].join('\n');
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
