// Types for crossrank's browser API (src/index.js). Written by hand: the package ships plain JS.

/** The stable codes of {@link RerankerError}. */
export type ErrorCodeValue =
  // from Rust (crossrank's error enum)
  | 'config'
  | 'tokenizer'
  | 'weights'
  | 'model_format'
  /**
   * The call's arguments cannot be used: an empty query, a bad option value, or an argument of the
   * wrong shape, which the message names (`documents[1] is missing (sparse array)`, `requests[0]
   * must be an object { query, documents }, got null`, `options.signal must be an AbortSignal, got
   * an object`, `unknown option "top_k": did you mean "topK"?`). No method throws a plain TypeError.
   */
  | 'invalid_input'
  | 'unsupported'
  | 'compute'
  // from the JS side
  /** The model (or the .wasm) could not be downloaded. */
  | 'fetch'
  /** The downloaded model's sha256 is not the one given. */
  | 'integrity'
  /** No model is loaded (none yet, the last load failed, or the reranker was disposed). */
  | 'not_loaded'
  /** The call's AbortSignal fired. */
  | 'aborted'
  /** The worker died or its WebAssembly trapped; the next call starts a fresh one. */
  | 'worker_crashed'
  /** No worker could start (no `Worker`, a Content-Security-Policy, a script that did not load); the message says the fix. */
  | 'worker_start'
  /**
   * `device: 'webgpu'` was asked for and cannot be had: no WebGPU in this runtime, no adapter, the
   * model did not fit on the GPU, or the GPU's results disagreed with wasm's (the self-check). The
   * message says which; `device: 'auto'` falls back to wasm instead (see {@link DeviceInfo}).
   */
  | 'webgpu_unavailable'
  /** A bug in crossrank: please report it. */
  | 'internal';

/**
 * What one rerank or rerankMany call may hold, over all its requests; past either it rejects with
 * `invalid_input` before any work. The text limit counts UTF-16 code units (JS string length).
 */
export declare const LIMITS: Readonly<{
  documentsPerCall: 100000;
  charactersPerCall: 67108864;
}>;

export declare const ErrorCode: Readonly<{
  CONFIG: 'config';
  TOKENIZER: 'tokenizer';
  WEIGHTS: 'weights';
  MODEL_FORMAT: 'model_format';
  INVALID_INPUT: 'invalid_input';
  UNSUPPORTED: 'unsupported';
  COMPUTE: 'compute';
  FETCH: 'fetch';
  INTEGRITY: 'integrity';
  NOT_LOADED: 'not_loaded';
  ABORTED: 'aborted';
  WORKER_CRASHED: 'worker_crashed';
  WORKER_START: 'worker_start';
  WEBGPU_UNAVAILABLE: 'webgpu_unavailable';
  INTERNAL: 'internal';
}>;

export declare class RerankerError extends Error {
  constructor(code: ErrorCodeValue, message: string, options?: { cause?: unknown });
  readonly name: 'RerankerError';
  readonly code: ErrorCodeValue;
}

/** Where the encoder runs (the `device` option): 'auto' picks WebGPU when it can, else wasm. */
export type Device = 'auto' | 'webgpu' | 'wasm';

/** The WebGPU adapter a model runs on, as the browser describes it (GPUAdapterInfo); strings may be empty. */
export interface GpuAdapterInfo {
  vendor: string;
  architecture: string;
  device: string;
  description: string;
}

/** The GPU side of {@link DeviceInfo}. */
export interface GpuInfo {
  adapter: GpuAdapterInfo;
  /** The adapter's WebGPU features (e.g. "shader-f16", "subgroups"). */
  features: string[];
  /** What the GPU computes in: "f32" (quantised weights stay blocks in GPU memory and are dequantised in the shaders). */
  precision: string;
  /**
   * GPU memory held when the load finished: the weights and the self-check's work buffers. Reranks
   * grow the work buffers to their largest batch (at most 256 MiB; larger batches are split).
   */
  gpuBytes: number;
}

/** Where the loaded model's encoder runs, and why (part of {@link ModelInfo}). */
export interface DeviceInfo {
  /**
   * "webgpu": the encoder's arithmetic runs on the GPU (tokenising, windows and ordering stay in
   * wasm). "wasm": it runs on the CPU, in `threads` workers.
   */
  device: 'webgpu' | 'wasm';
  /** The adapter, features and GPU memory while on WebGPU; null on wasm. */
  gpu: GpuInfo | null;
  /**
   * Why wasm although WebGPU was wanted (`device: 'auto'`): no WebGPU in this runtime, no adapter or a software one,
   * the self-check failed, or the GPU device was lost (then from the next call on); null when
   * nothing fell back (WebGPU runs, or `device: 'wasm'` was asked for).
   */
  fallback: string | null;
}

