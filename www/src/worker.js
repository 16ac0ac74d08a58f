// The Web Worker that owns the WebAssembly reranker. The page talks to it only through the
// messages in protocol.js; every request gets exactly one `result` or `error` reply, so no
// exception ever escapes to kill the worker silently.
//
// WasmReranker's methods are synchronous: while one runs, this worker reads no messages. The
// page therefore sends one request at a time and aborts a running one by terminating us.

import init, { WasmReranker, convertHf, orderScored } from '../pkg/crossrank_wasm.js';
import { CACHE_NAME, CacheMode, ErrorCode, ReplyKind, RequestKind } from './protocol.js';

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
      case RequestKind.CONVERT: {
        const value = await convert(request);
        self.postMessage({ id, kind: ReplyKind.RESULT, value }, [value.bytes]);
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
    // `request`: which request of a score share the error is about, when one is (withRequest).
    return { code: error.code, message: String(error.message), ...(Number.isInteger(error.request) ? { request: error.request } : {}) };
  }
  return { code: ErrorCode.INTERNAL, message: String(error?.message ?? error) };
}

function postProgress(id, progress) {
  self.postMessage({ id, kind: ReplyKind.PROGRESS, progress });
}

// A 35-byte module whose one function uses `i32x4.relaxed_dot_i8x16_i7x16_add_s`: it validates
// only where the engine has relaxed SIMD (Chromium 114+, Firefox 145+, not Safari yet).
const RELAXED_SIMD_PROBE = new Uint8Array([
  0, 97, 115, 109, 1, 0, 0, 0, 1, 6, 1, 96, 1, 123, 1, 123, 3, 2, 1, 0, 10, 13, 1, 11, 0, 32, 0, 32, 0, 32, 0, 253, 147, 2, 11,
]);

function hasRelaxedSimd() {
  try {
    return WebAssembly.validate(RELAXED_SIMD_PROBE);
  } catch {
    return false;
  }
}

