// One system in a Web Worker, driven one step at a time by bench/browser.mjs (through the page), so
// that the driver can read the browser's CPU time around each timed run. A fresh worker per
// (system, threads): ONNX Runtime's thread count and each system's memory are its own.
//   { type: 'load', system, threads, model }  ->  { ok, load_ms, info }
//   { type: 'run', workload: {query, documents} }  ->  { ok, ms, logits, input_ids?, gpu_bytes? }
//   failures  ->  { ok: false, error }

const ORT_DIST = '/bench/node_modules/onnxruntime-web/dist/';
const TRANSFORMERS = '/bench/node_modules/@huggingface/transformers/dist/transformers.js';
const BATCH_SIZE = 16; // crossrank's default; transformers.js gets the same length-sorted batches
const MAX_LENGTH = 512;

let system = null;

self.onmessage = async ({ data }) => {
  try {
    if (data.type === 'load') {
      system = data.model.npm ? await crossrankPackage(data)
        : data.model.webgpu ? await crossrankWebGpu(data)
          : data.system.startsWith('crossrank') ? await crossrank(data) : await transformersJs(data);
      self.postMessage({ ok: true, load_ms: system.load_ms, info: system.info });
    } else {
      const start = performance.now();
      const result = await system.run(data.workload);
      const ms = performance.now() - start;
      self.postMessage({ ok: true, ms, ...result });
    }
  } catch (error) {
    self.postMessage({ ok: false, error: `${error?.stack ?? error}` });
  }
};

async function crossrank({ model }) {
  const start = performance.now();
  const { default: init, WasmReranker } = await import('/www/pkg/crossrank_wasm.js');
  const wasm = await init({ module_or_path: model.wasm });
  const bytes = new Uint8Array(await (await fetch(model.gguf)).arrayBuffer());
  const reranker = model.matmul ? WasmReranker.fromGguf(bytes, model.matmul) : WasmReranker.fromGguf(bytes);
  const load_ms = performance.now() - start;
  return {
    load_ms,
    info: { crossOriginIsolated: self.crossOriginIsolated },
    // wasm memory only grows: its size after a run is the high-water mark so far.
    run: async ({ query, documents }) => ({ logits: Array.from(reranker.logits(query, documents)), memory_bytes: wasm.memory.buffer.byteLength, int8_dot: reranker.info().int8Dot }),
  };
}

/**
 * The WebGPU encoder (www/src/webgpu/) driven directly: the wasm build tokenises, windows and
 * batches (prepare), the GPU computes each batch's logits, the wasm build orders them (finish).
 */
async function crossrankWebGpu({ model }) {
  const start = performance.now();
  const { default: init, WasmReranker, gpuPlan } = await import('/www/pkg/crossrank_wasm.js');
  await init({ module_or_path: model.wasm });
  const { openGpu, GpuEncoder } = await import('/www/src/webgpu/index.js');
  const gpu = await openGpu();
  if (gpu.unavailable) throw new Error(`no WebGPU: ${gpu.unavailable}`);
  const bytes = new Uint8Array(await (await fetch(model.gguf)).arrayBuffer());
  const reranker = WasmReranker.fromGguf(bytes);
  const encoder = await GpuEncoder.create(gpu, gpuPlan(bytes));
  const load_ms = performance.now() - start;
  return {
    load_ms,
    info: { crossOriginIsolated: self.crossOriginIsolated, adapter: gpu.adapter, features: gpu.features },
    run: async ({ query, documents }) => {
      const prepared = reranker.prepare([{ query, documents }], { maxLength: MAX_LENGTH });
      try {
        const logits = [];
        for (let i = 0; i < prepared.batchCount; i++) logits.push(...(await encoder.logits(prepared.batch(i))));
        const [scored] = prepared.finish(Float32Array.from(logits));
        return { logits: scored.map(({ logit }) => logit), gpu_bytes: encoder.info.gpuBytes };
      } finally {
        prepared.free();
      }
    },
  };
}

/** The adapter transformers.js' WebGPU backend will get (ONNX Runtime asks for the default one). */
async function webGpuAdapter() {
  const adapter = await navigator.gpu?.requestAdapter();
  if (!adapter) throw new Error('no WebGPU adapter in this browser');
  const { vendor = '', architecture = '', device = '', description = '' } = adapter.info ?? {};
  return { vendor, architecture, device, description };
}