/** What the loaded model is (from the GGUF file), and where it runs. */
export interface ModelInfo extends DeviceInfo {
  /** The architecture, from the model's config.json. */
  modelType: 'bert' | 'electra' | 'xlm-roberta';
  precision: string;
  /**
   * Which build of the module runs: `"relaxed-simd"` where the engine has relaxed SIMD (the int8
   * kernel on the relaxed dot product, ~2× faster), `"simd128"` elsewhere (Safari, Node 20).
   */
  simd: 'relaxed-simd' | 'simd128';
  /**
   * The relaxed-SIMD build's int8 dot sequence: `"i16-dot"` (the faster without AVX-VNNI) until
   * the first worker's first int8 call of 200 ms or more, after which it times both (~30–80 ms,
   * once) and keeps the faster; `"dot-add"` (one instruction with AVX-VNNI) must win by 10%. Both
   * give the same logits. null in the SIMD128 build.
   */
  int8Dot: 'dot-add' | 'i16-dot' | null;
  maxPositions: number;
  /** The maxLength a call without one gets: the length the model was trained at when its file records it, else maxPositions. */
  defaultMaxLength: number;
  numLayers: number;
  hiddenSize: number;
  vocabSize: number;
  /** Where the file came from and whether the cached copy was checked; null for a model given as bytes. */
  cache: CacheInfo | null;
}

/**
 * How a model loaded from a URL (or a Hub id or folder) used the Cache API. A cached copy can be
 * revalidated only where the server gives the page an ETag or a Last-Modified header: a
 * cross-origin server must name ETag in Access-Control-Expose-Headers (Last-Modified is always
 * readable). With neither, only the length can be compared, and a changed file of the same size
 * is served from the cache: `message` says so, already on the load that downloads it.
 */
export interface CacheInfo {
  /**
   * "downloaded": fetched from the server now (and stored, cache allowing). "revalidated": read
   * from the cache after the server confirmed, by ETag or Last-Modified, that every file it was
   * made from is unchanged. "unvalidated": read from the cache without that confirmation
   * (offline, no answer to the HEAD request, or no validator but the length); `message` says why.
   */
  status: 'downloaded' | 'revalidated' | 'unvalidated';
  /** Why the cached copy was not, or cannot later be, revalidated, and the fix; absent when all is well. */
  message?: string;
}

/** Loading progress, one union keyed on `status` (as in transformers.js). */
export type ProgressInfo =
  /** A download (or Cache API read) of `file` starts. */
  | { status: 'initiate'; file: string }
  /** A Hugging Face model's files together (config, tokenizer, weights): bytes so far of all of them. */
  | { status: 'total'; loaded: number; total: number; progress: number }
  /** `progress` is a percentage, 0–100; `total` is 0 while the size is unknown. */
  | { status: 'progress'; file: string; loaded: number; total: number; progress: number }
  /** The file's bytes are all here; `fromCache` tells whether they came from the Cache API. */
  | { status: 'done'; file: string; fromCache: boolean }
  /** The model is loaded and can rerank. `file` is null when the model was given as bytes. */
  | { status: 'ready'; file: string | null; info: ModelInfo };

/**
 * A crossrank GGUF file (URL or bytes; in Node, Deno and Bun also a file path, absolute or relative
 * to the current directory, or a file: URL), or a Hugging Face cross-encoder: a Hub id such as
 * "cross-encoder/ms-marco-MiniLM-L-6-v2" (a string `org/name` not ending in ".gguf"; write
 * "./org/name" for a relative URL) or a folder URL ending in "/" with the Hub's file layout.
 */
export type ModelSource = string | URL | ArrayBuffer | Uint8Array;

