// crossrank: a BERT cross-encoder reranker running as WebAssembly in Web Workers.
//
// The page side. A Reranker owns a small pool of workers (`threads`, each holding the model) and
// runs one call at a time; calls made meanwhile wait in a queue here. A rerank is split into
// chunks of documents, longest first, that the workers take as they become free (`score`), and
// the scored union is then ordered by one of them (`order`: fusion, threshold and topK need every
// document). Abort is possible because a running chunk's worker can be terminated (WasmReranker's
// methods are synchronous and cannot be interrupted); the model is then loaded again into a fresh
// worker, from the Cache API or from bytes kept here, before the next call runs.

import {
  CONSTRUCTOR_OPTIONS, CREATE_OPTIONS, LOAD_OPTIONS, RERANK_OPTIONS,
  checkBoolean, checkFunction, checkOptions, checkRequest, checkRequests, checkSignal, describe,
} from './arguments.js';
import { ENGINE_OPTION_NAMES } from './contract.js';
import { CACHE_NAME, CacheMode, ErrorCode, RerankerError, ReplyKind, RequestKind } from './protocol.js';

export { ErrorCode, RerankerError };

export class Reranker {
  /** @type {string | null} */
  #wasmUrl;
  /** The workers, each holding the model once loaded; the first also downloads and orders. */
  #slots;
  /** The last successful load, kept to load the model again into a fresh worker; null when none. */
  #model = null;
  /** Why the last load failed, for the message of calls that find no model. */
  #lastLoadError = null;
  /** Calls not started yet, oldest first. */
  #queue = [];
  /** The call whose requests are in the workers now. */
  #running = null;
  /** The worker converting a Hugging Face model for the running load, if any. */
  #converter = null;
  #disposed = false;

  /**
   * A reranker with no model yet; call load(). Reranker.create() does both.
   * @param {{ wasmUrl?: string | URL, threads?: number }} [options]
   */
  constructor(options = {}) {
    const { wasmUrl, threads } = checkOptions(options, CONSTRUCTOR_OPTIONS);
    this.#wasmUrl = wasmUrl === undefined || wasmUrl === null ? null : resolveUrl(wasmUrl, 'wasmUrl');
    const count = threads === undefined || threads === null ? defaultThreads() : threadCount(threads);
    this.#slots = Array.from({ length: count }, () => new WorkerSlot());
  }

  /**
   * Starts the workers and loads a model into them.
   * @param {{ model: string | URL | ArrayBuffer | Uint8Array, onProgress?: (p: object) => void,
   *           cache?: boolean, sha256?: string, signal?: AbortSignal, wasmUrl?: string | URL,
   *           threads?: number }} options
   * @returns {Promise<Reranker>}
   */
  static async create(options) {
    const { model, wasmUrl, threads, ...loadOptions } = checkOptions(options, CREATE_OPTIONS);
    const reranker = new Reranker({ wasmUrl, threads });
    try {
      await reranker.load(model, loadOptions);
    } catch (error) {
      reranker.dispose();
      throw error;
    }
    return reranker;
  }

  /** How many workers share each call. */
  get threads() {
    return this.#slots.length;
  }

