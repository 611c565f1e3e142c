// A static server for dist/ on 127.0.0.1 (a secure context, as WebGPU requires).
import { createServer } from 'node:http';
import { readFile, stat } from 'node:fs/promises';
import { extname, join, normalize, resolve } from 'node:path';

const TYPES = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.json': 'application/json',
  '.wasm': 'application/wasm',
  '.png': 'image/png',
  '.jpg': 'image/jpeg',
  '.svg': 'image/svg+xml',
  '.safetensors': 'application/octet-stream',
};

/**
 * Serves `root` on a free port of 127.0.0.1; resolves to { url, close }. With
 * `{ hub: folder }` it also answers as a fake Hugging Face hub under `/hub/`: see `hubRoute`
 * (then the result has `hub`, its controls). `root` may be null for a hub-only server.
 * `hide: ['/models/']` answers 404 under those paths (a site built without them).
 */
export async function serve(root, { hub, hide = [] } = {}) {
  const base = root ? resolve(root) : null;
  const controls = hub ? hubControls(hub) : null;
  const server = createServer(async (req, res) => {
    if (controls && req.url.startsWith('/hub/')) return hubRoute(controls, req, res);
    try {
      if (!base) throw new Error('no site here');
      const path = decodeURIComponent(new URL(req.url, 'http://x').pathname);
      if (hide.some((h) => path.startsWith(h))) throw new Error('hidden');
      let file = normalize(join(base, path));
      if (!file.startsWith(base)) throw new Error('outside root');
      if ((await stat(file)).isDirectory()) file = join(file, 'index.html');
      const body = await readFile(file);
      res.writeHead(200, { 'content-type': TYPES[extname(file)] ?? 'application/octet-stream' });
      res.end(body);
    } catch {
      res.writeHead(404, { 'content-type': 'text/plain' });
      res.end('not found');
    }
  });
  await new Promise((ok) => server.listen(0, '127.0.0.1', ok));
  const { port } = server.address();
  const close = () => {
    server.closeAllConnections?.();
    return new Promise((ok) => server.close(ok));
  };
  return { url: `http://127.0.0.1:${port}/`, close, hub: controls };
}

/**
 * The fake hub's state, which tests change between steps:
 * - `files`: 'owner/name/file' -> Buffer, served first (fake or corrupt repos);
 *   otherwise `webformer-test/<name>/<file>` is `<folder>/<name>/<file>`.
 * - `cuts`: 'owner/name/file' -> N: the next GET of it sends N bytes, then the connection
 *   drops (the response announced the whole length): a network error midway.
 * - `stalls`: 'owner/name/file' -> N: the next GET sends N bytes, then nothing more (a hung
 *   download, for cancelling).
 * - `ignoreRange`: answer 200 with the whole file even when asked for a range.
 * - `log`: every request as { method, key, range, status }.
 */
function hubControls(folder) {
  return { folder: resolve(folder), files: new Map(), cuts: new Map(), stalls: new Map(), ignoreRange: false, log: [] };
}

const HUB_HEADERS = {
  'access-control-allow-origin': '*',
  'access-control-expose-headers': 'content-length, content-range, accept-ranges',
  'cache-control': 'no-store',
};

/** `/hub/<owner>/<name>/resolve/<revision>/<file>`, with HEAD, `Range: bytes=N-` and CORS. */
async function hubRoute(hub, req, res) {
  const path = decodeURIComponent(new URL(req.url, 'http://x').pathname);
  const m = path.match(/^\/hub\/([^/]+)\/([^/]+)\/resolve\/[^/]+\/([^/].*)$/);
  const key = m ? `${m[1]}/${m[2]}/${m[3]}` : path;
  const entry = { method: req.method, key, range: req.headers.range ?? null, status: 0 };
  hub.log.push(entry);
  const answer = (status, headers, body) => {
    entry.status = status;
    res.writeHead(status, { ...HUB_HEADERS, ...headers });
    res.end(req.method === 'HEAD' ? undefined : body);
  };
  if (req.method === 'OPTIONS') {
    return answer(204, { 'access-control-allow-headers': 'range', 'access-control-allow-methods': 'GET, HEAD' });
  }
  let body = m ? hub.files.get(key) : undefined;
  if (!body && m && m[1] === 'webformer-test' && !m[3].includes('..')) {
    body = await readFile(join(hub.folder, m[2], m[3])).catch(() => undefined);
  }
  if (!body) return answer(404, { 'content-type': 'text/plain' }, 'Entry not found');
  const type = { 'content-type': TYPES[extname(key)] ?? 'application/octet-stream', 'accept-ranges': 'bytes' };
  let status = 200;
  let part = body;
  const range = /^bytes=(\d+)-$/.exec(req.headers.range ?? '');
  if (range && !hub.ignoreRange) {
    const start = Number(range[1]);
    if (start >= body.length) return answer(416, { 'content-range': `bytes */${body.length}` });
    status = 206;
    part = body.subarray(start);
    type['content-range'] = `bytes ${start}-${body.length - 1}/${body.length}`;
  }
  const get = req.method === 'GET';
  const cut = get ? hub.cuts.get(key) : undefined;
  const stall = get ? hub.stalls.get(key) : undefined;
  if (cut === undefined && stall === undefined) {
    return answer(status, { ...type, 'content-length': part.length }, part);
  }
  hub.cuts.delete(key);
  hub.stalls.delete(key);
  entry.status = status;
  entry.cut = cut ?? stall;
  res.writeHead(status, { ...HUB_HEADERS, ...type, 'content-length': part.length });
  res.write(part.subarray(0, cut ?? stall), () => {
    if (cut !== undefined) setTimeout(() => res.socket?.destroy(), 100);
  });
}
