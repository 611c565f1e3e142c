// The engine compiled to wasm gives PyTorch's numbers in the browser: a fixture model is
// opened from local files, runs in the worker, and its probabilities match the goldens.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { serve } from './server.mjs';
import { launch, open } from './browser.mjs';
import { FIXTURES, classify, goldenTexts, loadFixture, worstProbDiff } from './models.mjs';

const DIST = process.env.WEBFORMER_DIST ?? 'dist';
let server;

before(async () => {
  server = await serve(DIST);
});
after(async () => {
  await server?.close();
});

// Both worker builds: the one Chromium gets by default (relaxed SIMD's fused multiply-add)
// and the SIMD128 baseline every other browser gets (`?kernels=simd128` forces it).
const BUILDS = [
  { query: '', kernels: 'relaxed', label: /^CPU \(wasm SIMD \+ FMA\)/, loaded: /on CPU \(wasm SIMD \+ FMA\)/ },
  { query: '&kernels=simd128', kernels: 'simd128', label: /^CPU \(wasm SIMD\)/, loaded: /on CPU \(wasm SIMD\)/ },
];
for (const name of ['bert-uncased-cls', 'distilbert-cls']) {
  for (const build of BUILDS) {
    test(`${name}: probabilities in the browser equal PyTorch's (≤ 1e-4), backend=cpu, ${build.kernels} worker`, async () => {
      const texts = goldenTexts(name);
      const browser = await launch({ webgpu: false });
      try {
        const { page, problems } = await open(browser.context, `${server.url}?backend=cpu${build.query}`);
        // What the worker itself says it was built with, not only what the page chose.
        assert.match(await loadFixture(page, name), build.loaded);
        const status = page.getByTestId('backend-status');
        assert.equal(await status.getAttribute('data-kernels'), build.kernels);
        assert.match(await status.textContent(), build.label);
        const worst = worstProbDiff(name, texts, await classify(page, texts));
        console.log(`# ${name} (${build.kernels} worker): max |Δprob| in the browser ${worst.toExponential(2)}`);
        assert.ok(worst <= 1e-4, `probabilities differ by ${worst}`);
        assert.deepEqual(problems, []);
      } finally {
        await browser.close();
      }
    });
  }
}

test('a corrupt checkpoint gets a specific message and the app keeps working', async () => {
  const browser = await launch({ webgpu: false });
  try {
    const { page } = await open(browser.context, server.url);
    const name = 'bert-uncased-cls';
    const config = readFileSync(join(FIXTURES, name, 'config.json'));
    const tokenizer = readFileSync(join(FIXTURES, name, 'tokenizer.json'));
    const weights = readFileSync(join(FIXTURES, name, 'model.safetensors'));
    await page.getByTestId('model-files').setInputFiles([
      { name: 'config.json', mimeType: 'application/json', buffer: config },
      { name: 'tokenizer.json', mimeType: 'application/json', buffer: tokenizer },
      { name: 'model.safetensors', mimeType: 'application/octet-stream', buffer: weights.subarray(0, 1000) },
    ]);
    await page.getByTestId('error').filter({ hasText: 'model.safetensors: not a valid safetensors file' }).waitFor();
    // Tokenizing still works after the failure.
    await page.getByTestId('text-input').fill('Hello');
    await page.waitForFunction(() => document.querySelector('[data-testid=tokens]')?.dataset.count === '3');
  } finally {
    await browser.close();
  }
});

test('the ?debug handle answers with attention maps, or without them when asked', async () => {
  const name = 'bert-uncased-cls';
  const browser = await launch({ webgpu: false });
  try {
    const { page, problems } = await open(browser.context, `${server.url}?backend=cpu&debug`);
    await loadFixture(page, name);
    const texts = ['a short line'];
    const full = JSON.parse(await page.evaluate((t) => window.webformer.classify(t), texts));
    const lean = JSON.parse(
      await page.evaluate((t) => window.webformer.classify(t, { attentions: false }), texts),
    );
    const config = JSON.parse(readFileSync(join(FIXTURES, name, 'config.json'), 'utf8'));
    assert.equal(full.results[0].attentions.length, config.num_hidden_layers);
    assert.equal(lean.results[0].attentions, null);
    assert.deepEqual(lean.results[0].probs, full.results[0].probs);
    assert.deepEqual(problems, []);
  } finally {
    await browser.close();
  }
});
