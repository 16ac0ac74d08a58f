// Hugging Face models: a Hub id (`org/name`) as the folder URL its files are served from, and
// that folder's files fetched for conversion to a crossrank GGUF (which worker.js hands to the
// backend's convertHf, exactly as `crossrank convert` does). Its own module because it is the one
// place that knows the Hub's URL layout and a model folder's file names; the page uses the first
// half to build the `convert` request, the worker the second.

import { HF_FILES } from './contract.js';
import { download, progressTotal, servedInstead } from './fetch.js';
import { ErrorCode, RerankerError } from './protocol.js';

export const HUB_URL = 'https://huggingface.co';
/** A Hub model id: `org/name` and nothing else (a relative URL needs "./" or a ".gguf" name). */
const HUB_ID = /^[A-Za-z0-9][\w.-]*\/[\w.-]+$/;
/** What a Hugging Face model can be converted to, as `crossrank convert --dtype`. */
export const DTYPES = ['q8_0', 'q4_0', 'f16', 'f32'];

/** Whether `model` (a load's first argument) names a model on the Hub. */
export function isHubId(model) {
  return typeof model === 'string' && HUB_ID.test(model) && !model.endsWith('.gguf');
}

/** The folder (ending in `/`) that serves the files of Hub model `id` at `revision`. */
export function hubFolder(hubUrl, id, revision) {
  return `${hubUrl.replace(/\/+$/, '')}/${id}/resolve/${encodeURIComponent(revision)}/`;
}

/** Where the GGUF converted from `folder` to `dtype` is cached: one file, read like any other. */
export function convertedKey(folder, dtype) {
  return `${folder}crossrank-${dtype}.gguf`;
}

/**
 * The files of the Hugging Face model folder `folder` (the Hub's `…/resolve/<revision>/` or any
 * server with the same layout), each `{ url, bytes, validator }` or null where an optional one is
 * missing, reporting each file's progress and their `total` to `onProgress`. The small files come
 * first and are checked (checkJson) before a byte of the weights is asked for: a wrong URL or a
 * login page fails in a second, not after a download of hundreds of MB. Fails with `fetch` where
 * the folder cannot be converted in a browser.
 */
export async function fetchFolder(folder, onProgress) {
  const onTotal = progressTotal(onProgress);
  const fetchFile = async (name, { optional = false } = {}) => {
    const url = folder + name;
    onProgress({ status: 'initiate', file: url });
    const file = await download(url, { optional, onProgress, onTotal: (loaded, total) => onTotal(url, loaded, total) });
    if (file) onProgress({ status: 'done', file: url, fromCache: false });
    return file ? { url, name, ...file } : null;
  };
  const config = checkJson(await fetchFile(HF_FILES.CONFIG_JSON), ErrorCode.CONFIG);
  if (typeof config.json?.model_type !== 'string' && !Array.isArray(config.json?.architectures)) {
    throw new RerankerError(ErrorCode.CONFIG,
      `${HF_FILES.CONFIG_JSON} at ${config.url} is JSON but not a model's config (it has neither "model_type" nor "architectures"): ` +
      `${preview(config.bytes)}: is ${folder} a Hugging Face model folder?`);
  }
  const tokenizerJson = checkJson(await fetchFile(HF_FILES.TOKENIZER_JSON, { optional: true }), ErrorCode.TOKENIZER);
  const vocabTxt = tokenizerJson ? null : checkNotHtml(await fetchFile(HF_FILES.VOCAB_TXT, { optional: true }));
  if (!tokenizerJson && !vocabTxt) {
    throw new RerankerError(ErrorCode.FETCH, `${folder} has neither ${HF_FILES.TOKENIZER_JSON} nor ${HF_FILES.VOCAB_TXT}: not a Hugging Face model folder`);
  }
  const tokenizerConfig = checkJson(await fetchFile(HF_FILES.TOKENIZER_CONFIG_JSON, { optional: true }), ErrorCode.TOKENIZER);
  const weights = await fetchFile(HF_FILES.SAFETENSORS, { optional: true });
  if (!weights) {
    throw new RerankerError(ErrorCode.FETCH,
      `${folder}${HF_FILES.SAFETENSORS} was not found (404); a ${HF_FILES.PYTORCH_BIN} cannot be read in the browser: convert it with \`crossrank convert\``);
  }
  return { config, tokenizerJson, vocabTxt, tokenizerConfig, weights };
}

/**
 * `file` (or null) with its parsed `json`, after checking that it is JSON: a page where JSON was
 * expected (a login wall, a 200 "not found" page, a folder URL that is not one) is `fetch`, other
 * text `code` (the file's own: `config` or `tokenizer`), each naming the file and what came instead.
 */
function checkJson(file, code) {
  if (!checkNotHtml(file)) return null;
  try {
    return { ...file, json: JSON.parse(new TextDecoder().decode(file.bytes)) };
  } catch (error) {
    throw new RerankerError(code, `${file.name} at ${file.url} is not JSON (${error.message}; served as ${file.contentType || 'no Content-Type'}): ${preview(file.bytes)}`);
  }
}

function checkNotHtml(file) {
  if (file && servedInstead(file.bytes) === 'html') {
    throw new RerankerError(ErrorCode.FETCH,
      `${file.name} at ${file.url} is an HTML page (served as ${file.contentType || 'no Content-Type'}), not ${file.name.endsWith('.json') ? 'JSON' : 'text'}: ` +
      'is the URL a model folder? (a login page, an error page)');
  }
  return file;
}

/** The first characters of `bytes`, quoted, for a message about what came instead of a file. */
function preview(bytes) {
  const text = new TextDecoder().decode(bytes.subarray(0, 80)).replace(/\s+/g, ' ').trim();
  return JSON.stringify(bytes.length > 80 ? `${text}…` : text);
}

/**
 * For a model URL that failed as a GGUF file (404, an HTML page), what the caller probably meant:
 * a Hub model page (`https://huggingface.co/org/name`) is loaded by its id; a URL whose last part
 * has no file extension may be a model folder, whose URL ends in "/". We only hint, never add the
 * "/" ourselves: a GGUF file may well live at a URL without an extension (a download endpoint, a
 * signed URL), and guessing would turn such a load into four requests for a folder's files.
 * Returns "" when there is nothing to say, else a sentence starting with ": ".
 */
export function modelUrlHint(url) {
  let parsed;
  try {
    parsed = new URL(url);
  } catch {
    return '';
  }
  const segments = parsed.pathname.split('/').filter(Boolean);
  if (/^(www\.)?(huggingface\.co|hf\.co)$/.test(parsed.hostname) && segments.length >= 2 && !['api', 'datasets', 'spaces'].includes(segments[0])
      && (segments.length === 2 || segments[2] === 'tree' || segments[2] === 'blob')) {
    return `: a Hugging Face model page; to load the model, pass its id "${segments[0]}/${segments[1]}" as model`;
  }
  const last = segments.at(-1) ?? '';
  if (parsed.pathname.endsWith('/') || last.includes('.')) return '';
  return `: did you mean ${parsed.origin}${parsed.pathname}/${parsed.search} (a model folder's URL ends in "/")?`;
}
