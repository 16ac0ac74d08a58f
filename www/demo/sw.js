// The demo's service worker: keeps the page, the package and the corpus usable offline.
//
// Network first (so a changed file is seen at once when online), the cache when the network
// fails. Registered with scope /www/ when the server allows it (serve.mjs does), because the
// package's Web Worker (/www/src/worker.js) and what it loads must be served from here too.
// Model files are left to the package, which keeps them in its own Cache API bucket.

const CACHE = 'crossrank-demo-v1';

// Everything the page needs, relative to this file; fetched when the worker installs so that
// the first visit is enough to work offline.
const PRECACHE = [
  './',
  './index.html',
  './style.css',
  './app.js',
  './vendor/minisearch.js',
  './data/config.json',
  './data/corpus.json',
  '../src/arguments.js',
  '../src/cache.js',
  '../src/contract.js',
  '../src/fetch.js',
  '../src/hub.js',
  '../src/index.js',
  '../src/integrity.js',
  '../src/pool.js',
  '../src/protocol.js',
  '../src/queue.js',
  '../src/slot.js',
  '../src/wasm.js',
  '../src/worker.js',
  '../pkg/crossrank_wasm.js',
  '../pkg/crossrank_wasm_bg.wasm',
  '../pkg/crossrank_wasm_relaxed_bg.wasm',
];

self.addEventListener('install', (event) => {
  event.waitUntil(
    (async () => {
      const cache = await caches.open(CACHE);
      await cache.addAll(PRECACHE.map((path) => new Request(new URL(path, self.location.href), { cache: 'no-cache' })));
      await self.skipWaiting();
    })(),
  );
});

self.addEventListener('activate', (event) => {
  event.waitUntil(
    (async () => {
      for (const name of await caches.keys()) {
        if (name.startsWith('crossrank-demo-') && name !== CACHE) await caches.delete(name);
      }
      await self.clients.claim();
    })(),
  );
});

self.addEventListener('fetch', (event) => {
  const { request } = event;
  const url = new URL(request.url);
  if (request.method !== 'GET' || url.origin !== self.location.origin || url.pathname.endsWith('.gguf')) return;
  event.respondWith(networkFirst(event));
});

async function networkFirst(event) {
  const { request } = event;
  const cache = await caches.open(CACHE);
  try {
    const response = await fetch(request);
    if (response.ok && response.type === 'basic') {
      event.waitUntil(cache.put(request, response.clone()).catch(() => {}));
    }
    return response;
  } catch (error) {
    const cached = (await cache.match(request, { ignoreSearch: true }))
      ?? (request.mode === 'navigate' ? await cache.match(new URL('./', self.location.href)) : undefined);
    if (cached) return cached;
    throw error;
  }
}
