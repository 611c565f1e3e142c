// The threaded worker: on a cross-origin isolated page (COOP/COEP) the page starts the
// worker whose kernels share their work with helper Web Workers, and its results are the
// single-thread worker's, bit for bit; without isolation, or without the threaded build,
// the page runs single-threaded and works the same.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { serve } from './server.mjs';
import { launch, open } from './browser.mjs';
import { classify, goldenTexts, loadFixture, worstProbDiff } from './models.mjs';

const DIST = process.env.WEBFORMER_DIST ?? 'dist';
let isolated;
let plain;

before(async () => {
  isolated = await serve(DIST, { isolated: true });
  plain = await serve(DIST);
});
after(async () => {
  await isolated?.close();
  await plain?.close();
});

/** The status line once the worker said which build it is. */
async function kernels(page) {
  await page.waitForFunction(() => /CPU \(wasm/.test(document.querySelector('[data-testid=backend-status]')?.textContent ?? ''));
  const status = page.getByTestId('backend-status');
  return { id: await status.getAttribute('data-kernels'), text: await status.textContent() };
}

test('an isolated page runs the threaded worker, and the goldens hold', async () => {
  const browser = await launch({ webgpu: false });
  try {
    const { page, problems } = await open(browser.context, `${isolated.url}?backend=cpu`);
    assert.equal(await page.evaluate(() => self.crossOriginIsolated), true);
    const cores = await page.evaluate(() => navigator.hardwareConcurrency);
    const k = await kernels(page);
    assert.equal(k.id, 'threads');
    assert.match(k.text, new RegExp(`^CPU \\(wasm SIMD \\+ FMA, ${Math.min(cores, 8)} threads\\)`));
    for (const name of ['bert-uncased-cls', 'distilbert-cls']) {
      assert.match(await loadFixture(page, name), /on CPU \(wasm SIMD \+ FMA, \d+ threads\)/);
      const texts = goldenTexts(name);
      const worst = worstProbDiff(name, texts, await classify(page, texts));
      console.log(`# ${name} (threaded worker): max |Δprob| ${worst.toExponential(2)}`);
      assert.ok(worst <= 1e-4, `probabilities differ by ${worst}`);
    }
    assert.deepEqual(problems, []);
  } finally {
    await browser.close();
  }
});

// MiniLM (set-up fetches it) at 128 tokens is big enough that every kernel splits.
const LONG = Array.from({ length: 12 }, (_, i) =>
  `sentence ${i} of a long review: the plot wanders, yet the acting is warm and the ending earns its tears`).join(' ');
const TEXTS = ['An utterly delightful, moving film.', LONG];

async function minilm(url) {
  const browser = await launch({ webgpu: false });
  try {
    const { page, problems } = await open(browser.context, `${url}&debug`);
    const k = await kernels(page);
    const select = page.getByTestId('model-select');
    await page.waitForFunction(() => document.querySelector('[data-testid=model-select] option[value="site:all-MiniLM-L6-v2"]'));
    await select.selectOption('site:all-MiniLM-L6-v2');
    await page.getByTestId('model-load').click();
    await page.getByTestId('model-status').filter({ hasText: 'Loaded' }).waitFor({ timeout: 180_000 });
    const out = JSON.parse(await page.evaluate((t) => window.webformer.classify(t), TEXTS));
    assert.deepEqual(problems, []);
    return { kernels: k, results: out.results };
  } finally {
    await browser.close();
  }
}

test('threaded MiniLM equals the single-thread worker bit for bit, attention maps included', async () => {
  assert.ok(existsSync('models/all-MiniLM-L6-v2/model.safetensors'), 'set-up fetches MiniLM (scripts/setup.sh)');
  const threaded = await minilm(`${isolated.url}?backend=cpu`);
  const single = await minilm(`${isolated.url}?backend=cpu&kernels=relaxed`);
  assert.equal(threaded.kernels.id, 'threads');
  assert.match(threaded.kernels.text, /threads\)/);
  assert.equal(single.kernels.id, 'relaxed');
  assert.doesNotMatch(single.kernels.text, /threads/);
  assert.equal(threaded.results.length, TEXTS.length);
  assert.ok(threaded.results[1].attentions[0][0].length >= 128, 'the long text is ≥ 128 tokens');
  assert.deepEqual(threaded.results, single.results);
});

test('without isolation, or without the threaded build, the page runs single-threaded', async () => {
  for (const [server, why] of [[plain, 'not isolated'], [null, 'threaded build missing']]) {
    const site = server ?? (await serve(DIST, { isolated: true, hide: ['/webformer-worker-threads'] }));
    const browser = await launch({ webgpu: false });
    try {
      const { page } = await open(browser.context, `${site.url}?backend=cpu`);
      const k = await kernels(page);
      assert.equal(k.id, 'relaxed', why);
      assert.doesNotMatch(k.text, /threads/, why);
      const name = 'bert-uncased-cls';
      const texts = goldenTexts(name);
      await loadFixture(page, name);
      assert.ok(worstProbDiff(name, texts, await classify(page, texts)) <= 1e-4, why);
    } finally {
      await browser.close();
      if (!server) await site.close();
    }
  }
});

test('the threaded worker runs WebGPU too, and the goldens hold there', async () => {
  const browser = await launch({ webgpu: true });
  try {
    const { page, problems } = await open(browser.context, isolated.url);
    await page.waitForFunction(() => document.querySelector('[data-testid=backend-status]')?.dataset.backend === 'webgpu',
      null, { timeout: 60_000 });
    assert.equal(await page.getByTestId('backend-status').getAttribute('data-kernels'), 'threads');
    const name = 'bert-uncased-cls';
    assert.match(await loadFixture(page, name), /on WebGPU/);
    const texts = goldenTexts(name);
    const worst = worstProbDiff(name, texts, await classify(page, texts));
    console.log(`# ${name} (threaded worker, WebGPU): max |Δprob| ${worst.toExponential(2)}`);
    assert.ok(worst <= 1e-4, `probabilities differ by ${worst}`);
    assert.deepEqual(problems, []);
  } finally {
    await browser.close();
  }
});
