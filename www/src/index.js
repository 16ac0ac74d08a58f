// crossrank: a BERT cross-encoder reranker running as WebAssembly in a Web Worker.
//
// The page side. A Reranker owns one worker and runs one request in it at a time; calls made
// meanwhile wait in a queue here. That is what makes abort possible: WasmReranker's methods
// are synchronous, so a running rerank cannot be interrupted, only its worker terminated.
// After that a fresh worker loads the model again, from the Cache API or from bytes kept here,
// before the next call runs.

import { ErrorCode, ReplyKind, RequestKind } from './protocol.js';

export { ErrorCode };

/** Every error crossrank rejects with; `code` is one of ErrorCode's values and never changes. */
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

export class Reranker {
  /** @type {string | null} */
  #wasmUrl;
  /** @type {Worker | null} */
  #worker = null;
  /** Whether #worker holds the model described by #model. */
  #workerHasModel = false;
  /** The last successful load, kept to load the model again into a fresh worker; null when none. */
  #model = null;
  /** Why the last load failed, for the message of calls that find no model. */
  #lastLoadError = null;
  /** Calls not started yet, oldest first. */
  #queue = [];
  /** The call whose requests are in the worker now. */
  #running = null;
  /** Requests sent to #worker and not answered yet, by id. */
  #pending = new Map();
  #nextId = 1;
  #disposed = false;

  /**
   * A reranker with no model yet; call load(). Reranker.create() does both.
   * @param {{ wasmUrl?: string | URL }} [options]
   */
  constructor({ wasmUrl } = {}) {
    this.#wasmUrl = wasmUrl === undefined || wasmUrl === null ? null : resolveUrl(wasmUrl, 'wasmUrl');
  }

  /**
   * Starts a worker and loads a model into it.
   * @param {{ model: string | URL | ArrayBuffer | Uint8Array, onProgress?: (p: object) => void,
   *           cache?: boolean, sha256?: string, signal?: AbortSignal, wasmUrl?: string | URL }} options
   * @returns {Promise<Reranker>}
   */
  static async create({ model, wasmUrl, ...loadOptions } = {}) {
    const reranker = new Reranker({ wasmUrl });
    try {
      await reranker.load(model, loadOptions);
    } catch (error) {
      reranker.dispose();
      throw error;
    }
    return reranker;
  }

  /** The loaded model's description ({ precision, maxPositions, … }), or null. */
  get info() {
    return this.#model?.info ?? null;
  }

  /**
   * Loads a crossrank GGUF file, replacing the current model (which is freed first).
   * Calls made while it loads wait for it.
   * @returns {Promise<object>} the model's info
   */
  async load(model, { onProgress, cache = true, sha256, signal } = {}) {
    this.#throwIfDisposed();
    const source = modelSource(model);
    if (onProgress !== undefined && typeof onProgress !== 'function') {
      throw new RerankerError(ErrorCode.INVALID_INPUT, 'onProgress must be a function');
    }
    if (sha256 !== undefined && sha256 !== null && (typeof sha256 !== 'string' || !/^[0-9a-f]{64}$/i.test(sha256))) {
      throw new RerankerError(ErrorCode.INVALID_INPUT, 'sha256 must be 64 hexadecimal digits');
    }
    const request = { source, cache: cache !== false, sha256: sha256 ? sha256.toLowerCase() : null };
    return this.#enqueue({ kind: RequestKind.LOAD, signal, run: () => this.#runLoad(request, onProgress) });
  }

  /**
   * Scores each document against the query.
   * @param {string} query
   * @param {Array<string | { text: string, id?: unknown }>} documents
   * @param {{ topK?: number, returnDocuments?: boolean, maxLength?: number, signal?: AbortSignal }} [options]
   * @returns {Promise<Array<{ index: number, score: number, logit: number, id?: unknown, document?: unknown }>>}
   *   ordered by logit (or by `fused` with `fusion`), highest first
   */
  async rerank(query, documents, options = {}) {
    const [results] = await this.rerankMany([{ query, documents }], options);
    return results;
  }

