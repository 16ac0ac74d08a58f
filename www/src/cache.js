// The Cache API: where model files (downloaded GGUF files, and GGUF files converted from a Hugging
// Face folder) are kept between visits, under their URL, with the validators of the files they
// were made from so that a changed file on the server is noticed (see CacheMode in protocol.js).
// Separate from fetch.js because storing is not fetching: another runtime (the file system under
// Node) replaces this module and keeps the network one.
//
// The cache is an optimisation: every failure here (no secure context, quota, private browsing)
// reads as a miss or a write not done, and the caller falls back to the network.

import { CACHE_NAME, CacheMode } from './protocol.js';
import { currentValidator, isStrongValidator } from './fetch.js';
import { sha256Hex } from './integrity.js';

/** Cache API header holding `[[url, validator], …]` of the files an entry was made from. */
const SOURCES_HEADER = 'x-crossrank-sources';

/**
 * What a load says of its file and the cache, as `info.cache` (CacheInfo in index.d.ts):
 * DOWNLOADED from the server; REVALIDATED: read from the cache after the server confirmed (ETag or
 * Last-Modified) that it is unchanged; UNVALIDATED: read from the cache without that confirmation
 * (offline, no answer to the HEAD, or no validator but the length), `message` saying why.
 */
export const CacheStatus = Object.freeze({
  DOWNLOADED: 'downloaded',
  REVALIDATED: 'revalidated',
  UNVALIDATED: 'unvalidated',
});

/**
 * info.cache for a file made from `sources` (`[[url, validator], …]`) just downloaded; where it
 * was stored and a source has no validator but its length, the message says that later loads
 * cannot tell a changed file from it.
 */
export function downloadedInfo(sources, stored) {
  const weak = sources.filter(([, validator]) => !isStrongValidator(validator)).map(([url]) => url);
  return stored && weak.length > 0
    ? { status: CacheStatus.DOWNLOADED, message: `stored in the Cache API, but later loads cannot revalidate it: ${noValidator(weak)}` }
    : { status: CacheStatus.DOWNLOADED };
}

/** Why a file from `urls` cannot be revalidated, and the fix. */
function noValidator(urls) {
  const origins = [...new Set(urls.map((url) => new URL(url).origin))].join(', ');
  return `${origins} gives this page neither an ETag nor a Last-Modified header (a cross-origin server must name ETag in ` +
    'Access-Control-Expose-Headers), only the length, so a changed file of the same size would be served from the cache: ' +
    "expose ETag (or send Last-Modified), or load with cache: 'reload' after changing the model";
}

/**
 * The cache for files under `url`, used as `mode` says. Where there is none (mode "no-store", no
 * Cache API, a URL that is not http(s)) it is one that never hits and never stores.
 * @returns {Promise<ModelCache>}
 */
export async function openCache(url, mode) {
  if (mode === CacheMode.NO_STORE || typeof caches === 'undefined' || !/^https?:/.test(url)) return new ModelCache(null, mode);
  try {
    return new ModelCache(await caches.open(CACHE_NAME), mode);
  } catch {
    return new ModelCache(null, mode);
  }
}

class ModelCache {
  /** @type {Cache | null} */
  #store;
  #mode;

  constructor(store, mode) {
    this.#store = store;
    this.#mode = mode;
  }

  /**
   * The cached bytes for `key` and what to say of them (`cache`: CacheStatus and a message), or
   * null. In mode "default" the files it was made from are asked for again (HEAD) and a changed
   * ETag, Last-Modified or Content-Length drops the entry; a network failure keeps it (offline is
   * what the cache is for). With `sha256`, an entry with another digest is dropped: the file at
   * this URL has changed since it was cached.
   * @returns {Promise<{ bytes: Uint8Array, cache: { status: string, message?: string } } | null>}
   */
  async read(key, { sha256 } = {}) {
    if (!this.#store || this.#mode === CacheMode.RELOAD) return null;
    try {
      const response = await this.#store.match(key);
      if (!response) return null;
      let cache = { status: CacheStatus.UNVALIDATED, message: 'read from the Cache API without asking the server' };
      if (this.#mode === CacheMode.DEFAULT) {
        cache = await revalidate(response);
        if (!cache) {
          await this.#store.delete(key);
          return null;
        }
      }
      const bytes = new Uint8Array(await response.arrayBuffer());
      if (sha256 && (await sha256Hex(bytes)) !== sha256) {
        await this.#store.delete(key);
        return null;
      }
      return { bytes, cache };
    } catch {
      return null;
    }
  }

  /** Stores `bytes` under `key`, made from `sources` (`[[url, validator], …]`); whether it did. */
  async write(key, bytes, sources) {
    if (!this.#store) return false;
    try {
      const headers = {
        'content-type': 'application/octet-stream',
        'content-length': String(bytes.length),
        [SOURCES_HEADER]: JSON.stringify(sources),
      };
      await this.#store.put(key, new Response(bytes, { headers }));
      return true;
    } catch {
      return false;
    }
  }

  async delete(key) {
    await this.#store?.delete(key).catch(() => {});
  }
}

/**
 * Whether a cached entry may be used: null when a file it was made from has changed (or it
 * records none), else its info.cache: REVALIDATED when every source's ETag or Last-Modified is
 * unchanged, UNVALIDATED with the reason when one could only be compared by length or not at all.
 */
async function revalidate(response) {
  let sources;
  try {
    sources = JSON.parse(response.headers.get(SOURCES_HEADER) ?? 'null');
  } catch {
    sources = null;
  }
  // Written by an older build, which kept no validators: cannot tell, so fetch again.
  if (!Array.isArray(sources)) return null;
  // Offline, the cache is what there is; asking would only fail.
  if (globalThis.navigator?.onLine === false) {
    return { status: CacheStatus.UNVALIDATED, message: 'offline: the cached copy was used without asking the server whether it changed' };
  }
  const checks = await Promise.all(sources.map(async ([url, validator]) => ({ url, validator, current: await currentValidator(url) })));
  // null: the server cannot say (405, 5xx) or we are offline: keep what we have.
  if (checks.some(({ validator, current }) => current !== null && current !== validator)) return null;
  const unanswered = checks.filter(({ current }) => current === null).map(({ url }) => url);
  if (unanswered.length > 0) {
    return { status: CacheStatus.UNVALIDATED, message: `no answer to a HEAD request for ${unanswered.join(', ')} (offline, or the server refused it): the cached copy was used as it is` };
  }
  const weak = checks.filter(({ validator }) => !isStrongValidator(validator)).map(({ url }) => url);
  if (weak.length > 0) return { status: CacheStatus.UNVALIDATED, message: `the cached copy could not be revalidated: ${noValidator(weak)}` };
  return { status: CacheStatus.REVALIDATED };
}
