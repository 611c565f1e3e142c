// The app shell in headless Chromium: it mounts, the worker answers, typed text is
// tokenized in wasm, and the status line reports the compute backend.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { serve } from './server.mjs';
import { launch, open } from './browser.mjs';

const DIST = process.env.WEBFORMER_DIST ?? 'dist';
let server;

before(async () => {
  server = await serve(DIST);
});
after(async () => {
  await server?.close();
});

test('mounts, tokenizes in the worker, reports the WebGPU adapter, no console errors', async () => {
  const browser = await launch({ webgpu: true });
  try {
    const { page, problems } = await open(browser.context, server.url);
    const status = page.getByTestId('backend-status');
    // Until the page mounts there is no status element at all: wait for a settled value.
    await page.waitForFunction(
      () => !['pending', undefined].includes(document.querySelector('[data-testid=backend-status]')?.dataset.backend),
      null,
      { timeout: 60_000 },
    );
    assert.equal(await status.getAttribute('data-backend'), 'webgpu', await status.textContent());
    assert.match(await status.textContent(), /^WebGPU: .*swiftshader/i);

    // The worker loaded the bundled tokenizer and answers tokenize requests.
    await page.getByTestId('tokenizer-name').filter({ hasText: '30522 tokens' }).waitFor({ timeout: 60_000 });
    await page.getByTestId('text-input').fill('Hello, world!');
    const tokens = page.getByTestId('tokens');
    await page.waitForFunction(() => document.querySelector('[data-testid=tokens]')?.dataset.count === '6');
    assert.deepEqual(JSON.parse(await tokens.getAttribute('data-ids')), [101, 7592, 1010, 2088, 999, 102]);
    assert.deepEqual(await page.locator('[data-testid=token] .token-text').allInnerTexts(),
      ['[CLS]', 'hello', ',', 'world', '!', '[SEP]']);

    // A broken tokenizer.json gets a specific message and the old tokenizer keeps working.
    await page.getByTestId('tokenizer-file').setInputFiles({
      name: 'broken.json', mimeType: 'application/json', buffer: Buffer.from('{"oops": true}'),
    });
    await page.getByTestId('error').filter({ hasText: 'broken.json: not a valid tokenizer' }).waitFor();
    await page.getByTestId('text-input').fill('tokenization');
    await page.waitForFunction(() => document.querySelector('[data-testid=tokens]')?.dataset.count === '4');

    // The other areas are there.
    for (const tab of ['images', 'finetune', 'about', 'text']) {
      await page.getByTestId(`tab-${tab}`).click();
      if (tab === 'about') {
        const about = page.getByTestId('about');
        await about.waitFor();
        assert.match(await about.textContent(), /About webformer/);
        await page.screenshot({ path: 'docs/screenshots/about.png', fullPage: true });
      }
    }

    assert.deepEqual(problems, []);
  } finally {
    await browser.close();
  }
});

test('without WebGPU the status line says CPU and why', async () => {
  const browser = await launch({ webgpu: false });
  try {
    const { page, problems } = await open(browser.context, server.url);
    await page.waitForFunction(
      () => document.querySelector('[data-testid=backend-status]')?.dataset.backend === 'cpu',
      null,
      { timeout: 60_000 },
    );
    assert.match(await page.getByTestId('backend-status').textContent(), /^CPU \(wasm SIMD \+ FMA\) — .*no adapter/i);
    assert.deepEqual(problems, []);
  } finally {
    await browser.close();
  }
});

test('?backend=cpu forces the CPU', async () => {
  const browser = await launch({ webgpu: true });
  try {
    const { page } = await open(browser.context, `${server.url}?backend=cpu`);
    await page.waitForFunction(
      () => document.querySelector('[data-testid=backend-status]')?.dataset.backend === 'cpu',
      null,
      { timeout: 60_000 },
    );
    assert.match(await page.getByTestId('backend-status').textContent(), /\?backend=cpu/);
  } finally {
    await browser.close();
  }
});
