// Node's worker_threads as the Web Worker that slot.js expects: postMessage, terminate, and
// `message`, `error` and `messageerror` events. Used by every runtime that has worker_threads: Node
// (which has no Web Worker), and Deno and Bun, whose Web Workers would work too but keep the process
// alive until terminated, so a script that forgets dispose() would never exit; a thread can be
// unref'd while idle. The thread runs node/worker.js, which is worker.js's message loop with the
// thread's parentPort standing in for `self`. The pool, the slots and the protocol do not change.

import { ReplyKind } from '../protocol.js';
import { builtin } from './files.js';

/**
 * Whether workers are worker_threads here: in Node, Deno and Bun (`process.versions.node`), but
 * not in a page (an Electron renderer has both, and its Web Worker is the one to use).
 */
export function usesThreads() {
  return typeof globalThis.process?.versions?.node === 'string' && typeof globalThis.document === 'undefined';
}

// Kept apart from `new URL(…)` below on purpose: bundlers treat `new URL('…', import.meta.url)` as a
// file to emit, and a browser build has no use for the thread's entry.
const HERE = import.meta.url;

export class ThreadWorker extends EventTarget {
  /** @type {import('node:worker_threads').Worker | null} null until worker_threads has loaded */
  #thread = null;
  /** Messages posted before the thread existed, sent once it does. */
  #queued = [];
  #terminated = false;
  /**
   * Ids of requests not answered yet. The thread keeps the process alive only while there are
   * some: a script that forgets dispose() still exits, and one awaiting a call does not exit early.
   */
  #unanswered = new Set();

  constructor() {
    super();
    builtin('node:worker_threads').then(({ Worker: Thread }) => {
      if (this.#terminated) return;
      // A thread inherits the process's Node options; --input-type (`node --input-type=module -e`)
      // is refused for a file entry.
      const execArgv = globalThis.process.execArgv.filter((arg) => !arg.startsWith('--input-type'));
      const thread = new Thread(new URL('./worker.js', HERE), { execArgv });
      thread.on('message', (data) => this.#onMessage(data));
      thread.on('error', (error) => this.#fail(error?.message ?? String(error)));
      thread.on('messageerror', () => this.dispatchEvent(new Event('messageerror')));
      // An exit we did not ask for (process.exit in the thread, or after an error, reported above).
      thread.on('exit', (code) => this.#fail(`the worker thread exited with code ${code}`));
      this.#thread = thread;
      for (const [message, transfer] of this.#queued) this.postMessage(message, transfer);
      this.#queued = [];
      this.#keepAlive();
    }, (error) => this.#fail(`worker_threads could not be loaded: ${error?.message ?? error}`));
  }

  postMessage(message, transfer = []) {
    if (this.#terminated) return;
    if (message?.id !== undefined) this.#unanswered.add(message.id);
    if (!this.#thread) {
      this.#queued.push([message, transfer]);
      return;
    }
    this.#thread.postMessage(message, transfer);
    this.#keepAlive();
  }

  terminate() {
    if (this.#terminated) return;
    this.#terminated = true;
    this.#queued = [];
    // Its events are ignored from now on (#onMessage, #fail), as a terminated Web Worker sends none.
    void this.#thread?.terminate();
  }

  #onMessage(data) {
    if (this.#terminated) return;
    // See protocol.js: a request gets exactly one `result` or `error` reply.
    if (data?.kind === ReplyKind.RESULT || data?.kind === ReplyKind.ERROR) {
      this.#unanswered.delete(data.id);
      this.#keepAlive();
    }
    this.dispatchEvent(new MessageEvent('message', { data }));
  }

  #fail(message) {
    if (this.#terminated) return;
    this.terminate();
    // As a Web Worker's ErrorEvent: slot.js reads `message` and calls preventDefault().
    this.dispatchEvent(Object.assign(new Event('error', { cancelable: true }), { message }));
  }

  #keepAlive() {
    if (this.#unanswered.size > 0) this.#thread?.ref();
    else this.#thread?.unref();
  }
}
