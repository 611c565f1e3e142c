// Browser bench, images: webformer's ViT on its wasm CPU worker vs transformers.js's
// image-classification pipeline (ONNX Runtime Web, WASM backend, 1 thread) on an ONNX export
// of the same weights, in headless Chromium, one page. Run through `bench/browser/run.sh
// --vit`, which makes the exports (export_vit_onnx.py); prints markdown to stdout, progress
// to stderr.
//
//   node bench/browser/vit.mjs [--runs N] [--no-base] [--dist DIR] [--save-images DIR]
//
// Models: the offline ViT the site ships (tests/fixtures/vit-fashion-mnist, 28 px) and,
// unless --no-base, a ViT-base/16 at 224 px with random weights (.cache/bench/vit-base-random,
// written at bench time; timed on a 224×224 image and on a 640×480 one that both sides
// resize). Per image: both sides get the same PNG bytes and answer every
// label's probability (decode, resize, rescale + normalise, forward, softmax all timed).
import { execFileSync } from 'node:child_process';
import { mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { join } from 'node:path';
import { launch } from '../../tests/e2e/browser.mjs';
import { serve } from './server.mjs';
import { HERE, ROOT, args, opt, num, median, fmt } from './common.mjs';

const RUNS = num('--runs', 9);
const DIST = opt('--dist', join(ROOT, 'dist'));
const BASE = !args.includes('--no-base');
const SAVE = opt('--save-images', null); // writes each image's PNG and both sides' answers there
const log = (...a) => console.error('[vit]', ...a);

const MODELS = [
  {
    key: 'fashion',
    label: 'ViT Fashion-MNIST (site default; 4 layers, hidden 64, 28 px, patch 7: 17 tokens)',
    ours: '/vit/fashion/',
    weights: join(ROOT, 'tests/fixtures/vit-fashion-mnist/model.safetensors'),
    onnx: join(ROOT, '.cache/bench/vit-fashion-onnx/onnx/model.onnx'),
    images: [{ key: 'sample0', url: '/vit/fashion/sample-0.png', what: 'tests/fixtures/vit-fashion-mnist/sample-0.png, 28×28 grey PNG' }],
  },
  {
    key: 'base',
    label: 'ViT-base/16 224 px, random weights (12 layers, hidden 768: 197 tokens)',
    ours: '/vit/base/',
    weights: join(ROOT, '.cache/bench/vit-base-random/model.safetensors'),
    onnx: join(ROOT, '.cache/bench/vit-base-onnx/onnx/model.onnx'),
    images: [
      { key: 'card224', size: [224, 224], what: 'a 224×224 colour test card drawn in the page, PNG' },
      { key: 'card640', size: [640, 480], what: 'the test card at 640×480 (resized to 224×224 on both sides), PNG' },
    ],
  },
].filter((m) => BASE || m.key !== 'base');


async function main() {
  const server = await serve([
    ['/', DIST],
    ['/bench/', HERE],
    ['/tjs/', join(HERE, 'node_modules/@huggingface/transformers/dist')],
    ['/ort/', join(HERE, 'node_modules/onnxruntime-web/dist')],
    ['/vit/fashion/', join(ROOT, 'tests/fixtures/vit-fashion-mnist')],
    ['/vit/base/', join(ROOT, '.cache/bench/vit-base-random')],
    ['/onnx-models/vit-fashion/', join(ROOT, '.cache/bench/vit-fashion-onnx')],
    ['/onnx-models/vit-base/', join(ROOT, '.cache/bench/vit-base-onnx')],
  ]);
  const browser = await launch({ webgpu: false });
  const version = browser.context.browser()?.version() ?? execFileSync('/usr/bin/chromium', ['--version']).toString().trim();
  const rows = [];
  let tjsVersion = '?';
  try {
    const page = await browser.context.newPage();
    page.on('pageerror', (e) => log('page error:', e.message));
    page.on('console', (m) => m.type() === 'error' && log('console error:', m.text()));
    await page.goto(`${server.url}bench/page.html`);
    await page.waitForFunction(() => window.bench?.ready, null, { timeout: 60_000 });

    for (const m of MODELS) {
      log(`${m.key}: loading ours and transformers.js …`);
      const ours = await page.evaluate(([k, f, s]) => window.bench.setupOursImage(k, f, s), [m.key, m.ours, `bench-${m.key}`]);
      log('ours:', JSON.stringify(ours.backend), ours.model.backend ?? '', ours.model.architecture ?? '');
      const tjs = await page.evaluate(([k, n]) => window.bench.setupTjsImage(k, n), [m.key, `vit-${m.key}`]);
      tjsVersion = tjs.version;
      log('transformers.js:', JSON.stringify(tjs));
      if (tjs.numThreads !== 1) throw new Error(`transformers.js has numThreads ${tjs.numThreads}`);
      for (const image of m.images) {
        const bytes = image.url
          ? await page.evaluate(([k, u]) => window.bench.loadImage(k, u), [image.key, image.url])
          : await page.evaluate(([k, [w, h]]) => window.bench.makeImage(k, w, h), [image.key, image.size]);
        const sides = [
          { name: 'ours', run: () => page.evaluate(([k, i]) => window.bench.runOursImage(k, i), [m.key, image.key]) },
          { name: 'tjs', run: () => page.evaluate(([k, i]) => window.bench.runTjsImage(k, i), [m.key, image.key]) },
        ];

        // Agreement, on the first answers.
        const a = await sides[0].run();
        const b = await sides[1].run();
        const labels = Object.keys(a.probs);
        if (labels.length !== Object.keys(b.probs).length || labels.some((l) => !(l in b.probs))) {
          throw new Error(`the label sets differ: ${labels} / ${Object.keys(b.probs)}`);
        }
        const dprob = Math.max(...labels.map((l) => Math.abs(a.probs[l] - b.probs[l])));
        log(`${m.key}/${image.key}: top-1 ours ${a.label} (${a.probs[a.label].toFixed(4)}), tjs ${b.label} (${b.probs[b.label].toFixed(4)}); max |Δprob| ${dprob.toExponential(2)}`);

        if (SAVE) {
          mkdirSync(SAVE, { recursive: true });
          writeFileSync(join(SAVE, `${image.key}.png`), Buffer.from(await page.evaluate((k) => window.bench.imageBase64(k), image.key), 'base64'));
          writeFileSync(join(SAVE, `${image.key}.json`), JSON.stringify({ model: m.key, ours: a.probs, tjs: b.probs }, null, 1));
        }
        log(`${m.key}/${image.key}: warm-up …`);
        for (let r = 0; r < 5; r++) for (const s of sides) await s.run();
        await new Promise((ok) => setTimeout(ok, 2000));
        const times = { ours: [], tjs: [] };
        for (let r = 0; r < RUNS; r++) {
          for (const s of r % 2 ? [...sides].reverse() : sides) times[s.name].push((await s.run()).ms);
        }
        log(`${m.key}/${image.key}: ours ${fmt(median(times.ours))} ms, tjs ${fmt(median(times.tjs))} ms`);
        const pings = [];
        for (let r = 0; r < 21; r++) pings.push(await page.evaluate((k) => window.bench.pingOurs(k), m.key));
        rows.push({ m, image, times, a, b, dprob, bytes, labels: labels.length, ping: median(pings) });
      }
    }

    const load = loadavg().map((x) => x.toFixed(2)).join(', ');
    const out = [];
    out.push('## Browser: ViT per image, webformer wasm (CPU) vs transformers.js (WASM)');
    out.push('');
    out.push(`Machine: ${cpus().length} CPUs (${cpus()[0]?.model ?? '?'}), load average ${load} (at the end of the run); ${version}, headless.`);
    out.push(`transformers.js ${tjsVersion}, onnxruntime-web ${pkgVersion('onnxruntime-web')}, fp32 ONNX export of the same weights (bench/browser/export_vit_onnx.py).`);
    out.push(`ms: median (minimum) of ${RUNS} runs per model and image after 5 warm-up rounds, the two sides interleaved run by run (order alternating), one page, 1 thread each; ratio of the medians. ` +
      'Timed, both sides, from the same PNG bytes to every label\'s probability: decode, resize to the model\'s size (a no-op size where the image is at it; both code paths run), rescale + normalise, forward, softmax. ' +
      'Ours: the worker round trip of classify_images (the bytes transferred, JSON answer). ' +
      'transformers.js: pipeline(\'image-classification\') called with a Blob of the bytes, top_k: null. Copying the bytes / making the Blob happens before the clock.');
    out.push('');
    out.push('| model | image | ours ms (1 thread) | transformers.js ms (1 thread) | ratio ours/tjs | top-1 ours / tjs | max \\|Δprob\\| |');
    out.push('|---|---|--:|--:|--:|---|--:|');
    for (const r of rows) {
      const cell = (xs) => `${fmt(median(xs))} (${fmt(Math.min(...xs))})`;
      out.push(`| ${r.m.label} | ${r.image.what} (${r.bytes} B) | ${cell(r.times.ours)} | ${cell(r.times.tjs)} | ` +
        `${(median(r.times.ours) / median(r.times.tjs)).toFixed(2)}× | ${r.a.label} ${r.a.probs[r.a.label].toFixed(4)} / ${r.b.label} ${r.b.probs[r.b.label].toFixed(4)} (${r.labels} labels) | ${r.dprob.toExponential(1)} |`);
    }
    out.push('');
    out.push(`Ours runs in its web worker, so its times include a message round trip (a ping's, no model work: median ${rows.map((r) => `${r.ping.toFixed(2)} ms`).join(' / ')}); ` +
      'transformers.js runs on the page\'s thread (proxy: false). Top-1 and max |Δprob| (over every label) compare the two sides\' first answers.');
    out.push('');
    out.push('| weights (fp32) | ours: model.safetensors | tjs: onnx/model.onnx |');
    out.push('|---|--:|--:|');
    for (const m of MODELS) out.push(`| ${m.key} | ${(statSync(m.weights).size / 1e6).toFixed(1)} MB | ${(statSync(m.onnx).size / 1e6).toFixed(1)} MB |`);
    const missing = server.log.filter((e) => e.status === 404).map((e) => e.path);
    if (missing.length) out.push(`\nNot found (404) during the run: ${[...new Set(missing)].join(', ')}.`);
    out.push('');
    out.push(`Ours: ${DIST}.`);
    console.log(out.join('\n'));
  } finally {
    await browser.close();
    await server.close();
  }
}

function pkgVersion(name) {
  return JSON.parse(readFileSync(join(HERE, 'node_modules', name, 'package.json'), 'utf8')).version;
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
