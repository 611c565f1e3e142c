// Fine-tuning on images in the browser: the Fashion-MNIST ViT opened from local files,
// three classes of real Fashion-MNIST test images (written as PNG files here) added through
// `image-class-input`, one stray text file among them; the worker trains a head on the
// ViT's [CLS] embeddings, the metrics and confusion matrix appear, and the image panel then
// shows the head's answer next to the model's own for images it never saw. A reload keeps
// the head; exported, it is imported in the image section of a fresh profile (the text
// section refuses it and says where it goes). The same flow on WebGPU (SwiftShader), with
// the classes added as dropped class folders and a picked parent folder. The images come
// from Debian's dataset-fashion-mnist (scripts/setup.sh).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { mkdir, mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
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

/** The first PER_CLASS images of each class train; the next one of each is held out. */
function fashion() {
  const images = idx('t10k-images-idx3-ubyte.gz');
  const labels = idx('t10k-labels-idx1-ubyte.gz');
  const picked = Object.fromEntries(Object.keys(CLASSES).map((c) => [c, []]));
  const heldOut = [];
  for (let i = 0; i < labels.length && heldOut.length < 3; i++) {
    const name = Object.keys(CLASSES).find((c) => CLASSES[c] === labels[i]);
    if (!name) continue;
    if (picked[name].length < PER_CLASS) picked[name].push(i);
    else if (!heldOut.some((h) => h.name === name)) heldOut.push({ name, i });
  }
  return { images, picked, heldOut };
}

/** Opens the ViT from local files; returns the image section's model line. */
async function loadVit(page) {
  await page.getByTestId('model-files').setInputFiles(
    ['config.json', 'model.safetensors', 'preprocessor_config.json'].map((f) => join(DIR, f)));
  await page.getByTestId('model-status').filter({ hasText: 'Loaded' }).waitFor({ timeout: 120_000 });
  await page.getByTestId('tab-images').click();
  const line = page.getByTestId('image-finetune').getByTestId('image-finetune-model').filter({ hasText: 'Image model' });
  await line.waitFor();
  return line.textContent();
}

/** Trains on the classes added; returns the validation accuracy (checks the matrix's size). */
async function train(section) {
  await section.getByTestId('image-train-start').click();
  const metrics = section.getByTestId('train-metrics');
  await metrics.waitFor({ timeout: 300_000 });
  const accuracy = Number(await metrics.getAttribute('data-val-accuracy'));
  const matrix = JSON.parse(await section.getByTestId('confusion-matrix').getAttribute('data-matrix'));
  const epochs = Number(await section.getByTestId('train-curves').getAttribute('data-epochs'));
  console.log(`# image head: validation accuracy ${accuracy} after ${epochs} epochs; confusion ${JSON.stringify(matrix)}`);
  assert.equal(matrix.length, 3, 'three classes');
  assert.equal(matrix.flat().reduce((a, b) => a + b, 0), 9, 'a fifth of each class (3 × 3) validates');
  return accuracy;
}

/** The held-out images through the image panel: the head's answers (checked), how many right. */
async function heldOutRight(page, images, heldOut, runs) {
  await page.getByTestId('image-input').setInputFiles(
    heldOut.map(({ name, i }) => ({ name: `${name}.png`, mimeType: 'image/png', buffer: png(images, i) })));
  await page.waitForFunction((n) => document.querySelector('[data-testid=image-results]').dataset.runs === n,
    String(runs), { timeout: 120_000 });
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
  return answers.filter((a) => a.head === a.name.replace('.png', '')).length;
}

test('image fine-tuning: classes of dropped PNGs train a head that the image panel uses', async () => {
  const { images, picked, heldOut } = fashion();
  let headPath;
  const browser = await launch({ webgpu: false });
  try {
    const { page, problems } = await open(browser.context, `${server.url}?backend=cpu`);
    await loadVit(page);
    const section = page.getByTestId('image-finetune');

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

    const accuracy = await train(section);
    assert.ok(accuracy >= 0.8, `validation accuracy ${accuracy}`);
    await section.getByTestId('train-metrics').filter({ hasText: 'notes.txt (not an image)' }).waitFor();
    await section.getByTestId('image-head-status').filter({ hasText: 'Trained image head: bag, sneaker, trouser' }).waitFor();

    // The image panel: the head answers next to the model's own, on images it never saw.
    const right = await heldOutRight(page, images, heldOut, 1);
    assert.ok(right >= 2, `${right} of 3 held-out images right`);
    await page.getByTestId('image-finetune').scrollIntoViewIfNeeded();
    await page.screenshot({ path: 'docs/screenshots/finetune-images.png', fullPage: true });

    // Export: image-head.safetensors comes down.
    const [download] = await Promise.all([page.waitForEvent('download'), section.getByTestId('image-head-export').click()]);
    assert.equal(download.suggestedFilename(), 'image-head.safetensors');
    headPath = join(await mkdtemp(join(tmpdir(), 'webformer-image-head-')), 'image-head.safetensors');
    await download.saveAs(headPath);

    // A reload keeps the head (the browser's storage).
    await page.reload();
    await page.getByTestId('tab-images').click();
    await page.getByTestId('image-head-status').filter({ hasText: 'Trained image head: bag, sneaker, trouser' })
      .waitFor({ timeout: 60_000 });
    assert.deepEqual(problems, []);
  } finally {
    await browser.close();
  }

  // A fresh profile: the text section refuses the image head and says where it goes; the
  // image section takes it, and the image panel answers with it.
  const other = await launch({ webgpu: false });
  try {
    const { page, problems } = await open(other.context, `${server.url}?backend=cpu`);
    await page.getByTestId('tab-finetune').click();
    await page.getByTestId('head-import').setInputFiles(headPath);
    const refused = page.getByTestId('error').filter({ hasText: 'image-head.safetensors is an image head' });
    await refused.waitFor();
    assert.match(await refused.textContent(), /bag, sneaker, trouser.*import it in the image section/);
    assert.equal(await page.getByTestId('head-status').textContent(), 'No trained head yet.');

    await loadVit(page);
    const section = page.getByTestId('image-finetune');
    assert.equal(await section.getByTestId('image-head-status').textContent(), 'No trained image head yet.');
    await section.getByTestId('image-head-import').setInputFiles(headPath);
    await section.getByTestId('image-head-status').filter({ hasText: 'Trained image head: bag, sneaker, trouser' }).waitFor();
    assert.equal(await section.getByTestId('error').count(), 0);
    const right = await heldOutRight(page, images, heldOut, 1);
    assert.ok(right >= 2, `imported head: ${right} of 3 held-out images right`);
    assert.equal(await page.getByTestId('head-status').textContent(), 'No trained head yet.', 'the text section has no head');
    // Kept by this browser too.
    await page.reload();
    await page.getByTestId('tab-images').click();
    await page.getByTestId('image-head-status').filter({ hasText: 'Trained image head: bag, sneaker, trouser' })
      .waitFor({ timeout: 60_000 });
    assert.deepEqual(problems, []);
  } finally {
    await other.close();
  }
});

