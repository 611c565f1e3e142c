// The engine compiled to wasm gives PyTorch's numbers in the browser: a fixture model is
// opened from local files, runs in the worker, and its probabilities match the goldens.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { serve } from './server.mjs';
import { launch, open } from './browser.mjs';
import { readSafetensors, softmax } from './safetensors.mjs';

const DIST = process.env.WEBFORMER_DIST ?? 'dist';
const FIXTURES = 'tests/fixtures';
let server;

before(async () => {
  server = await serve(DIST);
});
after(async () => {
  await server?.close();
});

function modelFiles(name) {
  return ['config.json', 'model.safetensors', 'tokenizer.json'].map((f) => join(FIXTURES, name, f));
}

for (const [name, backend] of [['bert-uncased-cls', 'cpu'], ['distilbert-cls', 'cpu']]) {
  test(`${name}: probabilities in the browser equal PyTorch's (≤ 1e-4), backend=${backend}`, async () => {
    const golden = readSafetensors(join(FIXTURES, name, 'golden.safetensors'));
    const meta = JSON.parse(readFileSync(join(FIXTURES, name, 'golden.json'), 'utf8'));
    const config = JSON.parse(readFileSync(join(FIXTURES, name, 'config.json'), 'utf8'));
    // One line per text; the long text is truncated by the model's maximum length as in the goldens.
    const texts = meta.texts.filter((t) => !t.includes('\n'));
    const browser = await launch({ webgpu: false });
    try {
      const { page, problems } = await open(browser.context, `${server.url}?backend=${backend}`);
      await page.getByTestId('model-files').setInputFiles(modelFiles(name));
      await page.getByTestId('model-status').filter({ hasText: 'Loaded' }).waitFor({ timeout: 60_000 });
      await page.getByTestId('text-input').fill(texts.join('\n'));
      await page.getByTestId('classify-text').click();
      await page.waitForFunction((n) => document.querySelectorAll('[data-testid=text-result]').length === n, texts.length);
      const results = await page.getByTestId('text-result').evaluateAll((els) =>
        els.map((e) => ({ label: e.dataset.label, probs: JSON.parse(e.dataset.probs) })));
      let worst = 0;
      texts.forEach((text, i) => {
        const want = softmax(golden[`${meta.texts.indexOf(text)}.logits`].data);
        const got = results[i].probs;
        assert.equal(got.length, want.length);
        got.forEach((p, j) => (worst = Math.max(worst, Math.abs(p - want[j]))));
        const best = want.indexOf(Math.max(...want));
        assert.equal(results[i].label, config.id2label[String(best)], `label of ${JSON.stringify(text)}`);
      });
      console.log(`# ${name}: max |Δprob| in the browser ${worst.toExponential(2)}`);
      assert.ok(worst <= 1e-4, `probabilities differ by ${worst}`);
      assert.deepEqual(problems, []);
    } finally {
      await browser.close();
    }
  });
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
