// The page's workers: a pool of `threads` WorkerSlots that each hold the model. A load goes to the
// first worker (which downloads, or reads the Cache API) and then, from the bytes it hands back or
// the cache, to the others; a rerank's documents are split into chunks, longest first, that the
// workers take as they become free, and the scored union is then ordered by the first one (fusion,
// threshold and topK need every document). A worker that was ended (an abort) or died gets the
// model again before its next chunk. Its own module so that the facade (index.js) says what a call
// does and this says how the work is shared; a pool of another backend's workers keeps this shape.
//
// With WebGPU (the first worker's load chose it: `device`) only that worker holds the model and
// does the work, in bigger chunks: the GPU is one device, and more workers would only queue their
// batches on it while each held another copy of the model. The others start, with wasm, only if the
// GPU is lost (a `device` reply), for the calls after that one.

import { CacheMode, Device, ErrorCode, RerankerError, RequestKind } from './protocol.js';
import { WorkerSlot, requestIndexOf } from './slot.js';

export class WorkerPool {
  /** @type {string | null} */
  #wasmUrl;
  /** @type {string | null} the worker script (null: the package's own src/worker.js) */
  #workerUrl;
  /** The workers, each holding the model once loaded; the first also downloads and orders. */
  #slots;
  /** The last successful load, kept to load the model again into a fresh worker; null when none. */
  #model = null;
  /** Why the last load failed, for the message of calls that find no model. */
  #lastLoadError = null;
  /** The worker converting a Hugging Face model for the running load, if any. */
  #converter = null;
  /** The `device` option: what a load asks of the first worker. */
  #device;

  /**
   * @param {number} threads how many workers
   * @param {string | null} wasmUrl where the worker loads the .wasm from (null: next to the glue)
   * @param {string | null} [workerUrl] the worker script, an absolute URL (null: src/worker.js)
   * @param {string} [device] a Device: where the first worker's load runs the encoder
   */
  constructor(threads, wasmUrl, workerUrl = null, device = Device.AUTO) {
    this.#wasmUrl = wasmUrl;
    this.#workerUrl = workerUrl;
    this.#device = device;
    this.#slots = Array.from({ length: threads }, () => new WorkerSlot(workerUrl));
    this.#slots[0].onInfo = (changed) => this.#infoChanged(changed);
  }

  /** How many workers share each call. */
  get size() {
    return this.#slots.length;
  }

  /** The loaded model's description, or null. */
  get info() {
    return this.#model?.info ?? null;
  }