  /**
   * Reranks several queries' candidates in one call (one worker round trip, pairs batched
   * across queries). Resolves to one result list per request, in order.
   */
  async rerankMany(requests, rerankOptions = {}) {
    this.#throwIfDisposed();
    checkOptionNames(rerankOptions, RERANK_OPTIONS);
    const { topK, returnDocuments = false, maxLength, windows, fusion, scoreScale, threshold, signal } = rerankOptions;
    if (!Array.isArray(requests)) {
      throw new RerankerError(ErrorCode.INVALID_INPUT, `requests must be an array, got ${describe(requests)}`);
    }
    const prepared = requests.map(({ query, documents } = {}) => ({
      query,
      documents: documentTexts(query, documents),
      firstStage: firstStageScores(documents),
    }));
    const options = {};
    if (topK !== undefined && topK !== null) options.topK = positiveInteger(topK, 'topK');
    if (maxLength !== undefined && maxLength !== null) options.maxLength = positiveInteger(maxLength, 'maxLength');
    // Validated by Rust, which names the problem: windows, fusion, scoreScale, threshold.
    if (windows !== undefined) options.windows = windows;
    if (fusion !== undefined) options.fusion = fusion;
    if (scoreScale !== undefined) options.scoreScale = scoreScale;
    if (threshold !== undefined) options.threshold = threshold;

    const ranked = await this.#enqueue({ kind: RequestKind.RERANK, signal, run: () => this.#runRerank(prepared, options) });
    return ranked.map((results, requestIndex) =>
      results.map(({ index, score, logit, fused, bestWindow }) => {
        const document = requests[requestIndex].documents[index];
        const result = { index, score, logit };
        if (fused !== undefined) result.fused = fused;
        if (bestWindow !== undefined) result.bestWindow = bestWindow;
        if (typeof document === 'object' && document.id !== undefined) result.id = document.id;
        if (returnDocuments) result.document = document;
        return result;
      }),
    );
  }

  /**
   * Terminates the worker, which frees all of its memory at once. Calls still waiting, and any
   * made later, reject with code "not_loaded".
   */
  dispose() {
    if (this.#disposed) return;
    this.#disposed = true;
    const error = disposedError();
    this.#stopWorker(error);
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
      // The worker is busy inside wasm and reads no messages: end it. The model is loaded
      // again into a fresh worker before anything else runs.
      this.#stopWorker(error);
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
    try {
      const { info, bytes } = await this.#request(
        { kind: RequestKind.LOAD, source, cache, sha256, wasmUrl: this.#wasmUrl },
        onProgress,
      );
      this.#workerHasModel = true;
      // The worker returns the file's bytes when they are not in the Cache API: keep them, so
      // that a fresh worker can load the model again without the network.
      this.#model = { source: bytes ? { bytes } : source, cache, sha256, info };
      return info;
    } catch (error) {
      this.#workerHasModel = false;
      this.#lastLoadError = error;
      throw error;
    }
  }

  async #runRerank(requests, options) {
    if (!this.#model) {
      const reason = this.#lastLoadError ? ` (the last load failed: ${this.#lastLoadError.message})` : '';
      throw new RerankerError(ErrorCode.NOT_LOADED, `no model is loaded${reason}`, { cause: this.#lastLoadError ?? undefined });
    }
    // An empty candidate list has an empty ranking; Rust (which refuses it) never sees one.
    const nonEmpty = requests.filter((request) => request.documents.length > 0);
    if (nonEmpty.length === 0) return requests.map(() => []);
    if (!this.#workerHasModel) await this.#restore();
    const ranked = await this.#request({ kind: RequestKind.RERANK, requests: nonEmpty, options });
    return requests.map((request) => (request.documents.length > 0 ? ranked.shift() : []));
  }

  /**
   * After an abort, loads the model again before anyone asks, unless a new load is queued
   * anyway. A failure here is not reported: the next rerank tries again and reports it.
   */
  async #restoreEarly() {
    if (this.#queue.some((job) => job.kind === RequestKind.LOAD)) return;
    await this.#restore().catch(() => {});
  }

  /** Loads the current model into a fresh worker (after an abort or a crash). */
  async #restore() {
    if (!this.#model || this.#workerHasModel) return;
    const { source, cache, sha256 } = this.#model;
    await this.#request({ kind: RequestKind.LOAD, source, cache, sha256, wasmUrl: this.#wasmUrl });
    this.#workerHasModel = true;
  }

  // ---- the worker ---------------------------------------------------------------------------

  #request(message, onProgress) {
    const worker = this.#ensureWorker();
    const id = this.#nextId++;
    return new Promise((resolve, reject) => {
      this.#pending.set(id, { resolve, reject, onProgress });
      // Not transferred: bytes we were given stay usable by the caller and by a later restore.
      worker.postMessage({ ...message, id });
    });
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
    this.#workerHasModel = false;
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
          pending.reject(new RerankerError(reply.code, reply.message));
        }
        return;
    }
  }

