// The Web Worker that owns the WebAssembly reranker. The page talks to it only through the
// messages in protocol.js; every request gets exactly one `result` or `error` reply, so no
// exception ever escapes to kill the worker silently.
//
// WasmReranker's methods are synchronous: while one runs, this worker reads no messages. The
// page therefore sends one request at a time and aborts a running one by terminating us.

import init, { WasmReranker, orderScored } from '../pkg/crossrank_wasm.js';
import { CACHE_NAME, ErrorCode, ReplyKind, RequestKind } from './protocol.js';

/** @type {Promise<unknown> | null} the wasm module's init, started once and shared */
let initPromise = null;
/** @type {WasmReranker | null} */
let reranker = null;
/** @type {Promise<unknown> | null} the model load in progress; requests after it wait for it */
let loading = null;
/** Set once the wasm instance has trapped: its memory is in an unknown state. */
let trapped = false;

const KNOWN_CODES = new Set(Object.values(ErrorCode));

/** An error that already carries one of our codes. */
class CodedError extends Error {
  constructor(code, message, options) {
    super(message, options);
    this.code = code;
  }
}

self.addEventListener('message', (event) => {
  void handle(event.data);
});

async function handle(request) {
  const { id, kind } = request;
  try {
    if (trapped) {
      throw new CodedError(ErrorCode.WORKER_CRASHED, 'the WebAssembly instance trapped earlier; this worker is no longer usable');
    }
    switch (kind) {
      case RequestKind.LOAD: {
        const value = await startLoad(request);
        self.postMessage({ id, kind: ReplyKind.RESULT, value }, value.bytes ? [value.bytes] : []);
        return;
      }
      case RequestKind.SCORE: {
        const value = await score(request);
        self.postMessage({ id, kind: ReplyKind.RESULT, value });
        return;
      }
      case RequestKind.ORDER: {
        // Needs the wasm module, not the model: any worker that has loaded one can order.
        if (!initPromise) throw new CodedError(ErrorCode.NOT_LOADED, 'no model is loaded');
        await initPromise;
        self.postMessage({ id, kind: ReplyKind.RESULT, value: orderScored(request.requests, request.options) });
        return;
      }
      default:
        throw new CodedError(ErrorCode.INTERNAL, `unknown request kind ${JSON.stringify(kind)}`);
    }
  } catch (error) {
    self.postMessage({ id, kind: ReplyKind.ERROR, ...toWireError(error) });
  }
}

/** The one place where foreign errors (Rust, wasm, fetch, Cache API) become { code, message }. */
function toWireError(error) {
  if (error instanceof WebAssembly.RuntimeError) {
    // A Rust panic or an out-of-memory abort: the instance must not be used again.
    trapped = true;
    reranker = null;
    return { code: ErrorCode.WORKER_CRASHED, message: `the WebAssembly instance trapped (${error.message}); this worker is no longer usable` };
  }
  if (error instanceof WebAssembly.CompileError || error instanceof WebAssembly.LinkError) {
    return {
      code: ErrorCode.UNSUPPORTED,
      message: `crossrank's WebAssembly did not compile (the browser may lack SIMD128, or the .wasm file is damaged): ${error.message}`,
    };
  }
  if (error && typeof error.code === 'string' && KNOWN_CODES.has(error.code)) {
    return { code: error.code, message: String(error.message) };
  }
  return { code: ErrorCode.INTERNAL, message: String(error?.message ?? error) };
}

function postProgress(id, progress) {
  self.postMessage({ id, kind: ReplyKind.PROGRESS, progress });
}

function initWasm(wasmUrl) {
  // With no URL the glue finds the .wasm next to itself via `new URL(..., import.meta.url)`,
  // the pattern bundlers rewrite.
  initPromise ??= init({ module_or_path: wasmUrl ?? undefined }).catch((error) => {
    initPromise = null; // let a later load try again (a network error may be transient)
    if (error instanceof WebAssembly.CompileError || error instanceof WebAssembly.LinkError) throw error;
    throw new CodedError(ErrorCode.FETCH, `could not load crossrank_wasm_bg.wasm: ${error?.message ?? error}`);
  });
  return initPromise;
}

function startLoad(request) {
  const promise = load(request);
  loading = promise;
  return promise.finally(() => {
    if (loading === promise) loading = null;
  });
}

async function load({ id, source, cache, sha256, wasmUrl }) {
  // Free the old model first: peak memory is then one model, not two.
  reranker?.free();
  reranker = null;

  let model;
  let cached = false;
  let bytes = null;
  if (source.bytes) {
    bytes = new Uint8Array(source.bytes);
    await initWasm(wasmUrl);
    if (sha256) await verify(bytes, sha256, 'the model bytes');
    model = WasmReranker.fromGguf(bytes);
  } else {
    // Compile the wasm while the model downloads.
    const wasmReady = initWasm(wasmUrl);
    wasmReady.catch(() => {}); // awaited below; this only silences the unhandled rejection meanwhile
    ({ model, cached, bytes } = await loadFromUrl(id, source.url, { cache, sha256, wasmReady }));
  }

  reranker = model;
  const info = reranker.info();
  postProgress(id, { status: 'ready', file: source.url ?? null, info });
  // A fresh worker (after an abort or a crash) must be able to load the model again without
  // the network: either it is in the Cache API, or the page keeps these bytes. (wasm has its
  // own copy now, so handing them over costs nothing; for bytes the page gave us, the page
  // then holds a copy of its own and does not depend on the caller's buffer.)
  return { info, cached, bytes: cached ? undefined : bytes.buffer };
}