  /**
   * Loads a model (a `load` request's `source`, `cache` and `sha256`; a `{ folder, name, dtype }`
   * source is converted first) into every worker. Resolves to the model's info.
   */
  async load({ source, cache, sha256 }, onProgress) {
    this.#model = null;
    this.#lastLoadError = null;
    // Workers still holding the previous model free it when their load request comes.
    for (const slot of this.#slots) slot.hasModel = false;
    const [first, ...others] = this.#slots;
    try {
      // A converted model reaches the worker as bytes; what the conversion's cache said goes with it.
      let cacheInfo = null;
      if (source.folder) ({ source, cacheInfo } = await this.#convert(source, cache, onProgress));
      const { info, bytes } = await first.request(
        { kind: RequestKind.LOAD, source, cache, sha256, wasmUrl: this.#wasmUrl, cacheInfo, device: this.#device, selfCheck: true },
        onProgress,
      );
      first.hasModel = true;
      // The first worker returns the file's bytes when they are not in the Cache API: keep them,
      // so that the other workers, and any fresh one later, load the model without the network
      // (and read the cache without asking the server again).
      const model = { source: bytes ? { bytes } : source, cache: CacheMode.RESTORE, sha256, info };
      if (info.device === Device.WEBGPU) {
        // Idle until the GPU is lost: end the workers that still hold the previous model.
        for (const slot of others) slot.stop(new RerankerError(ErrorCode.ABORTED, 'the model now runs on WebGPU, in one worker'));
      } else {
        await Promise.all(others.map((slot) => this.#restore(slot, model)));
      }
      this.#model = model;
      return info;
    } catch (error) {
      for (const slot of this.#slots) slot.hasModel = false;
      this.#lastLoadError = error;
      throw error;
    }
  }

  /**
   * Scores and orders `requests` (`[{ query, documents, firstStage? }]`) with the ranking
   * `options`; resolves to one ordered result list per request. `call.settled` turning true (an
   * abort) stops new chunks from starting; `many` says whether the caller gave a list of requests,
   * so that an error found in one of them names it (`requests[2]: …`).
   */
  async score(requests, options, { call, onProgress, many }) {
    if (!this.#model) {
      const reason = this.#lastLoadError ? ` (the last load failed: ${this.#lastLoadError.message})` : '';
      throw new RerankerError(ErrorCode.NOT_LOADED, `no model is loaded${reason}`, { cause: this.#lastLoadError ?? undefined });
    }
    const model = this.#model;
    const slots = this.#working(model);
    const chunks = planChunks(requests, slots.length, model.info.device === Device.WEBGPU ? MAX_GPU_CHUNK : MAX_CHUNK);
    const total = chunks.reduce((sum, chunk) => sum + chunk.size, 0);
    const scored = requests.map((request) => new Array(request.documents.length));
    let next = 0;
    let done = 0;
    let failed = false;
    // Each worker takes the next chunk when it is free; after a failure (or an abort) no new
    // chunk starts, and what is still running is ignored.
    const drain = async (slot) => {
      while (next < chunks.length && !failed && !call.settled) {
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
        if (onProgress && !call.settled) onProgress({ status: 'rerank', scored: done, total });
      }
    };
    await Promise.all(slots.map(drain));

    await this.#restore(this.#slots[0], model);
    const ordered = await this.#slots[0].request({
      kind: RequestKind.ORDER,
      requests: requests.map((request, i) => ({ scored: scored[i], firstStage: request.firstStage })),
      options,
    });
    return ordered;
  }

  /**
   * Ends the workers busy with the running call, and a conversion, rejecting their requests with
   * `error`: inside wasm they read no messages. Idle workers keep their model.
   */
  interrupt(error) {
    for (const slot of this.#slots) if (slot.busy) slot.stop(error);
    this.#converter?.stop(error);
  }

  /**
   * Loads the model again into the workers that lost it (after interrupt). A failure here is not
   * reported: the next rerank tries again and reports it.
   */
  async restore() {
    const model = this.#model;
    if (!model) return;
    await Promise.all(this.#working(model).map((slot) => this.#restore(slot, model))).catch(() => {});
  }

  /** The workers that share a call: the first alone while the model runs on WebGPU, else all. */
  #working(model) {
    return model.info.device === Device.WEBGPU ? [this.#slots[0]] : this.#slots;
  }

  /**
   * Fields of the first worker's info changed: its device (its GPU was lost, or a fresh one could
   * not get it back), or its int8 dot sequence (its probe chose; the other workers run the same CPU).
   */
  #infoChanged(changed) {
    if (this.#model) this.#model.info = { ...this.#model.info, ...changed };
  }

  /** Terminates every worker, which frees all of their memory at once. */
  dispose(error) {
    for (const slot of this.#slots) slot.stop(error);
    this.#converter?.stop(error);
    this.#model = null;
  }

  /**
   * A Hugging Face folder converted to GGUF bytes in a worker of its own, ended afterwards so that
   * the memory conversion needs does not stay in the pool. Aborting the load ends it too. Resolves
   * to `{ source: { bytes }, cacheInfo }` (cacheInfo: the info.cache of the conversion's cache).
   */
  async #convert({ folder, name, dtype }, cache, onProgress) {
    const slot = new WorkerSlot(this.#workerUrl);
    this.#converter = slot;
    try {
      const { bytes, cacheInfo } = await slot.request({ kind: RequestKind.CONVERT, folder, source: name, dtype, cache, wasmUrl: this.#wasmUrl }, onProgress);
      return { source: { bytes }, cacheInfo };
    } finally {
      slot.stop(new RerankerError(ErrorCode.ABORTED, 'the conversion was stopped'));
      if (this.#converter === slot) this.#converter = null;
    }
  }

  /**
   * Loads `model` into a worker that lacks it (a fresh one after an abort or a crash, or the others
   * after the first's load). On the device the model already runs on, without a second self-check:
   * the first worker asks for WebGPU again as the `device` option did if it ran there (with
   * "auto", wasm if the GPU is gone; with "webgpu", the load fails as the first would have); every
   * other worker is wasm.
   */
  async #restore(slot, model) {
    if (!model || slot.hasModel) return;
    const { source, cache, sha256 } = model;
    const first = slot === this.#slots[0];
    const device = first && model.info.device === Device.WEBGPU ? this.#device : Device.WASM;
    const { info } = await slot.request({ kind: RequestKind.LOAD, source, cache, sha256, wasmUrl: this.#wasmUrl, device, selfCheck: false });
    slot.hasModel = true;
    if (first && device !== Device.WASM && info.device !== Device.WEBGPU && this.#model === model) this.#infoChanged({ device: info.device, gpu: info.gpu, fallback: info.fallback });
  }
}

/**
 * A chunk's `invalid_input` error about one of rerankMany's requests, naming it (`requests[2]: the
 * query is empty`), which the worker found (see worker.js `withRequest`).
 */
function namingRequest(error, chunk) {
  if (!(error instanceof RerankerError) || error.code !== ErrorCode.INVALID_INPUT) return error;
  const part = chunk.requests[requestIndexOf(error)];
  if (!part) return error;
  return new RerankerError(error.code, `requests[${part.from}]: ${error.message}`, { cause: error });
}

/**
 * Splits the documents of `requests` into chunks for `threads` workers, longest first (so that
 * the long ones do not end up last on one worker, and similar lengths share a batch), at most
 * `maxChunk` documents each (progress and abort come between chunks). With one worker, at least
 * four chunks (for progress and abort) of sizes that differ by at most one. With several, each
 * chunk takes a 1/(2 × threads) share of the documents still unassigned (guided scheduling):
 * large chunks first, single documents last, so that no worker sits idle long while another
 * finishes a big last chunk (even sizes left one worker up to a whole chunk of documents behind).
 * Each chunk is `{ size, requests: [{ from, query, documents, indices }] }`: `from` is the
 * request's position, `indices` the documents' positions in it.
 */
export function planChunks(requests, threads, maxChunk) {
  const items = [];
  requests.forEach((request, from) => request.documents.forEach((text, index) => items.push({ from, index, length: text.length })));
  // Stable, so equal lengths keep input order.
  items.sort((a, b) => b.length - a.length);
  const chunks = [];
  let start = 0;
  for (const size of chunkSizes(items.length, threads, maxChunk)) {
    const byRequest = new Map();
    for (const { from, index } of items.slice(start, start + size)) {
      if (!byRequest.has(from)) byRequest.set(from, { from, query: requests[from].query, documents: [], indices: [] });
      const part = byRequest.get(from);
      part.documents.push(requests[from].documents[index]);
      part.indices.push(index);
    }
    chunks.push({ size, requests: [...byRequest.values()] });
    start += size;
  }
  return chunks;
}

/** The chunk sizes of {@link planChunks} for `n` documents. */
function chunkSizes(n, threads, maxChunk) {
  if (threads <= 1) {
    // Sizes that differ by at most one, the larger first (a fixed size left a small remainder).
    const count = Math.min(n, Math.max(Math.ceil(n / maxChunk), 4));
    const [base, larger] = [Math.floor(n / count), n % count];
    return Array.from({ length: count }, (_, c) => base + (c < larger ? 1 : 0));
  }
  const sizes = [];
  for (let left = n; left > 0; ) {
    const size = Math.min(maxChunk, Math.max(1, Math.ceil(left / (2 * threads))));
    sizes.push(size);
    left -= size;
  }
  return sizes;
}

/** Documents per chunk at most: small, so that progress and abort come often (a worker's batches hold 128 tokens whatever the chunk). */
const MAX_CHUNK = 8;
/**
 * On WebGPU: larger chunks, so that a chunk fills the GPU's batches (batchSize pairs each) rather
 * than a few rows each; still several per call for progress and abort.
 */
const MAX_GPU_CHUNK = 64;
