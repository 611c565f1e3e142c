// An f16 checkpoint: the worker keeps its linear weights in f16 (half the memory) and
// answers exactly as it does for an f32 checkpoint holding the same values. The fixture's
// weights are rounded to f16 and written twice, as F16 and as F32; both worker builds.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { serve } from './server.mjs';
import { launch, open } from './browser.mjs';
import { FIXTURES, classify, goldenTexts, worstProbDiff } from './models.mjs';
import { roundedToF16 } from './safetensors.mjs';

const DIST = process.env.WEBFORMER_DIST ?? 'dist';
const NAME = 'bert-uncased-cls';
let server;
let dir;

before(async () => {
  server = await serve(DIST);
  dir = mkdtempSync(join(tmpdir(), 'webformer-f16-'));
});
after(async () => {
  await server?.close();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

/** The fixture with its weights rounded to f16, stored as `dtype`: the files to open. */
function rounded(dtype) {
  const src = join(FIXTURES, NAME);
  const model = join(dir, dtype);
  mkdirSync(model, { recursive: true });
  writeFileSync(join(model, 'model.safetensors'), roundedToF16(readFileSync(join(src, 'model.safetensors')), dtype));
  for (const f of ['config.json', 'tokenizer.json']) copyFileSync(join(src, f), join(model, f));
  return ['config.json', 'model.safetensors', 'tokenizer.json'].map((f) => join(model, f));
}

async function probsWith(files, query) {
  const browser = await launch({ webgpu: false });
  try {
    const { page, problems } = await open(browser.context, `${server.url}?backend=cpu${query}`);
    await page.getByTestId('model-files').setInputFiles(files);
    await page.getByTestId('model-status').filter({ hasText: 'Loaded' }).waitFor({ timeout: 120_000 });
    const results = await classify(page, goldenTexts(NAME));
    assert.deepEqual(problems, []);
    return results;
  } finally {
    await browser.close();
  }
}

for (const [kernels, query] of [['relaxed', ''], ['simd128', '&kernels=simd128']]) {
  test(`an f16 checkpoint answers exactly as the same values in f32 (${kernels} worker)`, async () => {
    const texts = goldenTexts(NAME);
    const f32 = await probsWith(rounded('F32'), query);
    const f16 = await probsWith(rounded('F16'), query);
    // Bit for bit: the f16 panels are widened exactly and then multiplied as the f32 ones.
    assert.deepEqual(f16, f32);
    // And rounding the weights to f16 keeps PyTorch's answers (on the unrounded weights).
    const worst = worstProbDiff(NAME, texts, f16);
    console.log(`# ${NAME} rounded to f16 (${kernels} worker): max |Δprob| against PyTorch's f32 ${worst.toExponential(2)}`);
    assert.ok(worst <= 1e-2, `probabilities differ by ${worst}`);
  });
}
