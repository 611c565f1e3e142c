// Where our wasm worker's time goes: the V8 sampling profiler (Chrome DevTools Protocol
// `Profiler.start/stop`) on the worker target, while the page runs classify_text on the
// bench's inputs, all-MiniLM-L6-v2, CPU backend. Prints the self time per category and the
// top functions, as markdown.
//
//   node bench/browser/profile.mjs [--dist DIR] [--runs N] [--input 128] [--top 25]
//
// DIR must hold a build with the wasm "name" section (function names): a Trunk build
// without wasm-opt keeps it (`data-wasm-opt="0"`, see bench/README.md); wasm-opt strips it
// and the profile then shows `wasm-function[N]`.
//
// How: playwright's CDP session on the page; `Target.setAutoAttach` (non-flat) attaches to
// the page's dedicated worker, and the Profiler domain is driven through
// `Target.sendMessageToTarget`. Sampling interval 100 µs. The worker is warmed up first.
import { join } from 'node:path';
import { loadavg } from 'node:os';
import { launch } from '../../tests/e2e/browser.mjs';
import { serve } from './server.mjs';
import { HERE, ROOT, INPUTS, opt, num } from './common.mjs';

const DIST = opt('--dist', join(ROOT, 'dist'));
const RUNS = num('--runs', 20);
const INPUT = opt('--input', '128');
const TOP = num('--top', 25);
const log = (...a) => console.error('[profile]', ...a);

// Categories by function name (first match wins): our kernels, candle's and gemm's, libm.
const CATEGORIES = [
  ['GEMM (linear, q·kᵀ, p·v)', /packed_rows|tile_packed|outer_products|matmul_nt|matmul_nn|tile_nt|tile_nn|gemm|matmul|microkernel|pack_operands/],
  ['softmax', /softmax/],
  ['GELU / erf', /gelu|erf/i],
  ['exp', /exp/],
  ['LayerNorm', /layer_norm|LayerNorm/],
  ['copies, allocation, memset', /memcpy|memmove|memset|malloc|dlmalloc|alloc|realloc|free|copy_strided|copy2d|contiguous|clone|from_vec|to_vec/],
  ['other candle ops (binary/unary maps, reduce)', /candle/],
  ['tokenizer, JSON, messaging', /tokeniz|serde|json|wasm_bindgen|js_sys|postMessage|onmessage/i],
];

