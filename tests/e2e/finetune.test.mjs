// Fine-tuning in the browser: drop a CSV, train a head on the loaded encoder, watch the
// curves and the confusion matrix, export the head, reload (the head is kept), import it
// into a fresh profile and classify with it. A bad CSV gets its message.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
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

function wordCsv() {
  let csv = 'sentiment,review\n';
  for (let i = 0; i < 30; i++) {
    csv += `good,"great wonderful lovely film ${i}"\n`;
    csv += `bad,"awful boring dull, terrible ${i}"\n`;
  }
  return Buffer.from(csv);
}

const TEXTS = ['great wonderful lovely film 3', 'awful boring dull, terrible 3'];

async function setNumber(page, label, value) {
  const input = page.getByLabel(label, { exact: true });
  await input.fill(String(value));
  await input.dispatchEvent('change');
}

test('drop a CSV, train, see curves and confusion matrix, export, reload, import, classify', async () => {
  let headPath;
  const browser = await launch({ webgpu: false });
  try {
    const { page, problems } = await open(browser.context, server.url);
    await loadFixture(page, 'bert-encoder');
    await page.getByTestId('tab-finetune').click();

    // A file that is not a CSV: a specific message, and the panel keeps working.
    await page.getByTestId('csv-input').setInputFiles({ name: 'photo.csv', mimeType: 'text/csv', buffer: Buffer.from([0x89, 0x50, 0x4e, 0x47, 0, 0, 1, 2, 3]) });
    await page.getByTestId('error').filter({ hasText: 'photo.csv' }).waitFor();

    await page.getByTestId('csv-input').setInputFiles({ name: 'reviews.csv', mimeType: 'text/csv', buffer: wordCsv() });
    await page.getByTestId('csv-summary').filter({ hasText: 'reviews.csv: 60 rows' }).waitFor();
    assert.equal(await page.getByTestId('error').count(), 0);
    assert.equal(await page.locator('[data-testid=csv-preview] tbody tr').count(), 5);
    assert.equal(await page.getByTestId('text-column').inputValue(), '1');
    assert.equal(await page.getByTestId('label-column').inputValue(), '0');

    await page.locator('details.advanced summary').click();
    await setNumber(page, 'Epochs', 30);
    await setNumber(page, 'Learning rate', 0.01);
    await page.getByTestId('train-start').click();
    const metrics = page.getByTestId('train-metrics');
    await metrics.waitFor({ timeout: 120_000 });
    const accuracy = Number(await metrics.getAttribute('data-val-accuracy'));
    const epochs = Number(await page.getByTestId('train-curves').getAttribute('data-epochs'));
    console.log(`# trained in the browser: ${epochs} epochs, validation accuracy ${accuracy}`);
    assert.equal(accuracy, 1);
    assert.ok(epochs >= 2, `${epochs} epochs`);
    const points = await page.locator('[data-testid=train-curves] polyline.val-loss').getAttribute('points');
    const ys = points.trim().split(' ').map((p) => Number(p.split(',')[1]));
    assert.equal(ys.length, epochs);
    assert.ok(new Set(ys).size > 1, 'the validation-loss curve moves');
    assert.deepEqual(JSON.parse(await page.getByTestId('confusion-matrix').getAttribute('data-matrix')), [[6, 0], [0, 6]]);
    await page.getByTestId('head-status').filter({ hasText: 'Trained head: bad, good' }).waitFor();
    await page.screenshot({ path: 'docs/screenshots/finetune.png', fullPage: true });

    // Export: head.safetensors comes down.
    const [download] = await Promise.all([page.waitForEvent('download'), page.getByTestId('head-export').click()]);
    assert.equal(download.suggestedFilename(), 'head.safetensors');
    const dir = await mkdtemp(join(tmpdir(), 'webformer-head-'));
    headPath = join(dir, 'head.safetensors');
    await download.saveAs(headPath);
    assert.ok((await readFile(headPath)).length > 100);

    // The head answers on the text tab, with the CSV's labels.
    await page.getByTestId('tab-text').click();
    let results = await classify(page, TEXTS);
    assert.deepEqual(results.map((r) => r.label), ['good', 'bad']);

    // Reload: the head is kept by the browser.
    await page.reload();
    await page.getByTestId('tab-finetune').click();
    await page.getByTestId('head-status').filter({ hasText: 'Trained head: bad, good' }).waitFor();
    await page.getByTestId('tab-text').click();
    await loadFixture(page, 'bert-encoder');
    results = await classify(page, TEXTS);
    assert.deepEqual(results.map((r) => r.label), ['good', 'bad']);
    assert.deepEqual(problems, []);
  } finally {
    await browser.close();
  }

  // A fresh profile has no head until the exported file is imported.
  const other = await launch({ webgpu: false });
  try {
    const { page } = await open(other.context, server.url);
    await page.getByTestId('tab-finetune').click();
    await page.getByTestId('head-status').filter({ hasText: 'No trained head yet' }).waitFor();
    await page.getByTestId('head-import').setInputFiles(headPath);
    await page.getByTestId('head-status').filter({ hasText: 'Trained head: bad, good' }).waitFor();
    await page.getByTestId('tab-text').click();
    await loadFixture(page, 'bert-encoder');
    const results = await classify(page, TEXTS);
    assert.deepEqual(results.map((r) => r.label), ['good', 'bad']);
  } finally {
    await other.close();
  }
});

