// Image classification in the browser: our Fashion-MNIST ViT opened from local files, three
// test images and one file that is not an image; the answers match PyTorch's, the bad file
// gets its own message, on the CPU and on WebGPU.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { serve } from './server.mjs';
import { launch, open } from './browser.mjs';
import { softmax } from './safetensors.mjs';

const DIST = process.env.WEBFORMER_DIST ?? 'dist';
const DIR = 'tests/fixtures/vit-fashion-mnist';
let server;

before(async () => {
  server = await serve(DIST);
});
after(async () => {
  await server?.close();
});

for (const [backend, tol] of [['cpu', 1e-4], ['webgpu', 2e-3]]) {
  test(`images on ${backend}: top-5 bars, probabilities equal PyTorch's (≤ ${tol}), a bad file gets its message`, async () => {
    const golden = JSON.parse(readFileSync(join(DIR, 'golden_samples.json'), 'utf8')).samples;
    const browser = await launch({ webgpu: backend === 'webgpu' });
    try {
      const { page, problems } = await open(browser.context, `${server.url}?backend=${backend}`);
      await page.getByTestId('model-files').setInputFiles(
        ['config.json', 'model.safetensors', 'preprocessor_config.json'].map((f) => join(DIR, f)));
      await page.getByTestId('model-status').filter({ hasText: 'Loaded' }).waitFor({ timeout: 120_000 });
      await page.getByTestId('tab-images').click();
      const files = golden.map((s) => ({ name: s.file, mimeType: 'image/png', buffer: readFileSync(join(DIR, s.file)) }));
      await page.getByTestId('image-input').setInputFiles([
        ...files.slice(0, 1),
        { name: 'notes.png', mimeType: 'image/png', buffer: Buffer.from('not a picture') },
        ...files.slice(1),
      ]);
      await page.waitForFunction(() => document.querySelector('[data-testid=image-results]').dataset.runs === '1',
        null, { timeout: 120_000 });
      const results = await page.getByTestId('image-result').evaluateAll((els) =>
        els.map((e) => ({ name: e.dataset.name, label: e.dataset.label, probs: JSON.parse(e.dataset.probs) })));
      assert.equal(results.length, 4);
      assert.equal(results[1].name, 'notes.png');
      await page.getByTestId('image-error').filter({ hasText: 'notes.png: not a usable image' }).waitFor();
      const good = results.filter((r) => r.name !== 'notes.png');
      let worst = 0;
      good.forEach((r, i) => {
        assert.equal(r.label, golden[i].predicted_label);
        softmax(golden[i].logits).forEach((p, j) => (worst = Math.max(worst, Math.abs(p - r.probs[j]))));
      });
      console.log(`# images on ${backend}: max |Δprob| vs PyTorch ${worst.toExponential(2)}`);
      assert.ok(worst <= tol, `${worst}`);
      assert.equal(await page.locator('[data-testid=image-result]').first().locator('.bar').count(), 5);
      if (backend === 'cpu') await page.screenshot({ path: 'docs/screenshots/images.png', fullPage: true });
      assert.deepEqual(problems, []);
    } finally {
      await browser.close();
    }
  });
}
