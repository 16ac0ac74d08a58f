// crossrank: a BERT cross-encoder reranker running as WebAssembly in Web Workers, its encoder on
// WebGPU where the browser has a GPU that passes a self-check (`device`).
//
// The page side's public API. A Reranker checks each call's arguments and hands it to a CallQueue
// (queue.js: one call at a time, abort) whose calls run on a WorkerPool (pool.js: `threads` workers
// each holding the model, a rerank's documents shared among them in chunks). Abort is possible
// because a running chunk's worker can be terminated (the model's methods are synchronous and
// cannot be interrupted); the model is then loaded again into a fresh worker, from the Cache API or
// from bytes kept by the pool, before the next call runs.

import {
  CONSTRUCTOR_OPTIONS, CREATE_OPTIONS, LOAD_OPTIONS, RERANK_OPTIONS,
  checkBoolean, checkDevice, checkFunction, checkOptionFields, checkOptions, checkRequest, checkRequests, checkSignal, checkUrl, describe,
} from './arguments.js';
import { ENGINE_OPTION_NAMES } from './contract.js';
import { DTYPES, HUB_URL, hubFolder, isHubId } from './hub.js';
import { availableParallelism, fileUrlOfPath, isFilePath } from './node/files.js';
import { WorkerPool } from './pool.js';
import { CACHE_NAME, CacheMode, ErrorCode, RerankerError, RequestKind } from './protocol.js';
import { CallQueue } from './queue.js';

export { ErrorCode, RerankerError };

export class Reranker {
  /** The workers and the model they hold. */
  #pool;
  /** The calls, run one at a time; an abort of the running one interrupts the pool. */
  #queue = new CallQueue((error) => this.#interrupted(error));
  #disposed = false;

  /**
   * A reranker with no model yet; call load(). Reranker.create() does both.
   * @param {{ wasmUrl?: string | URL, threads?: number, workerUrl?: string | URL, device?: 'auto' | 'webgpu' | 'wasm' }} [options]
   */
  constructor(options = {}) {
    const { wasmUrl, threads, workerUrl, device } = checkOptions(options, CONSTRUCTOR_OPTIONS);
    checkUrl(workerUrl, 'options.workerUrl');
    const where = checkDevice(device);
    const url = wasmUrl === undefined || wasmUrl === null ? null : resolveUrl(wasmUrl, 'wasmUrl');
    const count = threads === undefined || threads === null ? defaultThreads() : threadCount(threads);
    const workerScript = workerUrl === undefined || workerUrl === null ? null : resolveUrl(workerUrl, 'workerUrl');
    this.#pool = new WorkerPool(count, url, workerScript, where);
  }

  /**
   * Starts the workers and loads a model into them.
   * @param {{ model: string | URL | ArrayBuffer | Uint8Array, onProgress?: (p: object) => void,
   *           cache?: boolean, sha256?: string, signal?: AbortSignal, wasmUrl?: string | URL,
   *           threads?: number, workerUrl?: string | URL, device?: 'auto' | 'webgpu' | 'wasm' }} options
   * @returns {Promise<Reranker>}
   */
  static async create(options) {
    const { model, wasmUrl, threads, workerUrl, device, ...loadOptions } = checkOptions(options, CREATE_OPTIONS);
    const reranker = new Reranker({ wasmUrl, threads, workerUrl, device });
    try {
      await reranker.load(model, loadOptions);
    } catch (error) {
      reranker.dispose();
      throw error;
    }
    return reranker;
  }

  /** How many workers share each call on wasm (on WebGPU one worker does the work). */
  get threads() {
    return this.#pool.size;
  }

  /**
   * The loaded model's description ({ precision, maxPositions, … }) and where it runs ({ device,
   * gpu, fallback }), or null.
   */
  get info() {
    return this.#pool.info;
  }

  /**
   * Loads a model into every worker, replacing the current one (which is freed first): a crossrank
   * GGUF file (URL or bytes), or a Hugging Face model by Hub id (`'cross-encoder/ms-marco-MiniLM-L-6-v2'`)
   * or folder URL (ending in `/`), converted in a worker to `dtype` and cached as one GGUF file.
   * Calls made while it loads wait for it.
   * @returns {Promise<object>} the model's info
   */
  async load(model, options = {}) {
    this.#throwIfDisposed();
    checkOptions(options, LOAD_OPTIONS);
    const { onProgress, cache = true, sha256, signal, dtype, hubUrl = HUB_URL, revision = 'main' } = options;
    const source = modelSource(model, { hubUrl, revision });
    checkFunction(onProgress, 'options.onProgress');
    checkSignal(signal, 'options.signal');
    if (sha256 !== undefined && sha256 !== null && (typeof sha256 !== 'string' || !/^[0-9a-f]{64}$/i.test(sha256))) {
      throw new RerankerError(ErrorCode.INVALID_INPUT, 'sha256 must be 64 hexadecimal digits');
    }
    if (source.folder) {
      source.dtype = dtype ?? 'q8_0';
      if (!DTYPES.includes(source.dtype)) {
        throw new RerankerError(ErrorCode.INVALID_INPUT, `dtype must be one of ${DTYPES.map((d) => `"${d}"`).join(', ')}, got ${describe(dtype)}`);
      }
      if (sha256) throw new RerankerError(ErrorCode.INVALID_INPUT, 'sha256 checks a GGUF file; a Hugging Face model is several files');
    } else if (dtype !== undefined) {
      throw new RerankerError(ErrorCode.INVALID_INPUT, 'dtype applies to Hugging Face models (a Hub id or folder); a GGUF file keeps its own precision');
    }
    const request = { source, cache: cacheMode(cache), sha256: sha256 ? sha256.toLowerCase() : null };
    return this.#queue.add({ kind: RequestKind.LOAD, signal, run: () => this.#pool.load(request, onProgress) });
  }

