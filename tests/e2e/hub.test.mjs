// Models from a hub: a local server stands in for huggingface.co (resolve URLs, HEAD, Range).
// Downloads show byte progress, resume after a cut connection, are kept in the Cache API
// (a reload loads them with the hub stopped), can be cancelled and deleted; bad files get
// specific messages and the app keeps working. Also the offline defaults the site serves.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { createHash } from 'node:crypto';
import { serve } from './server.mjs';
import { launch, open } from './browser.mjs';
import { FIXTURES, classify, goldenTexts, worstProbDiff } from './models.mjs';

const DIST = process.env.WEBFORMER_DIST ?? 'dist';
const MODEL = 'bert-uncased-cls';
const REPO = `webformer-test/${MODEL}`;
const FILES = ['config.json', 'tokenizer.json', 'model.safetensors'];
const BYTES = FILES.reduce((n, f) => n + statSync(join(FIXTURES, MODEL, f)).size, 0);
let site;

before(async () => {
  site = await serve(DIST);
});
after(async () => {
  await site?.close();
});

function appUrl(hub) {
  return `${site.url}?backend=cpu&hub=${encodeURIComponent(`${hub.url}hub`)}`;
}

/** Records every distinct state of the loading bar into window.__progress. */
async function watchProgress(page) {
  await page.evaluate(() => {
    window.__progress = [];
    new MutationObserver(() => {
      const el = document.querySelector('[data-testid=load-progress]');
      if (!el) return;
      const d = { ...el.dataset, text: el.textContent };
      const last = window.__progress.at(-1);
      if (last?.text !== d.text || last?.stage !== d.stage) window.__progress.push(d);
    }).observe(document.body, { subtree: true, childList: true, attributes: true, characterData: true });
  });
}

/** Types a repo id, clicks Load, waits until loading ends; returns { status, error }. */
async function loadRepo(page, repo) {
  await page.getByTestId('model-repo').fill(repo);
  assert.equal(await page.getByTestId('model-select').inputValue(), 'custom');
  return clickLoad(page);
}

async function clickLoad(page) {
  await page.getByTestId('model-load').click();
  await page.waitForFunction(() => !document.querySelector('[data-testid=model-load]').disabled, null, {
    timeout: 180_000,
  });
  const error = page.getByTestId('error');
  return {
    status: await page.getByTestId('model-status').textContent(),
    error: (await error.count()) ? await error.first().textContent() : null,
  };
}

async function storedModels(page) {
  await page.waitForFunction(() => document.querySelector('[data-testid=stored-models]'));
  return page.getByTestId('stored-model').evaluateAll((els) =>
    els.map((e) => ({ model: e.dataset.model, bytes: Number(e.dataset.bytes) })));
}

async function checkGoldens(page, label) {
  const texts = goldenTexts(MODEL);
  const worst = worstProbDiff(MODEL, texts, await classify(page, texts));
  console.log(`# ${label}: max |Δprob| ${worst.toExponential(2)}`);
  assert.ok(worst <= 1e-4, `${label}: probabilities differ by ${worst}`);
}

test('a hub model downloads with byte progress, matches PyTorch, and loads again from the Cache API with the hub stopped', async () => {
  const hub = await serve(null, { hub: FIXTURES });
  const browser = await launch({ webgpu: false });
  try {
    const { page } = await open(browser.context, appUrl(hub));
    await watchProgress(page);
    const first = await loadRepo(page, REPO);
    assert.equal(first.error, null);
    assert.match(first.status, /Loaded BertClassifier .* on CPU/);
    const progress = await page.evaluate(() => window.__progress);
    const downloads = progress.filter((p) => p.stage === 'download');
    console.log(`# ${downloads.length} download progress states, e.g. ${JSON.stringify(downloads.at(-1).text)}`);
    for (const f of FILES) assert.ok(downloads.some((p) => p.file === f), `progress for ${f}`);
    // Byte counts only grow, against the right total. The final 100% state can be replaced
    // by the next stage before it is ever rendered (both set in one task; Leptos renders
    // once), so it is not required to be seen; that every byte arrived is checked below,
    // by the stored copy's size and the goldens.
    downloads.forEach((p, i) => {
      assert.ok(Number(p.allDone) <= BYTES, `progress past the total: ${p.text}`);
      if (i) assert.ok(Number(p.allDone) >= Number(downloads[i - 1].allDone), `progress went back: ${p.text}`);
    });
    const last = downloads.at(-1);
    assert.equal(Number(last.allTotal), BYTES);
    assert.match(last.text, /^model\.safetensors [\d.]+ \/ 0\.1 MB, total \d+%$/);
    const after = progress[progress.indexOf(last) + 1];
    assert.ok(Number(last.allDone) === BYTES || (after && after.stage !== 'download'),
      `the download stopped at ${last.text} and nothing followed`);
    assert.ok(progress.some((p) => p.stage === 'building the model'), 'the worker reports too');
    const gets = hub.hub.log.filter((r) => r.method === 'GET').map((r) => r.key);
    assert.deepEqual(gets.sort(), FILES.map((f) => `${REPO}/${f}`).sort());
    await checkGoldens(page, 'downloaded from the hub');
    assert.deepEqual(await storedModels(page), [{ model: REPO, bytes: BYTES }]);

    // The hub goes away; the browser still has the files.
    await hub.close();
    await page.reload();
    await page.getByTestId('stored-model').waitFor();
    assert.deepEqual(await storedModels(page), [{ model: REPO, bytes: BYTES }]);
    const again = await loadRepo(page, REPO);
    assert.equal(again.error, null);
    assert.match(again.status, /Loaded BertClassifier/);
    await checkGoldens(page, 'from the Cache API, hub stopped');
    await page.locator('.model-files').screenshot({ path: 'docs/screenshots/models.png' });
  } finally {
    await browser.close();
    await hub.close();
  }
});

