// The network: files downloaded with progress events, and the validators (ETag, Last-Modified,
// Content-Length) that tell one version of a file from the next. Every HTTP request crossrank
// makes is here, so that a runtime with another way to fetch has one module to replace, and so
// that HTTP's error cases (401/403 on a gated repository, an HTML page served instead of a file)
// are named the same way for every file.

import { isFileUrl, readFile } from './node/files.js';
import { ErrorCode, RerankerError } from './protocol.js';

/**
 * The file at `url` with its validator, reporting `progress` events (see ProgressInfo in
 * index.d.ts) to `onProgress`, and `(loaded, total)` to `onTotal`; `optional` files that are not
 * there (404) give null. HTTP errors name the URL and, for 401/403, the likely reason.
 * @returns {Promise<{ bytes: Uint8Array, validator: string } | null>}
 */
export async function download(url, { optional = false, onProgress, onTotal } = {}) {
  // Node, Deno and Bun: a file: URL (a model given as a path) is read from disk, with a bound.
  if (isFileUrl(url)) return readFile(url, { optional, onProgress, onTotal });
  let response;
  try {
    response = await fetch(url);
  } catch (error) {
    throw new RerankerError(ErrorCode.FETCH, `could not fetch ${url}: ${error?.message ?? error}`, { cause: error });
  }
  if (optional && response.status === 404) return null;
  if (response.status === 401 || response.status === 403) {
    throw new RerankerError(ErrorCode.FETCH,
      `could not fetch ${url}: HTTP ${response.status} (a gated or private repository: the browser cannot send your Hugging Face token; serve the files yourself)`);
  }
  if (!response.ok) {
    throw new RerankerError(ErrorCode.FETCH, `could not fetch ${url}: HTTP ${response.status} ${response.statusText}`.trimEnd());
  }
  const validator = validatorOf(response);
  // Content-Length counts encoded bytes; with a Content-Encoding the decoded size is unknown.
  const encoding = response.headers.get('content-encoding');
  const total = encoding && encoding !== 'identity' ? 0 : Number(response.headers.get('content-length')) || 0;

  let buffer = new Uint8Array(total);
  let loaded = 0;
  let lastReported = -1;
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
        // One event per whole percent (or per MiB when the size is unknown) is plenty.
        const step = total ? Math.floor((loaded / total) * 100) : Math.floor(loaded / (1 << 20));
        if (step !== lastReported && (!total || loaded < total)) {
          lastReported = step;
          const progress = total ? Math.min(100, (loaded / total) * 100) : 0;
          onProgress?.({ status: 'progress', file: url, loaded, total, progress });
          onTotal?.(loaded, total);
        }
      }
    }
  } catch (error) {
    throw new RerankerError(ErrorCode.FETCH, `download of ${url} failed after ${loaded} bytes: ${error?.message ?? error}`, { cause: error });
  }
  onProgress?.({ status: 'progress', file: url, loaded, total: loaded, progress: 100 });
  onTotal?.(loaded, loaded);
  return { bytes: loaded === buffer.length ? buffer : buffer.slice(0, loaded), validator };
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

/** What identifies a version of a file: its ETag, else Last-Modified, else its length. */
export function validatorOf(response) {
  const etag = response.headers.get('etag');
  if (etag) return `etag ${etag.replace(/^W\//, '')}`;
  const modified = response.headers.get('last-modified');
  if (modified) return `modified ${modified}`;
  return `length ${response.headers.get('content-length') ?? '?'}`;
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