  /**
   * Deletes every model crossrank has cached in this origin (the Cache API bucket
   * "crossrank-models-v1"). Resolves to whether there was anything to delete.
   * @returns {Promise<boolean>}
   */
  static async clearCache() {
    if (typeof caches === 'undefined') return false;
    return caches.delete(CACHE_NAME);
  }

  /**
   * Scores each document against the query.
   * @param {string} query
   * @param {Array<string | { text: string, id?: unknown }>} documents
   * @param {import('../index.d.ts').RerankOptions} [options]
   * @returns {Promise<Array<{ index: number, score: number, logit: number, id?: unknown, document?: unknown }>>}
   *   ordered by logit (or by `fused` with `fusion`), highest first
   */
  async rerank(query, documents, options = {}) {
    this.#throwIfDisposed();
    const [results] = await this.#rerank([checkRequest(query, documents)], options, false);
    return results;
  }

  /**
   * Reranks several queries' candidates in one call (pairs batched across queries and shared by
   * the workers). Resolves to one result list per request, in order.
   */
  async rerankMany(requests, options = {}) {
    this.#throwIfDisposed();
    return this.#rerank(checkRequests(requests), options, true);
  }

  /**
   * `requests` are checked ({ query, documents, texts }); `many` says whether the caller gave a
   * list of requests, so that an error found in one of them names it (`requests[2]: …`).
   */
  async #rerank(requests, rerankOptions, many) {
    checkOptions(rerankOptions, RERANK_OPTIONS);
    checkOptionFields(rerankOptions);
    const { returnDocuments = false, signal, onProgress } = rerankOptions;
    checkBoolean(returnDocuments, 'options.returnDocuments');
    checkSignal(signal, 'options.signal');
    checkFunction(onProgress, 'options.onProgress');
    const prepared = requests.map(({ query, documents, texts }) => ({
      query,
      documents: texts,
      firstStage: firstStageScores(documents),
    }));
    checkCallSize(prepared);
    // The ranking options go to Rust as given (null reads as unset): it owns their validation
    // (src/options.rs, the parser the CLI uses too) and names the problem.
    const options = Object.fromEntries(
      ENGINE_OPTION_NAMES.map((name) => [name, rerankOptions[name]]).filter(([, value]) => value !== undefined && value !== null),
    );

    const ranked = await this.#queue.add({
      kind: RequestKind.SCORE,
      signal,
      run: (call) => this.#pool.score(prepared, options, { call, onProgress, many }),
    });
    return ranked.map((results, requestIndex) =>
      results.map(({ index, score, logit, fused, bestWindow }) => {
        const document = requests[requestIndex].documents[index];
        const result = { index, score, logit };
        if (fused !== undefined) result.fused = fused;
        if (bestWindow !== undefined) result.bestWindow = bestWindow;
        if (typeof document === 'object' && document.id !== undefined) result.id = document.id;
        if (returnDocuments === true) result.document = document;
        return result;
      }),
    );
  }

  /**
   * Terminates the workers, which frees all of their memory at once. Calls still waiting, and
   * any made later, reject with code "not_loaded".
   */
  dispose() {
    if (this.#disposed) return;
    this.#disposed = true;
    const error = disposedError();
    this.#pool.dispose(error);
    this.#queue.close(error);
  }

  #throwIfDisposed() {
    if (this.#disposed) throw disposedError();
  }

  /**
   * The running call was aborted: its workers are ended (busy inside wasm, they read no messages)
   * and, before any other call runs, the model is loaded again into fresh ones, unless a new load
   * is waiting anyway.
   */
  #interrupted(error) {
    this.#pool.interrupt(error);
    this.#queue.addFirst(() => (this.#queue.has(RequestKind.LOAD) ? undefined : this.#pool.restore()));
  }
}

/** Workers per reranker unless told: one per core, at most 4 (each holds the model). */
function defaultThreads() {
  // Node 20 has no `navigator`: its os.availableParallelism() is the same number.
  const cores = Number(globalThis.navigator?.hardwareConcurrency) || availableParallelism();
  return Math.max(1, Math.min(4, cores));
}

