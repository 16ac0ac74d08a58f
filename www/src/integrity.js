// sha256 of model bytes: the `sha256` load option, and the check that a cached file is still the
// one that option names. Its own module because both the load (worker.js) and the cache
// (cache.js) need it, and because it is the one place that depends on crypto.subtle (a secure
// context in a browser; another runtime brings its own).

import { ErrorCode, RerankerError } from './protocol.js';

/** Rejects with `integrity` unless `bytes` hash to `expected` (lowercase hex); `what` names them. */
export async function verify(bytes, expected, what) {
  const actual = await sha256Hex(bytes);
  if (actual !== expected) {
    throw new RerankerError(ErrorCode.INTEGRITY, `sha256 of ${what} is ${actual}, expected ${expected}`);
  }
}

export async function sha256Hex(bytes) {
  if (!globalThis.crypto?.subtle) {
    throw new RerankerError(ErrorCode.UNSUPPORTED, 'checking sha256 needs crypto.subtle, which browsers offer only in secure contexts (https or localhost)');
  }
  const digest = new Uint8Array(await crypto.subtle.digest('SHA-256', bytes));
  return Array.from(digest, (byte) => byte.toString(16).padStart(2, '0')).join('');
}
