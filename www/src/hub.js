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
 * missing, reporting each file's progress and their `total` to `onProgress`. Fails with `fetch`
 * where the folder cannot be converted in a browser.
 */
export async function fetchFolder(folder, onProgress) {
  const onTotal = progressTotal(onProgress);
  const fetchFile = async (name, { optional = false } = {}) => {
    const url = folder + name;
    onProgress({ status: 'initiate', file: url });
    const file = await download(url, { optional, onProgress, onTotal: (loaded, total) => onTotal(url, loaded, total) });
    if (file) onProgress({ status: 'done', file: url, fromCache: false });
    return file ? { url, ...file } : null;
  };
  const config = await fetchFile(HF_FILES.CONFIG_JSON);
  const tokenizerJson = await fetchFile(HF_FILES.TOKENIZER_JSON, { optional: true });
  const vocabTxt = tokenizerJson ? null : await fetchFile(HF_FILES.VOCAB_TXT, { optional: true });
  if (!tokenizerJson && !vocabTxt) {
    throw new RerankerError(ErrorCode.FETCH, `${folder} has neither ${HF_FILES.TOKENIZER_JSON} nor ${HF_FILES.VOCAB_TXT}: not a Hugging Face model folder`);
  }
  const tokenizerConfig = await fetchFile(HF_FILES.TOKENIZER_CONFIG_JSON, { optional: true });
  const weights = await fetchFile(HF_FILES.SAFETENSORS, { optional: true });
  if (!weights) {
    throw new RerankerError(ErrorCode.FETCH,
      `${folder}${HF_FILES.SAFETENSORS} was not found (404); a ${HF_FILES.PYTORCH_BIN} cannot be read in the browser: convert it with \`crossrank convert\``);
  }
  // A page where JSON was expected (a login wall, a 200 "not found" page) is named as such.
  for (const file of [config, tokenizerJson, vocabTxt, tokenizerConfig]) {
    if (file && servedInstead(file.bytes) === 'html') {
      throw new RerankerError(ErrorCode.FETCH, `${file.url} is an HTML page, not the file expected (a login or error page?)`);
    }
  }
  return { config, tokenizerJson, vocabTxt, tokenizerConfig, weights };
}
