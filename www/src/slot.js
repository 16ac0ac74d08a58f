// One Web Worker (src/worker.js) and the requests sent to it: the page's end of protocol.js, which
// matches replies to requests by id and turns a dead worker into rejected requests. Its own module
// because it is the one place a Worker is created (in Node, Deno and Bun, a worker_threads thread
// that looks like one: node/threads.js), so the pool above it does not change with the runtime.

import { usesThreads, ThreadWorker } from './node/threads.js';
import { ErrorCode, RerankerError, ReplyKind } from './protocol.js';

/**
 * One worker and the requests sent to it. A worker that dies (or is terminated) takes its
 * requests with it, rejected; the next request starts a fresh worker, without the model.
 */
export class WorkerSlot {
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
    // Node, Deno and Bun: a worker_threads thread stands in for it (node/threads.js).
    const worker = usesThreads() ? new ThreadWorker() : new Worker(new URL('./worker.js', import.meta.url), { type: 'module' });
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

/** The position, in the chunk it was sent, of the request a worker's error is about; or undefined. */
export function requestIndexOf(error) {
  return requestOfError.get(error);
}
