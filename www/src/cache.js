// The Cache API: where model files (downloaded GGUF files, and GGUF files converted from a Hugging
// Face folder) are kept between visits, under their URL, with the validators of the files they
// were made from so that a changed file on the server is noticed (see CacheMode in protocol.js).
// Separate from fetch.js because storing is not fetching: another runtime (the file system under
// Node) replaces this module and keeps the network one.
//
// The cache is an optimisation: every failure here (no secure context, quota, private browsing)
// reads as a miss or a write not done, and the caller falls back to the network.

import { CACHE_NAME, CacheMode } from './protocol.js';
import { currentValidator } from './fetch.js';
import { sha256Hex } from './integrity.js';

/** Cache API header holding `[[url, validator], …]` of the files an entry was made from. */
const SOURCES_HEADER = 'x-crossrank-sources';

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
   * The cached bytes for `key`, or null. In mode "default" the files it was made from are asked
   * for again (HEAD) and a changed ETag, Last-Modified or Content-Length drops the entry; a network
   * failure keeps it (offline is what the cache is for). With `sha256`, an entry with another
   * digest is dropped: the file at this URL has changed since it was cached.
   */
  async read(key, { sha256 } = {}) {
    if (!this.#store || this.#mode === CacheMode.RELOAD) return null;
    try {
      const response = await this.#store.match(key);
      if (!response) return null;
      if (this.#mode === CacheMode.DEFAULT && !(await stillFresh(response))) {
        await this.#store.delete(key);
        return null;
      }
      const bytes = new Uint8Array(await response.arrayBuffer());
      if (sha256 && (await sha256Hex(bytes)) !== sha256) {
        await this.#store.delete(key);
        return null;
      }
      return bytes;
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

/** Whether every source of a cached entry still has the validator it had when cached. */
async function stillFresh(response) {
  let sources;
  try {
    sources = JSON.parse(response.headers.get(SOURCES_HEADER) ?? 'null');
  } catch {
    sources = null;
  }
  // Written by an older build, which kept no validators: cannot tell, so fetch again.
  if (!Array.isArray(sources)) return false;
  // Offline, the cache is what there is; asking would only fail.
  if (globalThis.navigator?.onLine === false) return true;
  const checks = await Promise.all(sources.map(async ([url, validator]) => {
    const current = await currentValidator(url);
    // null: the server cannot say (405, 5xx) or we are offline: keep what we have.
    return current === null || current === validator;
  }));
  return checks.every(Boolean);
}
