// The call queue: a Reranker runs one call at a time (its workers are shared by the whole call),
// and calls made meanwhile wait here, oldest first. Aborting a waiting call takes it out of the
// line; aborting the running one asks the owner to interrupt the work (workers busy inside wasm
// read no messages and must be ended). Its own module because ordering and abort are the same for
// any pool or backend behind it.

import { ErrorCode, RerankerError } from './protocol.js';

export class CallQueue {
  /** Calls not started yet, oldest first. */
  #waiting = [];
  /** The call whose work is in the workers now. */
  #running = null;
  #closed = false;
  #onInterrupt;

  /** @param {(error: RerankerError) => void} onInterrupt ends the running call's work when it is aborted */
  constructor(onInterrupt) {
    this.#onInterrupt = onInterrupt;
  }

  /**
   * Runs `call` (`{ kind, signal?, run(call) }`) after those before it and settles with what `run`
   * returns. `run` gets the call back: `call.settled` turns true once it was aborted, after which
   * nobody reads its result and it should start no new work.
   */
  add(call) {
    const { signal } = call;
    if (signal?.aborted) return Promise.reject(abortError(signal));
    return new Promise((resolve, reject) => {
      call.resolve = resolve;
      call.reject = reject;
      if (signal) {
        call.onAbort = () => this.#abort(call);
        signal.addEventListener('abort', call.onAbort, { once: true });
      }
      this.#waiting.push(call);
      this.#pump();
    });
  }

  /** Runs `run` before every waiting call, for work nobody waits for (a restore after an abort). */
  addFirst(run) {
    this.#waiting.unshift({ internal: true, run });
  }

  /** Whether a call of `kind` is waiting. */
  has(kind) {
    return this.#waiting.some((call) => call.kind === kind);
  }

  /** Rejects the running call and every waiting one with `error`, and runs nothing more. */
  close(error) {
    this.#closed = true;
    for (const call of [this.#running, ...this.#waiting]) if (call) settle(call, false, error);
    this.#waiting = [];
  }

  async #pump() {
    if (this.#running || this.#closed) return;
    const call = this.#waiting.shift();
    if (!call) return;
    this.#running = call;
    try {
      settle(call, true, await call.run(call));
    } catch (error) {
      settle(call, false, error);
    }
    this.#running = null;
    this.#pump();
  }

  #abort(call) {
    if (call.settled) return;
    const error = abortError(call.signal);
    if (this.#running === call) {
      this.#onInterrupt(error);
    } else {
      this.#waiting.splice(this.#waiting.indexOf(call), 1);
    }
    settle(call, false, error);
  }
}

function settle(call, ok, value) {
  if (call.settled) return;
  call.settled = true;
  call.signal?.removeEventListener('abort', call.onAbort);
  if (call.internal) return;
  if (ok) call.resolve(value);
  else call.reject(value);
}

function abortError(signal) {
  const reason = signal.reason;
  const detail = reason instanceof Error && reason.name !== 'AbortError' ? `: ${reason.message}` : '';
  return new RerankerError(ErrorCode.ABORTED, `the operation was aborted${detail}`, { cause: reason });
}