export interface LoadOptions {
  /** Called with each {@link ProgressInfo}. */
  onProgress?: (progress: ProgressInfo) => void;
  /**
   * How the Cache API ("crossrank-models-v1") is used. "default": load from the cache, after asking
   * the server (HEAD) whether the file changed (ETag, Last-Modified or Content-Length; offline, the
   * cached copy is used); download and cache otherwise. "reload": download again and cache.
   * "no-store": neither read nor write. `true`/`false` mean "default"/"no-store". Cache failures
   * are never fatal. {@link Reranker.clearCache} empties it.
   */
  cache?: boolean | 'default' | 'reload' | 'no-store';
  /** Lowercase or uppercase hex; a GGUF file with another digest rejects with code "integrity". */
  sha256?: string;
  /** Aborting rejects the load with code "aborted"; the reranker is then without a model. */
  signal?: AbortSignal;
  /**
   * For a Hugging Face model (Hub id or folder URL): the precision it is converted to in a worker,
   * exactly as `crossrank convert --dtype` (same GGUF bytes). Default "q8_0".
   */
  dtype?: 'q8_0' | 'q4_0' | 'f16' | 'f32';
  /** Where Hub ids are fetched from: `${hubUrl}/${id}/resolve/${revision}/…`. Default "https://huggingface.co" (a mirror works). */
  hubUrl?: string | URL;
  /** Branch, tag or commit of a Hub model. Default "main". */
  revision?: string;
}

export interface ConstructorOptions {
  /**
   * Where the .wasm is, when it is not next to crossrank_wasm.js. Given, it is used as is;
   * by default the worker picks crossrank_wasm_relaxed_bg.wasm where relaxed SIMD validates, else
   * crossrank_wasm_bg.wasm.
   */
  wasmUrl?: string | URL;
  /**
   * Web Workers (worker_threads in Node, Deno and Bun) that share each call, each holding the model
   * in its own wasm memory (the README's "Workers" section gives the measured figure for the default
   * model). 1–16; default `min(4, navigator.hardwareConcurrency)` (Node 20: `os.availableParallelism()`). Needs no
   * cross-origin isolation.
   */
  threads?: number;
  /**
   * Where the encoder runs. "auto" (default): WebGPU when the browser has a hardware adapter (not a
   * software one, `isFallbackAdapter`) and it agrees
   * with wasm on a few fixed pairs at load (the self-check), else wasm, with the reason in
   * `info.fallback`. "webgpu": the same, but the load rejects with code "webgpu_unavailable" instead
   * of falling back. "wasm": the CPU only; the GPU is never touched. On WebGPU one worker does the
   * work (the other `threads − 1` start only if the GPU is lost and the reranker goes on with
   * wasm); results agree with wasm's within float rounding for f32 models, ~0.1 logit for
   * quantised ones (wasm quantises activations to int8, the GPU does not). Node and Bun have no
   * WebGPU: "auto" is wasm there.
   */
  device?: Device;
  /**
   * Where the workers' script (the package's `src/worker.js`) is served from, resolved against the
   * page. By default the worker runs the `worker.js` next to the imported module; when that is on
   * another origin (a CDN), it is started through a same-origin `blob:` module that imports it.
   * Given (e.g. for a Content-Security-Policy without `blob:` in `worker-src`): a URL on the page's
   * origin starts the worker directly; it must sit in a copy of the package's `src/`, next to `pkg/`.
   * A worker that cannot start rejects with code "worker_start".
   */
  workerUrl?: string | URL;
}

export interface CreateOptions extends LoadOptions, ConstructorOptions {
  /** A URL (resolved against the page; in Node, Deno and Bun a file path), a Hub id or the GGUF file's bytes. */
  model: ModelSource;
}

/** Reranking progress: `scored` of `total` documents (of all requests, for rerankMany) are scored. */
export interface RerankProgress {
  status: 'rerank';
  scored: number;
  total: number;
}

/**
 * A document: its text, or an object with the text and anything else (an id, metadata). A numeric
 * `score` on every object is taken as the first stage's score (for `fusion`).
 */
export type Document = string | { text: string; id?: unknown; score?: number; [key: string]: unknown };

/** Score long documents by overlapping windows instead of truncating them (one pair per window). */
export interface WindowOptions {
  /** Passage tokens shared by consecutive windows. Default 64. */
  overlap?: number;
  /** How window logits become the document's: the best (default), the mean, or the first window. */
  aggregate?: 'max' | 'mean' | 'first';
}

/** Order by a fusion with the first stage instead of the cross-encoder alone. */
export type Fusion =
  /** Reciprocal Rank Fusion; the first stage's ranking is the `score`s, else the input order. k defaults to 60. */
  | { type: 'rrf'; k?: number }
  /** weight · minmax(logit) + (1 − weight) · minmax(first-stage score); needs `score` on every document. */
  | { type: 'weighted'; weight: number };

/** A character span of a document, in UTF-16 code units: `text.slice(start, end)`. */
export interface Window {
  /** Which window (0 = the start of the document). */
  index: number;
  start: number;
  end: number;
}

