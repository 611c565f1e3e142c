// Our threaded worker against our single-thread worker, side by side in one cross-origin
// isolated page (no transformers.js): how much the helper threads give, per input.
//
//   node bench/browser/threads.mjs [--dist DIR] [--runs N]
//
// DIR is a built site (default dist/). Medians (minimum) of N interleaved runs after 5
// warm-up rounds of every input; progress to stderr, markdown to stdout.
import { join } from 'node:path';
import { cpus, loadavg } from 'node:os';
import { launch } from '../../tests/e2e/browser.mjs';
import { serve } from './server.mjs';
import { HERE, ROOT, INPUTS, opt, num, median, fmt } from './common.mjs';

const DIST = opt('--dist', join(ROOT, 'dist'));
const RUNS = num('--runs', 15);
const log = (...a) => console.error('[threads]', ...a);

const mounts = [
  ['/', DIST],
  ['/bench/', HERE],
  ['/tjs/', join(HERE, 'node_modules/@huggingface/transformers/dist')],
  ['/minilm/', join(ROOT, 'models/all-MiniLM-L6-v2')],
  ['/heads/', join(ROOT, 'models/defaults')],
];
const server = await serve(mounts, { isolate: true });
const browser = await launch({ webgpu: false });
try {
  const page = await browser.context.newPage();
  page.on('pageerror', (e) => log('page error:', e.message));
  await page.goto(`${server.url}bench/page.html`);
  await page.waitForFunction(() => window.bench?.ready, null, { timeout: 60_000 });
  const threaded = await page.evaluate(() => window.bench.setupOurs('t', 'cpu', 'threads'));
  const single = await page.evaluate(() => window.bench.setupOurs('s', 'cpu', 'relaxed'));
  log('threaded:', threaded.kernels, threaded.pong ?? '', '/ single:', single.kernels);
  if (threaded.kernels !== 'threads') throw new Error(`the threaded worker did not start: ${JSON.stringify(threaded)}`);
  const run = (key, texts) => page.evaluate(([k, t]) => window.bench.runOurs(k, t), [key, texts]);
  // Warm-up over every input first, then a pause: V8 compiles hot functions of a big module
  // with its optimising tier in the background, and the first input would otherwise be timed
  // partly on baseline code.
  for (let r = 0; r < 5; r++) for (const { texts } of INPUTS) for (const k of ['t', 's']) await run(k, texts);
  await new Promise((ok) => setTimeout(ok, 3000));
  const rows = [];
  for (const { label, texts } of INPUTS) {
    const t = { t: [], s: [] };
    for (let r = 0; r < RUNS; r++) for (const k of r % 2 ? ['t', 's'] : ['s', 't']) t[k].push((await run(k, texts)).ms);
    log(label, 'threaded', fmt(median(t.t)), 'single', fmt(median(t.s)));
    rows.push(`| ${label} | ${fmt(median(t.s))} (${fmt(Math.min(...t.s))}) | ${fmt(median(t.t))} (${fmt(Math.min(...t.t))}) | ${(median(t.s) / median(t.t)).toFixed(2)}× |`);
  }
  console.log(`Machine: ${cpus().length} CPUs (${cpus()[0]?.model ?? '?'}), load average ${loadavg().map((x) => x.toFixed(2)).join(', ')}; dist: ${DIST}; ${RUNS} runs each, interleaved.`);
  console.log('');
  console.log('| input | single-thread worker ms | threaded worker ms | speed-up |');
  console.log('|---|--:|--:|--:|');
  console.log(rows.join('\n'));
} finally {
  await browser.close();
  await server.close();
}