test('training runs on WebGPU when the browser has it (SwiftShader) and learns the same', async () => {
  const browser = await launch({ webgpu: true });
  try {
    const { page, problems } = await open(browser.context, server.url);
    assert.match(await loadFixture(page, 'bert-encoder'), /on WebGPU/);
    await page.getByTestId('tab-finetune').click();
    await page.getByTestId('finetune-model').filter({ hasText: 'on WebGPU' }).waitFor();
    await page.getByTestId('csv-input').setInputFiles({ name: 'reviews.csv', mimeType: 'text/csv', buffer: wordCsv() });
    await page.getByTestId('csv-summary').waitFor();
    await page.locator('details.advanced summary').click();
    await setNumber(page, 'Epochs', 30);
    await setNumber(page, 'Learning rate', 0.01);
    await page.getByTestId('train-start').click();
    const metrics = page.getByTestId('train-metrics');
    await metrics.waitFor({ timeout: 180_000 });
    assert.equal(Number(await metrics.getAttribute('data-val-accuracy')), 1);
    assert.deepEqual(JSON.parse(await page.getByTestId('confusion-matrix').getAttribute('data-matrix')), [[6, 0], [0, 6]]);
    await page.getByTestId('tab-text').click();
    const results = await classify(page, TEXTS);
    assert.deepEqual(results.map((r) => r.label), ['good', 'bad']);
    assert.deepEqual(problems, []);
  } finally {
    await browser.close();
  }
});

/** Two classes of distinct sentences, `n` rows each. */
function longCsv(n) {
  let csv = 'mood,text\n';
  for (let i = 0; i < n; i++) {
    csv += `pos,"happy bright sunny day ${i}"\n`;
    csv += `neg,"sad gloomy rainy night ${i}"\n`;
  }
  return Buffer.from(csv);
}

/** Clicks Cancel; resolves with the ms until `outcome` shows (the training's answer). */
async function cancelAndWait(page, outcome) {
  const t0 = Date.now();
  await page.getByTestId('train-cancel').click();
  await outcome.waitFor({ timeout: 120_000 });
  const ms = Date.now() - t0;
  await page.waitForFunction(() => !document.querySelector('[data-testid=train-start]').disabled, null,
    { timeout: 120_000 });
  return ms;
}

