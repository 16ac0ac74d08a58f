// Serves the repository root over HTTP for the demo (no dependencies):
//
//   node www/demo/serve.mjs [--port 8080] [--host 127.0.0.1]    then open http://localhost:8080/www/demo/
//
// The demo loads the package from ../src/ and ../pkg/ and the model from ../../artifacts/ or
// ../../models/, so the whole repository is served, read-only, GET and HEAD only.
//
// One header matters: `Service-Worker-Allowed: /www/` on the demo's sw.js lets it control
// /www/ (not just /www/demo/), which it must to serve the package's worker, its imports and the
// .wasm when offline. A static host without that header still runs the demo; only offline
// reloads then fail.

import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import { createServer } from 'node:http';
import { extname, join, normalize, resolve as resolvePath, sep } from 'node:path';
import { fileURLToPath } from 'node:url';

export const REPO_ROOT = fileURLToPath(new URL('../..', import.meta.url));

/** Content types by extension; the browser tests' server uses the same map. */
export const CONTENT_TYPES = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.json': 'application/json; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.txt': 'text/plain; charset=utf-8',
  '.map': 'application/json; charset=utf-8',
  '.wasm': 'application/wasm',
  '.gguf': 'application/octet-stream',
};

/**
 * Starts the server; port 0 picks a free one.
 * @returns {Promise<{ origin: string, close: () => Promise<void> }>}
 */
export async function startServer({ port = 8080, host = '127.0.0.1', root = REPO_ROOT } = {}) {
  const server = createServer(async (request, response) => {
    try {
      if (request.method !== 'GET' && request.method !== 'HEAD') return send(response, 405, 'method not allowed');
      const pathname = decodeURIComponent(new URL(request.url, 'http://localhost').pathname);
      if (pathname === '/') return redirect(response, '/www/demo/');
      let path = normalize(join(root, pathname));
      if (path !== root && !path.startsWith(root.endsWith(sep) ? root : root + sep)) return send(response, 404, 'not found');
      let info = await stat(path).catch(() => null);
      if (info?.isDirectory()) {
        if (!pathname.endsWith('/')) return redirect(response, `${pathname}/`);
        path = join(path, 'index.html');
        info = await stat(path).catch(() => null);
      }
      if (!info?.isFile()) return send(response, 404, 'not found');

      const headers = {
        'content-type': CONTENT_TYPES[extname(path)] ?? 'application/octet-stream',
        'content-length': String(info.size),
        // Always revalidate: the demo is for development; the service worker handles offline.
        'cache-control': 'no-cache',
      };
      if (pathname === '/www/demo/sw.js') headers['service-worker-allowed'] = '/www/';
      response.writeHead(200, headers);
      if (request.method === 'HEAD') return response.end();
      createReadStream(path).on('error', () => response.destroy()).pipe(response);
    } catch {
      if (!response.headersSent) send(response, 400, 'bad request');
      else response.destroy();
    }
  });
  await new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, resolve);
  });
  const origin = `http://${host.includes(':') ? `[${host}]` : host}:${server.address().port}`;
  return {
    origin,
    close: () =>
      new Promise((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

function send(response, status, text) {
  response.writeHead(status, { 'content-type': 'text/plain; charset=utf-8' });
  response.end(text);
}

function redirect(response, location) {
  response.writeHead(302, { location });
  response.end();
}

function option(name, fallback) {
  const at = process.argv.indexOf(`--${name}`);
  return at === -1 ? fallback : process.argv[at + 1];
}

if (process.argv[1] && fileURLToPath(import.meta.url) === resolvePath(process.argv[1])) {
  const { origin } = await startServer({ port: Number(option('port', 8080)), host: option('host', '127.0.0.1') });
  console.log(`serving ${REPO_ROOT} — open ${origin.replace('127.0.0.1', 'localhost')}/www/demo/`);
}
