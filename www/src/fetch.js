// The network: files downloaded with progress events, and the validators (ETag, Last-Modified,
// Content-Length) that tell one version of a file from the next. Every HTTP request crossrank
// makes is here, so that a runtime with another way to fetch has one module to replace, and so
// that HTTP's error cases (the Hub's X-Error-Code, 401/403 on a gated repository, a fetch that
// failed without a response, as a CORS refusal does) are named the same way for every file.

import { isFileUrl, readFile } from './node/files.js';
import { progressReporter } from './progress.js';
import { ErrorCode, RerankerError } from './protocol.js';

/**
 * The file at `url` with its validator and Content-Type, reporting `progress` events (see
 * ProgressInfo in index.d.ts) to `onProgress`, and `(loaded, total)` to `onTotal`; `optional` files
 * that are not there (404) give null. Errors name the URL and what to do (see fetchError and
 * httpError); `hint` is added to a 404's message (e.g. "did you mean …/?").
 * @returns {Promise<{ bytes: Uint8Array, validator: string, contentType: string } | null>}
 */
export async function download(url, { optional = false, onProgress, onTotal, hint = '' } = {}) {
  // Node, Deno and Bun: a file: URL (a model given as a path) is read from disk, with a bound.
  if (isFileUrl(url)) return readFile(url, { optional, onProgress, onTotal });
  let response;
  try {
    response = await fetch(url);
  } catch (error) {
    throw fetchError(url, error);
  }
  if (optional && response.status === 404) return null;
  if (!response.ok) throw httpError(url, response, hint);
  const validator = validatorOf(response);
  // Content-Length counts encoded bytes; with a Content-Encoding the decoded size is unknown.
  const encoding = response.headers.get('content-encoding');
  const total = encoding && encoding !== 'identity' ? 0 : Number(response.headers.get('content-length')) || 0;

  let buffer = new Uint8Array(total);
  let loaded = 0;
  const progress = progressReporter(url, total, onProgress, onTotal);
  try {
    if (!response.body) {
      buffer = new Uint8Array(await response.arrayBuffer());
      loaded = buffer.length;
    } else {
      const reader = response.body.getReader();
      for (;;) {
        const { done, value } = await reader.read();
        if (done) break;
        if (loaded + value.length > buffer.length) {
          const grown = new Uint8Array(Math.max(buffer.length * 2, loaded + value.length, 1 << 20));
          grown.set(buffer.subarray(0, loaded));
          buffer = grown;
        }
        buffer.set(value, loaded);
        loaded += value.length;
        progress.advance(loaded);
      }
    }
  } catch (error) {
    throw new RerankerError(ErrorCode.FETCH, `download of ${url} failed after ${loaded} bytes: ${error?.message ?? error}`, { cause: error });
  }
  progress.done(loaded);
  const contentType = response.headers.get('content-type') ?? '';
  return { bytes: loaded === buffer.length ? buffer : buffer.slice(0, loaded), validator, contentType };
}

/**
 * For several downloads that make one thing (a Hugging Face folder), a function `(url, loaded,
 * total)` that records one file's progress and reports the sum as a `total` event; the total is 0
 * until every file's size is known.
 */
export function progressTotal(onProgress) {
  const sizes = new Map();
  return (url, loaded, total) => {
    sizes.set(url, { loaded, total });
    const all = [...sizes.values()];
    const sum = (field) => all.reduce((acc, entry) => acc + entry[field], 0);
    const known = all.every((entry) => entry.total > 0);
    onProgress({ status: 'total', loaded: sum('loaded'), total: known ? sum('total') : 0, progress: known ? (100 * sum('loaded')) / Math.max(1, sum('total')) : 0 });
  };
}

/**
 * What identifies a version of a file: its ETag, else Last-Modified, else its length. A page reads
 * a cross-origin response's ETag only where the server lists it in Access-Control-Expose-Headers
 * (Last-Modified and Content-Length are always readable), so the same server may give a weaker one.
 */
