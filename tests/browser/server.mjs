// A small static file server for the browser tests and the demo (no dependencies).
//
//   node tests/browser/server.mjs [--port 8080] [--root DIR]
//
// Serves the repository root by default, on 127.0.0.1 only. It counts the GET requests for each
// path and query (tests use that to prove a load came from the Cache API) and the HEAD requests
// apart (revalidation), sends an ETag and Last-Modified with every file, and two query
// parameters change how a file is sent:
//   ?truncate=N   only the first N bytes, with a matching Content-Length (a corrupt model)
//   ?rate=N       at about N bytes per second (a download slow enough to interrupt)
//
// With `hub: { 'org/name': DIR }` it also serves model folders in the Hugging Face Hub's layout:
// /hub/org/name/resolve/REVISION/FILE redirects (302) to /cdn/org/name/FILE, as the Hub redirects
// to its CDN. Failures carry the Hub's X-Error-Code and X-Error-Message: a missing file is 404
// EntryNotFound, a revision other than `main` 404 RevisionNotFound, an unknown repository 401
// RepoNotFound (the Hub does not tell a missing repository from a private one), and any
// repository under `gated/` 401 GatedRepo, as the Hub answers without a token.
//
// `headers` are added to every file served; a header given as null is not sent (a server
// without Last-Modified, say).

import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import { createServer } from 'node:http';
import { Transform } from 'node:stream';
import { extname, join, normalize, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';

const REPO_ROOT = fileURLToPath(new URL('../..', import.meta.url));

import { CONTENT_TYPES as TYPES } from '../../www/demo/serve.mjs';

/**
 * Starts the server. `mounts` maps URL prefixes to directories (the longest prefix wins);
 * by default `/` is the repository root. `headers` are added to every file served (e.g. a CSP).
 * @returns {Promise<{ origin: string, hits: (path: string) => number, heads: (path: string) => number, cutShort: (path: string) => number, close: () => Promise<void> }>}
 */
export async function startServer({ port = 0, mounts = { '/': REPO_ROOT }, headers = {}, hub = {} } = {}) {
  const prefixes = Object.keys(mounts).sort((a, b) => b.length - a.length);
  const hits = new Map();
  const heads = new Map();
  const cutShort = new Map();

  const server = createServer(async (request, response) => {
    const url = new URL(request.url, 'http://localhost');
    const pathname = decodeURIComponent(url.pathname);
    const key = pathname + url.search;
    const counts = request.method === 'HEAD' ? heads : hits;
    counts.set(key, (counts.get(key) ?? 0) + 1);
    response.on('close', () => {
      if (!response.writableFinished) cutShort.set(key, (cutShort.get(key) ?? 0) + 1);
    });
    try {
      if (request.method !== 'GET' && request.method !== 'HEAD') return send(response, 405, 'method not allowed');
      const resolve = url.pathname.match(/^\/hub\/([^/]+\/[^/]+)\/resolve\/([^/]+)\/(.+)$/);
      if (resolve) {
        const [, repo, revision, name] = resolve;
        const hubError = (status, code, message) => send(response, status, message, { 'x-error-code': code, 'x-error-message': message });
        if (repo.startsWith('gated/')) return hubError(401, 'GatedRepo', `Access to model ${repo} is restricted. You must have access to it and be authenticated to access it.`);
        if (!hub[repo]) return hubError(401, 'RepoNotFound', 'Repository not found');
        if (revision !== 'main') return hubError(404, 'RevisionNotFound', 'Invalid rev id: ' + revision);
        const exists = await stat(join(hub[repo], name)).then((info) => info.isFile(), () => false);
        if (!exists) return hubError(404, 'EntryNotFound', 'Entry not found');
        response.writeHead(302, { location: `/cdn/${repo}/${name}`, 'cache-control': 'no-store' });
        return response.end();
      }
      const cdn = url.pathname.match(/^\/cdn\/([^/]+\/[^/]+)\/(.+)$/);
      const file = cdn ? (hub[cdn[1]] ? resolvePath(`/${cdn[2]}`, ['/'], { '/': hub[cdn[1]] }) : null) : resolvePath(pathname, prefixes, mounts);
      if (!file) return send(response, 404, 'not found');
      let info = await stat(file).catch(() => null);
      let path = file;
      if (info?.isDirectory()) {
        path = join(file, 'index.html');
        info = await stat(path).catch(() => null);
      }
      if (!info?.isFile()) return send(response, 404, 'not found');

      const truncate = url.searchParams.get('truncate');
      const length = truncate === null ? info.size : Math.min(info.size, Number(truncate));
      const sent = {
        'content-type': TYPES[extname(path)] ?? 'application/octet-stream',
        'content-length': length,
        'cache-control': 'no-store',
        etag: `"${info.size.toString(16)}-${Math.floor(info.mtimeMs).toString(16)}"`,
        'last-modified': info.mtime.toUTCString(),
        ...headers,
      };
      response.writeHead(200, Object.fromEntries(Object.entries(sent).filter(([, value]) => value !== null)));
      if (request.method === 'HEAD' || length === 0) return response.end();
      const body = createReadStream(path, { start: 0, end: length - 1, highWaterMark: 64 * 1024 });
      const rate = Number(url.searchParams.get('rate'));
      if (rate > 0) body.pipe(throttle(rate)).pipe(response);
      else body.pipe(response);
      response.on('close', () => body.destroy());
    } catch (error) {
      send(response, 500, String(error));
    }
  });

  await new Promise((done) => server.listen(port, '127.0.0.1', done));
  const origin = `http://127.0.0.1:${server.address().port}`;
  return {
    origin,
    /** How many GET requests asked for `path` (with its query string, if any). */
    hits: (path) => hits.get(path) ?? 0,
    /** How many HEAD requests asked for `path` (a cached file being revalidated). */
    heads: (path) => heads.get(path) ?? 0,
    /** How many responses for `path` (with its query) ended before all their bytes were sent. */
    cutShort: (path) => cutShort.get(path) ?? 0,
    close: () => new Promise((done) => {
      server.closeAllConnections();
      server.close(() => done());
    }),
  };
}

function resolvePath(pathname, prefixes, mounts) {
  const prefix = prefixes.find((p) => pathname === p || pathname.startsWith(p.endsWith('/') ? p : `${p}/`));
  if (prefix === undefined) return null;
  const root = resolve(mounts[prefix]);
  const file = normalize(join(root, pathname.slice(prefix.length)));
  // Never outside the mounted directory.
  return file === root || file.startsWith(root + sep) ? file : null;
}

/** Passes chunks on at about `bytesPerSecond`. */
function throttle(bytesPerSecond) {
  return new Transform({
    transform(chunk, _encoding, done) {
      setTimeout(() => done(null, chunk), (chunk.length / bytesPerSecond) * 1000);
    },
  });
}

function send(response, status, text, headers = {}) {
  response.writeHead(status, { 'content-type': 'text/plain; charset=utf-8', ...headers });
  response.end(text);
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const args = process.argv.slice(2);
  const option = (name, fallback) => {
    const at = args.indexOf(name);
    return at === -1 ? fallback : args[at + 1];
  };
  const { origin } = await startServer({
    port: Number(option('--port', 8080)),
    mounts: { '/': resolve(option('--root', REPO_ROOT)) },
  });
  console.log(`serving ${resolve(option('--root', REPO_ROOT))} on ${origin}/`);
}
