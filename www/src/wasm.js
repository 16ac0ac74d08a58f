// The WebAssembly backend: which of the two builds this engine runs (relaxed SIMD or plain
// SIMD128), starting it once, and reading a GGUF file into a model. The rest of the worker knows the
// module only by these exports (initWasm, initStarted, fromGguf, convertHf, orderScored, gpuPlan,
// and the test-only selectInt8Dot).
// The WebGPU backend (gpu.js) is not a sibling of this one but rides on it: the wasm model
// tokenises and orders, and gpuPlan describes its weights for the GPU.

import init, { WasmReranker, convertHf, gpuPlan, orderScored, selectInt8Dot } from '../pkg/crossrank_wasm.js';
import { servedInstead } from './fetch.js';
import { isFileUrl, readFile } from './node/files.js';
import { ErrorCode, RerankerError } from './protocol.js';

export { convertHf, gpuPlan, orderScored, selectInt8Dot };

/** @type {Promise<unknown> | null} the wasm module's init, started once and shared */
let initPromise = null;

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

/** Starts the wasm module (once; a failed start may be tried again). */
export function initWasm(wasmUrl) {
  if (initPromise) return initPromise;
  // A `wasmUrl` given by the page wins; otherwise the best build this engine runs.
  initPromise = (wasmUrl ? start(wasmUrl) : startBest()).catch((error) => {
    initPromise = null; // let a later load try again (a network error may be transient)
    throw error;
  });
  return initPromise;
}

/**
 * Two builds of one module share the JS glue: relaxed SIMD (the int8 path on the relaxed dot,
 * ~2× faster) where the probe validates, plain SIMD128 elsewhere, and also where the relaxed build
 * then fails to compile (an engine whose relaxed SIMD is partial). Both URLs are written as
 * `new URL(…, import.meta.url)`, the pattern bundlers rewrite.
 */
async function startBest() {
  if (hasRelaxedSimd()) {
    try {
      return await start(new URL('../pkg/crossrank_wasm_relaxed_bg.wasm', import.meta.url));
    } catch (error) {
      if (!(error instanceof WebAssembly.CompileError)) throw error;
    }
  }
  return start(new URL('../pkg/crossrank_wasm_bg.wasm', import.meta.url));
}

/** Starts the module at `url`: fetched, or read from disk for a file: URL (Node cannot fetch one). */
async function start(url) {
  const source = isFileUrl(url) ? (await readFile(url)).bytes : url;
  try {
    return await init({ module_or_path: source });
  } catch (error) {
    if (error instanceof WebAssembly.CompileError || error instanceof WebAssembly.LinkError) throw error;
    // From a CDN, the usual causes are the page's CSP (connect-src) and missing CORS headers.
    throw new RerankerError(ErrorCode.FETCH, `could not load ${url}: ${error?.message ?? error} (a network error; on another ` +
      'origin, its server must send Access-Control-Allow-Origin and the page\'s Content-Security-Policy must allow it in connect-src)');
  }
}

/** The start in progress or done, or null when none was asked for (no model was ever loaded). */
export function initStarted() {
  return initPromise;
}

/**
 * A GGUF file's bytes into a model; errors name where the bytes came from, not "model.gguf", and
 * a page or JSON served instead of the file gets `hint` (hub.js's modelUrlHint) when there is one.
 */
export function fromGguf(bytes, file, hint = '') {
  const name = file ?? 'the model bytes';
  const instead = servedInstead(bytes);
  if (instead === 'html') {
    throw new RerankerError(ErrorCode.MODEL_FORMAT, `${name} is an HTML page, not a GGUF model file${hint || ' (a wrong URL, or a login or error page?)'}`);
  }
  if (instead === 'json') {
    throw new RerankerError(ErrorCode.MODEL_FORMAT, `${name} is JSON, not a GGUF model file${hint || ' (an error from the server, or a config.json?)'}`);
  }
  try {
    return WasmReranker.fromGguf(bytes);
  } catch (error) {
    if (error instanceof WebAssembly.RuntimeError) throw error;
    throw new RerankerError(error.code ?? ErrorCode.MODEL_FORMAT, `${name}: ${String(error.message).replace(/^model\.gguf: /, '')}`);
  }
}
