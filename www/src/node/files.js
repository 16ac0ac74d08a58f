// Files on disk, for the runtimes that have them (Node, Deno and Bun all provide Node's `node:fs`,
// `node:url` and `node:os`): a model or the .wasm named by a file: URL or a path, read with a bound,
// and the host's core count. A browser never reaches these functions (its URLs are http(s)), and the
// built-in modules are loaded only when they are called, in a way bundlers leave alone, so this
// module costs a browser bundle nothing.

import { progressReporter } from '../progress.js';
import { ErrorCode, RerankerError } from '../protocol.js';

/**
 * The largest file read: crossrank's native bound on a model file (src/local.rs
 * MAX_MODEL_FILE_BYTES), which is also all that a wasm32 module could address.
 */
export const MAX_FILE_BYTES = 4 * 2 ** 30;

/** Read in pieces of this size, so that progress can be reported. */
const PIECE_BYTES = 1 << 20;

/** Whether `url` (a string or URL) is a file: URL, which is read from disk rather than fetched. */
export function isFileUrl(url) {
  return String(url).startsWith('file:');
}

/**
 * Whether `value` is a file path rather than a URL: a string without a scheme of two letters or
 * more (so `C:\models\m.gguf` is a path). Only asked where there is no page to resolve against.
 */
export function isFilePath(value) {
  return typeof value === 'string' && value !== '' && !/^[a-z][a-z\d+.-]+:/i.test(value);
}

/**
 * The file: URL of `path`, resolved against the current directory. Synchronous (a load queues its
 * call at once), so Node's `pathToFileURL` is taken through `process.getBuiltinModule` (Node 20.16+,
 * Deno, Bun); older Node 20 gets the same conversion written out for POSIX paths.
 */
export function fileUrlOfPath(path) {
  const url = globalThis.process?.getBuiltinModule?.('node:url');
  if (url) return url.pathToFileURL(path);
  const cwd = globalThis.process?.cwd?.() ?? globalThis.Deno?.cwd?.() ?? '/';
  const absolute = path.startsWith('/') ? path : `${cwd.replace(/\/+$/, '')}/${path}`;
  const result = new URL('file:///');
  // As pathToFileURL: `%`, `\` and control characters would otherwise be read as URL syntax; the
  // pathname setter escapes the rest (space, `#`, `?`) and resolves `.` and `..`.
  result.pathname = absolute.replace(/[%\\\n\r\t]/g, (c) => encodeURIComponent(c));
  return result;
}

/** Cores this machine offers, for the default pool size where `navigator` does not say (Node 20). */
export function availableParallelism() {
  const os = globalThis.process?.getBuiltinModule?.('node:os');
  return Number(os?.availableParallelism?.() ?? os?.cpus?.().length) || 1;
}

/**
 * The file at file: URL `url`, read with at most `limit` bytes, reporting `progress` events (see
 * ProgressInfo in index.d.ts) to `onProgress` and `(loaded, total)` to `onTotal`, as fetch.js's
 * `download` does for HTTP; `optional` files that are not there give null. Only a regular file is
 * read (a directory, device or FIFO has no size to check; /dev/zero never ends), and its size is
 * checked before a byte is. Every failure is a `fetch` RerankerError naming the path.
 * @returns {Promise<{ bytes: Uint8Array, validator: string } | null>}
 */
export async function readFile(url, { optional = false, onProgress, onTotal, limit = MAX_FILE_BYTES } = {}) {
  const [fs, { fileURLToPath }] = await Promise.all([builtin('node:fs/promises'), builtin('node:url')]);
  let path;
  try {
    path = fileURLToPath(url);
  } catch (error) {
    throw new RerankerError(ErrorCode.FETCH, `${url} is not a file on this machine: ${error?.message ?? error}`, { cause: error });
  }
  let handle;
  try {
    handle = await fs.open(path, 'r');
  } catch (error) {
    if (optional && error?.code === 'ENOENT') return null;
    throw new RerankerError(ErrorCode.FETCH, `could not read ${path}: ${reason(error)}`, { cause: error });
  }
  try {
    const stat = await handle.stat();
    if (!stat.isFile()) {
      throw new RerankerError(ErrorCode.FETCH, `${path} is not a regular file: a model file must be one (a directory, device or FIFO has no size to check)`);
    }
    if (stat.size > limit) {
      throw new RerankerError(ErrorCode.FETCH, `${path} is ${stat.size} bytes, larger than the ${limit}-byte limit for a model file`);
    }
    // The size was checked; a file that grows meanwhile is read only that far.
    const total = stat.size;
    const bytes = new Uint8Array(total);
    let loaded = 0;
    const progress = progressReporter(String(url), total, onProgress, onTotal);
    while (loaded < total) {
      const { bytesRead } = await handle.read(bytes, loaded, Math.min(PIECE_BYTES, total - loaded), loaded);
      if (bytesRead === 0) break; // it shrank meanwhile
      loaded += bytesRead;
      progress.advance(loaded);
    }
    progress.done(loaded);
    return { bytes: loaded === total ? bytes : bytes.slice(0, loaded), validator: `file ${loaded} ${stat.mtimeMs}` };
  } catch (error) {
    if (error instanceof RerankerError) throw error;
    throw new RerankerError(ErrorCode.FETCH, `could not read ${path}: ${reason(error)}`, { cause: error });
  } finally {
    await handle.close().catch(() => {});
  }
}

/** A file system error in words: the common ones say what to check. */
function reason(error) {
  switch (error?.code) {
    case 'ENOENT':
      return 'no such file (a relative path is resolved against the current directory)';
    case 'EACCES':
    case 'EPERM':
      return 'permission denied';
    case 'EISDIR':
      return 'it is a directory, not a model file';
    default:
      return String(error?.message ?? error);
  }
}

/**
 * A Node built-in module. The specifier is a variable and the import is marked for bundlers
 * (Vite, webpack) to leave alone: a browser build must not try to bundle `node:fs`.
 */
export function builtin(specifier) {
  const loaded = globalThis.process?.getBuiltinModule?.(specifier);
  return loaded ? Promise.resolve(loaded) : import(/* @vite-ignore */ /* webpackIgnore: true */ specifier);
}
