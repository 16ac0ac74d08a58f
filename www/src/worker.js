// The Web Worker that owns the model. The page talks to it only through the messages in
// protocol.js; every request gets exactly one `result` or `error` reply, so no exception ever
// escapes to kill the worker silently.
//
// This module is the message loop and what each request does, wiring the modules that do the
// work: wasm.js (the backend: which build, its start, reading a GGUF), gpu.js (WebGPU: the
// device, the self-check, a rerank's batches on the GPU), fetch.js (downloads with progress),
// cache.js (the Cache API), hub.js (Hugging Face folders) and integrity.js (sha256). It holds the
// worker's state (the model, its GPU backend, the load in progress) and is the one place where
// foreign errors become wire errors (toWireError).
//
// The model's methods are synchronous: while one runs, this worker reads no messages. The
// page therefore sends one request at a time and aborts a running one by terminating us (which
// also ends its GPU device and frees what it held).

import { downloadedInfo, openCache } from './cache.js';
import { download } from './fetch.js';
import { convertedKey, fetchFolder, modelUrlHint } from './hub.js';
import { verify } from './integrity.js';
import { chooseDevice, openDevice, readPlan, wasmFallback } from './gpu.js';
import { Device, ErrorCode, ReplyKind, RequestKind, RerankerError } from './protocol.js';
import { testHooks } from './testhooks.js';
import { convertHf, fromGguf, initStarted, initWasm, orderScored, selectInt8Dot } from './wasm.js';

/** @type {import('../pkg/crossrank_wasm.js').WasmReranker | null} */
let reranker = null;
/** @type {import('./gpu.js').GpuBackend | null} the model's encoder on the GPU, while it is usable */
let backend = null;
/** @type {Promise<unknown> | null} the model load in progress; requests after it wait for it */
let loading = null;
/** Set once the wasm instance has trapped: its memory is in an unknown state. */
let trapped = false;
/** The int8 dot sequence the page was last told of (the load's info, then `info` replies). */
let toldInt8Dot = null;

const KNOWN_CODES = new Set(Object.values(ErrorCode));

self.addEventListener('message', (event) => {
  void handle(event.data);
});
// This module and its imports loaded: the page now knows a later error is a crash, not a failed start.
self.postMessage({ kind: ReplyKind.READY });