for (const ignoreRange of [false, true]) {
  const how = ignoreRange ? 'restarts when the server ignores Range' : 'resumes with Range';
  test(`a download cut midway ${how} and the model is intact`, async () => {
    const hub = await serve(null, { hub: FIXTURES });
    hub.hub.cuts.set(`${REPO}/model.safetensors`, 40_000);
    hub.hub.ignoreRange = ignoreRange;
    const browser = await launch({ webgpu: false });
    try {
      const { page } = await open(browser.context, appUrl(hub));
      await watchProgress(page);
      const { status, error } = await loadRepo(page, REPO);
      assert.equal(error, null);
      assert.match(status, /Loaded BertClassifier/);
      const weights = hub.hub.log.filter((r) => r.method === 'GET' && r.key === `${REPO}/model.safetensors`);
      console.log(`# requests for the weights: ${JSON.stringify(weights)}`);
      assert.equal(weights.length, 2);
      assert.equal(weights[0].cut, 40_000);
      // Resumed from the bytes that had arrived (all 40,000 unless the stream dropped some).
      const from = Number(/^bytes=(\d+)-$/.exec(weights[1].range)?.[1]);
      assert.ok(from > 0 && from <= 40_000, `resumed from ${weights[1].range}`);
      assert.equal(weights[1].status, ignoreRange ? 200 : 206);
      const notes = await page.evaluate(() => window.__progress.map((p) => p.text));
      const note = `retrying in 0.5 s (attempt 2 of 5), resuming at byte ${from}`;
      assert.ok(notes.some((t) => t.includes(note)), notes.join('\n'));
      await checkGoldens(page, `after a cut download (${how})`);
    } finally {
      await browser.close();
      await hub.close();
    }
  });
}

test('bad repos and corrupt files get specific messages; the app keeps working', async () => {
  const hub = await serve(null, { hub: FIXTURES });
  const read = (f) => readFileSync(join(FIXTURES, MODEL, f));
  const put = (repo, files) => Object.entries(files).forEach(([f, b]) => hub.hub.files.set(`webformer-test/${repo}/${f}`, b));
  put('truncated', { 'config.json': read('config.json'), 'tokenizer.json': read('tokenizer.json'),
    'model.safetensors': read('model.safetensors').subarray(0, 1000) });
  put('login-wall', { 'config.json': Buffer.from('<!doctype html><html><body>Sign in</body></html>') });
  put('gpt', { 'config.json': Buffer.from('{"architectures": ["GPT2LMHeadModel"], "model_type": "gpt2"}') });
  put('no-tokenizer', { 'config.json': read('config.json'), 'model.safetensors': read('model.safetensors') });
  const cases = [
    ['webformer-test/truncated', 'webformer-test/truncated: model.safetensors: not a valid safetensors file'],
    ['webformer-test/login-wall', 'config.json: the server sent an HTML page instead of JSON'],
    ['webformer-test/gpt', 'architecture GPT2LMHeadModel is not supported'],
    ['webformer-test/no-tokenizer', 'webformer-test/no-tokenizer has no tokenizer.json'],
    ['webformer-test/missing', 'webformer-test/missing: no config.json at'],
    ['not a repo!', '"not a repo!" is not a hub repo id'],
  ];
  const browser = await launch({ webgpu: false });
  try {
    const { page } = await open(browser.context, appUrl(hub));
    for (const [repo, message] of cases) {
      const { error } = await loadRepo(page, repo);
      console.log(`# ${repo}: ${error}`);
      assert.ok(error?.includes(message), `${repo}: got ${JSON.stringify(error)}, want ${JSON.stringify(message)}`);
    }
    // The corrupt download was not kept, and a good model loads and classifies.
    assert.deepEqual(await storedModels(page), []);
    const good = await loadRepo(page, REPO);
    assert.equal(good.error, null);
    await checkGoldens(page, 'after the bad files');
  } finally {
    await browser.close();
    await hub.close();
  }
});

