// How smooth the attention explorer is on a 128-token input, for two models:
// - all-MiniLM-L6-v2 (6 layers × 12 heads; the offline default the site serves, with its
//   sentiment head), and
// - a BERT-base-shaped classifier (12 layers × 12 heads, hidden 768) with random weights,
//   written at bench time by attention-make-bert-base.py (never committed) and opened
//   through "open local files".
// For each: the time from "Show attention" to every view painted, and per layer/head change
// the script work (change → its effects done), the rendering of the frame that shows it,
// and the time until that frame is painted. Several DISTs (e.g. a build before and after a
// change) are measured in the same run, interleaved, each in a fresh browser. A measurement,
// not a test (timings never are). Run it from the repository root:
//
//     node bench/browser/attention-smoothness.mjs [DIST ...]     (default dist/)
//
// BERT_BASE=DIR uses (or writes) the random model there (default /tmp/webformer-attn-bert-base);
// MODELS=minilm,bert-base picks the models; ROUNDS=N repeats the whole set (default 1).
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { execFileSync } from 'node:child_process';
import { serve } from '../../tests/e2e/server.mjs';
import { launch, open } from '../../tests/e2e/browser.mjs';

const dists = process.argv.length > 2 ? process.argv.slice(2) : ['dist'];
const BERT_BASE = process.env.BERT_BASE ?? '/tmp/webformer-attn-bert-base';
const MODELS = (process.env.MODELS ?? 'minilm,bert-base').split(',');
const ROUNDS = Number(process.env.ROUNDS ?? 1);
const PYTHON = process.env.PYTHON ?? '/opt/torchvenv/bin/python';

if (MODELS.includes('bert-base') && !existsSync(join(BERT_BASE, 'model.safetensors'))) {
  execFileSync(PYTHON, ['bench/browser/attention-make-bert-base.py', BERT_BASE], { stdio: 'inherit' });
}

const median = (v) => [...v].sort((a, b) => a - b)[Math.floor(v.length / 2)];
const fmt = (v) => `median ${median(v).toFixed(1)} ms, max ${Math.max(...v).toFixed(1)} ms`;

async function loadModel(page, model) {
  if (model === 'minilm') {
    await page.waitForFunction(() => document.querySelector('[data-testid=model-select] option[value="site:all-MiniLM-L6-v2"]'));
    await page.getByTestId('model-select').selectOption('site:all-MiniLM-L6-v2');
    await page.getByTestId('model-load').click();
  } else {
    await page.getByTestId('model-files').setInputFiles(
      ['config.json', 'model.safetensors', 'tokenizer.json'].map((f) => join(BERT_BASE, f)));
  }
  await page.getByTestId('model-status').filter({ hasText: 'Loaded' }).waitFor({ timeout: 600_000 });
}

