// The engine on WebGPU in the browser (SwiftShader's adapter under --enable-unsafe-webgpu):
// a fixture model loads there, its kernels are warmed up during the load, and its answers
// match PyTorch's; without an adapter the CPU answers and the page says why; a lost GPU
// device moves the work to the CPU without losing the user's input or answer.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { serve } from './server.mjs';
import { launch, open } from './browser.mjs';
import { classify, goldenTexts, loadFixture, waitForBackend, worstAttentionDiff, worstProbDiff } from './models.mjs';

const DIST = process.env.WEBFORMER_DIST ?? 'dist';
/** The GPU tolerance (SwiftShader is a different f32 implementation than ours). */
const GPU_TOL = 2e-3;
let server;

before(async () => {
  server = await serve(DIST);
});
after(async () => {
  await server?.close();
});

for (const name of ['bert-uncased-cls', 'distilbert-cls']) {
  test(`${name} on WebGPU (SwiftShader): probabilities and attention maps within ${GPU_TOL} of PyTorch's`, async () => {
    const texts = goldenTexts(name);
    const browser = await launch({ webgpu: true });
    try {
      const { page, problems } = await open(browser.context, `${server.url}?debug`);
      assert.match(await waitForBackend(page, 'webgpu'), /^WebGPU: .*swiftshader/i);
      // The load reports its stages; on the GPU one of them is the kernels' warm-up.
      await page.evaluate(() => {
        window.__stages = [];
        new MutationObserver(() => {
          const stage = document.querySelector('[data-testid=load-progress]')?.dataset.stage;
          if (stage && !window.__stages.includes(stage)) window.__stages.push(stage);
        }).observe(document.body, { subtree: true, childList: true, attributes: true });
      });
      assert.match(await loadFixture(page, name), /on WebGPU/);
      const stages = await page.evaluate(() => window.__stages);
      assert.ok(stages.includes('compiling GPU kernels'), `load stages seen: ${stages}`);
      const worst = worstProbDiff(name, texts, await classify(page, texts));
      // Every attention map, through the ?debug handle on the worker.
      const full = JSON.parse(await page.evaluate((t) => window.webformer.classify(t), texts));
      const worstAttn = worstAttentionDiff(name, texts, full.results);
      console.log(`# ${name} on WebGPU (SwiftShader): max |Δprob| ${worst.toExponential(2)}, ` +
        `max |Δattention| ${worstAttn.toExponential(2)} vs PyTorch`);
      assert.ok(worst <= GPU_TOL, `probabilities differ by ${worst}`);
      assert.ok(worstAttn <= GPU_TOL, `attentions differ by ${worstAttn}`);
      assert.deepEqual(problems, []);
    } finally {
      await browser.close();
    }
  });
}

test('without a WebGPU adapter the model runs on the CPU and the page says why', async () => {
  const name = 'bert-uncased-cls';
  const texts = goldenTexts(name);
  const browser = await launch({ webgpu: false });
  try {
    const { page, problems } = await open(browser.context, server.url);
    assert.match(await waitForBackend(page, 'cpu'), /^CPU \(wasm SIMD \+ FMA\) — WebGPU found no adapter/);
    assert.match(await loadFixture(page, name), /on CPU \(wasm SIMD \+ FMA\)/);
    const worst = worstProbDiff(name, texts, await classify(page, texts));
    assert.ok(worst <= 1e-4, `probabilities differ by ${worst}`);
    assert.deepEqual(problems, []);
  } finally {
    await browser.close();
  }
});

test('a lost GPU device: the CPU takes over, says so, and the input and answers stay', async () => {
  const name = 'bert-uncased-cls';
  const texts = goldenTexts(name);
  const browser = await launch({ webgpu: true });
  try {
    const { page } = await open(browser.context, `${server.url}?debug`);
    await waitForBackend(page, 'webgpu');
    assert.match(await loadFixture(page, name), /on WebGPU/);
    const before = await classify(page, texts);
    assert.ok(worstProbDiff(name, texts, before) <= GPU_TOL);

    await page.getByTestId('simulate-gpu-loss').click();
    await page.getByText('GPU device destroyed').waitFor();
    // The same request again: answered on the CPU, with the page told why.
    await page.getByTestId('classify-text').click();
    const status = await waitForBackend(page, 'cpu');
    assert.match(status, /^CPU \(wasm SIMD \+ FMA\) — the GPU device was lost .*switched to the CPU/);
    await page.waitForFunction((n) => document.querySelector('[data-testid=text-results]').dataset.runs === n, String(2));
    const after = await page.getByTestId('text-result').evaluateAll((els) =>
      els.map((e) => ({ label: e.dataset.label, probs: JSON.parse(e.dataset.probs) })));
    const worst = worstProbDiff(name, texts, after);
    assert.ok(worst <= 1e-4, `after the loss the CPU's probabilities differ by ${worst}`);
    assert.equal(await page.getByTestId('text-input').inputValue(), texts.join('\n'), 'the input is kept');
    assert.equal(await page.getByTestId('error').count(), 0);
    // And it keeps working.
    assert.ok(worstProbDiff(name, texts, await classify(page, texts)) <= 1e-4);
  } finally {
    await browser.close();
  }
});
