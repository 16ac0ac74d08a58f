// crossrank-minilm-l4: crossrank's default model as a package. The URL is written as
// `new URL('./file', import.meta.url)`, the one pattern bundlers (Vite, webpack, Rollup, esbuild)
// turn into an emitted asset and Node, Deno and Bun resolve to the installed file (a file: URL).
// prepack.mjs checks before every pack that the copied file has this sha256.

/** The model file: pass it as `model` to crossrank's `Reranker.create`. */
export const modelUrl = new URL('./crossrank-minilm-l4.q8_0.gguf', import.meta.url);

/** The file's sha256 (lowercase hex): pass it as `sha256` to have crossrank check the download. */
export const sha256 = '23601cf5db0613b59ff87a709bf25cf9e90344d2ddebee4c65a78d533c58dbdd';

/**
 * Tokens per (query, passage) pair the model was trained on. The file records it, so crossrank
 * already uses it when a call gives no `maxLength`; for sizing chunks of long documents.
 */
export const maxLength = 128;