export interface RerankOptions {
  /** Return only the best `topK` results. */
  topK?: number;
  /** Add each input document to its result as `document`. Default false. */
  returnDocuments?: boolean;
  /** Truncate each (query, document) pair to this many tokens (longest first); at most the model's maxPositions. Default: info.defaultMaxLength. */
  maxLength?: number;
  /** Most pairs per forward pass of the model (a worker's batch also holds at most 128 tokens; WebGPU's 1,024). Scores agree to float rounding whatever the batch. Default 16. */
  batchSize?: number;
  /** Long documents as windows: `true` for the defaults. */
  windows?: boolean | WindowOptions;
  fusion?: Fusion;
  /** `score` as sigmoid(logit) (default, comparable across calls) or min-max over this result list. */
  scoreScale?: 'sigmoid' | 'minmax';
  /** Drop results whose `score` is below this. */
  threshold?: number;
  /**
   * Aborting rejects with code "aborted" at once. A running rerank is stopped by ending its
   * workers; the model is then loaded again (from the cache) before the next call runs.
   */
  signal?: AbortSignal;
  /** Called as documents are scored (in chunks, so a few times per worker), last with scored = total. */
  onProgress?: (progress: RerankProgress) => void;
}

export interface RerankResult<D extends Document = Document> {
  /** Position of the document in the input array. */
  index: number;
  /**
   * As `scoreScale` says, in [0, 1]. Default: sigmoid(logit), comparable across calls (f32 makes it
   * exactly 1 above a logit of about 16.6, exactly 0 below about −88.7). With `scoreScale: 'minmax'`:
   * (logit − min) / (max − min) over this call's non-blank documents, 1 for the best and 0 for the
   * worst (1 for all when their logits are equal). Always 0 for a blank document (one that
   * tokenises to nothing). `fusion` leaves it alone: the order then follows `fused`, so scores need
   * not be in order; `threshold` compares against it, and `topK` cuts after the threshold.
   */
  score: number;
  /** The model's raw output (with windows: the aggregate of the window logits). */
  logit: number;
  /** The fused score the order follows, with `fusion` (0 for a blank document). */
  fused?: number;
  /** With `windows`: the best window of the document. */
  bestWindow?: Window;
  /** The document's `id`, when it was an object with one. */
  id?: D extends { id?: infer I } ? I : never;
  /** The input document, with `returnDocuments: true`. */
  document?: D;
}

export declare class Reranker {
  /** Starts the workers and loads `model` into them. */
  static create(options: CreateOptions): Promise<Reranker>;

  /** A reranker with no model yet: call {@link Reranker.load}. */
  constructor(options?: ConstructorOptions);

  /** The loaded model's description, or null when none is loaded. */
  readonly info: ModelInfo | null;

  /** How many workers share each call on wasm (on WebGPU, `info.device`, one worker does the work). */
  readonly threads: number;

  /**
   * Loads a model (a GGUF file, or a Hugging Face model converted in a worker) into every worker,
   * replacing (and first freeing) the current model. Calls made while it loads wait for it; if it fails they reject with code "not_loaded".
   * Progress events come from the first worker, which downloads the file once for all.
   */
  load(model: ModelSource, options?: LoadOptions): Promise<ModelInfo>;

  /**
   * Scores each document against `query`; results are ordered by `logit` (or by `fused` with
   * `fusion`), highest first, ties in input order. No documents give `[]` (options are still
   * checked). Text that tokenises to nothing (empty, whitespace, U+200B, controls, a lone
   * surrogate) is blank: such documents come last with `score` 0, such a query rejects with
   * `invalid_input`. Calls are queued and run one at a time.
   */
  rerank<D extends Document>(query: string, documents: readonly D[], options?: RerankOptions): Promise<RerankResult<D>[]>;

  /**
   * Several queries at once (pairs batched across queries); one result list per request. An error
   * about one request names it: `requests[2].query must be a string`, `requests[2]: the query is empty`.
   */
  rerankMany<D extends Document>(
    requests: readonly { query: string; documents: readonly D[] }[],
    options?: RerankOptions,
  ): Promise<RerankResult<D>[][]>;

  /** Deletes every model crossrank cached in this origin; resolves to whether there was anything. */
  static clearCache(): Promise<boolean>;

  /** Terminates the workers, freeing their memory. Pending and later calls reject with code "not_loaded". */
  dispose(): void;
}