const sha256 = (b) => createHash('sha256').update(b).digest('hex');
const gitBlob = (b) => createHash('sha1').update(`blob ${b.length}\0`).update(b).digest('hex');

test('files that do not match the hub\'s checksums are refused and not stored; a damaged stored copy is replaced', async () => {
  const hub = await serve(null, { hub: FIXTURES });
  const read = (f) => readFileSync(join(FIXTURES, MODEL, f));
  const repo = 'webformer-test/swapped';
  const key = (f) => `${repo}/${f}`;
  const good = Object.fromEntries(FILES.map((f) => [f, read(f)]));
  // One flipped byte in the tensor data: still a valid safetensors file, only its hash
  // tells. The hub states the checksums of the good bytes.
  const badWeights = Buffer.from(good['model.safetensors']);
  badWeights[badWeights.length - 100] ^= 0xff;
  // A tokenizer.json that is still valid JSON, one byte longer.
  const badTokenizer = Buffer.concat([good['tokenizer.json'], Buffer.from('\n')]);
  for (const f of FILES) hub.hub.files.set(key(f), good[f]);
  for (const f of FILES) hub.hub.claims.set(key(f), good[f]);
  const browser = await launch({ webgpu: false });
  try {
    const { page } = await open(browser.context, appUrl(hub));

    // 1. The weights (an LFS file: sha256 from the API listing) do not match.
    hub.hub.files.set(key('model.safetensors'), badWeights);
    const weights = await loadRepo(page, repo);
    console.log(`# swapped weights: ${weights.error}`);
    assert.ok(weights.error?.startsWith(
      `model.safetensors from ${repo}: checksum mismatch, expected sha256 ${sha256(good['model.safetensors']).slice(0, 16)}…, ` +
      `got ${sha256(badWeights).slice(0, 16)}…; it was not stored`), weights.error);
    assert.ok(hub.hub.apiLog.includes(repo));
    assert.deepEqual(await storedModels(page), []);

    // 2. No API (a mirror): a small file's ETag is its git blob id, and it does not match.
    hub.hub.api = false;
    hub.hub.files.set(key('model.safetensors'), good['model.safetensors']);
    hub.hub.files.set(key('tokenizer.json'), badTokenizer);
    const tokenizer = await loadRepo(page, repo);
    console.log(`# swapped tokenizer.json, headers only: ${tokenizer.error}`);
    assert.ok(tokenizer.error?.startsWith(
      `tokenizer.json from ${repo}: checksum mismatch, expected git blob sha1 ${gitBlob(good['tokenizer.json']).slice(0, 16)}…, ` +
      `got ${gitBlob(badTokenizer).slice(0, 16)}…; it was not stored`), tokenizer.error);
    assert.deepEqual(await storedModels(page), []);

    // Headers only, good files: the weights come through the hub's redirect, whose
    // X-Linked-Etag the page cannot see, and the CDN's own ETag is not their sha256: they
    // load unverified, with a note (not refused).
    hub.hub.files.set(key('tokenizer.json'), good['tokenizer.json']);
    const unverified = await loadRepo(page, repo);
    assert.equal(unverified.error, null);
    assert.match(unverified.status, /Loaded BertClassifier .*Not verified: model\.safetensors \(the hub sent no checksum for it\)\./);
    await checkGoldens(page, 'headers only');

    // 3. With the API, everything stored is verified when it is read again.
    hub.hub.api = true;
    const verified = await loadRepo(page, repo);
    assert.equal(verified.error, null);
    assert.doesNotMatch(verified.status, /Not verified|damaged/);
    assert.deepEqual(await storedModels(page), [{ model: repo, bytes: BYTES }]);

    // 4. The stored weights get damaged (a bad disk sector, a meddling extension): the
    // copy is dropped, downloaded again, and the model is intact.
    const url = `${hub.url}hub/${repo}/resolve/main/model.safetensors`;
    const damaged = await page.evaluate(async (u) => {
      const cache = await caches.open('webformer-models');
      const old = await cache.match(u);
      if (!old) return false;
      const bytes = new Uint8Array(await old.arrayBuffer());
      bytes[bytes.length - 100] ^= 0xff;
      await cache.put(u, new Response(bytes, { headers: old.headers }));
      return old.headers.get('x-webformer-checksum');
    }, url);
    assert.equal(damaged, `sha256:${sha256(good['model.safetensors'])}`);
    const before = hub.hub.log.filter((r) => r.method === 'GET' && r.key === key('model.safetensors')).length;
    const again = await loadRepo(page, repo);
    console.log(`# damaged stored copy: ${again.status}`);
    assert.equal(again.error, null);
    assert.match(again.status, new RegExp(`\\. The stored copy of model\\.safetensors from ${repo} was damaged \\(checksum mismatch, expected sha256 ${sha256(good['model.safetensors']).slice(0, 16)}…`));
    const after = hub.hub.log.filter((r) => r.method === 'GET' && r.key === key('model.safetensors')).length;
    assert.equal(after, before + 1, 'downloaded again');
    await checkGoldens(page, 'after replacing a damaged stored copy');
    assert.deepEqual(await storedModels(page), [{ model: repo, bytes: BYTES }]);
  } finally {
    await browser.close();
    await hub.close();
  }
});

