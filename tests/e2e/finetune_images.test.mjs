// Fine-tuning on images in the browser: the Fashion-MNIST ViT opened from local files,
// three classes of real Fashion-MNIST test images (written as PNG files here) added through
// `image-class-input`, one stray text file among them; the worker trains a head on the
// ViT's [CLS] embeddings, the metrics and confusion matrix appear, and the image panel then
// shows the head's answer next to the model's own for images it never saw. A reload keeps
// the head. The images come from Debian's dataset-fashion-mnist (scripts/setup.sh).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { gunzipSync, deflateSync, crc32 } from 'node:zlib';
import { serve } from './server.mjs';
import { launch, open } from './browser.mjs';

const DIST = process.env.WEBFORMER_DIST ?? 'dist';
const DIR = 'tests/fixtures/vit-fashion-mnist';
const DATA = '/usr/share/datasets/fashion-mnist';
/** Our class names for three Fashion-MNIST classes (its label ids). */
const CLASSES = { trouser: 1, sneaker: 7, bag: 8 };
const PER_CLASS = 15;
let server;

before(async () => {
  server = await serve(DIST);
});
after(async () => {
  await server?.close();
});

function idx(name) {
  const data = gunzipSync(readFileSync(join(DATA, name)));
  const ndim = data[3];
  return data.subarray(4 + 4 * ndim);
}

/** A 28×28 greyscale PNG of image `i` (8-bit grey, no filter). */
function png(images, i) {
  const chunk = (type, body) => {
    const len = Buffer.alloc(4);
    len.writeUInt32BE(body.length);
    const td = Buffer.concat([Buffer.from(type, 'ascii'), body]);
    const crc = Buffer.alloc(4);
    crc.writeUInt32BE(crc32(td) >>> 0);
    return Buffer.concat([len, td, crc]);
  };
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(28, 0);
  ihdr.writeUInt32BE(28, 4);
  ihdr[8] = 8; // bit depth
  ihdr[9] = 0; // greyscale
  const raw = Buffer.alloc(28 * 29);
  for (let y = 0; y < 28; y++) images.copy(raw, y * 29 + 1, i * 784 + y * 28, i * 784 + y * 28 + 28);
  return Buffer.concat([
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    chunk('IHDR', ihdr),
    chunk('IDAT', deflateSync(raw)),
    chunk('IEND', Buffer.alloc(0)),
  ]);
}