function initWasm(wasmUrl) {
  if (initPromise) return initPromise;
  // Two builds of one module share the JS glue: relaxed SIMD (the int8 path on the relaxed dot,
  // ~2× faster) where the engine has it, plain SIMD128 elsewhere. Both URLs are written as
  // `new URL(…, import.meta.url)`, the pattern bundlers rewrite; a `wasmUrl` given by the page wins.
  const url = wasmUrl ?? (hasRelaxedSimd() ? new URL('../pkg/crossrank_wasm_relaxed_bg.wasm', import.meta.url) : new URL('../pkg/crossrank_wasm_bg.wasm', import.meta.url));
  initPromise = init({ module_or_path: url }).catch((error) => {
    initPromise = null; // let a later load try again (a network error may be transient)
    if (error instanceof WebAssembly.CompileError || error instanceof WebAssembly.LinkError) throw error;
    throw new CodedError(ErrorCode.FETCH, `could not load ${url}: ${error?.message ?? error}`);
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
    model = fromGguf(bytes, null);
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
  const store = cache === CacheMode.NO_STORE ? null : await openCache(url);

  const hit = store && cache !== CacheMode.RELOAD ? await readCache(store, url, { sha256, revalidate: cache === CacheMode.DEFAULT }) : null;
  if (hit) {
    postProgress(id, { status: 'progress', file: url, loaded: hit.length, total: hit.length, progress: 100 });
    postProgress(id, { status: 'done', file: url, fromCache: true });
    await wasmReady;
    try {
      return { model: fromGguf(hit, url), cached: true, bytes: null };
    } catch (error) {
      if (error instanceof WebAssembly.RuntimeError) throw error;
      // A cached file this build cannot read (written by an older one, say): drop it and
      // download the file again.
      await store.delete(url).catch(() => {});
    }
  }

  const { bytes, validator } = await download(id, url);
  postProgress(id, { status: 'done', file: url, fromCache: false });
  if (sha256) await verify(bytes, sha256, url);
  await wasmReady;
  const model = fromGguf(bytes, url);
  // Cached only once it has parsed, so a bad file is never served from the cache.
  const cached = store ? await writeCache(store, url, bytes, [[url, validator]]) : false;
  return { model, cached, bytes };
}

/** A GGUF file's bytes into a model; errors name where the bytes came from, not "model.gguf". */
function fromGguf(bytes, file) {
  const name = file ?? 'the model bytes';
  const start = new TextDecoder().decode(bytes.subarray(0, 64)).trimStart().toLowerCase();
  if (start.startsWith('<!doctype') || start.startsWith('<html')) {
    throw new CodedError(ErrorCode.MODEL_FORMAT, `${name} is an HTML page, not a GGUF model file (a wrong URL, or a login or error page?)`);
  }
  if (start.startsWith('{')) {
    throw new CodedError(ErrorCode.MODEL_FORMAT, `${name} is JSON, not a GGUF model file (an error from the server, or a config.json?)`);
  }
  try {
    return WasmReranker.fromGguf(bytes);
  } catch (error) {
    if (error instanceof WebAssembly.RuntimeError) throw error;
    throw new CodedError(error.code ?? ErrorCode.MODEL_FORMAT, `${name}: ${String(error.message).replace(/^model\.gguf: /, '')}`);
  }
}

/**
 * A Hugging Face model folder (`folder` ends in `/`: the Hub's `…/resolve/<revision>/` or any
 * server with the same layout) converted to a crossrank GGUF in this worker, exactly as
 * `crossrank convert` does. The converted file is what gets cached, so the next load is one file.
 * Runs in a worker of its own that the page ends afterwards: conversion needs several times the
 * model's size, and wasm memory never shrinks.
 */
async function convert({ id, folder, source, dtype, cache, wasmUrl }) {
  const wasmReady = initWasm(wasmUrl);
  wasmReady.catch(() => {});
  const key = `${folder}crossrank-${dtype}.gguf`;
  const store = cache === CacheMode.NO_STORE ? null : await openCache(folder);
  const hit = store && cache !== CacheMode.RELOAD ? await readCache(store, key, { revalidate: cache === CacheMode.DEFAULT }) : null;
  if (hit) {
    postProgress(id, { status: 'done', file: key, fromCache: true });
    return { bytes: hit.buffer, cached: true };
  }

  const sizes = new Map();
  const onTotal = (file, loaded, total) => {
    sizes.set(file, { loaded, total });
    const all = [...sizes.values()];
    const sum = (field) => all.reduce((acc, entry) => acc + entry[field], 0);
    const known = all.every((entry) => entry.total > 0);
    postProgress(id, { status: 'total', loaded: sum('loaded'), total: known ? sum('total') : 0, progress: known ? (100 * sum('loaded')) / Math.max(1, sum('total')) : 0 });
  };
  const fetchFile = async (name, { optional = false } = {}) => {
    const url = folder + name;
    postProgress(id, { status: 'initiate', file: url });
    const file = await download(id, url, { optional, onTotal: (loaded, total) => onTotal(url, loaded, total) });
    if (file) postProgress(id, { status: 'done', file: url, fromCache: false });
    return file ? { url, ...file } : null;
  };
  const config = await fetchFile('config.json');
  const tokenizerJson = await fetchFile('tokenizer.json', { optional: true });
  const vocabTxt = tokenizerJson ? null : await fetchFile('vocab.txt', { optional: true });
  if (!tokenizerJson && !vocabTxt) {
    throw new CodedError(ErrorCode.FETCH, `${folder} has neither tokenizer.json nor vocab.txt: not a Hugging Face model folder`);
  }
  const tokenizerConfig = await fetchFile('tokenizer_config.json', { optional: true });
  const weights = await fetchFile('model.safetensors', { optional: true });
  if (!weights) {
    throw new CodedError(ErrorCode.FETCH,
      `${folder}model.safetensors was not found (404); a pytorch_model.bin cannot be read in the browser: convert it with \`crossrank convert\``);
  }
  for (const file of [config, tokenizerJson, vocabTxt, tokenizerConfig]) if (file) checkNotHtml(file.bytes, file.url);
  await wasmReady;
  const bytes = convertHf(folder, source, dtype, config.bytes, weights.bytes, tokenizerJson?.bytes, vocabTxt?.bytes, tokenizerConfig?.bytes);
  const sources = [config, tokenizerJson, vocabTxt, tokenizerConfig, weights].filter(Boolean).map(({ url, validator }) => [url, validator]);
  const cached = store ? await writeCache(store, key, bytes, sources) : false;
  return { bytes: bytes.buffer, cached };
}

/** A page where JSON was expected (a login wall, a 200 "not found" page) is named as such. */
function checkNotHtml(bytes, url) {
  const start = new TextDecoder().decode(bytes.subarray(0, 64)).trimStart().toLowerCase();
  if (start.startsWith('<!doctype') || start.startsWith('<html')) {
    throw new CodedError(ErrorCode.FETCH, `${url} is an HTML page, not the file expected (a login or error page?)`);
  }
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

/**
 * The cached bytes for `key`, or null. With `revalidate`, the files it was made from are asked for
 * again (HEAD) and a changed ETag, Last-Modified or Content-Length drops the entry; a network
 * failure keeps it (offline is what the cache is for).
 */
async function readCache(store, key, { sha256, revalidate }) {
  try {
    const response = await store.match(key);
    if (!response) return null;
    if (revalidate && !(await stillFresh(response))) {
      await store.delete(key);
      return null;
    }
    const bytes = new Uint8Array(await response.arrayBuffer());
    if (sha256 && (await sha256Hex(bytes)) !== sha256) {
      // The file at this URL has changed since it was cached.
      await store.delete(key);
      return null;
    }
    return bytes;
  } catch {
    return null;
  }
}

/** Whether every source of a cached entry still has the validator it had when cached. */
async function stillFresh(response) {
  let sources;
  try {
    sources = JSON.parse(response.headers.get(SOURCES_HEADER) ?? 'null');
  } catch {
    sources = null;
  }
  // Written by an older build, which kept no validators: cannot tell, so fetch again.
  if (!Array.isArray(sources)) return false;
  // Offline, the cache is what there is; asking would only fail.
  if (globalThis.navigator?.onLine === false) return true;
  const checks = await Promise.all(sources.map(async ([url, validator]) => {
    try {
      const head = await fetch(url, { method: 'HEAD', cache: 'no-store' });
      if (!head.ok) return true; // the server cannot say (405, 5xx): keep what we have
      return validatorOf(head) === validator;
    } catch {
      return true; // offline
    }
  }));
  return checks.every(Boolean);
}

/** What identifies a version of a file: its ETag, else Last-Modified, else its length. */
function validatorOf(response) {
  const etag = response.headers.get('etag');
  if (etag) return `etag ${etag.replace(/^W\//, '')}`;
  const modified = response.headers.get('last-modified');
  if (modified) return `modified ${modified}`;
  return `length ${response.headers.get('content-length') ?? '?'}`;
}

/** Cache API header holding `[[url, validator], …]` of the files an entry was made from. */
const SOURCES_HEADER = 'x-crossrank-sources';

async function writeCache(store, key, bytes, sources) {
  try {
    const headers = {
      'content-type': 'application/octet-stream',
      'content-length': String(bytes.length),
      [SOURCES_HEADER]: JSON.stringify(sources),
    };
    await store.put(key, new Response(bytes, { headers }));
    return true;
  } catch {
    return false;
  }
}

/**
 * The file at `url` with its validator, reporting progress; `optional` files that are not there
 * (404) give null. HTTP errors name the URL and, for 401/403, the likely reason.
 */
async function download(id, url, { optional = false, onTotal } = {}) {
  let response;
  try {
    response = await fetch(url);
  } catch (error) {
    throw new CodedError(ErrorCode.FETCH, `could not fetch ${url}: ${error?.message ?? error}`, { cause: error });
  }
  if (optional && response.status === 404) return null;
  if (response.status === 401 || response.status === 403) {
    throw new CodedError(ErrorCode.FETCH,
      `could not fetch ${url}: HTTP ${response.status} (a gated or private repository: the browser cannot send your Hugging Face token; serve the files yourself)`);
  }
  if (!response.ok) {
    throw new CodedError(ErrorCode.FETCH, `could not fetch ${url}: HTTP ${response.status} ${response.statusText}`.trimEnd());
  }
  const validator = validatorOf(response);
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
          onTotal?.(loaded, total);
        }
      }
    }
  } catch (error) {
    throw new CodedError(ErrorCode.FETCH, `download of ${url} failed after ${loaded} bytes: ${error?.message ?? error}`, { cause: error });
  }
  postProgress(id, { status: 'progress', file: url, loaded, total: loaded, progress: 100 });
  onTotal?.(loaded, loaded);
  return { bytes: loaded === buffer.length ? buffer : buffer.slice(0, loaded), validator };
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
  try {
    return reranker.score(requests, options);
  } catch (error) {
    throw withRequest(error, requests, options);
  }
}

/**
 * Rust says what is wrong with a request (an empty query, say) but not which of the share it
 * was: for an `invalid_input` error, finds the first request that fails alone with the same error
 * and records its position in `error.request`, for the page to name it. Only on this error path,
 * and never for an error the options cause (they fail with no request at all).
 */
function withRequest(error, requests, options) {
  if (requests.length === 0 || error?.code !== ErrorCode.INVALID_INPUT) return error;
  const fails = (share) => {
    try {
      reranker.score(share, options);
      return false;
    } catch (again) {
      if (again instanceof WebAssembly.RuntimeError) throw again;
      return again?.code === error.code && again.message === error.message;
    }
  };
  if (fails([])) return error;
  // Each request is tried with its first document only: a query's error shows as well, at the
  // cost of one pair, not of the whole request again.
  const index = requests.length === 1 ? 0 : requests.findIndex((request) => fails([{ ...request, documents: request.documents.slice(0, 1) }]));
  if (index >= 0) error.request = index;
  return error;
}
