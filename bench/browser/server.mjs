// The bench's static server on 127.0.0.1: one URL prefix per folder. `isolate` adds the
// COOP/COEP headers that make the page cross-origin isolated (SharedArrayBuffer, so ONNX
// Runtime Web may use threads). `log` collects every path served, with its size.
import { createServer } from 'node:http';
import { readFile, stat } from 'node:fs/promises';
import { extname, join, normalize, resolve } from 'node:path';

const TYPES = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.json': 'application/json',
  '.wasm': 'application/wasm',
  '.css': 'text/css; charset=utf-8',
};

/** `mounts`: [[prefix, folder], …], longest prefix first wins. */
export async function serve(mounts, { isolate = false } = {}) {
  const table = mounts.map(([p, f]) => [p, resolve(f)]).sort((a, b) => b[0].length - a[0].length);
  const log = [];
  const server = createServer(async (req, res) => {
    const headers = { 'cache-control': 'no-store' };
    if (isolate) {
      headers['cross-origin-opener-policy'] = 'same-origin';
      headers['cross-origin-embedder-policy'] = 'require-corp';
      headers['cross-origin-resource-policy'] = 'same-origin';
    }
    try {
      const path = decodeURIComponent(new URL(req.url, 'http://x').pathname);
      const hit = table.find(([p]) => path.startsWith(p));
      if (!hit) throw new Error('no mount');
      const [prefix, base] = hit;
      let file = normalize(join(base, path.slice(prefix.length)));
      if (!file.startsWith(base)) throw new Error('outside root');
      if ((await stat(file)).isDirectory()) file = join(file, 'index.html');
      const body = await readFile(file);
      // The bytes served (not the file now: dist/ may be rebuilt during a run).
      log.push({ path, file, bytes: body.length, body: file.endsWith('.wasm') ? body : null });
      res.writeHead(200, { ...headers, 'content-type': TYPES[extname(file)] ?? 'application/octet-stream' });
      res.end(body);
    } catch {
      log.push({ path: req.url, file: null, bytes: 0, status: 404 });
      res.writeHead(404, { ...headers, 'content-type': 'text/plain' });
      res.end('not found');
    }
  });
  await new Promise((ok) => server.listen(0, '127.0.0.1', ok));
  const { port } = server.address();
  return {
    url: `http://127.0.0.1:${port}/`,
    log,
    close: () => {
      server.closeAllConnections?.();
      return new Promise((ok) => server.close(ok));
    },
  };
}
