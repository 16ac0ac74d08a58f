// One Web Worker (src/worker.js) and the requests sent to it: the page's end of protocol.js, which
// matches replies to requests by id and turns a dead worker into rejected requests. spawn.js starts
// the worker (in Node, Deno and Bun a worker_threads thread that looks like one: node/threads.js),
// so neither this module nor the pool above it changes with the runtime.

import { ErrorCode, RerankerError, ReplyKind } from './protocol.js';
import { startWorker, workerFailure } from './spawn.js';

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
  /** The `workerUrl` option: an absolute URL of worker.js, or null for the package's own. */
  #workerUrl;
  /** Told the fields of the worker's model info that changed (an `info` reply: protocol.js). */
  onInfo = null;

  /** @param {string | null} [workerUrl] */
  constructor(workerUrl = null) {
    this.#workerUrl = workerUrl;
  }

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
    const worker = startWorker(this.#workerUrl);
    worker.addEventListener('message', (event) => this.#onReply(worker, event.data));
    worker.addEventListener('error', (event) => {
      event.preventDefault();
      this.#failed(worker, workerFailure(worker, event)); // worker_start if it never said `ready`
    });
    worker.addEventListener('messageerror', () => this.#crashed(worker, 'the worker sent a message that could not be read'));
    this.#worker = worker;
    this.hasModel = false;
    return worker;
  }

  #onReply(worker, reply) {
    if (worker !== this.#worker) return; // from a worker already terminated
    if (reply.kind === ReplyKind.INFO) {
      this.onInfo?.(reply.info);
      return;
    }
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
    this.#failed(worker, new RerankerError(ErrorCode.WORKER_CRASHED, message));
  }

  /** The worker died or never started: what it was doing fails with `error`. */
  #failed(worker, error) {
    if (worker !== this.#worker) return;
    this.stop(error);
  }
}

/** For a worker's error about one request of a chunk, that request's position in the chunk. */
const requestOfError = new WeakMap();

/** The position, in the chunk it was sent, of the request a worker's error is about; or undefined. */
export function requestIndexOf(error) {
  return requestOfError.get(error);
}
