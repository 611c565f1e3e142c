// A static server for dist/ on 127.0.0.1 (a secure context, as WebGPU requires).
import { createServer } from 'node:http';
import { readFile, readdir, stat } from 'node:fs/promises';
import { createHash } from 'node:crypto';
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
 * `isolated: true` sends the COOP/COEP headers (as Trunk.toml's `trunk serve` does), which
 * make the page cross-origin isolated: it may share wasm memory, so it starts the threaded
 * worker.
 */
export async function serve(root, { hub, hide = [], isolated = false } = {}) {
  const isolation = isolated
    ? { 'cross-origin-opener-policy': 'same-origin', 'cross-origin-embedder-policy': 'require-corp' }
    : {};
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
      res.writeHead(200, { ...isolation, 'content-type': TYPES[extname(file)] ?? 'application/octet-stream' });
      res.end(body);
    } catch {
      res.writeHead(404, { ...isolation, 'content-type': 'text/plain' });
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
 * - `claims`: 'owner/name/file' -> Buffer: the hub states the checksums of these bytes
 *   (API, X-Linked-Etag, ETag) while it serves `files`' (a corrupted or swapped file).
 * - `cuts`: 'owner/name/file' -> N: the next GET of it sends N bytes, then the connection
 *   drops (the response announced the whole length): a network error midway.
 * - `stalls`: 'owner/name/file' -> N: the next GET sends N bytes, then nothing more (a hung
 *   download, for cancelling).
 * - `ignoreRange`: answer 200 with the whole file even when asked for a range.
 * - `checksums`: false = a plain mirror: no API, no ETag or X-Linked-Etag; `api`: false =
 *   no API (404), the headers only.
 * - `log`: every request for a file's bytes as { method, key, range, status } (the CDN's
 *   answer for a redirected LFS file; the redirect itself is not logged);
 *   `apiLog`: the API's file-list requests, by repo.
 *
 * As huggingface.co does: `*.safetensors` are LFS files: `resolve` answers 302 with
 * `X-Linked-Etag: "<sha256>"` and the bytes come from `/hub/cdn/…`, whose ETag is the
 * CDN's own (64 hex digits, not the file's sha256); other files are served at once with
 * `ETag: "<git blob sha1>"`. `GET /hub/api/models/<repo>/revision/<rev>?blobs=true`
 * lists `siblings` with `blobId`, `size` and, for LFS files, `lfs: { sha256, size }`.
 */
function hubControls(folder) {
  return {
    folder: resolve(folder),
    files: new Map(),
    claims: new Map(),
    cuts: new Map(),
    stalls: new Map(),
    ignoreRange: false,
    checksums: true,
    api: true,
    log: [],
    apiLog: [],
  };
}

const HUB_HEADERS = {
  'access-control-allow-origin': '*',
  'access-control-expose-headers':
    'content-length, content-range, accept-ranges, etag, x-linked-etag, x-linked-size, x-repo-commit',
  'cache-control': 'no-store',
};

const isLfs = (file) => file.endsWith('.safetensors');
const sha256 = (buf) => createHash('sha256').update(buf).digest('hex');
const gitBlob = (buf) => createHash('sha1').update(`blob ${buf.length}\0`).update(buf).digest('hex');

async function repoFile(hub, owner, name, file) {
  const key = `${owner}/${name}/${file}`;
  let body = hub.files.get(key);
  if (!body && owner === 'webformer-test' && !file.includes('..') && !name.includes('..')) {
    body = await readFile(join(hub.folder, name, file)).catch(() => undefined);
  }
  return body;
}