  /** The loaded model's description ({ precision, maxPositions, … }), or null. */
  get info() {
    return this.#model?.info ?? null;
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
    return this.#enqueue({ kind: RequestKind.LOAD, signal, run: () => this.#runLoad(request, onProgress) });
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

    const job = { kind: RequestKind.SCORE, signal };
    job.run = () => this.#runRerank(job, prepared, options, onProgress, many);
    const ranked = await this.#enqueue(job);
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
    for (const slot of this.#slots) slot.stop(error);
    this.#converter?.stop(error);
    for (const job of [this.#running, ...this.#queue]) if (job) settle(job, false, error);
    this.#queue = [];
    this.#model = null;
  }

  #throwIfDisposed() {
    if (this.#disposed) throw disposedError();
  }

  // ---- the queue ----------------------------------------------------------------------------

  #enqueue(job) {
    const { signal } = job;
    if (signal?.aborted) return Promise.reject(abortError(signal));
    return new Promise((resolve, reject) => {
      job.resolve = resolve;
      job.reject = reject;
      if (signal) {
        job.onAbort = () => this.#abort(job);
        signal.addEventListener('abort', job.onAbort, { once: true });
      }
      this.#queue.push(job);
      this.#pump();
    });
  }

  async #pump() {
    if (this.#running || this.#disposed) return;
    const job = this.#queue.shift();
    if (!job) return;
    this.#running = job;
    try {
      settle(job, true, await job.run());
    } catch (error) {
      settle(job, false, error);
    }
    this.#running = null;
    this.#pump();
  }

  #abort(job) {
    if (job.settled) return;
    const error = abortError(job.signal);
    if (this.#running === job) {
      // Its workers are busy inside wasm and read no messages: end them (idle ones keep their
      // model). The model is loaded again into fresh workers before anything else runs.
      for (const slot of this.#slots) if (slot.busy) slot.stop(error);
      this.#converter?.stop(error);
      this.#queue.unshift({ internal: true, run: () => this.#restoreEarly() });
    } else {
      this.#queue.splice(this.#queue.indexOf(job), 1);
    }
    settle(job, false, error);
  }

  // ---- the calls ----------------------------------------------------------------------------

  async #runLoad({ source, cache, sha256 }, onProgress) {
    this.#model = null;
    this.#lastLoadError = null;
    // Workers still holding the previous model free it when their load request comes.
    for (const slot of this.#slots) slot.hasModel = false;
    const [first, ...others] = this.#slots;
    try {
      if (source.folder) source = { bytes: await this.#convert(source, cache, onProgress) };
      const { info, bytes } = await first.request(
        { kind: RequestKind.LOAD, source, cache, sha256, wasmUrl: this.#wasmUrl },
        onProgress,
      );
      first.hasModel = true;
      // The first worker returns the file's bytes when they are not in the Cache API: keep them,
      // so that the other workers, and any fresh one later, load the model without the network
      // (and read the cache without asking the server again).
      const model = { source: bytes ? { bytes } : source, cache: CacheMode.RESTORE, sha256, info };
      await Promise.all(others.map((slot) => this.#restore(slot, model)));
      this.#model = model;
      return info;
    } catch (error) {
      for (const slot of this.#slots) slot.hasModel = false;
      this.#lastLoadError = error;
      throw error;
    }
  }

  async #runRerank(job, requests, options, onProgress, many) {
    if (!this.#model) {
      const reason = this.#lastLoadError ? ` (the last load failed: ${this.#lastLoadError.message})` : '';
      throw new RerankerError(ErrorCode.NOT_LOADED, `no model is loaded${reason}`, { cause: this.#lastLoadError ?? undefined });
    }
    const model = this.#model;
    const chunks = planChunks(requests, this.#slots.length);
    const total = chunks.reduce((sum, chunk) => sum + chunk.size, 0);
    const scored = requests.map((request) => new Array(request.documents.length));
    let next = 0;
    let done = 0;
    let failed = false;
    // Each worker takes the next chunk when it is free; after a failure (or an abort) no new
    // chunk starts, and what is still running is ignored.
    const drain = async (slot) => {
      while (next < chunks.length && !failed && !job.settled) {
        const chunk = chunks[next++];
        try {
          // A worker that was aborted or died (even between two chunks) comes back with the model.
          await this.#restore(slot, model);
          const parts = await slot.request({ kind: RequestKind.SCORE, requests: chunk.requests, options });
          chunk.requests.forEach(({ from, indices }, part) => {
            indices.forEach((documentIndex, k) => {
              scored[from][documentIndex] = parts[part][k];
            });
          });
        } catch (error) {
          failed = true;
          throw many ? namingRequest(error, chunk) : error;
        }
        done += chunk.size;
        if (onProgress && !job.settled) onProgress({ status: 'rerank', scored: done, total });
      }
    };
    await Promise.all(this.#slots.map(drain));

    await this.#restore(this.#slots[0], model);
    const ordered = await this.#slots[0].request({
      kind: RequestKind.ORDER,
      requests: requests.map((request, i) => ({ scored: scored[i], firstStage: request.firstStage })),
      options,
    });
    return ordered;
  }

  /**
   * A Hugging Face folder converted to GGUF bytes in a worker of its own, ended afterwards so that
   * the memory conversion needs does not stay in the pool. Aborting the load ends it too.
   */
  async #convert({ folder, name, dtype }, cache, onProgress) {
    const slot = new WorkerSlot();
    this.#converter = slot;
    try {
      const { bytes } = await slot.request({ kind: RequestKind.CONVERT, folder, source: name, dtype, cache, wasmUrl: this.#wasmUrl }, onProgress);
      return bytes;
    } finally {
      slot.stop(new RerankerError(ErrorCode.ABORTED, 'the conversion was stopped'));
      if (this.#converter === slot) this.#converter = null;
    }
  }

  /**
   * After an abort, loads the model again before anyone asks, unless a new load is queued
   * anyway. A failure here is not reported: the next rerank tries again and reports it.
   */
  async #restoreEarly() {
    if (this.#queue.some((job) => job.kind === RequestKind.LOAD)) return;
    await Promise.all(this.#slots.map((slot) => this.#restore(slot, this.#model))).catch(() => {});
  }

  /** Loads `model` into a worker that lacks it (a fresh one after an abort or a crash). */
  async #restore(slot, model) {
    if (!model || slot.hasModel) return;
    const { source, cache, sha256 } = model;
    await slot.request({ kind: RequestKind.LOAD, source, cache, sha256, wasmUrl: this.#wasmUrl });
    slot.hasModel = true;
  }
}

/**
 * One worker and the requests sent to it. A worker that dies (or is terminated) takes its
 * requests with it, rejected; the next request starts a fresh worker, without the model.
 */
class WorkerSlot {
  /** @type {Worker | null} */
  #worker = null;
  /** Requests sent to #worker and not answered yet, by id. */
  #pending = new Map();
  #nextId = 1;
  /** Whether the worker holds the reranker's current model. */
  hasModel = false;

  /** Whether a request is in the worker now. */
  get busy() {
    return this.#pending.size > 0;
  }

  request(message, onProgress) {
    const worker = this.#ensureWorker();
    const id = this.#nextId++;
    return new Promise((resolve, reject) => {
      this.#pending.set(id, { resolve, reject, onProgress });
      // Not transferred: bytes we were given stay usable by the caller and by a later restore.
      worker.postMessage({ ...message, id });
    });
  }

  /** Terminates the worker and rejects what it was doing with `error`. */
  stop(error) {
    this.#worker?.terminate();
    this.#worker = null;
    this.hasModel = false;
    const pending = [...this.#pending.values()];
    this.#pending.clear();
    for (const { reject } of pending) reject(error);
  }

  #ensureWorker() {
    if (this.#worker) return this.#worker;
    // This exact expression is what bundlers (Vite, webpack 5, Parcel) recognise as a worker entry.
    const worker = new Worker(new URL('./worker.js', import.meta.url), { type: 'module' });
    worker.addEventListener('message', (event) => this.#onReply(worker, event.data));
    worker.addEventListener('error', (event) => {
      event.preventDefault();
      const detail = event.message || 'its script could not be loaded or threw at the top level';
      this.#crashed(worker, `the worker failed: ${detail}`);
    });
    worker.addEventListener('messageerror', () => this.#crashed(worker, 'the worker sent a message that could not be read'));
    this.#worker = worker;
    this.hasModel = false;
    return worker;
  }

  #onReply(worker, reply) {
    if (worker !== this.#worker) return; // from a worker already terminated
    const pending = this.#pending.get(reply.id);
    if (!pending) return;
    switch (reply.kind) {
      case ReplyKind.PROGRESS:
        pending.onProgress?.(reply.progress);
        return;
      case ReplyKind.RESULT:
        this.#pending.delete(reply.id);
        pending.resolve(reply.value);
        return;
      case ReplyKind.ERROR:
        if (reply.code === ErrorCode.WORKER_CRASHED) {
          this.#crashed(worker, reply.message);
        } else {
          this.#pending.delete(reply.id);
          const error = new RerankerError(reply.code, reply.message);
          if (reply.request !== undefined) requestOfError.set(error, reply.request);
          pending.reject(error);
        }
        return;
    }
  }

  /** The worker died or its wasm trapped: what it was doing fails; the next call gets a fresh one. */
  #crashed(worker, message) {
    if (worker !== this.#worker) return;
    this.stop(new RerankerError(ErrorCode.WORKER_CRASHED, message));
  }
}

/** For a worker's error about one request of a chunk, that request's position in the chunk. */
const requestOfError = new WeakMap();

/**
 * A chunk's `invalid_input` error about one of rerankMany's requests, naming it (`requests[2]: the
 * query is empty`), which the worker found (see worker.js `withRequest`).
 */
function namingRequest(error, chunk) {
  if (!(error instanceof RerankerError) || error.code !== ErrorCode.INVALID_INPUT) return error;
  const part = chunk.requests[requestOfError.get(error)];
  if (!part) return error;
  return new RerankerError(error.code, `requests[${part.from}]: ${error.message}`, { cause: error });
}

/**
 * Splits the documents of `requests` into chunks for `threads` workers: longest first (so that
 * the long ones do not end up last on one worker, and similar lengths share a batch), about four
 * chunks per worker for balance and progress, at most MAX_CHUNK documents each (a worker's memory
 * grows with its batch). Each chunk is `{ size, requests: [{ from, query, documents, indices }] }`:
 * `from` is the request's position, `indices` the documents' positions in it.
 */
function planChunks(requests, threads) {
  const items = [];
  requests.forEach((request, from) => request.documents.forEach((text, index) => items.push({ from, index, length: text.length })));
  // Stable, so equal lengths keep input order.
  items.sort((a, b) => b.length - a.length);
  const size = Math.min(MAX_CHUNK, Math.max(1, Math.ceil(items.length / (threads * 4))));
  const chunks = [];
  for (let start = 0; start < items.length; start += size) {
    const byRequest = new Map();
    for (const { from, index } of items.slice(start, start + size)) {
      if (!byRequest.has(from)) byRequest.set(from, { from, query: requests[from].query, documents: [], indices: [] });
      const part = byRequest.get(from);
      part.documents.push(requests[from].documents[index]);
      part.indices.push(index);
    }
    chunks.push({ size: Math.min(size, items.length - start), requests: [...byRequest.values()] });
  }
  return chunks;
}

/** Documents per chunk at most: one batch of the model's (8 pairs of 128 tokens). */
const MAX_CHUNK = 8;

/** Workers per reranker unless told: one per core, at most 4 (each holds the model). */
function defaultThreads() {
  const cores = Number(globalThis.navigator?.hardwareConcurrency) || 1;
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

function settle(job, ok, value) {
  if (job.settled) return;
  job.settled = true;
  job.signal?.removeEventListener('abort', job.onAbort);
  if (job.internal) return;
  if (ok) job.resolve(value);
  else job.reject(value);
}

function abortError(signal) {
  const reason = signal.reason;
  const detail = reason instanceof Error && reason.name !== 'AbortError' ? `: ${reason.message}` : '';
  return new RerankerError(ErrorCode.ABORTED, `the operation was aborted${detail}`, { cause: reason });
}

function disposedError() {
  return new RerankerError(ErrorCode.NOT_LOADED, 'this reranker has been disposed');
}

/** Absolute URLs only: the worker resolves relative ones against its own script, not the page. */
function resolveUrl(value, name) {
  const base = globalThis.document?.baseURI ?? globalThis.location?.href;
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
  if (typeof model === 'string' && HUB_ID.test(model) && !model.endsWith('.gguf')) {
    if (typeof hubUrl !== 'string' && !(hubUrl instanceof URL)) throw new RerankerError(ErrorCode.INVALID_INPUT, `hubUrl must be a URL, got ${describe(hubUrl)}`);
    if (typeof revision !== 'string' || revision === '') throw new RerankerError(ErrorCode.INVALID_INPUT, `revision must be a non-empty string, got ${describe(revision)}`);
    const base = resolveUrl(hubUrl, 'hubUrl').replace(/\/+$/, '');
    return { folder: `${base}/${model}/resolve/${encodeURIComponent(revision)}/`, name: model };
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

/** A Hub model id: `org/name` and nothing else (a relative URL needs "./" or a ".gguf" name). */
const HUB_ID = /^[A-Za-z0-9][\w.-]*\/[\w.-]+$/;
const HUB_URL = 'https://huggingface.co';
/** What a Hugging Face model can be converted to, as `crossrank convert --dtype`. */
const DTYPES = ['q8_0', 'q4_0', 'f16', 'f32'];

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