async function handle(request) {
  const { id, kind } = request;
  try {
    if (trapped) {
      throw new RerankerError(ErrorCode.WORKER_CRASHED, 'the WebAssembly instance trapped earlier; this worker is no longer usable');
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
        reportInt8Dot();
        self.postMessage({ id, kind: ReplyKind.RESULT, value });
        return;
      }
      case RequestKind.ORDER: {
        // Needs the wasm module, not the model: any worker that has loaded one can order.
        const wasmReady = initStarted();
        if (!wasmReady) throw new RerankerError(ErrorCode.NOT_LOADED, 'no model is loaded');
        await wasmReady;
        self.postMessage({ id, kind: ReplyKind.RESULT, value: orderScored(request.requests, request.options) });
        return;
      }
      default:
        throw new RerankerError(ErrorCode.INTERNAL, `unknown request kind ${JSON.stringify(kind)}`);
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

function startLoad(request) {
  const promise = load(request);
  loading = promise;
  return promise.finally(() => {
    if (loading === promise) loading = null;
  });
}

async function load({ id, source, cache, sha256, wasmUrl, cacheInfo = null, device = Device.AUTO, selfCheck = true }) {
  // Free the old model first: peak memory is then one model, not two.
  backend?.close();
  backend = null;
  reranker?.free();
  reranker = null;

  let model;
  let plan;
  let cached = false;
  let bytes = null;
  // The GPU is asked for while the model downloads; its plan is read before the wasm model (readPlan says why).
  const opening = openDevice(device);
  // info.cache: how a URL's file was obtained; for bytes, what the page says (a converted model's).
  let cacheSays = cacheInfo;
  try {
    if (source.bytes) {
      bytes = new Uint8Array(source.bytes);
      await initWasm(wasmUrl);
      if (sha256) await verify(bytes, sha256, 'the model bytes');
      ({ model, plan } = readModel(await opening, bytes));
    } else {
      // Compile the wasm while the model downloads.
      const wasmReady = initWasm(wasmUrl);
      wasmReady.catch(() => {}); // awaited below; this only silences the unhandled rejection meanwhile
      ({ model, plan, cached, bytes, cacheSays } = await loadFromUrl(id, source.url, { cache, sha256, wasmReady, opening }));
    }
  } catch (error) {
    (await opening).gpu?.device.destroy(); // no model to put on it
    throw error;
  }

  let chosen;
  try {
    chosen = await chooseDevice(model, await opening, plan, { device, check: selfCheck, onLost: deviceLost });
  } catch (error) {
    model.free(); // `device: 'webgpu'` and no usable GPU: the load fails, and holds nothing
    throw error;
  }
  reranker = model;
  backend = chosen.backend;
  if (testHooks.int8Dot) selectInt8Dot(testHooks.int8Dot); // and no probe replaces it
  const info = { ...reranker.info(), cache: cacheSays, ...chosen.device };
  toldInt8Dot = info.int8Dot;
  postProgress(id, { status: 'ready', file: source.url ?? null, info });
  // A fresh worker (after an abort or a crash) must be able to load the model again without
  // the network: either it is in the Cache API, or the page keeps these bytes. (wasm has its
  // own copy now, so handing them over costs nothing; for bytes the page gave us, the page
  // then holds a copy of its own and does not depend on the caller's buffer.)
  return { info, cached, bytes: cached ? undefined : bytes.buffer };
}

/**
 * The GGUF `bytes` as the wasm model and, when `opened` has a GPU, the GPU's plan: the plan first,
 * so that the model reuses the wasm memory it took (readPlan says why).
 */
function readModel(opened, bytes, url = null, hint) {
  const plan = readPlan(opened, bytes);
  return { model: fromGguf(bytes, url, hint), plan };
}

async function loadFromUrl(id, url, { cache, sha256, wasmReady, opening }) {
  const onProgress = (progress) => postProgress(id, progress);
  onProgress({ status: 'initiate', file: url });
  const store = await openCache(url, cache);

  const hint = modelUrlHint(url);
  const hit = await store.read(url, { sha256 });
  if (hit) {
    onProgress({ status: 'progress', file: url, loaded: hit.bytes.length, total: hit.bytes.length, progress: 100 });
    onProgress({ status: 'done', file: url, fromCache: true });
    await wasmReady;
    const opened = await opening;
    try {
      return { ...readModel(opened, hit.bytes, url, hint), cached: true, bytes: null, cacheSays: hit.cache };
    } catch (error) {
      if (error instanceof WebAssembly.RuntimeError) throw error;
      // A cached file this build cannot read (written by an older one, say): drop it and
      // download the file again.
      await store.delete(url);
    }
  }

  const { bytes, validator } = await download(url, { onProgress, hint });
  onProgress({ status: 'done', file: url, fromCache: false });
  if (sha256) await verify(bytes, sha256, url);
  await wasmReady;
  const { model, plan } = readModel(await opening, bytes, url, hint);
  // Cached only once it has parsed, so a bad file is never served from the cache.
  const sources = [[url, validator]];
  const cached = await store.write(url, bytes, sources);
  return { model, plan, cached, bytes, cacheSays: downloadedInfo(sources, cached) };
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
  const key = convertedKey(folder, dtype);
  const store = await openCache(folder, cache);
  const hit = await store.read(key);
  if (hit) {
    postProgress(id, { status: 'done', file: key, fromCache: true });
    return { bytes: hit.bytes.buffer, cached: true, cacheInfo: hit.cache };
  }

  const { config, tokenizerJson, vocabTxt, tokenizerConfig, weights } = await fetchFolder(folder, (progress) => postProgress(id, progress));
  await wasmReady;
  const bytes = convertHf(folder, source, dtype, config.bytes, weights.bytes, tokenizerJson?.bytes, vocabTxt?.bytes, tokenizerConfig?.bytes);
  const sources = [config, tokenizerJson, vocabTxt, tokenizerConfig, weights].filter(Boolean).map(({ url, validator }) => [url, validator]);
  const cached = await store.write(key, bytes, sources);
  return { bytes: bytes.buffer, cached, cacheInfo: downloadedInfo(sources, cached) };
}

async function score({ requests, options }) {
  // The page sends one request at a time; this wait only matters to a caller that doesn't.
  if (loading) await loading.catch(() => {});
  if (!reranker) throw new RerankerError(ErrorCode.NOT_LOADED, 'no model is loaded');
  // This call's backend: device.lost may clear `backend` while the call awaits the GPU.
  const gpu = backend;
  if (gpu) {
    try {
      return await gpu.score(reranker, requests, options);
    } catch (error) {
      if (!error?.gpuFailed) throw withRequest(error, requests, options);
      // A lost device (or a GPU that failed otherwise): this call finishes on wasm, and so do
      // the later ones; the page hears of it (once) before this call's result.
      if (backend === gpu) {
        gpu.fail(error.message);
        deviceLost(gpu.lost);
      }
    }
  }
  try {
    return reranker.score(requests, options);
  } catch (error) {
    throw withRequest(error, requests, options);
  }
}

/**
 * Tells the page when the worker's int8 dot sequence changed: it probes both once, after its
 * first long int8 call (src/wasm.rs, DotProbe), so `info.int8Dot` at load is the default.
 */
function reportInt8Dot() {
  const int8Dot = reranker?.info().int8Dot ?? null;
  if (int8Dot === toldInt8Dot) return;
  toldInt8Dot = int8Dot;
  self.postMessage({ kind: ReplyKind.INFO, info: { int8Dot } });
}

/** The GPU can no longer be used: from now on this worker runs on wasm, and tells the page why. */
function deviceLost(reason) {
  backend = null;
  self.postMessage({ kind: ReplyKind.INFO, info: wasmFallback(reason) });
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
