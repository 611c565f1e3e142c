// What the browser bench scripts (bench.mjs, vit.mjs, profile.mjs) share: where things
// are, their command-line options, and how they summarise timings.
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';

export const HERE = dirname(fileURLToPath(import.meta.url));
export const ROOT = join(HERE, '..', '..');
export const args = process.argv.slice(2);

/** The value after `name` on the command line, else `dflt`. */
export function opt(name, dflt) {
  const i = args.indexOf(name);
  return i >= 0 ? args[i + 1] : dflt;
}

/** Like `opt`, as a number. */
export function num(name, dflt) {
  const v = opt(name, null);
  return v === null ? dflt : Number(v);
}

export function median(xs) {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

/** Milliseconds for a table cell. */
export const fmt = (x) => (x >= 100 ? x.toFixed(0) : x.toFixed(1));

// Words that the BERT uncased vocabulary holds whole: N - 2 of them make N tokens with
// [CLS] and [SEP]. bench.mjs checks the counts with both tokenizers before timing.
const WORDS = ('the quick brown fox jumps over a lazy dog and then runs into the big green field where many small ' +
  'birds sing every morning while old men walk slowly along the river with their children who play games ' +
  'near the water until the sun goes down behind the hills and it is time to go home for dinner').split(' ');
const sentence = (tokens, offset) => Array.from({ length: tokens - 2 }, (_, i) => WORDS[(offset + i) % WORDS.length]).join(' ');

/** The text inputs every browser bench times; `key` is profile.mjs's `--input` name. */
export const INPUTS = [
  { key: '10', label: '10 tokens', texts: [sentence(10, 0)], tokens: 10 },
  { key: '32', label: '32 tokens', texts: [sentence(32, 3)], tokens: 32 },
  { key: '128', label: '128 tokens', texts: [sentence(128, 7)], tokens: 128 },
  { key: 'b8x32', label: 'batch 8 × 32 tokens', texts: Array.from({ length: 8 }, (_, i) => sentence(32, 11 * i + 1)), tokens: 32 },
];
