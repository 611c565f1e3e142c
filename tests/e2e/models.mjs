// Shared steps of the model tests: open a fixture model from local files, classify lines of
// text, and compare the page's probabilities with the PyTorch goldens.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import assert from 'node:assert/strict';
import { readSafetensors, softmax } from './safetensors.mjs';

export const FIXTURES = 'tests/fixtures';

export function modelFiles(name) {
  return ['config.json', 'model.safetensors', 'tokenizer.json'].map((f) => join(FIXTURES, name, f));
}

/** Opens the fixture through "open local files" and waits for "Loaded … on <backend>". */
export async function loadFixture(page, name) {
  await page.getByTestId('model-files').setInputFiles(modelFiles(name));
  const status = page.getByTestId('model-status').filter({ hasText: 'Loaded' });
  await status.waitFor({ timeout: 120_000 });
  return status.textContent();
}

/** The golden texts that fit on one line (the text box takes one input per line). */
export function goldenTexts(name) {
  const meta = JSON.parse(readFileSync(join(FIXTURES, name, 'golden.json'), 'utf8'));
  return meta.texts.filter((t) => !t.includes('\n'));
}

/** Types the texts, clicks classify, returns [{label, probs}] once every result is there. */
export async function classify(page, texts) {
  await page.getByTestId('text-input').fill(texts.join('\n'));
  // Each finished request bumps data-runs: wait for this one's answer, not an earlier one.
  const runs = await page.getByTestId('text-results').getAttribute('data-runs');
  await page.getByTestId('classify-text').click();
  await page.waitForFunction((before) => document.querySelector('[data-testid=text-results]').dataset.runs !== before,
    runs, { timeout: 120_000 });
  const error = page.getByTestId('error');
  if (await error.count()) throw new Error(`classify failed: ${await error.first().textContent()}`);
  assert.equal(await page.getByTestId('text-result').count(), texts.length);
  return page.getByTestId('text-result').evaluateAll((els) =>
    els.map((e) => ({ label: e.dataset.label, probs: JSON.parse(e.dataset.probs) })));
}

/** Largest |Δprob| against PyTorch's softmax(logits); also checks every label. */
export function worstProbDiff(name, texts, results) {
  const golden = readSafetensors(join(FIXTURES, name, 'golden.safetensors'));
  const meta = JSON.parse(readFileSync(join(FIXTURES, name, 'golden.json'), 'utf8'));
  const config = JSON.parse(readFileSync(join(FIXTURES, name, 'config.json'), 'utf8'));
  let worst = 0;
  assert.equal(results.length, texts.length);
  texts.forEach((text, i) => {
    const want = softmax(golden[`${meta.texts.indexOf(text)}.logits`].data);
    const got = results[i].probs;
    assert.equal(got.length, want.length);
    got.forEach((p, j) => (worst = Math.max(worst, Math.abs(p - want[j]))));
    const best = want.indexOf(Math.max(...want));
    assert.equal(results[i].label, config.id2label[String(best)], `label of ${JSON.stringify(text)}`);
  });
  return worst;
}

/** Waits until the status line names this backend ('webgpu' or 'cpu'). */
export async function waitForBackend(page, kind) {
  await page.waitForFunction(
    (k) => document.querySelector('[data-testid=backend-status]')?.dataset.backend === k,
    kind,
    { timeout: 60_000 },
  );
  return page.getByTestId('backend-status').textContent();
}

/** Largest |Δ| between the worker's attention maps ([layer][head][query][key]) and PyTorch's. */
export function worstAttentionDiff(name, texts, results) {
  const golden = readSafetensors(join(FIXTURES, name, 'golden.safetensors'));
  const meta = JSON.parse(readFileSync(join(FIXTURES, name, 'golden.json'), 'utf8'));
  let worst = 0;
  let compared = 0;
  texts.forEach((text, i) => {
    const g = golden[`${meta.texts.indexOf(text)}.attentions`];
    const [layers, heads, seq] = g.shape;
    const a = results[i].attentions;
    assert.equal(a.length, layers);
    for (let l = 0; l < layers; l++) {
      assert.equal(a[l].length, heads);
      for (let h = 0; h < heads; h++) {
        assert.equal(a[l][h].length, seq, `tokens of ${JSON.stringify(text)}`);
        for (let q = 0; q < seq; q++) {
          for (let k = 0; k < seq; k++) {
            worst = Math.max(worst, Math.abs(a[l][h][q][k] - g.data[((l * heads + h) * seq + q) * seq + k]));
            compared++;
          }
        }
      }
    }
  });
  assert.ok(compared > 0);
  return worst;
}