async function repoListing(hub, owner, name) {
  const names = new Set();
  for (const key of hub.files.keys()) {
    if (key.startsWith(`${owner}/${name}/`)) names.add(key.slice(owner.length + name.length + 2));
  }
  if (owner === 'webformer-test' && !name.includes('..')) {
    for (const f of await readdir(join(hub.folder, name)).catch(() => [])) names.add(f);
  }
  const siblings = [];
  for (const f of [...names].sort()) {
    const key = `${owner}/${name}/${f}`;
    const body = await repoFile(hub, owner, name, f);
    if (!body) continue;
    const claim = hub.claims.get(key) ?? body;
    const entry = { rfilename: f, size: claim.length, blobId: gitBlob(claim) };
    if (isLfs(f)) {
      // An LFS file's blobId is its pointer's; the sha256 is of the bytes.
      entry.blobId = gitBlob(Buffer.from(`version https://git-lfs.github.com/spec/v1\noid sha256:${sha256(claim)}\nsize ${claim.length}\n`));
      entry.lfs = { size: claim.length, sha256: sha256(claim), pointerSize: 134 };
    }
    siblings.push(entry);
  }
  return siblings;
}

/**
 * `/hub/<owner>/<name>/resolve/<revision>/<file>` (302 to `/hub/cdn/…` for LFS files), the
 * CDN, and the API's file list; with HEAD, `Range: bytes=N-` and CORS.
 */
async function hubRoute(hub, req, res) {
  const url = new URL(req.url, 'http://x');
  const path = decodeURIComponent(url.pathname);
  const send = (status, headers, body) => {
    res.writeHead(status, { ...HUB_HEADERS, ...headers });
    res.end(req.method === 'HEAD' ? undefined : body);
  };
  if (req.method === 'OPTIONS') {
    return send(204, { 'access-control-allow-headers': 'range', 'access-control-allow-methods': 'GET, HEAD' });
  }
  const api = path.match(/^\/hub\/api\/models\/([^/]+)\/([^/]+)\/revision\/(.+)$/);
  if (api) {
    hub.apiLog.push(`${api[1]}/${api[2]}`);
    const siblings = hub.checksums && hub.api ? await repoListing(hub, api[1], api[2]) : [];
    if (!siblings.length) return send(404, { 'content-type': 'application/json' }, '{"error":"Repository not found"}');
    const json = JSON.stringify({ id: `${api[1]}/${api[2]}`, sha: '0'.repeat(40), siblings });
    return send(200, { 'content-type': 'application/json' }, json);
  }
  const m = path.match(/^\/hub\/([^/]+)\/([^/]+)\/resolve\/([^/]+)\/([^/].*)$/);
  const cdn = path.match(/^\/hub\/cdn\/([^/]+)\/([^/]+)\/([^/]+)\/([^/].*)$/);
  const [, owner, name, revision, file] = m ?? cdn ?? [];
  const key = file ? `${owner}/${name}/${file}` : path;
  const body = file ? await repoFile(hub, owner, name, file) : undefined;
  const claim = hub.claims.get(key) ?? body;
  if (m && body && isLfs(file) && hub.checksums) {
    // The hub's redirect of an LFS file: the sha256 rides on it, the bytes come from the CDN.
    return send(302, {
      location: `/hub/cdn/${owner}/${name}/${revision}/${file}`,
      'x-linked-etag': `"${sha256(claim)}"`,
      'x-linked-size': String(claim.length),
    });
  }
  const entry = { method: req.method, key, range: req.headers.range ?? null, status: 0 };
  hub.log.push(entry);
  const answer = (status, headers, payload) => {
    entry.status = status;
    send(status, headers, payload);
  };
  if (!body) return answer(404, { 'content-type': 'text/plain' }, 'Entry not found');
  const type = { 'content-type': TYPES[extname(key)] ?? 'application/octet-stream', 'accept-ranges': 'bytes' };
  if (hub.checksums) {
    // The CDN's own tag (as real CDNs do: 64 hex digits, not the file's sha256), or the
    // git blob id of a file the hub serves itself.
    type.etag = cdn ? `"${sha256(Buffer.concat([Buffer.from('cdn'), body]))}"` : `"${gitBlob(claim)}"`;
  }
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
