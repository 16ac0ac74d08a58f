// Starting a Web Worker on src/worker.js, wherever the package is served from (in Node, Deno and
// Bun a worker_threads thread, node/threads.js), and the one place where a failure to start one becomes a `worker_start` RerankerError that says the fix.
//
// A page may only start a worker on a script of its own origin: `new Worker(crossOriginUrl)`
// throws a SecurityError. So when crossrank's files come from another origin (a CDN such as
// jsDelivr or unpkg), the worker is a same-origin blob: module whose one line imports worker.js
// from there; worker.js then resolves its imports and the .wasm against its own URL, the CDN's
// (which must send CORS headers, as CDNs do). Its own module so that slot.js only asks for a worker.

import { ThreadWorker, usesThreads } from './node/threads.js';
import { ErrorCode, ReplyKind, RerankerError } from './protocol.js';

/**
 * What spawn.js knows of each worker it started: the script it runs, whether it was started
 * through a blob: bootstrap (and that blob's URL, until revoked), and whether it said `ready`.
 * @type {WeakMap<Worker, { url: string, blobUrl: string | null, bootstrap: boolean, thread: boolean, ready: boolean }>}
 */
const started = new WeakMap();

/**
 * Whether the page's CSP has refused a blob: worker (a document's CSP never loosens, so this stays
 * true): Chromium does not throw for one but fires the worker's `error` event, after the page's
 * `securitypolicyviolation` event, and only the violation says why.
 */
let blobRefused = false;
let watchingViolations = false;

function watchViolations() {
  if (watchingViolations || typeof globalThis.addEventListener !== 'function') return;
  watchingViolations = true;
  globalThis.addEventListener('securitypolicyviolation', (event) => {
    const directive = event.effectiveDirective ?? event.violatedDirective ?? '';
    if (String(event.blockedURI).startsWith('blob') && /^(worker|script|child|default)-src/.test(directive)) blobRefused = true;
  });
}

/**
 * A module worker running src/worker.js, or the script at `workerUrl` (an absolute URL) when one is
 * given. Throws a `worker_start` RerankerError when the browser refuses to create one.
 * @param {string | null} workerUrl
 * @returns {Worker}
 */
export function startWorker(workerUrl) {
  // Node, Deno and Bun: a worker_threads thread that looks like a Worker (node/threads.js). A page's
  // workerUrl does not apply: the thread's entry is read from the package's own files.
  if (usesThreads()) return watchStart(new ThreadWorker(), { url: "crossrank's src/node/worker.js", blobUrl: null, bootstrap: false, thread: true });
  if (typeof globalThis.Worker !== 'function') {
    throw new RerankerError(ErrorCode.WORKER_START,
      'there is no Worker in this JavaScript environment (globalThis.Worker is undefined: a service worker, a worklet, ' +
      'or a runtime without Web Workers?): crossrank runs its model in a module Web Worker; create the Reranker in a page ' +
      'or in a dedicated worker');
  }
  // Not written as `new URL('./worker.js', import.meta.url)`: bundlers would copy worker.js as a plain asset.
  const here = import.meta.url;
  const url = workerUrl ?? new URL('./worker.js', here).href;
  const bootstrap = !mayStartDirectly(url);
  let worker;
  let blobUrl = null;
  try {
    if (bootstrap) {
      ({ worker, blobUrl } = startBootstrap(url));
    } else if (workerUrl !== null) {
      worker = new Worker(workerUrl, { type: 'module' });
    } else {
      // This exact expression is what bundlers (Vite, webpack 5, Parcel) recognise as a worker entry.
      worker = new Worker(new URL('./worker.js', import.meta.url), { type: 'module' });
    }
  } catch (error) {
    if (blobUrl) URL.revokeObjectURL(blobUrl);
    throw refused(error, url, bootstrap);
  }
  return watchStart(worker, { url, blobUrl, bootstrap });
}

/** Records `worker` as started, not yet `ready`, and drops its blob: URL once it is or has failed. */
function watchStart(worker, { url, blobUrl, bootstrap, thread = false }) {
  const state = { url, blobUrl, bootstrap, thread, ready: false };
  started.set(worker, state);
  // The blob's URL is needed until the worker has fetched it: dropped when it says `ready` or fails.
  const settle = (event) => {
    if (event.type === 'message' && event.data?.kind !== ReplyKind.READY) return;
    if (event.type === 'message') state.ready = true;
    if (state.blobUrl) URL.revokeObjectURL(state.blobUrl);
    state.blobUrl = null;
    worker.removeEventListener('message', settle);
    worker.removeEventListener('error', settle);
  };
  worker.addEventListener('message', settle);
  worker.addEventListener('error', settle);
  return worker;
}

