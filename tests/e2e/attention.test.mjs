// The attention explorer: a classified sentence's attention heatmap is drawn on a canvas,
// changes with the layer and the head, and says the value under the pointer.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { serve } from './server.mjs';
import { launch, open } from './browser.mjs';
import { classify, loadFixture } from './models.mjs';

const DIST = process.env.WEBFORMER_DIST ?? 'dist';
let server;

before(async () => {
  server = await serve(DIST);
});
after(async () => {
  await server?.close();
});

test('attention heatmap is drawn and follows the layer and head pickers', async () => {
  const browser = await launch({ webgpu: false });
  try {
    const { page, problems } = await open(browser.context, `${server.url}?backend=cpu`);
    await loadFixture(page, 'bert-uncased-cls');
    await classify(page, ['a quietly moving film', 'dull']);
    await page.getByTestId('explain-attention').first().click();
    const canvas = page.getByTestId('attention-heatmap');
    await canvas.waitFor();
    const picture = () => canvas.evaluate((c) => c.toDataURL());
    const blank = await page.evaluate(() => {
      const c = document.createElement('canvas');
      const src = document.querySelector('[data-testid=attention-heatmap]');
      c.width = src.width;
      c.height = src.height;
      return c.toDataURL();
    });
    const first = await picture();
    assert.notEqual(first, blank, 'the heatmap is drawn');
    // bert-uncased-cls has 2 layers × 4 heads; the explorer opens on the last layer.
    assert.equal(await page.getByTestId('attention-layer').locator('option').count(), 2);
    assert.equal(await page.getByTestId('attention-head').locator('option').count(), 4);
    await page.getByTestId('attention-layer').selectOption({ value: '0' });
    await page.waitForFunction(() => document.querySelector('[data-testid=attention-heatmap]').dataset.layer === '0');
    const second = await picture();
    assert.notEqual(second, first, 'another layer, another picture');
    await page.getByTestId('attention-head').selectOption({ value: '2' });
    await page.waitForFunction(() => document.querySelector('[data-testid=attention-heatmap]').dataset.head === '2');
    assert.notEqual(await picture(), second, 'another head, another picture');
    // Hover over the first cell: [CLS] attends to [CLS].
    await canvas.hover({ position: { x: 95, y: 95 } });
    await page.getByTestId('attention-hover').filter({ hasText: '“[CLS]” attends to “[CLS]”' }).waitFor();
    await page.screenshot({ path: 'docs/screenshots/attention.png', fullPage: true });
    assert.deepEqual(problems, []);
  } finally {
    await browser.close();
  }
});