/** The npm package (www/src/index.js) with its own pool of `threads` workers, nested in this one. */
async function crossrankPackage({ model, threads }) {
  const start = performance.now();
  const { Reranker } = await import('/www/src/index.js');
  const reranker = await Reranker.create({ model: model.gguf, threads, cache: false, ...(model.device ? { device: model.device } : {}) });
  const load_ms = performance.now() - start;
  const adapter = reranker.info?.gpu?.adapter;
  return {
    load_ms,
    info: { crossOriginIsolated: self.crossOriginIsolated, threads: reranker.threads, ...(adapter ? { adapter, device: reranker.info.device } : {}) },
    run: async ({ query, documents }) => {
      const ranked = await reranker.rerank(query, documents, { maxLength: MAX_LENGTH });
      const logits = new Array(documents.length);
      for (const { index, logit } of ranked) logits[index] = logit;
      return { logits, int8_dot: reranker.info.int8Dot };
    },
  };
}

async function transformersJs({ model, threads, system }) {
  const start = performance.now();
  const { env, AutoTokenizer, AutoModelForSequenceClassification, Tensor } = await import(TRANSFORMERS);
  env.allowRemoteModels = false;
  env.allowLocalModels = true;
  env.localModelPath = model.localModelPath;
  env.useBrowserCache = false;
  env.useWasmCache = false;
  // transformers.js' own default files (asyncify build), served from node_modules instead of a CDN.
  env.backends.onnx.wasm.wasmPaths = {
    mjs: `${ORT_DIST}ort-wasm-simd-threaded.asyncify.mjs`,
    wasm: `${ORT_DIST}ort-wasm-simd-threaded.asyncify.wasm`,
  };
  env.backends.onnx.wasm.numThreads = threads;
  const tokenizer = await AutoTokenizer.from_pretrained(model.name);
  const dtype = system.endsWith('q8') ? 'q8' : 'fp32';
  const device = system.startsWith('tjs-webgpu') ? 'webgpu' : 'wasm';
  const adapter = device === 'webgpu' ? await webGpuAdapter() : undefined;
  const classifier = await AutoModelForSequenceClassification.from_pretrained(model.name, { dtype, device });
  const load_ms = performance.now() - start;
  const [cls, sep] = tokenizer.encode('');

  // transformers.js truncates a pair by cutting the joined ids at max_length (the last [SEP] goes);
  // sentence-transformers and crossrank truncate longest_first, so the pair is built here the same way.
  function encodePairs(query, documents) {
    const queryIds = tokenizer.encode(query, { add_special_tokens: false });
    return documents.map((document) => {
      const q = queryIds.slice();
      const d = tokenizer.encode(document, { add_special_tokens: false });
      while (q.length + d.length > MAX_LENGTH - 3) (q.length > d.length ? q : d).pop();
      return { ids: [cls, ...q, sep, ...d, sep], typeStart: q.length + 2 };
    });
  }

  async function run({ query, documents }) {
    const pairs = encodePairs(query, documents);
    const order = pairs.map((_, i) => i).sort((a, b) => pairs[b].ids.length - pairs[a].ids.length);
    const logits = new Array(pairs.length);
    for (let startRow = 0; startRow < order.length; startRow += BATCH_SIZE) {
      const batch = order.slice(startRow, startRow + BATCH_SIZE);
      const width = pairs[batch[0]].ids.length;
      const ids = new BigInt64Array(batch.length * width);
      const mask = new BigInt64Array(batch.length * width);
      const types = new BigInt64Array(batch.length * width);
      batch.forEach((index, row) => {
        const { ids: pairIds, typeStart } = pairs[index];
        for (let j = 0; j < pairIds.length; j++) {
          ids[row * width + j] = BigInt(pairIds[j]);
          mask[row * width + j] = 1n;
          types[row * width + j] = j >= typeStart ? 1n : 0n;
        }
      });
      const dims = [batch.length, width];
      const { logits: out } = await classifier({
        input_ids: new Tensor('int64', ids, dims),
        attention_mask: new Tensor('int64', mask, dims),
        token_type_ids: new Tensor('int64', types, dims),
      });
      batch.forEach((index, row) => {
        logits[index] = out.data[row];
      });
    }
    return { logits, input_ids: pairs.map((pair) => pair.ids) };
  }

  return {
    load_ms,
    info: { crossOriginIsolated: self.crossOriginIsolated, numThreads: env.backends.onnx.wasm.numThreads, dtype, device, ...(adapter ? { adapter } : {}) },
    run,
  };
}