  /** The worker died or its wasm trapped: what it was doing fails; the next call gets a fresh one. */
  #crashed(worker, message) {
    if (worker !== this.#worker) return;
    this.#stopWorker(new RerankerError(ErrorCode.WORKER_CRASHED, message));
  }

  #stopWorker(error) {
    this.#worker?.terminate();
    this.#worker = null;
    this.#workerHasModel = false;
    const pending = [...this.#pending.values()];
    this.#pending.clear();
    for (const { reject } of pending) reject(error);
  }
}

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

function modelSource(model) {
  if (typeof model === 'string' || model instanceof URL) return { url: resolveUrl(model, 'model') };
  if (model instanceof ArrayBuffer) return { bytes: model };
  if (ArrayBuffer.isView(model)) {
    const bytes = new Uint8Array(model.buffer, model.byteOffset, model.byteLength);
    // Posting a view copies its whole buffer; copy just the view's bytes when it is smaller.
    return { bytes: bytes.byteLength === bytes.buffer.byteLength ? bytes.buffer : bytes.slice().buffer };
  }
  throw new RerankerError(ErrorCode.INVALID_INPUT, 'model must be a URL (string or URL) or the file\'s bytes (ArrayBuffer or Uint8Array)');
}

function documentTexts(query, documents) {
  if (typeof query !== 'string') {
    throw new RerankerError(ErrorCode.INVALID_INPUT, `query must be a string, got ${describe(query)}`);
  }
  if (!Array.isArray(documents)) {
    throw new RerankerError(ErrorCode.INVALID_INPUT, `documents must be an array, got ${describe(documents)}`);
  }
  return documents.map((document, index) => {
    if (typeof document === 'string') return document;
    if (document !== null && typeof document === 'object' && typeof document.text === 'string') return document.text;
    throw new RerankerError(
      ErrorCode.INVALID_INPUT,
      `documents[${index}] must be a string or an object with a string \`text\`, got ${describe(document)}`,
    );
  });
}

/** First-stage scores from `{ text, score }` documents, when every document has a numeric score. */
function firstStageScores(documents) {
  const scores = documents.map((document) => (typeof document === 'object' && document !== null ? document.score : undefined));
  return scores.length > 0 && scores.every((score) => typeof score === 'number') ? scores : undefined;
}

function positiveInteger(value, name) {
  if (!Number.isInteger(value) || value < 1) {
    throw new RerankerError(ErrorCode.INVALID_INPUT, `${name} must be a positive integer, got ${describe(value)}`);
  }
  return value;
}

/** The options `rerank` and `rerankMany` take; any other name is a mistake worth naming. */
const RERANK_OPTIONS = ['topK', 'returnDocuments', 'maxLength', 'windows', 'fusion', 'scoreScale', 'threshold', 'signal'];

/** Rejects an option name that is not in `known`, naming the closest known one (`top_k` → `topK`). */
function checkOptionNames(options, known) {
  if (options === null || typeof options !== 'object') {
    throw new RerankerError(ErrorCode.INVALID_INPUT, `options must be an object, got ${describe(options)}`);
  }
  for (const name of Object.keys(options)) {
    if (known.includes(name)) continue;
    const distances = known.map((candidate) => editDistance(fold(name), fold(candidate)));
    const best = distances.indexOf(Math.min(...distances));
    const nearest = known[best];
    const close = distances[best] <= Math.max(2, Math.floor(nearest.length / 3));
    throw new RerankerError(ErrorCode.INVALID_INPUT,
      `unknown option "${name}"${close ? `: did you mean "${nearest}"?` : ''} (options: ${known.join(', ')})`);
  }
}

/** Case and separators do not count: top_k, TopK and top-k all read as topk. */
const fold = (name) => name.toLowerCase().replace(/[_-]/g, '');

function editDistance(a, b) {
  let previous = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i += 1) {
    const current = [i];
    for (let j = 1; j <= b.length; j += 1) {
      current[j] = Math.min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (a[i - 1] === b[j - 1] ? 0 : 1));
    }
    previous = current;
  }
  return previous[b.length];
}

function describe(value) {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array';
  if (typeof value === 'object') return 'an object';
  if (typeof value === 'string') return `the string ${JSON.stringify(value.length > 40 ? `${value.slice(0, 40)}…` : value)}`;
  return `${typeof value} ${String(value)}`;
}