test('Cancel while the worker builds the model: the model loaded before stays, the new files are kept', async () => {
  const hub = await serve(null, { hub: FIXTURES });
  const other = 'bert-cased-cls';
  const browser = await launch({ webgpu: false });
  try {
    const { page } = await open(browser.context, appUrl(hub));
    const first = await loadRepo(page, REPO);
    assert.equal(first.error, null);
    // Cancel is clicked the moment the worker reports that it builds the new model.
    await page.evaluate(() => {
      window.__cancel = null;
      const watch = new MutationObserver(() => {
        const el = document.querySelector('[data-testid=load-progress]');
        if (el?.dataset.stage !== 'building the model' || window.__cancel) return;
        const button = document.querySelector('[data-testid=model-cancel]');
        window.__cancel = { disabled: button.disabled };
        button.click();
        watch.disconnect();
      });
      watch.observe(document.body, { subtree: true, childList: true, attributes: true });
    });
    const cancelled = await loadRepo(page, `webformer-test/${other}`);
    console.log(`# cancelled during the build: ${cancelled.status}`);
    assert.deepEqual(await page.evaluate(() => window.__cancel), { disabled: false });
    assert.equal(cancelled.error, null);
    assert.match(cancelled.status, /^Loading cancelled: the new model was not put in use/);
    assert.equal(await page.getByTestId('load-progress').count(), 0);
    assert.ok(await page.getByTestId('model-cancel').isDisabled());
    // The model loaded before answers, as before.
    await checkGoldens(page, 'the model loaded before, after a cancelled build');
    // The new model's files were complete and verified: they are kept.
    const size = (m) => ['config.json', 'tokenizer.json', 'model.safetensors']
      .reduce((n, f) => n + statSync(join(FIXTURES, m, f)).size, 0);
    const stored = await storedModels(page);
    assert.deepEqual(stored.find((m) => m.model === `webformer-test/${other}`), { model: `webformer-test/${other}`, bytes: size(other) });

    // Loading it again (from the browser's copy) puts it in use.
    const gets = hub.hub.log.length;
    const loaded = await loadRepo(page, `webformer-test/${other}`);
    assert.equal(loaded.error, null);
    assert.match(loaded.status, /Loaded BertClassifier/);
    assert.equal(hub.hub.log.length, gets, 'no download the second time');
    const texts = goldenTexts(other);
    const worst = worstProbDiff(other, texts, await classify(page, texts));
    assert.ok(worst <= 1e-4, `${other}: probabilities differ by ${worst}`);
  } finally {
    await browser.close();
    await hub.close();
  }
});

