// The attention explorer: a classified sentence's attention heatmap is drawn on a canvas,
// changes with the layer and the head, says the value under the pointer and paints that
// value's colour; the line view focuses on a token; the layer × head grid selects a head.
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
    // The cell's colour is the colour scale at the value the hover reports.
    const hovered = await page.getByTestId('attention-hover').textContent();
    const v = Number(hovered.split(': ').pop());
    assert.ok(v > 0 && v <= 1, `a probability: ${hovered}`);
    const pixel = await canvas.evaluate((c) => {
      const d = window.devicePixelRatio;
      return Array.from(c.getContext('2d').getImageData(Math.floor(99 * d), Math.floor(99 * d), 1, 1).data);
    });
    const t = Math.sqrt(v);
    const want = [255 - 225 * t, 255 - 175 * t, 255 - 55 * t];
    for (let i = 0; i < 3; i++) {
      assert.ok(Math.abs(pixel[i] - want[i]) <= 3, `cell colour ${pixel} for ${v}, want ${want.map(Math.round)}`);
    }

    // Line view: drawn; pointing at the first token on the left focuses its lines.
    const lines = page.getByTestId('attention-lines');
    const allLines = await lines.evaluate((c) => c.toDataURL());
    await lines.hover({ position: { x: 60, y: 12 } });
    await page.waitForFunction(() => document.querySelector('[data-testid=attention-lines]').dataset.focus === '0');
    assert.notEqual(await lines.evaluate((c) => c.toDataURL()), allLines, 'focus redraws the lines');

    // Small multiples: every layer × head; clicking one selects it in the pickers.
    const grid = page.getByTestId('attention-grid');
    assert.equal(await grid.getAttribute('data-layers'), '2');
    assert.equal(await grid.getAttribute('data-heads'), '4');
    const box = await grid.boundingBox();
    // Layer 2, head 4: the bottom-right thumbnail.
    await grid.click({ position: { x: box.width - 10, y: box.height - 10 } });
    await page.waitForFunction(() => {
      const c = document.querySelector('[data-testid=attention-heatmap]');
      return c.dataset.layer === '1' && c.dataset.head === '3';
    });
    assert.equal(await page.getByTestId('attention-layer').inputValue(), '1');
    assert.equal(await page.getByTestId('attention-head').inputValue(), '3');

    // The selection outline is on its own canvas over the thumbnails (drawn once): it follows
    // the pickers, and a click after a layer change still selects the thumbnail clicked.
    const outline = page.getByTestId('attention-grid-outline');
    const thumbnails = await grid.evaluate((c) => c.toDataURL());
    // The outline's painted pixels, in CSS pixels of the canvas (= of the grid below it).
    const outlineBox = () => outline.evaluate((c) => {
      const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
      let [x0, y0, x1, y1] = [Infinity, Infinity, -1, -1];
      for (let y = 0; y < c.height; y++) {
        for (let x = 0; x < c.width; x++) {
          if (d[(y * c.width + x) * 4 + 3] === 0) continue;
          x0 = Math.min(x0, x); y0 = Math.min(y0, y); x1 = Math.max(x1, x); y1 = Math.max(y1, y);
        }
      }
      const r = window.devicePixelRatio;
      return { x: (x0 + x1 + 1) / 2 / r, y: (y0 + y1 + 1) / 2 / r, w: (x1 - x0 + 1) / r, h: (y1 - y0 + 1) / r };
    });
    const pick = async (l, h) => {
      await page.getByTestId('attention-layer').selectOption({ value: String(l) });
      await page.getByTestId('attention-head').selectOption({ value: String(h) });
      await page.waitForFunction(([l, h]) => {
        const c = document.querySelector('[data-testid=attention-grid-outline]');
        return c.dataset.layer === l && c.dataset.head === h;
      }, [String(l), String(h)]);
      return outlineBox();
    };
    const selected = async () => [
      await page.getByTestId('attention-layer').inputValue(), await page.getByTestId('attention-head').inputValue()];
    const b13 = await outlineBox();
    const b00 = await pick(0, 0);
    assert.ok(b00.w > 0 && b00.w === b00.h, `a square outline: ${JSON.stringify(b00)}`);
    // Head 4 is right of head 1 and layer 2 below layer 1, in equal steps.
    const step = { x: (b13.x - b00.x) / 3, y: b13.y - b00.y };
    assert.ok(step.x > b00.w / 2 && Math.abs(step.x - step.y) < 1, `outline moved: ${JSON.stringify({ b00, b13 })}`);
    // The outline's centre is on a thumbnail (opaque) and the outline sits in the gap around it.
    const gridAlpha = (x, y) => grid.evaluate((c, [x, y]) => {
      const r = window.devicePixelRatio;
      return c.getContext('2d').getImageData(Math.floor(x * r), Math.floor(y * r), 1, 1).data[3];
    }, [x, y]);
    assert.equal(await gridAlpha(b00.x, b00.y), 255);
    assert.equal(await gridAlpha(b00.x + b00.w / 2 - 0.5, b00.y), 0);
    assert.equal(await grid.evaluate((c) => c.toDataURL()), thumbnails, 'the thumbnails are not redrawn');

    // Click layer 2, head 2 after the layer change.
    await grid.click({ position: { x: b00.x + step.x, y: b00.y + step.y } });
    await page.waitForFunction(() => document.querySelector('[data-testid=attention-grid-outline]').dataset.head === '1');
    assert.deepEqual(await selected(), ['1', '1']);
    let moved = await outlineBox();
    assert.ok(Math.abs(moved.x - (b00.x + step.x)) < 1 && Math.abs(moved.y - (b00.y + step.y)) < 1,
      `the outline moved to layer 2, head 2: ${JSON.stringify(moved)}`);
    // Another layer in the picker, then a click on layer 1, head 3.
    await pick(1, 3);
    await grid.click({ position: { x: b00.x + 2 * step.x, y: b00.y } });
    await page.waitForFunction(() => document.querySelector('[data-testid=attention-grid-outline]').dataset.layer === '0');
    assert.deepEqual(await selected(), ['0', '2']);
    moved = await outlineBox();
    assert.ok(Math.abs(moved.x - (b00.x + 2 * step.x)) < 1 && Math.abs(moved.y - b00.y) < 1,
      `the outline moved to layer 1, head 3: ${JSON.stringify(moved)}`);
    assert.equal(await page.getByTestId('attention-heatmap').getAttribute('data-layer'), '0');
    assert.equal(await page.getByTestId('attention-heatmap').getAttribute('data-head'), '2');
    await pick(1, 3);
    await page.screenshot({ path: 'docs/screenshots/attention.png', fullPage: true });
    assert.deepEqual(problems, []);
  } finally {
    await browser.close();
  }
});