async function loadFromUrl(id, url, { cache, sha256, wasmReady }) {
  postProgress(id, { status: 'initiate', file: url });
  const store = cache ? await openCache(url) : null;

  const hit = store ? await readCache(store, url, sha256) : null;
  if (hit) {
    postProgress(id, { status: 'progress', file: url, loaded: hit.length, total: hit.length, progress: 100 });
    postProgress(id, { status: 'done', file: url, fromCache: true });
    await wasmReady;
    try {
      return { model: WasmReranker.fromGguf(hit), cached: true, bytes: null };
    } catch (error) {
      if (error instanceof WebAssembly.RuntimeError) throw error;
      // A cached file this build cannot read (written by an older one, say): drop it and
      // download the file again.
      await store.delete(url).catch(() => {});
    }
  }

  const bytes = await download(id, url);
  postProgress(id, { status: 'done', file: url, fromCache: false });
  if (sha256) await verify(bytes, sha256, url);
  await wasmReady;
  const model = WasmReranker.fromGguf(bytes);
  // Cached only once it has parsed, so a bad file is never served from the cache.
  const cached = store ? await writeCache(store, url, bytes) : false;
  return { model, cached, bytes };
}

// The Cache API is an optimisation: every failure here (no secure context, quota, private
// browsing) falls back to the network.

async function openCache(url) {
  if (typeof caches === 'undefined' || !/^https?:/.test(url)) return null;
  try {
    return await caches.open(CACHE_NAME);
  } catch {
    return null;
  }
}

async function readCache(store, url, sha256) {
  try {
    const response = await store.match(url);
    if (!response) return null;
    const bytes = new Uint8Array(await response.arrayBuffer());
    if (sha256 && (await sha256Hex(bytes)) !== sha256) {
      // The file at this URL has changed since it was cached.
      await store.delete(url);
      return null;
    }
    return bytes;
  } catch {
    return null;
  }
}

async function writeCache(store, url, bytes) {
  try {
    const headers = { 'content-type': 'application/octet-stream', 'content-length': String(bytes.length) };
    await store.put(url, new Response(bytes, { headers }));
    return true;
  } catch {
    return false;
  }
}

async function download(id, url) {
  let response;
  try {
    response = await fetch(url);
  } catch (error) {
    throw new CodedError(ErrorCode.FETCH, `could not fetch ${url}: ${error?.message ?? error}`, { cause: error });
  }
  if (!response.ok) {
    throw new CodedError(ErrorCode.FETCH, `could not fetch ${url}: HTTP ${response.status} ${response.statusText}`.trimEnd());
  }
  // Content-Length counts encoded bytes; with a Content-Encoding the decoded size is unknown.
  const encoding = response.headers.get('content-encoding');
  const total = encoding && encoding !== 'identity' ? 0 : Number(response.headers.get('content-length')) || 0;

  let buffer = new Uint8Array(total);
  let loaded = 0;
  let lastReported = -1;
  try {
    if (!response.body) {
      buffer = new Uint8Array(await response.arrayBuffer());
      loaded = buffer.length;
    } else {
      const reader = response.body.getReader();
      for (;;) {
        const { done, value } = await reader.read();
        if (done) break;
        if (loaded + value.length > buffer.length) {
          const grown = new Uint8Array(Math.max(buffer.length * 2, loaded + value.length, 1 << 20));
          grown.set(buffer.subarray(0, loaded));
          buffer = grown;
        }
        buffer.set(value, loaded);
        loaded += value.length;
        // One event per whole percent (or per MiB when the size is unknown) is plenty.
        const step = total ? Math.floor((loaded / total) * 100) : Math.floor(loaded / (1 << 20));
        if (step !== lastReported && (!total || loaded < total)) {
          lastReported = step;
          const progress = total ? Math.min(100, (loaded / total) * 100) : 0;
          postProgress(id, { status: 'progress', file: url, loaded, total, progress });
        }
      }
    }
  } catch (error) {
    throw new CodedError(ErrorCode.FETCH, `download of ${url} failed after ${loaded} bytes: ${error?.message ?? error}`, { cause: error });
  }
  postProgress(id, { status: 'progress', file: url, loaded, total: loaded, progress: 100 });
  return loaded === buffer.length ? buffer : buffer.slice(0, loaded);
}

async function verify(bytes, expected, what) {
  const actual = await sha256Hex(bytes);
  if (actual !== expected) {
    throw new CodedError(ErrorCode.INTEGRITY, `sha256 of ${what} is ${actual}, expected ${expected}`);
  }
}

async function sha256Hex(bytes) {
  if (!globalThis.crypto?.subtle) {
    throw new CodedError(ErrorCode.UNSUPPORTED, 'checking sha256 needs crypto.subtle, which browsers offer only in secure contexts (https or localhost)');
  }
  const digest = new Uint8Array(await crypto.subtle.digest('SHA-256', bytes));
  return Array.from(digest, (byte) => byte.toString(16).padStart(2, '0')).join('');
}

async function score({ requests, options }) {
  // The page sends one request at a time; this wait only matters to a caller that doesn't.
  if (loading) await loading.catch(() => {});
  if (!reranker) throw new CodedError(ErrorCode.NOT_LOADED, 'no model is loaded');
  return reranker.score(requests, options);
}