export function validatorOf(response) {
  const etag = response.headers.get('etag');
  if (etag) return `etag ${etag.replace(/^W\//, '')}`;
  const modified = response.headers.get('last-modified');
  if (modified) return `modified ${modified}`;
  return `length ${response.headers.get('content-length') ?? '?'}`;
}

/**
 * Whether `validator` tells one version of a file from the next. A length alone does not: a file
 * replaced by one of the same size (a fine-tuned model of the same shape) keeps it.
 */
export function isStrongValidator(validator) {
  return validator.startsWith('etag ') || validator.startsWith('modified ');
}

/**
 * The validator the server gives `url` now (a HEAD request), or null when it cannot say: an error
 * status (405, 5xx) or no network.
 */
export async function currentValidator(url) {
  try {
    const head = await fetch(url, { method: 'HEAD', cache: 'no-store' });
    return head.ok ? validatorOf(head) : null;
  } catch {
    return null;
  }
}

/**
 * 'html' or 'json' when `bytes` start like a web page or a JSON document (a login wall, a 200
 * "not found" page, an error from the server) rather than the file that was asked for; else null.
 */
export function servedInstead(bytes) {
  const start = new TextDecoder().decode(bytes.subarray(0, 64)).trimStart().toLowerCase();
  if (start.startsWith('<!doctype') || start.startsWith('<html')) return 'html';
  if (start.startsWith('{')) return 'json';
  return null;
}

/**
 * A fetch that threw (no HTTP response at all): the network failed, or the browser refused the
 * response because the server does not allow cross-origin requests. The page cannot tell which
 * (both are a bare TypeError, the CORS reason only reaches the console), so the message names both.
 */
export function fetchError(url, error) {
  if (error instanceof TypeError) {
    return new RerankerError(ErrorCode.FETCH,
      `could not fetch ${url}: the network failed (offline?) or the server does not allow cross-origin requests ` +
      "(CORS: it must send Access-Control-Allow-Origin for this page's origin; the browser's console names the reason)",
      { cause: error });
  }
  return new RerankerError(ErrorCode.FETCH, `could not fetch ${url}: ${error?.message ?? error}`, { cause: error });
}

/**
 * The error for an HTTP error `response` to `url`. The Hugging Face Hub says why in the
 * X-Error-Code header (and X-Error-Message), readable where the server exposes them; without
 * them, the status alone, with `hint` for a 404.
 */
export function httpError(url, response, hint = '') {
  const status = `HTTP ${response.status}`;
  const code = response.headers.get('x-error-code');
  const said = response.headers.get('x-error-message');
  const hubSays = said ? ` (the Hub says: ${said})` : '';
  const fail = (message) => new RerankerError(ErrorCode.FETCH, `could not fetch ${url}: ${message}`);
  switch (code) {
    case 'RepoNotFound':
      return fail(`${status}, repository not found (RepoNotFound)${hubSays}: check the model id; ` +
        'a private repository needs a Hugging Face token, which a browser page cannot send safely: serve its files from a mirror of your own');
    case 'GatedRepo':
      return fail(`${status}, a gated repository (GatedRepo)${hubSays}: accept its licence on the Hub, then serve its files from a mirror ` +
        'of your own (hubUrl, or a folder URL): a browser page cannot send your Hugging Face token safely');
    case 'RevisionNotFound':
      return fail(`${status}, revision not found (RevisionNotFound)${hubSays}: check the revision option (a branch, tag or commit of the repository)`);
    case 'EntryNotFound':
      return fail(`${status}, the repository has no such file at this revision (EntryNotFound)${hubSays}`);
    case null:
      break;
    default:
      return fail(`${status} (${code})${hubSays}`);
  }
  if (response.status === 401 || response.status === 403) {
    return fail(`${status} (a gated or private repository: the browser cannot send your Hugging Face token; serve the files yourself)`);
  }
  return fail(`${status} ${response.statusText}`.trimEnd() + (response.status === 404 ? hint : ''));
}