test('Cancel stops CPU training within a few mini-batches, not at the end of the epoch', async () => {
  const browser = await launch({ webgpu: false });
  try {
    const { page, problems } = await open(browser.context, `${server.url}?backend=cpu`);
    assert.match(await loadFixture(page, 'bert-encoder'), /on CPU/);
    await page.getByTestId('tab-finetune').click();
    // A head from before.
    await page.getByTestId('csv-input').setInputFiles({ name: 'reviews.csv', mimeType: 'text/csv', buffer: wordCsv() });
    await page.getByTestId('csv-summary').filter({ hasText: 'reviews.csv: 60 rows' }).waitFor();
    await page.locator('details.advanced summary').click();
    await setNumber(page, 'Epochs', 30);
    await setNumber(page, 'Learning rate', 0.01);
    await page.getByTestId('train-start').click();
    await page.getByTestId('train-metrics').waitFor({ timeout: 120_000 });
    await page.getByTestId('head-status').filter({ hasText: 'Trained head: bad, good' }).waitFor();

    // A long run: 640 training rows one at a time through an 8000-wide hidden layer (a head
    // small enough for the browser's storage), so that one epoch takes seconds.
    await page.getByTestId('csv-input').setInputFiles({ name: 'moods.csv', mimeType: 'text/csv', buffer: longCsv(400) });
    await page.getByTestId('csv-summary').filter({ hasText: 'moods.csv: 800 rows' }).waitFor();
    await setNumber(page, 'Epochs', 1000);
    await setNumber(page, 'Batch size', 1);
    await setNumber(page, 'Hidden layer width (0 = linear)', 8000);
    await setNumber(page, 'Early-stopping patience (epochs)', 1000);

    // 1. Cancelled inside the first epoch: no new head, the one from before stays.
    await page.getByTestId('train-start').click();
    await page.waitForFunction(() => {
      const p = document.querySelector('[data-testid=train-progress]');
      return p && p.dataset.stage === 'embedding' && p.value === p.max && p.max === 800;
    }, null, { timeout: 120_000 });
    await page.waitForTimeout(1000);
    const first = await cancelAndWait(page, page.getByTestId('error'));
    const message = await page.getByTestId('error').textContent();
    console.log(`# cancelled in the first epoch after ${first} ms: ${message}`);
    assert.match(message, /cancelled before the first epoch ended/);
    assert.equal(await page.getByTestId('train-curves').getAttribute('data-epochs'), '0');
    await page.getByTestId('head-status').filter({ hasText: 'Trained head: bad, good' }).waitFor();

    // 2. Again (the embeddings are cached): time one whole epoch, then cancel at once.
    const t0 = Date.now();
    await page.getByTestId('train-start').click();
    await page.waitForFunction(() => document.querySelector('[data-testid=train-curves]').dataset.epochs === '1',
      null, { timeout: 300_000 });
    const epochMs = Date.now() - t0;
    const metrics = page.getByTestId('train-metrics');
    const latency = await cancelAndWait(page, metrics.filter({ hasText: 'cancelled; the best head so far is kept' }));
    console.log(`# one epoch ${epochMs} ms; cancel took effect after ${latency} ms (first epoch: ${first} ms)`);
    assert.ok(epochMs >= 2000, `an epoch took only ${epochMs} ms: too short to tell a prompt cancel from one at the epoch's end`);
    assert.equal(await page.getByTestId('train-curves').getAttribute('data-epochs'), '1',
      'the unfinished second epoch is dropped, not run to its end');
    assert.ok(latency < Math.min(1500, epochMs / 2), `cancel took ${latency} ms; an epoch takes ${epochMs} ms`);
    assert.ok(first < Math.min(1500, epochMs / 2), `the first cancel took ${first} ms`);
    await page.getByTestId('head-status').filter({ hasText: 'Trained head: neg, pos' }).waitFor();
    const errors = await page.getByTestId('error').allTextContents();
    assert.deepEqual(errors, []);
    assert.deepEqual(problems, []);
  } finally {
    await browser.close();
  }
});
