// The shapes of the package's arguments, checked in one place: every public method (Reranker's
// and CrossrankReranker's) refuses a wrong shape with an `invalid_input` RerankerError that names
// the argument (`documents[1] is missing (sparse array)`, `requests[0] must be an object, got
// null`, `options.signal must be an AbortSignal, got an object`), never a plain TypeError from
// deeper down. The ranking options' values are Rust's to check (src/options.rs); only their names
// (and the names inside windows and fusion) and the options JS itself uses (signal, onProgress,
// returnDocuments) are checked here.

import { ENGINE_OPTIONS, ENGINE_OPTION_NAMES } from './contract.js';
import { Device, ErrorCode, RerankerError } from './protocol.js';

/** The options of `new Reranker(options)`. */
export const CONSTRUCTOR_OPTIONS = ['wasmUrl', 'threads', 'workerUrl', 'device'];
/** The options of `load(model, options)`. */
export const LOAD_OPTIONS = ['onProgress', 'cache', 'sha256', 'signal', 'dtype', 'hubUrl', 'revision'];
/** `Reranker.create` takes the model, the constructor's options and load's. */
export const CREATE_OPTIONS = ['model', ...CONSTRUCTOR_OPTIONS, ...LOAD_OPTIONS];
/**
 * The options `rerank` and `rerankMany` take: the engine's (generated from Rust, which checks their
 * values) and the package's own, in index.d.ts's order.
 */
export const RERANK_OPTIONS = ['topK', 'returnDocuments', ...ENGINE_OPTION_NAMES.filter((name) => name !== 'topK'), 'signal', 'onProgress'];

export function invalid(message) {
  return new RerankerError(ErrorCode.INVALID_INPUT, message);
}

/**
 * Requires `options` to be a plain object whose names are all in `known`, and rejects any other
 * name with the closest known one (`top_k` → `topK`). `name` is how the object is called in
 * messages: "options" (the method's own) or e.g. "rerankOptions".
 */
export function checkOptions(options, known, name = 'options') {
  if (options === null || typeof options !== 'object' || Array.isArray(options)) {
    throw invalid(`${name} must be an object, got ${describe(options)}`);
  }
  const where = name === 'options' ? '' : ` in ${name}`;
  for (const key of Object.keys(options)) {
    if (known.includes(key)) continue;
    const nearest = closest(key, known);
    throw invalid(`unknown option "${key}"${where}${nearest ? `: did you mean "${nearest}"?` : ''} (options: ${known.join(', ')})`);
  }
  return options;
}

/**
 * The fields of the engine's object options (`windows: { overlap, aggregate }`, `fusion: { type,
 * k, weight }`): an unknown one is refused by name, as Rust's `check_name` (src/options.rs) does,
 * where the engine would otherwise ignore it and run with a default the caller did not mean
 * (`{ overlp: 8 }`). `fusion: { weighted: 0.5 }` is told how fusion is written.
 */
export function checkOptionFields(options) {
  for (const [parent, value] of Object.entries(options)) {
    if (value === null || typeof value !== 'object' || Array.isArray(value)) continue;
    const known = Object.keys(ENGINE_OPTIONS).filter((name) => name.startsWith(`${parent}.`)).map((name) => name.slice(parent.length + 1));
    if (known.length === 0) continue;
    for (const key of Object.keys(value)) {
      if (known.includes(key)) continue;
      if (parent === 'fusion' && ENGINE_OPTIONS['fusion.type'].values.includes(key)) {
        throw invalid(`unknown option "fusion.${key}": fusion is written { type: "rrf", k } or { type: "weighted", weight }, not { ${key}: … }`);
      }
      const nearest = closest(key, known);
      throw invalid(`unknown option "${parent}.${key}"${nearest ? `: did you mean "${parent}.${nearest}"?` : ''} (${parent}: ${known.join(', ')})`);
    }
  }
}

/** The name in `known` nearest to `key`, if it is near enough to be a misspelling of it. */
function closest(key, known) {
  const distances = known.map((candidate) => editDistance(fold(key), fold(candidate)));
  const best = distances.indexOf(Math.min(...distances));
  const nearest = known[best];
  return distances[best] <= Math.max(2, Math.floor(nearest.length / 3)) ? nearest : undefined;
}

/** `undefined` or `null` (unset), or a function. */
export function checkFunction(value, name) {
  if (value !== undefined && value !== null && typeof value !== 'function') {
    throw invalid(`${name} must be a function, got ${describe(value)}`);
  }
}

/** `undefined` or `null` (unset), or a URL: a string (resolved against the page) or a URL object. */
export function checkUrl(value, name) {
  if (value !== undefined && value !== null && typeof value !== 'string' && !(value instanceof URL)) {
    throw invalid(`${name} must be a URL (a string or a URL object), got ${describe(value)}`);
  }
}

