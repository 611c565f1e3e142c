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