test('a ViT image: [CLS] attention drawn over the picture, per head and rolled out', async () => {
  const { readFileSync } = await import('node:fs');
  const { join } = await import('node:path');
  const DIR = 'tests/fixtures/vit-fashion-mnist';
  const browser = await launch({ webgpu: false });
  try {
    const { page, problems } = await open(browser.context, `${server.url}?backend=cpu`);
    await page.getByTestId('model-files').setInputFiles(
      ['config.json', 'model.safetensors', 'preprocessor_config.json'].map((f) => join(DIR, f)));
    await page.getByTestId('model-status').filter({ hasText: 'Loaded' }).waitFor({ timeout: 120_000 });
    await page.getByTestId('tab-images').click();
    await page.getByTestId('image-input').setInputFiles([
      { name: 'sample-0.png', mimeType: 'image/png', buffer: readFileSync(join(DIR, 'sample-0.png')) },
    ]);
    await page.getByTestId('explain-image-attention').click();
    const overlay = page.getByTestId('attention-image');
    await overlay.waitFor();
    // One overlay cell per patch: image_size / patch_size on a side, after [CLS].
    const side = Number(await overlay.getAttribute('data-side'));
    const cfg = JSON.parse(readFileSync(join(DIR, 'config.json'), 'utf8'));
    assert.equal(side, cfg.image_size / cfg.patch_size);
    const picture = () => overlay.evaluate((c) => c.toDataURL());
    // Drawn once the picture has loaded: not blank, and with some opaque pixels.
    await page.waitForFunction(() => {
      const c = document.querySelector('[data-testid=attention-image]');
      const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
      let opaque = 0;
      for (let i = 3; i < d.length; i += 4) if (d[i] > 0) opaque++;
      return opaque > d.length / 8;
    });
    const head = await picture();
    await page.getByTestId('attention-image-mode').selectOption({ value: 'rollout' });
    await page.waitForFunction(() => document.querySelector('[data-testid=attention-image]').dataset.mode === 'rollout');
    assert.notEqual(await picture(), head, 'rollout draws another picture');
    // The text views work on the patches too: the grid has every layer × head.
    assert.equal(Number(await page.getByTestId('attention-grid').getAttribute('data-layers')), cfg.num_hidden_layers);
    await page.screenshot({ path: 'docs/screenshots/attention-image.png', fullPage: true });
    assert.deepEqual(problems, []);
  } finally {
    await browser.close();
  }
});