test('image fine-tuning: classes of dropped PNGs train a head that the image panel uses', async () => {
  const images = idx('t10k-images-idx3-ubyte.gz');
  const labels = idx('t10k-labels-idx1-ubyte.gz');
  // The first PER_CLASS images of each class train; the next one of each is held out.
  const picked = Object.fromEntries(Object.keys(CLASSES).map((c) => [c, []]));
  const heldOut = [];
  for (let i = 0; i < labels.length && heldOut.length < 3; i++) {
    const name = Object.keys(CLASSES).find((c) => CLASSES[c] === labels[i]);
    if (!name) continue;
    if (picked[name].length < PER_CLASS) picked[name].push(i);
    else if (!heldOut.some((h) => h.name === name)) heldOut.push({ name, i });
  }

  const browser = await launch({ webgpu: false });
  try {
    const { page, problems } = await open(browser.context, `${server.url}?backend=cpu`);
    await page.getByTestId('model-files').setInputFiles(
      ['config.json', 'model.safetensors', 'preprocessor_config.json'].map((f) => join(DIR, f)));
    await page.getByTestId('model-status').filter({ hasText: 'Loaded' }).waitFor({ timeout: 120_000 });
    await page.getByTestId('tab-images').click();
    const section = page.getByTestId('image-finetune');
    await section.getByTestId('image-finetune-model').filter({ hasText: 'Image model' }).waitFor();

    // Images before a class is named are refused, and nothing is added.
    await section.getByTestId('image-class-input').setInputFiles([
      { name: 'x.png', mimeType: 'image/png', buffer: png(images, 0) },
    ]);
    await section.getByTestId('error').filter({ hasText: 'name the class first' }).waitFor();
    assert.equal(await section.getByTestId('image-class').count(), 0);

    for (const [name, ids] of Object.entries(picked)) {
      await section.getByTestId('image-class-name').fill(name);
      const files = ids.map((i) => ({ name: `${name}-${i}.png`, mimeType: 'image/png', buffer: png(images, i) }));
      if (name === 'bag') files.push({ name: 'notes.txt', mimeType: 'text/plain', buffer: Buffer.from('bags, 2017') });
      await section.getByTestId('image-class-input').setInputFiles(files);
    }
    const rows = await section.getByTestId('image-class').evaluateAll((els) =>
      els.map((e) => [e.dataset.class, Number(e.dataset.count)]));
    assert.deepEqual(rows, [['trouser', PER_CLASS], ['sneaker', PER_CLASS], ['bag', PER_CLASS + 1]]);

    await section.getByTestId('image-train-start').click();
    const metrics = section.getByTestId('train-metrics');
    await metrics.waitFor({ timeout: 300_000 });
    const accuracy = Number(await metrics.getAttribute('data-val-accuracy'));
    const matrix = JSON.parse(await section.getByTestId('confusion-matrix').getAttribute('data-matrix'));
    const epochs = Number(await section.getByTestId('train-curves').getAttribute('data-epochs'));
    console.log(`# image head: validation accuracy ${accuracy} after ${epochs} epochs; confusion ${JSON.stringify(matrix)}`);
    assert.equal(matrix.length, 3, 'three classes');
    assert.equal(matrix.flat().reduce((a, b) => a + b, 0), 9, 'a fifth of each class (3 × 3) validates');
    assert.ok(accuracy >= 0.8, `validation accuracy ${accuracy}`);
    await metrics.filter({ hasText: 'notes.txt (not an image)' }).waitFor();
    await section.getByTestId('image-head-status').filter({ hasText: 'Trained image head: bag, sneaker, trouser' }).waitFor();

    // The image panel: the head answers next to the model's own, on images it never saw.
    await page.getByTestId('image-input').setInputFiles(
      heldOut.map(({ name, i }) => ({ name: `${name}.png`, mimeType: 'image/png', buffer: png(images, i) })));
    await page.waitForFunction(() => document.querySelector('[data-testid=image-results]').dataset.runs === '1',
      null, { timeout: 120_000 });
    const answers = await page.getByTestId('image-result').evaluateAll((els) => els.map((e) => {
      const head = e.querySelector('[data-testid=head-result]');
      return { name: e.dataset.name, own: e.dataset.label, head: head?.dataset.label, probs: head && JSON.parse(head.dataset.probs) };
    }));
    console.log(`# held out: ${JSON.stringify(answers.map(({ name, own, head }) => ({ name, own, head })))}`);
    assert.equal(answers.length, 3);
    for (const a of answers) {
      assert.ok(a.head, `${a.name}: the head's answer is shown`);
      assert.equal(a.probs.length, 3);
      assert.ok(Math.abs(a.probs.reduce((x, y) => x + y, 0) - 1) < 1e-4);
    }
    const right = answers.filter((a) => a.head === a.name.replace('.png', '')).length;
    assert.ok(right >= 2, `${right} of 3 held-out images right`);
    await page.getByTestId('image-finetune').scrollIntoViewIfNeeded();
    await page.screenshot({ path: 'docs/screenshots/finetune-images.png', fullPage: true });

    // A reload keeps the head (the browser's storage).
    await page.reload();
    await page.getByTestId('tab-images').click();
    await page.getByTestId('image-head-status').filter({ hasText: 'Trained image head: bag, sneaker, trouser' })
      .waitFor({ timeout: 60_000 });
    assert.deepEqual(problems, []);
  } finally {
    await browser.close();
  }
});
