// The messages between the page (src/index.js) and its workers (src/worker.js), defined once.
//
// Every request carries an `id` chosen by the page; every reply carries the `id` of the
// request it answers. A request gets any number of `progress` replies, then exactly one
// `result` or `error` reply.
//
// Requests (page → worker):
//   { id, kind: 'load', source, cache, sha256, wasmUrl, cacheInfo?, device, selfCheck }
//       source: { url: string }             an absolute URL (the worker cannot see the page's base URL)
//             | { bytes: ArrayBuffer }      the model file itself
//       cache:  a CacheMode                 how the Cache API is used (only for `url` sources)
//       sha256: string | null               lowercase hex digest the file must have
//       wasmUrl: string | null              where crossrank_wasm_bg.wasm lives (null: next to the glue)
//       cacheInfo: for bytes converted from a folder, the convert reply's cacheInfo (else null)
//       device: a Device: where the encoder runs ('auto': WebGPU if an adapter passes the self-check)
//       selfCheck: whether WebGPU must first agree with wasm on selfcheck.js's pairs (false when
//               the pool loads a model again into a fresh worker, on an adapter already checked)
//     result value: { info, cached, bytes? }
//       info:   the model's WasmReranker.info(), `cache`: a CacheInfo (index.d.ts; cache.js's
//               CacheStatus) for a URL or converted model, null for bytes the caller gave, and
//               the device's fields (gpu.js's DeviceInfo: device, gpu, fallback)
//       cached: whether the file is now in the Cache API, so a fresh worker can load it offline
//       bytes:  the file (transferred) when it is not cached, for the same reason
//   { id, kind: 'convert', folder, source, dtype, cache, wasmUrl }
//       folder: a URL ending in '/' with a Hugging Face model's files (config.json, tokenizer.json or
//               vocab.txt, tokenizer_config.json, model.safetensors): the Hub's …/resolve/<revision>/
//       source: what the GGUF records as its source (the Hub id, or the folder)
//       dtype:  'f32' | 'f16' | 'q8_0' | 'q4_0'
//     result value: { bytes (transferred): the crossrank GGUF, cached: whether it is in the Cache API,
//                     cacheInfo: a CacheInfo, whether it came from the cache and could be revalidated }
//     Sent to a worker of its own, which the page ends afterwards (conversion memory stays behind).
//   { id, kind: 'score', requests, options }
//       requests: [{ query: string, documents: string[] }]   (none empty; a worker of a pool gets a share)
//       options: the engine's options (ENGINE_OPTION_NAMES in contract.js)   all checked here,
//                even those only 'order' uses, so a bad one fails before any work
//     result value: one list per request of [{ logit, bestWindow? }], in input order
//   { id, kind: 'order', requests, options }
//       requests: [{ scored: [{ logit, bestWindow? }], firstStage?: number[] }]   every document
//     result value: one list per request of [{ index, score, logit, fused?, bestWindow? }],
//       best first, fused, thresholded and cut to topK
//
// There is no 'dispose' request: Reranker.dispose() terminates the worker, which frees the
// wasm memory at once and also works while a rerank is running.
//
// Replies (worker → page):
//   { id, kind: 'result', value }
//   { id, kind: 'error', code, message, request? }     code: one of ErrorCode; request: for a
//       'score' error about one of its requests (an empty query), that request's position
//   { id, kind: 'progress', progress }       progress: a ProgressInfo (see index.d.ts)
//   { kind: 'ready' }                        no id: sent once, when worker.js and its imports have
//       loaded; an `error` event before it means the worker did not start (spawn.js: worker_start),
//       one after it that the worker died (worker_crashed)
//   { kind: 'info', info }                   no id: fields of the worker's model info that changed
//       since the load: its DeviceInfo when the WebGPU device was lost (wasm, with the reason in
//       `fallback`); `int8Dot` when the worker's probe chose its dot sequence (before the result
//       of the call it followed)

import { RUST_ERROR_CODES } from './contract.js';

export const RequestKind = Object.freeze({
  LOAD: 'load',
  CONVERT: 'convert',
  SCORE: 'score',
  ORDER: 'order',
});

export const ReplyKind = Object.freeze({
  RESULT: 'result',
  ERROR: 'error',
  PROGRESS: 'progress',
  READY: 'ready',
  INFO: 'info',
});

/** Where a worker runs the encoder (the `device` option): its tokeniser, windows and ordering are always wasm. */
export const Device = Object.freeze({
  /** WebGPU when an adapter exists and passes the load-time self-check, else wasm. */
  AUTO: 'auto',
  WEBGPU: 'webgpu',
  WASM: 'wasm',
});

/** The stable error codes: Rust's (generated from crossrank's error enum), then the package's own. */
export const ErrorCode = Object.freeze({
  ...RUST_ERROR_CODES,
  // JS side
  FETCH: 'fetch',
  INTEGRITY: 'integrity',
  NOT_LOADED: 'not_loaded',
  ABORTED: 'aborted',
  WORKER_CRASHED: 'worker_crashed',
  /** No worker could be started: no Worker in this runtime, a CSP, or a cross-origin script. */
  WORKER_START: 'worker_start',
  /** `device: 'webgpu'` and no WebGPU adapter, or one whose results disagree with wasm's (the self-check). */
  WEBGPU_UNAVAILABLE: 'webgpu_unavailable',
  INTERNAL: 'internal',
});

/**
 * Every error crossrank rejects with; `code` is one of ErrorCode's values and never changes.
 * Exported by index.js; defined here so that arguments.js can throw it without importing index.js.
 */
export class RerankerError extends Error {
  /**
   * @param {string} code
   * @param {string} message
   * @param {{ cause?: unknown }} [options]
   */
  constructor(code, message, options) {
    super(message, options);
    this.name = 'RerankerError';
    this.code = code;
  }
}

/**
 * How a load uses the Cache API. DEFAULT: read it, but first ask the server (HEAD) whether the file
 * changed (ETag, Last-Modified or Content-Length), keeping the entry when offline; write what was
 * downloaded. RELOAD: download again and write. NO_STORE: neither read nor write. RESTORE (internal,
 * a worker loading the model the first worker just loaded): read without asking the server.
 */
export const CacheMode = Object.freeze({
  DEFAULT: 'default',
  RELOAD: 'reload',
  NO_STORE: 'no-store',
  RESTORE: 'restore',
});

/** The Cache API bucket that holds downloaded model files, keyed by their absolute URL. */
export const CACHE_NAME = 'crossrank-models-v1';