/**
 * Drops folders onto the image-classes area. A script cannot make the browser's own
 * FileSystemEntry objects, so the drop's items give stand-ins with the same interface
 * (isDirectory/isFile, fullPath, createReader().readEntries in batches, file()): what the
 * page does with them is real; the browser's reading of a real folder is not tested.
 */
async function dropFolders(page, tree) {
  await page.evaluate((tree) => {
    const file = (path, b64) => {
      const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
      return new File([bytes], path.split('/').pop(), { type: 'image/png' });
    };
    const entry = (path, node) => {
      if (typeof node === 'string') {
        return { isFile: true, isDirectory: false, name: path.split('/').pop(), fullPath: `/${path}`,
          file: (ok) => setTimeout(() => ok(file(path, node)), 0) };
      }
      const children = Object.entries(node).map(([n, c]) => entry(`${path}/${n}`, c));
      return { isFile: false, isDirectory: true, name: path.split('/').pop(), fullPath: `/${path}`,
        createReader: () => {
          // Two entries per batch, then an empty batch, as browsers give them (at most 100).
          let at = 0;
          return { readEntries: (ok) => setTimeout(() => { ok(children.slice(at, at + 2)); at += 2; }, 0) };
        } };
    };
    const items = Object.entries(tree).map(([n, c]) => {
      const e = entry(n, c);
      return { kind: 'file', type: '', webkitGetAsEntry: () => e };
    });
    const dt = new DataTransfer();
    Object.defineProperty(dt, 'items', { value: items });
    const zone = document.querySelector('[data-testid=image-finetune] .dropzone');
    zone.dispatchEvent(new DragEvent('drop', { dataTransfer: dt, bubbles: true, cancelable: true }));
  }, tree);
}

test('image fine-tuning on WebGPU (SwiftShader): dropped class folders and a picked folder train a head', async () => {
  const { images, picked, heldOut } = fashion();
  const browser = await launch({ webgpu: true });
  try {
    const { page, problems } = await open(browser.context, `${server.url}?backend=webgpu`);
    // No adapter means the CPU: this fails here, it does not pass on the CPU.
    assert.match(await loadVit(page), /on WebGPU/);
    const section = page.getByTestId('image-finetune');

    // Two class folders dropped at once; a class name typed on the page does not matter.
    await section.getByTestId('image-class-name').fill('ignored');
    const folder = (name) => Object.fromEntries(picked[name].map((i) => [`${name}-${i}.png`, png(images, i).toString('base64')]));
    await dropFolders(page, { trouser: folder('trouser'), sneaker: { ...folder('sneaker'), '.DS_Store': 'AA==' } });
    await section.getByTestId('image-class').nth(1).waitFor();
    // A parent folder with the third class, picked (its files carry webkitRelativePath).
    const root = await mkdtemp(join(tmpdir(), 'webformer-classes-'));
    await mkdir(join(root, 'more', 'bag'), { recursive: true });
    for (const i of picked.bag) await writeFile(join(root, 'more', 'bag', `bag-${i}.png`), png(images, i));
    await section.getByTestId('image-folder-input').setInputFiles(join(root, 'more'));
    await section.getByTestId('image-class').nth(2).waitFor();
    const rows = await section.getByTestId('image-class').evaluateAll((els) =>
      els.map((e) => [e.dataset.class, Number(e.dataset.count)]));
    assert.deepEqual(rows, [['sneaker', PER_CLASS], ['trouser', PER_CLASS], ['bag', PER_CLASS]]);
    assert.equal(await section.getByTestId('error').count(), 0);

    const accuracy = await train(section);
    assert.ok(accuracy >= 0.8, `validation accuracy on WebGPU ${accuracy} (chance is 1/3)`);
    await section.getByTestId('image-head-status').filter({ hasText: 'Trained image head: bag, sneaker, trouser' }).waitFor();
    const right = await heldOutRight(page, images, heldOut, 1);
    assert.ok(right >= 2, `${right} of 3 held-out images right`);
    assert.match(await section.getByTestId('image-finetune-model').textContent(), /on WebGPU/, 'still on the GPU');
    assert.deepEqual(problems, []);
  } finally {
    await browser.close();
  }
});