async function main() {
  const mounts = [
    ['/', DIST],
    ['/bench/', HERE],
    ['/tjs/', join(HERE, 'node_modules/@huggingface/transformers/dist')],
    ['/minilm/', join(ROOT, 'models/all-MiniLM-L6-v2')],
    ['/heads/', join(ROOT, 'models/defaults')],
  ];
  const server = await serve(mounts);
  const browser = await launch({ webgpu: false });
  try {
    const page = await browser.context.newPage();
    await page.goto(`${server.url}bench/page.html`);
    await page.waitForFunction(() => window.bench?.ready, null, { timeout: 60_000 });
    const cdp = await browser.context.newCDPSession(page);
    const workers = [];
    const pending = new Map();
    let nextId = 1;
    cdp.on('Target.attachedToTarget', (e) => {
      if (e.targetInfo.type === 'worker') workers.push(e.sessionId);
    });
    cdp.on('Target.receivedMessageFromTarget', (e) => {
      const msg = JSON.parse(e.message);
      const p = msg.id && pending.get(msg.id);
      if (!p) return;
      pending.delete(msg.id);
      if (msg.error) p.fail(new Error(JSON.stringify(msg.error)));
      else p.ok(msg.result);
    });
    const send = (sessionId, method, params = {}) => {
      const id = nextId++;
      return new Promise((ok, fail) => {
        pending.set(id, { ok, fail });
        cdp.send('Target.sendMessageToTarget', { sessionId, message: JSON.stringify({ id, method, params }) }).catch(fail);
      });
    };

    const info = await page.evaluate(() => window.bench.setupOurs('cpu', 'cpu'));
    log('ours:', JSON.stringify(info.backend));
    await cdp.send('Target.setAutoAttach', { autoAttach: true, waitForDebuggerOnStart: false, flatten: false });
    for (let i = 0; i < 50 && !workers.length; i++) await new Promise((ok) => setTimeout(ok, 100));
    if (workers.length !== 1) throw new Error(`expected one worker target, found ${workers.length}`);
    const w = workers[0];

    const texts = INPUTS.find((i) => i.key === INPUT)?.texts;
    if (!texts) throw new Error(`--input: one of ${INPUTS.map((i) => i.key).join(', ')}`);
    log('warm-up …');
    for (let i = 0; i < 5; i++) await page.evaluate((t) => window.bench.runOurs('cpu', t), texts);

    await send(w, 'Profiler.enable');
    await send(w, 'Profiler.setSamplingInterval', { interval: 100 });
    await send(w, 'Profiler.start');
    const t0 = Date.now();
    const ms = [];
    for (let i = 0; i < RUNS; i++) ms.push((await page.evaluate((t) => window.bench.runOurs('cpu', t), texts)).ms);
    const wall = Date.now() - t0;
    const { profile } = await send(w, 'Profiler.stop');

    // Self time per node: the sum of the time deltas of its samples.
    const self = new Map();
    profile.samples.forEach((id, i) => self.set(id, (self.get(id) ?? 0) + (profile.timeDeltas[i] ?? 0)));
    const byName = new Map();
    let total = 0;
    for (const node of profile.nodes) {
      const t = (self.get(node.id) ?? 0) / 1000;
      if (!t) continue;
      const name = node.callFrame.functionName || `(${node.callFrame.url || 'anonymous'})`;
      byName.set(name, (byName.get(name) ?? 0) + t);
      total += t;
    }
    const idle = (byName.get('(idle)') ?? 0) + (byName.get('(program)') ?? 0);
    const busy = total - idle;
    const cats = new Map(CATEGORIES.map(([c]) => [c, 0]));
    cats.set('other', 0);
    for (const [name, t] of byName) {
      if (name === '(idle)' || name === '(program)') continue;
      const hit = CATEGORIES.find(([, re]) => re.test(name));
      cats.set(hit ? hit[0] : 'other', cats.get(hit ? hit[0] : 'other') + t);
    }

    const out = [];
    const sorted = [...ms].sort((a, b) => a - b);
    out.push(`## Worker profile: ${DIST}, input ${INPUT} tokens, ${RUNS} classify_text runs`);
    out.push('');
    out.push(`Round trip median ${sorted[sorted.length >> 1].toFixed(1)} ms (wall ${wall} ms for all runs); ` +
      `samples: ${profile.samples.length}, worker busy ${busy.toFixed(0)} ms, idle/program ${idle.toFixed(0)} ms; ` +
      `load average ${loadavg().map((x) => x.toFixed(2)).join(', ')}.`);
    out.push('');
    out.push('| category (self time) | ms | share of busy |');
    out.push('|---|--:|--:|');
    for (const [c, t] of [...cats].sort((a, b) => b[1] - a[1])) out.push(`| ${c} | ${t.toFixed(0)} | ${((100 * t) / busy).toFixed(1)}% |`);
    out.push('');
    out.push(`| top ${TOP} functions (self time) | ms | share of busy |`);
    out.push('|---|--:|--:|');
    for (const [name, t] of [...byName].filter(([n]) => n !== '(idle)' && n !== '(program)').sort((a, b) => b[1] - a[1]).slice(0, TOP)) {
      out.push(`| \`${name.replace(/\|/g, '\\|').slice(0, 120)}\` | ${t.toFixed(0)} | ${((100 * t) / busy).toFixed(1)}% |`);
    }
    console.log(out.join('\n'));
  } finally {
    await browser.close();
    await server.close();
  }
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
