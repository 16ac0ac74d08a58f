/**
 * The model file (crossrank-minilm-l4.q8_0.gguf, Q8_0, 21.5 MB): a file: URL in Node, Deno and
 * Bun; after a bundler, the URL of the asset it emitted. Pass it as `model` to crossrank's
 * `Reranker.create`.
 */
export declare const modelUrl: URL;

/** The file's sha256, 64 lowercase hex digits: pass it as `sha256` to `Reranker.create`. */
export declare const sha256: string;

/**
 * Tokens per (query, passage) pair the model was trained on (128). The file records it, so calls
 * without `maxLength` already use it.
 */
export declare const maxLength: number;