test('a hung download can be cancelled; a stored model can be deleted', async () => {
  const hub = await serve(null, { hub: FIXTURES });
  hub.hub.stalls.set(`${REPO}/model.safetensors`, 30_000);
  const browser = await launch({ webgpu: false });
  try {
    const { page } = await open(browser.context, appUrl(hub));
    await page.getByTestId('model-repo').fill(REPO);
    await page.getByTestId('model-load').click();
    await page.getByTestId('load-progress').filter({ hasText: 'model.safetensors 0.0 / 0.1 MB' }).waitFor();
    await page.getByTestId('model-cancel').click();
    await page.getByTestId('model-status').filter({ hasText: 'Download cancelled.' }).waitFor();
    assert.equal(await page.getByTestId('load-progress').count(), 0);
    assert.equal(await page.getByTestId('error').count(), 0);
    // The small files that did arrive are kept; the weights are not.
    const partial = await storedModels(page);
    assert.deepEqual(partial.map((m) => m.model), [REPO]);
    assert.ok(partial[0].bytes < BYTES);

    const { error } = await clickLoad(page);
    assert.equal(error, null);
    assert.deepEqual(await storedModels(page), [{ model: REPO, bytes: BYTES }]);
    await page.getByTestId('stored-model-delete').click();
    await page.waitForFunction(() => document.querySelector('[data-testid=stored-models]').dataset.count === '0');
    await page.reload();
    await page.getByTestId('stored-models').waitFor();
    await page.waitForTimeout(500);
    assert.deepEqual(await storedModels(page), []);
  } finally {
    await browser.close();
    await hub.close();
  }
});

test('a hub that goes away midway: retries, then a clear message; the complete files are kept', async () => {
  const hub = await serve(null, { hub: FIXTURES });
  hub.hub.stalls.set(`${REPO}/model.safetensors`, 30_000);
  const browser = await launch({ webgpu: false });
  try {
    const { page } = await open(browser.context, appUrl(hub));
    await page.getByTestId('model-repo').fill(REPO);
    await page.getByTestId('model-load').click();
    await page.getByTestId('load-progress').filter({ hasText: 'model.safetensors 0.0 / 0.1 MB' }).waitFor();
    const started = Date.now();
    await hub.close();
    await page.waitForFunction(() => !document.querySelector('[data-testid=model-load]').disabled, null, { timeout: 60_000 });
    const waited = (Date.now() - started) / 1000;
    const error = await page.getByTestId('error').textContent();
    console.log(`# after ${waited.toFixed(1)} s: ${error}`);
    assert.match(error, /^model\.safetensors: the download failed 5 times \(.+\); 0\.0 of 0\.1 MB had arrived/);
    // Four waits: 0.5 + 1 + 2 + 4 s.
    assert.ok(waited >= 7.5, `gave up after ${waited} s`);
    const kept = await storedModels(page);
    assert.deepEqual(kept.map((m) => m.model), [REPO]);
    assert.equal(kept[0].bytes, BYTES - statSync(join(FIXTURES, MODEL, 'model.safetensors')).size);
  } finally {
    await browser.close();
    await hub.close();
  }
});

/** Splits a safetensors file into two shards and the index that joins them. */
function shard(buf) {
  const len = Number(buf.readBigUInt64LE(0));
  const header = JSON.parse(buf.subarray(8, 8 + len).toString('utf8'));
  const data = buf.subarray(8 + len);
  const names = Object.keys(header).filter((n) => n !== '__metadata__');
  const halves = [names.slice(0, names.length / 2), names.slice(names.length / 2)];
  const files = {};
  const weightMap = {};
  halves.forEach((part, i) => {
    const file = `model-0000${i + 1}-of-00002.safetensors`;
    const h = {};
    const chunks = [];
    let offset = 0;
    for (const n of part) {
      const [a, b] = header[n].data_offsets;
      h[n] = { ...header[n], data_offsets: [offset, offset + b - a] };
      chunks.push(data.subarray(a, b));
      offset += b - a;
      weightMap[n] = file;
    }
    let json = JSON.stringify(h);
    json += ' '.repeat((8 - (json.length % 8)) % 8);
    const size = Buffer.alloc(8);
    size.writeBigUInt64LE(BigInt(json.length));
    files[file] = Buffer.concat([size, Buffer.from(json), ...chunks]);
  });
  files['model.safetensors.index.json'] = Buffer.from(JSON.stringify({ metadata: {}, weight_map: weightMap }));
  return files;
}

