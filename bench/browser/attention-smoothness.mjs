// How smooth the attention explorer is on a 128-token input of all-MiniLM-L6-v2 (6 layers
// × 12 heads; the offline default the site serves, with its sentiment head): the time from
// "Show attention" to every view drawn, and per layer/head change the time until the next
// frame is painted. A measurement, not a test (timings never are).
//
//     node bench/browser/attention-smoothness.mjs [DIST]     (default dist/)
import { serve } from '../../tests/e2e/server.mjs';
import { launch, open } from '../../tests/e2e/browser.mjs';

const dist = process.argv[2] ?? 'dist';
const server = await serve(dist);
const browser = await launch({ webgpu: false });
const median = (v) => [...v].sort((a, b) => a - b)[Math.floor(v.length / 2)];
try {
  const { page } = await open(browser.context, `${server.url}?backend=cpu&hub=http://127.0.0.1:9/hub`);
  const select = page.getByTestId('model-select');
  await page.waitForFunction(() => document.querySelector('[data-testid=model-select] option[value="site:all-MiniLM-L6-v2"]'));
  await select.selectOption('site:all-MiniLM-L6-v2');
  await page.getByTestId('model-load').click();
  await page.getByTestId('model-status').filter({ hasText: 'Loaded' }).waitFor({ timeout: 300_000 });
  // 126 word pieces + [CLS] + [SEP].
  const text = Array.from({ length: 126 }, (_, i) => ['good', 'film', 'plot', 'slow'][i % 4]).join(' ');
  await page.getByTestId('text-input').fill(text);
  await page.waitForFunction(() => document.querySelector('[data-testid=tokens]')?.dataset.count === '128');
  const runs = await page.getByTestId('text-results').getAttribute('data-runs');
  await page.getByTestId('classify-text').click();
  await page.waitForFunction((b) => document.querySelector('[data-testid=text-results]').dataset.runs !== b, runs, { timeout: 120_000 });

  const t0 = Date.now();
  await page.getByTestId('explain-attention').first().click();
  await page.getByTestId('attention-grid').waitFor({ timeout: 120_000 });
  await page.evaluate(() => new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r))));
  const open_ms = Date.now() - t0;

  // Each change: dispatch it, then wait two frames (the redraw runs in the change's task;
  // the second frame is after it is painted).
  const change = (testid, value) => page.evaluate(([id, v]) => new Promise((resolve) => {
    const s = document.querySelector(`[data-testid=${id}]`);
    const t = performance.now();
    s.value = v;
    s.dispatchEvent(new Event('change', { bubbles: true }));
    requestAnimationFrame(() => requestAnimationFrame(() => resolve(performance.now() - t)));
  }), [testid, String(value)]);
  const times = [];
  for (let i = 0; i < 24; i++) {
    times.push(await change('attention-head', i % 12));
    if (i % 6 === 5) times.push(await change('attention-layer', (i / 6) % 6 | 0));
  }
  const n = await page.getByTestId('attention-grid').evaluate((c) => `${c.dataset.layers} layers × ${c.dataset.heads} heads`);
  console.log(`MiniLM, 128 tokens, ${n}, CPU backend, headless Chromium`);
  console.log(`"Show attention" → every view drawn (worker forward with attentions + transfer + first paint): ${open_ms} ms`);
  console.log(`layer/head change → painted: median ${median(times).toFixed(1)} ms, max ${Math.max(...times).toFixed(1)} ms over ${times.length} changes`);
} finally {
  await browser.close();
  await server.close();
}