async function measure(dist, model) {
  const server = await serve(dist);
  const browser = await launch({ webgpu: false });
  try {
    // The start of every message from the worker and the end of its task (microtasks
    // included: Leptos runs effects there): the main thread's share of "Show attention".
    await browser.context.addInitScript(() => {
      window.__workerTasks = [];
      const Base = window.Worker;
      window.Worker = class extends Base {
        constructor(...args) {
          super(...args);
          // Added before the app's onmessage, so it runs first in the message's task.
          this.addEventListener('message', () => {
            const t = performance.now();
            const ch = new MessageChannel();
            ch.port1.onmessage = () => window.__workerTasks.push([t, performance.now()]);
            ch.port2.postMessage(0);
          });
        }
      };
    });
    const { page, problems } = await open(browser.context, `${server.url}?backend=cpu&hub=http://127.0.0.1:9/hub`);
    await loadModel(page, model);
    // 126 word pieces + [CLS] + [SEP].
    const text = Array.from({ length: 126 }, (_, i) => ['good', 'film', 'plot', 'slow'][i % 4]).join(' ');
    await page.getByTestId('text-input').fill(text);
    await page.waitForFunction(() => document.querySelector('[data-testid=tokens]')?.dataset.count === '128');
    const runs = await page.getByTestId('text-results').getAttribute('data-runs');
    await page.getByTestId('classify-text').click();
    await page.waitForFunction((b) => document.querySelector('[data-testid=text-results]').dataset.runs !== b, runs, { timeout: 300_000 });

    // "Show attention" → the grid exists → two frames later (painted).
    const opened = await page.evaluate(() => new Promise((resolve) => {
      window.__workerTasks.length = 0;
      const t = performance.now();
      document.querySelector('[data-testid=explain-attention]').click();
      const poll = () => {
        if (!document.querySelector('[data-testid=attention-grid]')) return requestAnimationFrame(poll);
        requestAnimationFrame(() => requestAnimationFrame(() => {
          const last = window.__workerTasks.at(-1);
          resolve({ total: performance.now() - t, main: last ? last[1] - last[0] : NaN });
        }));
      };
      poll();
    }));

    // Each change: dispatch it. Leptos runs the effects in microtasks the change queues, so
    // a microtask queued after them (three deep, for effects that wake others) marks the end
    // of the script work. The first animation frame after it starts the frame that shows
    // it: a task posted there runs once that frame's rendering (style, layout, paint, the
    // canvases' flush) is done. The second animation frame comes once that frame is painted
    // (so "painted" counts whole frames: about 17-33 ms when everything fits in one).
    const change = (testid, value) => page.evaluate(([id, v]) => new Promise((resolve) => {
      const s = document.querySelector(`[data-testid=${id}]`);
      let work;
      let render;
      const t = performance.now();
      s.value = v;
      s.dispatchEvent(new Event('change', { bubbles: true }));
      queueMicrotask(() => queueMicrotask(() => queueMicrotask(() => (work = performance.now() - t))));
      requestAnimationFrame(() => {
        const r = performance.now();
        const ch = new MessageChannel();
        ch.port1.onmessage = () => (render = performance.now() - r);
        ch.port2.postMessage(0);
        requestAnimationFrame(() => resolve([work, render, performance.now() - t]));
      });
    }), [testid, String(value)]);
    const grid = page.getByTestId('attention-grid');
    const layers = Number(await grid.getAttribute('data-layers'));
    const heads = Number(await grid.getAttribute('data-heads'));
    const work = [];
    const render = [];
    const painted = [];
    // 40 head changes, and a layer change after every 4th: 50 changes, every layer visited.
    for (let i = 0; i < 40; i++) {
      const steps = [['attention-head', (i * 5 + 1) % heads]];
      if (i % 4 === 3) steps.push(['attention-layer', ((i >> 2) * 7) % layers]);
      for (const [id, v] of steps) {
        const [w, r, p] = await change(id, v);
        work.push(w);
        render.push(r);
        painted.push(p);
      }
    }
    if (problems.length) console.log(`  problems: ${problems.join('; ')}`);
    return { layers, heads, opened, work, render, painted };
  } finally {
    await browser.close();
    await server.close();
  }
}

const names = { minilm: 'all-MiniLM-L6-v2', 'bert-base': 'BERT-base shape, random weights' };
console.log(`128 tokens, CPU backend, headless Chromium ${new Date().toISOString()}`);
for (let r = 0; r < ROUNDS; r++) {
  for (const model of MODELS) {
    for (const dist of dists) {
      const m = await measure(dist, model);
      console.log(`${names[model]} (${m.layers} layers × ${m.heads} heads), ${dist}:`);
      console.log(`  "Show attention" → every view painted: ${m.opened.total.toFixed(0)} ms `
        + `(of which main thread after the worker's answer: ${m.opened.main.toFixed(0)} ms)`);
      console.log(`  layer/head change (${m.painted.length}): script ${fmt(m.work)}; its frame's rendering `
        + `${fmt(m.render)}; change → painted ${fmt(m.painted)}`);
    }
  }
}