test('a sharded repo (model.safetensors.index.json + shards) downloads every shard and matches PyTorch', async () => {
  const hub = await serve(null, { hub: FIXTURES });
  const read = (f) => readFileSync(join(FIXTURES, MODEL, f));
  const files = { 'config.json': read('config.json'), 'tokenizer.json': read('tokenizer.json'), ...shard(read('model.safetensors')) };
  Object.entries(files).forEach(([f, b]) => hub.hub.files.set(`webformer-test/sharded/${f}`, b));
  const browser = await launch({ webgpu: false });
  try {
    const { page } = await open(browser.context, appUrl(hub));
    const { status, error } = await loadRepo(page, 'webformer-test/sharded');
    assert.equal(error, null);
    assert.match(status, /Loaded BertClassifier/);
    const gets = hub.hub.log.filter((r) => r.method === 'GET' && r.status === 200).map((r) => r.key.split('/').at(-1));
    assert.deepEqual(gets.sort(), Object.keys(files).sort());
    const total = Object.values(files).reduce((n, b) => n + b.length, 0);
    assert.deepEqual(await storedModels(page), [{ model: 'webformer-test/sharded', bytes: total }]);
    await checkGoldens(page, 'from two shards');
  } finally {
    await browser.close();
    await hub.close();
  }
});

test('without the offline folder the select says so and the hub still works', async () => {
  const bare = await serve(DIST, { hide: ['/models/'] });
  const hub = await serve(null, { hub: FIXTURES });
  const browser = await launch({ webgpu: false });
  try {
    const url = `${bare.url}?backend=cpu&hub=${encodeURIComponent(`${hub.url}hub`)}`;
    const { page } = await open(browser.context, url);
    await page.getByTestId('offline-missing').waitFor({ state: 'attached' });
    assert.match(await page.getByTestId('offline-missing').textContent(), /none: this site ships no offline models/);
    assert.equal(await page.getByTestId('model-select').inputValue(), 'hub:distilbert-base-uncased-finetuned-sst-2-english');
    const { error } = await loadRepo(page, REPO);
    assert.equal(error, null);
    await checkGoldens(page, 'site without offline models');
    // An image model without preprocessor_config.json (404): ViTImageProcessor's defaults.
    const vit = await loadRepo(page, 'webformer-test/vit-cls');
    assert.equal(vit.error, null);
    assert.match(vit.status, /Loaded VitClassifier/);
    assert.ok(hub.hub.log.some((r) => r.key.endsWith('vit-cls/preprocessor_config.json') && r.status === 404));
    // The hub URL typed in the settings is remembered without ?hub=.
    await page.locator('.hub-settings summary').click();
    await page.getByTestId('hub-url').fill(`${hub.url}hub/`);
    await page.getByTestId('hub-url').press('Enter');
    await page.getByTestId('hub-url').blur();
    await page.goto(`${bare.url}?backend=cpu`);
    assert.equal(await page.getByTestId('hub-url').inputValue(), `${hub.url}hub`);
  } finally {
    await browser.close();
    await hub.close();
    await bare.close();
  }
});

test('the offline defaults are served by the site itself', async () => {
  const minilm = existsSync('models/all-MiniLM-L6-v2/model.safetensors');
  const browser = await launch({ webgpu: false });
  try {
    // The hub points at a closed port: nothing here may need it.
    const { page } = await open(browser.context, `${site.url}?backend=cpu&hub=http://127.0.0.1:9/hub`);
    const select = page.getByTestId('model-select');
    await page.waitForFunction(() => document.querySelector('[data-testid=model-select] option[value^="site:"]'));
    const values = await select.locator('option').evaluateAll((os) => os.map((o) => o.value));
    assert.ok(values.includes('site:vit-fashion-mnist'), values.join(', '));
    assert.equal(values.includes('site:all-MiniLM-L6-v2'), minilm, 'MiniLM is offered when set-up fetched it');
    await select.selectOption('site:vit-fashion-mnist');
    const { status, error } = await clickLoad(page);
    assert.equal(error, null);
    assert.match(status, /Loaded VitClassifier .* labels: T-shirt\/top/);
    const head = 'models/defaults/minilm-sentiment/head.safetensors';
    if (minilm) {
      await select.selectOption('site:all-MiniLM-L6-v2');
      const loaded = await clickLoad(page);
      assert.equal(loaded.error, null);
      assert.match(loaded.status, /Loaded BertEncoder \(6 layers × 12 heads, hidden 384\)/);
      if (existsSync(head)) {
        const [result] = await classify(page, ['An utterly delightful, moving film.']);
        console.log(`# offline MiniLM + sentiment head: ${JSON.stringify(result)}`);
        assert.equal(result.probs.length, 2);
      }
    }
  } finally {
    await browser.close();
  }
});