/**
 * `undefined` or `null` (unset: "auto"), or one of protocol.js's Device values; a misspelling is
 * told the nearest, and the other libraries' names (`'gpu'`, `'cpu'`) ours.
 */
export function checkDevice(value) {
  const devices = Object.values(Device);
  if (value === undefined || value === null || devices.includes(value)) return value ?? Device.AUTO;
  const nearest = typeof value === 'string' ? DEVICE_ALIASES[fold(value)] ?? closest(value, devices) : undefined;
  throw invalid(`options.device must be ${devices.map((device) => `"${device}"`).join(', ')}, got ${describe(value)}${nearest ? `: did you mean "${nearest}"?` : ''}`);
}

/** What transformers.js and onnxruntime call the devices. */
const DEVICE_ALIASES = { gpu: Device.WEBGPU, cpu: Device.WASM };

/** `undefined` or `null` (unset), or a boolean. */
export function checkBoolean(value, name) {
  if (value !== undefined && value !== null && typeof value !== 'boolean') {
    throw invalid(`${name} must be a boolean, got ${describe(value)}`);
  }
}

/**
 * `undefined` or `null` (unset), or an AbortSignal: anything with what the queue uses of one
 * (`aborted`, `reason`, `addEventListener`, `removeEventListener`), so a signal from another
 * realm (an iframe's) or a polyfill also works.
 */
export function checkSignal(value, name) {
  if (value === undefined || value === null) return;
  const isSignal = (typeof AbortSignal !== 'undefined' && value instanceof AbortSignal) ||
    (typeof value === 'object' && typeof value.aborted === 'boolean' &&
      typeof value.addEventListener === 'function' && typeof value.removeEventListener === 'function');
  if (!isSignal) throw invalid(`${name} must be an AbortSignal, got ${describe(value)}`);
}

/**
 * A dense array (no holes): `name` is how it is called in messages. Holes (`['a', , 'b']`) are
 * named rather than skipped, since `map` would skip them and leave the position unscored.
 */
export function checkArray(value, name) {
  if (!Array.isArray(value)) throw invalid(`${name} must be an array, got ${describe(value)}`);
  for (let index = 0; index < value.length; index += 1) {
    if (!(index in value)) throw invalid(`${name}[${index}] is missing (sparse array)`);
  }
  return value;
}

/**
 * `rerankMany`'s requests: a dense array of `{ query, documents }` objects. Each becomes
 * `{ query, documents, texts }`, `texts` being the documents' text (see {@link checkRequest}).
 */
export function checkRequests(requests) {
  return checkArray(requests, 'requests').map((request, index) => {
    const name = `requests[${index}]`;
    if (request === null || typeof request !== 'object' || Array.isArray(request)) {
      throw invalid(`${name} must be an object { query, documents }, got ${describe(request)}`);
    }
    return checkRequest(request.query, request.documents, `${name}.`);
  });
}

/**
 * One query and its documents: a string, and a dense array of strings or objects with a string
 * `text`. `prefix` goes before the names in messages ("" for rerank's own arguments,
 * "requests[2]." for rerankMany's).
 */
export function checkRequest(query, documents, prefix = '') {
  if (typeof query !== 'string') throw invalid(`${prefix}query must be a string, got ${describe(query)}`);
  const texts = checkArray(documents, `${prefix}documents`).map((document, index) => {
    if (typeof document === 'string') return document;
    if (document !== null && typeof document === 'object' && typeof document.text === 'string') return document.text;
    throw invalid(`${prefix}documents[${index}] must be a string or an object with a string \`text\`, got ${describe(document)}`);
  });
  return { query, documents, texts };
}

/** Case and separators do not count: top_k, TopK and top-k all read as topk. */
const fold = (name) => name.toLowerCase().replace(/[_-]/g, '');

function editDistance(a, b) {
  let previous = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i += 1) {
    const current = [i];
    for (let j = 1; j <= b.length; j += 1) {
      current[j] = Math.min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (a[i - 1] === b[j - 1] ? 0 : 1));
    }
    previous = current;
  }
  return previous[b.length];
}

/** A value as messages show it: `null`, `an array`, `an object`, `the string "…"`, `number 3`. */
export function describe(value) {
  if (value === null || value === undefined) return String(value);
  if (Array.isArray(value)) return 'an array';
  if (typeof value === 'object') return 'an object';
  if (typeof value === 'function') return 'a function';
  if (typeof value === 'string') return `the string ${JSON.stringify(value.length > 40 ? `${value.slice(0, 40)}…` : value)}`;
  return `${typeof value} ${String(value)}`;
}