function threadCount(value) {
  if (!Number.isInteger(value) || value < 1 || value > MAX_THREADS) {
    throw new RerankerError(ErrorCode.INVALID_INPUT, `threads must be a whole number from 1 to ${MAX_THREADS}, got ${describe(value)}`);
  }
  return value;
}

/** Each worker holds a copy of the model: more than this is a mistake, not a speed-up. */
const MAX_THREADS = 16;

// ---- helpers --------------------------------------------------------------------------------

function disposedError() {
  return new RerankerError(ErrorCode.NOT_LOADED, 'this reranker has been disposed');
}

/**
 * Absolute URLs only: the worker resolves relative ones against its own script, not the page.
 * Where there is no page (Node, Deno, Bun), a string without a scheme is a file path.
 */
function resolveUrl(value, name) {
  const base = globalThis.document?.baseURI ?? globalThis.location?.href;
  if (base === undefined && isFilePath(value)) return fileUrlOfPath(value).href;
  try {
    return new URL(value, base).href;
  } catch {
    throw new RerankerError(ErrorCode.INVALID_INPUT, `${name} is not a valid URL: ${String(value)}`);
  }
}

/**
 * Where a model comes from: `{ url }` (a GGUF file), `{ bytes }`, or `{ folder, name }` (a Hugging
 * Face model: a Hub id `org/name`, or a URL ending in `/`).
 */
function modelSource(model, { hubUrl, revision }) {
  if (isHubId(model)) {
    if (typeof hubUrl !== 'string' && !(hubUrl instanceof URL)) throw new RerankerError(ErrorCode.INVALID_INPUT, `hubUrl must be a URL, got ${describe(hubUrl)}`);
    if (typeof revision !== 'string' || revision === '') throw new RerankerError(ErrorCode.INVALID_INPUT, `revision must be a non-empty string, got ${describe(revision)}`);
    return { folder: hubFolder(resolveUrl(hubUrl, 'hubUrl'), model, revision), name: model };
  }
  if (typeof model === 'string' || model instanceof URL) {
    const url = resolveUrl(model, 'model');
    return url.endsWith('/') ? { folder: url, name: url } : { url };
  }
  if (model instanceof ArrayBuffer) return { bytes: model };
  if (ArrayBuffer.isView(model)) {
    const bytes = new Uint8Array(model.buffer, model.byteOffset, model.byteLength);
    // Posting a view copies its whole buffer; copy just the view's bytes when it is smaller.
    return { bytes: bytes.byteLength === bytes.buffer.byteLength ? bytes.buffer : bytes.slice().buffer };
  }
  throw new RerankerError(ErrorCode.INVALID_INPUT,
    'model must be a Hugging Face model id ("org/name"), a URL (string or URL; a folder URL ends in "/") or a GGUF file\'s bytes (ArrayBuffer or Uint8Array)');
}

/** `cache` as the worker takes it: the old booleans still work (true: "default", false: "no-store"). */
function cacheMode(cache) {
  if (cache === true || cache === undefined) return CacheMode.DEFAULT;
  if (cache === false) return CacheMode.NO_STORE;
  if ([CacheMode.DEFAULT, CacheMode.RELOAD, CacheMode.NO_STORE].includes(cache)) return cache;
  throw new RerankerError(ErrorCode.INVALID_INPUT, `cache must be "default", "reload" or "no-store" (or a boolean), got ${describe(cache)}`);
}

/**
 * What one call may hold. Every document and query is copied to a worker and into its wasm
 * memory, which never shrinks; past these a call is refused (`invalid_input`) instead of
 * exhausting the tab. The CLI's bound on a `rerank` input is 256 MiB of JSON.
 */
export const LIMITS = Object.freeze({
  /** Documents in one call, over all its requests (100,000 short passages take minutes). */
  documentsPerCall: 100_000,
  /** Characters (UTF-16 code units) of query and document text in one call: 128 MiB as JS strings. */
  charactersPerCall: 64 * 2 ** 20,
});

function checkCallSize(prepared) {
  let documents = 0;
  let characters = 0;
  for (const request of prepared) {
    documents += request.documents.length;
    characters += request.query.length;
    for (const text of request.documents) characters += text.length;
  }
  if (documents > LIMITS.documentsPerCall) {
    throw new RerankerError(ErrorCode.INVALID_INPUT,
      `a call takes at most ${LIMITS.documentsPerCall.toLocaleString('en')} documents, got ${documents.toLocaleString('en')}: split them over several calls`);
  }
  if (characters > LIMITS.charactersPerCall) {
    throw new RerankerError(ErrorCode.INVALID_INPUT,
      `a call takes at most ${LIMITS.charactersPerCall.toLocaleString('en')} characters of text, got ${characters.toLocaleString('en')}: ` +
      'a pair reads only its first few thousand characters of a document (unless `windows` is set), so cut very long documents, or split the call');
  }
}

/** First-stage scores from `{ text, score }` documents, when every document has a numeric score. */
function firstStageScores(documents) {
  const scores = documents.map((document) => (typeof document === 'object' && document !== null ? document.score : undefined));
  return scores.length > 0 && scores.every((score) => typeof score === 'number') ? scores : undefined;
}