/**
 * The error for a worker's `error` event: `worker_start` while it has not said `ready` (its script,
 * or one it imports, did not load or threw at the top level), else `worker_crashed`.
 * @param {Worker} worker a worker from startWorker
 * @param {ErrorEvent | Event} event
 */
export function workerFailure(worker, event) {
  const detail = event.message || 'its script could not be loaded or threw at the top level';
  const state = started.get(worker);
  if (!state || state.ready) return new RerankerError(ErrorCode.WORKER_CRASHED, `the worker failed: ${detail}`);
  const cause = event.error ?? event;
  if (state.thread) {
    return new RerankerError(ErrorCode.WORKER_START,
      `crossrank's worker thread did not start: ${detail}. It runs src/node/worker.js from the installed package (with src/ ` +
      'and pkg/ beside it); a bundle that leaves those files out cannot start it', { cause });
  }
  if (state.bootstrap && blobRefused) return blobsRefused(state.url, detail, cause);
  if (state.bootstrap) {
    return new RerankerError(ErrorCode.WORKER_START,
      `crossrank's worker did not start: a blob: worker importing ${state.url} failed (${detail}). That URL must be ` +
      'crossrank\'s worker.js (URLs that bundle the package, such as jsDelivr\'s /+esm, move it: import its src/index.js), ' +
      'its server must send Access-Control-Allow-Origin (CDNs do), and the page\'s Content-Security-Policy must allow ' +
      'blob: and that origin in worker-src (the worker\'s imports are checked against it); or serve crossrank\'s files ' +
      'from this origin and pass workerUrl',
      { cause });
  }
  return new RerankerError(ErrorCode.WORKER_START,
    `crossrank's worker did not start: ${state.url} failed (${detail}). It must be served as JavaScript, next to the ` +
    'rest of crossrank\'s files (src/ and pkg/, as in the npm package), and be allowed by the page\'s Content-Security-Policy (worker-src)',
    { cause });
}

/**
 * Whether a worker may be started on `url` itself: it has the page's origin, or there is no page
 * whose origin would count (no `location`, as in Deno, whose workers take file: and http: URLs).
 */
function mayStartDirectly(url) {
  const pageOrigin = globalThis.location?.origin;
  if (pageOrigin === undefined) return true;
  return pageOrigin !== 'null' && new URL(url).origin === pageOrigin;
}

/** A same-origin blob: module worker whose one line imports the cross-origin module `url`. */
function startBootstrap(url) {
  watchViolations();
  const source = `import ${JSON.stringify(url)};\n`;
  const blobUrl = URL.createObjectURL(new Blob([source], { type: 'text/javascript' }));
  return { worker: new Worker(blobUrl, { type: 'module' }), blobUrl };
}

/** The page's CSP refused the blob: bootstrap (a SecurityError, or a violation then an `error` event). */
function blobsRefused(url, detail, cause) {
  return new RerankerError(ErrorCode.WORKER_START,
    `the page's Content-Security-Policy refuses blob: workers, which crossrank needs to start its worker from ${url} ` +
    `(another origin): add blob: to worker-src (with that origin), or serve crossrank's files from this origin and pass workerUrl (${detail})`,
    { cause });
}

/** The `worker_start` error for a Worker constructor that threw. */
function refused(error, url, bootstrap) {
  const original = error?.message ?? String(error);
  if (error?.name === 'SecurityError' && bootstrap) return blobsRefused(url, original, error);
  if (error?.name === 'SecurityError') {
    return new RerankerError(ErrorCode.WORKER_START,
      `the browser refused to start a worker from ${url}: the page's Content-Security-Policy must allow it in worker-src ` +
      `(${original})`,
      { cause: error });
  }
  return new RerankerError(ErrorCode.WORKER_START,
    `this browser could not start a module Web Worker from ${url} (${original}): crossrank needs module workers ` +
    '(Chrome 80, Firefox 114, Safari 15 or later)',
    { cause: error });
}
