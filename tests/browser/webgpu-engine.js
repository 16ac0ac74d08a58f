// The page side of tests/browser/webgpu-engine.test.mjs: runs single WebGPU kernels on seeded
// random inputs and compares them with plain-JS references computed here in f64, and exposes the
// engine (openGpu, GpuEncoder) for the model-level tests. Each check returns the largest absolute
// error it saw; the test file holds the tolerances.

import { GpuEncoder, openGpu } from '../../www/src/webgpu/index.js';
import { attentionGrid, Kernels, matmulGrid, Recorder, rowGrid } from '../../www/src/webgpu/kernels.js';

/** mulberry32: a small seeded generator, so a failing case can be rerun exactly. */
function random(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const uniform = (next, n, scale = 1) => Float32Array.from({ length: n }, () => (next() * 2 - 1) * scale);

function halfToFloat(bits) {
  const exponent = (bits >> 10) & 31;
  const mantissa = bits & 1023;
  const magnitude = exponent === 0 ? mantissa * 2 ** -24 : (1 + mantissa / 1024) * 2 ** (exponent - 15);
  return bits & 0x8000 ? -magnitude : magnitude;
}

/**
 * Random GGUF blocks for a [rows, cols] tensor and the values they decode to (the reference
 * decoder, written from the block layout in the contract): scales are random f16 bit patterns
 * between 2^-9 and 2^-3, quants random bytes or nibbles.
 */
function randomBlocks(next, dtype, rows, cols) {
  const blockBytes = dtype === 'q8_0' ? 34 : 18;
  const blocks = (rows * cols) / 32;
  const bytes = new Uint8Array(blocks * blockBytes);
  const values = new Float32Array(rows * cols);
  for (let b = 0; b < blocks; b++) {
    const start = b * blockBytes;
    const exponent = 6 + Math.floor(next() * 7);
    const bits = (next() < 0.5 ? 0x8000 : 0) | (exponent << 10) | Math.floor(next() * 1024);
    bytes[start] = bits & 255;
    bytes[start + 1] = bits >> 8;
    const d = halfToFloat(bits);
    for (let j = 0; j < 32; j++) {
      if (dtype === 'q8_0') {
        const q = Math.floor(next() * 256) - 128;
        bytes[start + 2 + j] = q & 255;
        values[b * 32 + j] = d * q;
      } else {
        const nibble = Math.floor(next() * 16);
        const at = start + 2 + (j & 15);
        bytes[at] |= j < 16 ? nibble : nibble << 4;
        values[b * 32 + j] = d * (nibble - 8);
      }
    }
  }
  return { bytes, values };
}

const ACT = {
  none: (x) => x,
  relu: (x) => Math.max(x, 0),
  tanh: Math.tanh,
  gelu: (x) => 0.5 * x * (1 + erf(x / Math.SQRT2)),
  gelu_new: (x) => 0.5 * x * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (x + 0.044715 * x ** 3))),
};

/** erf to ~1e-15 by its Taylor series (|x| < 3) or the continued fraction of erfc (beyond). */
function erf(x) {
  const a = Math.abs(x);
  if (a < 3) {
    let term = a;
    let sum = a;
    for (let n = 1; n < 80; n++) {
      term *= (-a * a) / n;
      sum += term / (2 * n + 1);
    }
    return Math.sign(x) * (2 / Math.sqrt(Math.PI)) * sum;
  }
  let fraction = 0;
  for (let n = 60; n >= 1; n--) fraction = (n / 2) / (a + fraction);
  const erfc = Math.exp(-a * a) / Math.sqrt(Math.PI) / (a + fraction);
  return Math.sign(x) * (1 - erfc);
}

let gpuPromise = null;
/** One device for the page (opening one is slow on SwiftShader). */
const gpu = () => (gpuPromise ??= openGpu());

function storage(device, data, usage = 0) {
  const buffer = device.createBuffer({ size: Math.max(4, Math.ceil(data.byteLength / 4) * 4), usage: GPUBufferUsage.STORAGE | usage, mappedAtCreation: true });
  new Uint8Array(buffer.getMappedRange()).set(new Uint8Array(data.buffer, data.byteOffset, data.byteLength));
  buffer.unmap();
  return buffer;
}

/** Runs `steps(kernels, make)` as one pass and reads back the buffer it names as output. */
async function run(build) {
  const { device } = await gpu();
  const kernels = new Kernels(device);
  const buffers = [];
  const make = (data, usage) => {
    const buffer = storage(device, data, usage);
    buffers.push(buffer);
    return buffer;
  };
  const { steps, output, length } = await build(kernels, make);
  const readback = device.createBuffer({ size: length * 4, usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST });
  const recorder = new Recorder(device);
  device.pushErrorScope('validation');
  const commands = device.createCommandEncoder();
  recorder.record(steps, commands);
  commands.copyBufferToBuffer(output, 0, readback, 0, length * 4);
  device.queue.submit([commands.finish()]);
  const error = await device.popErrorScope();
  if (error) throw new Error(error.message);
  await readback.mapAsync(GPUMapMode.READ);
  const values = new Float32Array(readback.getMappedRange().slice(0));
  readback.destroy();
  recorder.destroy();
  buffers.forEach((buffer) => buffer.destroy());
  return values;
}

const maxError = (actual, expected) => expected.reduce((worst, e, i) => Math.max(worst, Math.abs(actual[i] - e)), 0);
const maxAbs = (values) => values.reduce((worst, v) => Math.max(worst, Math.abs(v)), 0);

/** y = act(x·wᵀ + b) for an M×K x (row stride xStride), [N, K] weights of `dtype`. */
async function checkMatmul({ dtype, activation, m, n, k, xStride = k, seed = 1 }) {
  const next = random(seed);
  const x = uniform(next, (m - 1) * xStride + k);
  const weights = dtype === 'f32' ? (() => { const values = uniform(next, n * k, 0.3); return { bytes: values, values }; })() : randomBlocks(next, dtype, n, k);
  const bias = uniform(next, n, 0.5);
  const expected = new Float64Array(m * n);
  for (let r = 0; r < m; r++) {
    for (let c = 0; c < n; c++) {
      let sum = bias[c];
      for (let i = 0; i < k; i++) sum += x[r * xStride + i] * weights.values[c * k + i];
      expected[r * n + c] = ACT[activation](sum);
    }
  }
  const actual = await run(async (kernels, make) => {
    const y = make(new Float32Array(m * n), GPUBufferUsage.COPY_SRC);
    const pipeline = await kernels.matmul(dtype, activation);
    return {
      steps: [{ pipeline, buffers: [make(x), make(weights.bytes), make(bias), y], params: { a: m, b: n, c: k, d: xStride }, grid: matmulGrid(m, n) }],
      output: y,
      length: m * n,
    };
  });
  return { error: maxError(actual, expected), scale: maxAbs(expected) };
}

/** out = LayerNorm(a (+ residual)) · gamma + beta over rows of `width`. */
async function checkLayerNorm({ rows, width, residual, residualStride = width, eps = 1e-12, seed = 2 }) {
  const next = random(seed);
  // An offset mean, so a one-pass variance would lose digits.
  const a = uniform(next, rows * width).map((v) => v + 3);
  const res = uniform(next, (rows - 1) * residualStride + width);
  const gamma = uniform(next, width);
  const beta = uniform(next, width);
  const expected = new Float64Array(rows * width);
  for (let r = 0; r < rows; r++) {
    const row = Array.from({ length: width }, (_, c) => a[r * width + c] + (residual ? res[r * residualStride + c] : 0));
    const mean = row.reduce((s, v) => s + v, 0) / width;
    const variance = row.reduce((s, v) => s + (v - mean) ** 2, 0) / width;
    row.forEach((v, c) => { expected[r * width + c] = ((v - mean) / Math.sqrt(variance + eps)) * gamma[c] + beta[c]; });
  }
  const actual = await run(async (kernels, make) => {
    const out = make(new Float32Array(rows * width), GPUBufferUsage.COPY_SRC);
    const pipeline = await kernels.layerNorm(residual);
    return {
      steps: [{ pipeline, buffers: [make(a), make(gamma), make(beta), out, ...(residual ? [make(res)] : [])], params: { a: rows, b: width, c: residualStride, g: eps }, grid: rowGrid(rows) }],
      output: out,
      length: rows * width,
    };
  });
  return { error: maxError(actual, expected), scale: maxAbs(expected) };
}

/**
 * Masked attention over `lengths.length` pairs padded to `seq`. Padding keys and values hold huge
 * numbers: any probability leaking onto them would show as a huge error.
 */
async function checkAttention({ lengths, seq, heads, headSize, queries = seq, seed = 3 }) {
  const next = random(seed);
  const pairs = lengths.length;
  const hidden = heads * headSize;
  const q = uniform(next, pairs * queries * hidden, 2);
  const k = uniform(next, pairs * seq * hidden, 2);
  const v = uniform(next, pairs * seq * hidden);
  const mask = new Uint32Array(pairs * seq);
  lengths.forEach((length, p) => {
    for (let j = 0; j < seq; j++) mask[p * seq + j] = j < length ? 1 : 0;
    for (let j = length; j < seq; j++) {
      for (let c = 0; c < hidden; c++) {
        k[(p * seq + j) * hidden + c] = 1e4;
        v[(p * seq + j) * hidden + c] = 1e4;
      }
    }
  });
  // q and ctx hold `queries` rows per pair, k and v all `seq`.
  const expected = new Float64Array(pairs * queries * hidden);
  const scale = 1 / Math.sqrt(headSize);
  for (let p = 0; p < pairs; p++) {
    for (let h = 0; h < heads; h++) {
      for (let i = 0; i < queries; i++) {
        const at = (row, c) => (p * seq + row) * hidden + h * headSize + c;
        const query = (c) => (p * queries + i) * hidden + h * headSize + c;
        const scores = [];
        for (let j = 0; j < lengths[p]; j++) {
          let s = 0;
          for (let c = 0; c < headSize; c++) s += q[query(c)] * k[at(j, c)];
          scores.push(s * scale);
        }
        const top = Math.max(...scores);
        const weights = scores.map((s) => Math.exp(s - top));
        const total = weights.reduce((sum, w) => sum + w, 0);
        for (let c = 0; c < headSize; c++) {
          expected[query(c)] = weights.reduce((sum, w, j) => sum + w * v[at(j, c)], 0) / total;
        }
      }
    }
  }
  const actual = await run(async (kernels, make) => {
    const ctx = make(new Float32Array(pairs * queries * hidden), GPUBufferUsage.COPY_SRC);
    const pipeline = await kernels.attention(headSize);
    return {
      steps: [{ pipeline, buffers: [make(q), make(k), make(v), make(mask), ctx], params: { a: pairs, b: seq, c: hidden, d: queries, g: scale }, grid: attentionGrid(pairs, queries, heads) }],
      output: ctx,
      length: pairs * queries * hidden,
    };
  });
  return { error: maxError(actual, expected), scale: maxAbs(expected) };
}

/** Embedding rows gathered from an f32, q8_0 or q4_0 word table, plus position and type rows. */
async function checkEmbeddings({ dtype, width, tokens, seq, positionOffset, seed = 4 }) {
  const next = random(seed);
  const vocab = 40;
  const word = dtype === 'f32' ? (() => { const values = uniform(next, vocab * width); return { bytes: values, values }; })() : randomBlocks(next, dtype, vocab, width);
  const position = uniform(next, (seq + positionOffset) * width);
  const tokenType = uniform(next, 2 * width);
  const ids = Uint32Array.from({ length: tokens }, () => Math.floor(next() * vocab));
  const types = Uint32Array.from({ length: tokens }, () => (next() < 0.5 ? 0 : 1));
  const expected = new Float64Array(tokens * width);
  for (let r = 0; r < tokens; r++) {
    for (let c = 0; c < width; c++) {
      expected[r * width + c] = word.values[ids[r] * width + c] + position[(positionOffset + (r % seq)) * width + c] + tokenType[types[r] * width + c];
    }
  }
  const actual = await run(async (kernels, make) => {
    const out = make(new Float32Array(tokens * width), GPUBufferUsage.COPY_SRC);
    const pipeline = await kernels.embeddings(dtype);
    return {
      steps: [{ pipeline, buffers: [make(ids), make(types), make(word.bytes), make(position), make(tokenType), out], params: { a: tokens, b: seq, c: width, d: positionOffset }, grid: rowGrid(tokens) }],
      output: out,
      length: tokens * width,
    };
  });
  return { error: maxError(actual, expected), scale: maxAbs(expected) };
}

let wasmPromise = null;
/** The wasm build (for gpuPlan and prepare), started once. */
function wasm() {
  wasmPromise ??= import('../../www/pkg/crossrank_wasm.js').then(async (module) => {
    await module.default({ module_or_path: new URL('../../www/pkg/crossrank_wasm_relaxed_bg.wasm', import.meta.url) });
    return module;
  });
  return wasmPromise;
}

const encoders = new Map();
/** A GpuEncoder for the GGUF at `url` (kept for the page: uploads are slow on SwiftShader). */
async function encoderFor(url) {
  if (!encoders.has(url)) {
    encoders.set(url, (async () => {
      const bytes = new Uint8Array(await (await fetch(url)).arrayBuffer());
      const plan = (await wasm()).gpuPlan(bytes);
      return { plan, encoder: await GpuEncoder.create(await gpu(), plan), bytes };
    })());
  }
  return encoders.get(url);
}

/** The cases' token ids (from the fixture, as PyTorch saw them) padded into one batch. */
function padded(cases) {
  const rows = cases.length;
  const seqLen = Math.max(...cases.map((c) => c.input_ids.length));
  const batch = { rows, seqLen, inputIds: new Uint32Array(rows * seqLen), tokenTypeIds: new Uint32Array(rows * seqLen), attentionMask: new Uint32Array(rows * seqLen) };
  cases.forEach((c, r) => {
    batch.inputIds.set(c.input_ids, r * seqLen);
    batch.tokenTypeIds.set(c.token_type_ids ?? new Array(c.input_ids.length).fill(0), r * seqLen);
    batch.attentionMask.fill(1, r * seqLen, r * seqLen + c.input_ids.length);
  });
  return batch;
}

/**
 * GpuEncoder's logits for fixture cases in one padded batch, and (`alone`) each case on its own
 * (unpadded), and (`again`) the batch a second time, reusing the first call's buffers.
 */
async function fixtureLogits(url, cases, { alone = true, again = true } = {}) {
  const { plan, encoder } = await encoderFor(url);
  const single = [];
  if (alone) for (const c of cases) single.push((await encoder.logits(padded([c])))[0]);
  const batched = [...(await encoder.logits(padded(cases)))];
  const repeated = again ? [...(await encoder.logits(padded(cases)))] : null;
  const dtypes = [...new Set(Object.values(plan.tensors).map((t) => t.dtype))].sort();
  return { alone: alone ? single : null, batched, again: repeated, info: encoder.info, family: plan.family, dtypes };
}

/**
 * A random model plan in the contract's shape (gpuPlan's output), for tests that need a model but
 * not PyTorch's numbers: sub-batching, buffer reuse, device loss. `dtype` is the linear weights'.
 */
function randomPlan({ hidden = 32, layers = 2, heads = 4, inner = 64, vocab = 50, positions = 128, dtype = 'f32', seed = 5 } = {}) {
  const next = random(seed);
  const tensors = {};
  const f32 = (name, shape, scale = 0.2, offset = 0) => {
    const values = uniform(next, shape.reduce((a, b) => a * b), scale).map((v) => v + offset);
    tensors[name] = { dtype: 'f32', shape, data: new Uint8Array(values.buffer) };
  };
  const linear = (name, out, inputs) => {
    if (dtype === 'f32') f32(`${name}.weight`, [out, inputs]);
    else tensors[`${name}.weight`] = { dtype, shape: [out, inputs], data: randomBlocks(next, dtype, out, inputs).bytes };
    f32(`${name}.bias`, [out]);
  };
  const norm = (name, width) => {
    f32(`${name}.weight`, [width], 0.1, 1);
    f32(`${name}.bias`, [width], 0.1);
  };
  f32('embeddings.word', [vocab, hidden], 1);
  f32('embeddings.position', [positions, hidden], 1);
  f32('embeddings.tokenType', [2, hidden], 1);
  norm('embeddings.norm', hidden);
  for (let i = 0; i < layers; i++) {
    for (const part of ['query', 'key', 'value', 'attentionOutput']) linear(`layers.${i}.${part}`, hidden, hidden);
    linear(`layers.${i}.intermediate`, inner, hidden);
    linear(`layers.${i}.output`, hidden, inner);
    norm(`layers.${i}.attentionNorm`, hidden);
    norm(`layers.${i}.outputNorm`, hidden);
  }
  linear('head.dense', hidden, hidden);
  f32('head.out.weight', [1, hidden]);
  f32('head.out.bias', [1]);
  return {
    family: 'bert', hiddenSize: hidden, numLayers: layers, numHeads: heads, headSize: hidden / heads, intermediateSize: inner,
    embeddingWidth: hidden, layerNormEps: 1e-12, hiddenAct: 'gelu', positionOffset: 0, head: { kind: 'pooler' }, tensors,
  };
}

/** A batch of `lengths.length` random pairs padded to the longest. */
function randomBatch(lengths, { vocab = 50, seed = 6 } = {}) {
  const next = random(seed);
  return padded(lengths.map((length) => ({
    input_ids: Array.from({ length }, () => Math.floor(next() * vocab)),
    token_type_ids: Array.from({ length }, (_, j) => (j < length / 2 ? 0 : 1)),
  })));
}

/**
 * The cases scored end to end as the package will: the wasm build tokenises and batches them
 * (prepare, `maxRows` pairs a batch), GpuEncoder computes each batch, the wasm build answers
 * (finish). Returns each case's logit and the batch shapes.
 */
async function preparedLogits(url, cases, maxRows) {
  const { encoder, bytes } = await encoderFor(url);
  const reranker = (await wasm()).WasmReranker.fromGguf(bytes);
  const queries = [...new Set(cases.map((c) => c.query))];
  const requests = queries.map((query) => ({ query, documents: cases.filter((c) => c.query === query).map((c) => c.passage) }));
  const prepared = reranker.prepare(requests, {}, maxRows);
  try {
    const logits = [];
    const shapes = [];
    for (let i = 0; i < prepared.batchCount; i++) {
      const batch = prepared.batch(i);
      shapes.push([batch.rows, batch.seqLen]);
      logits.push(...(await encoder.logits(batch)));
    }
    const answers = prepared.finish(Float32Array.from(logits));
    const positions = new Map(queries.map((query) => [query, 0]));
    const byCase = cases.map((c) => {
      const at = positions.get(c.query);
      positions.set(c.query, at + 1);
      return answers[queries.indexOf(c.query)][at].logit;
    });
    return { logits: byCase, shapes };
  } finally {
    prepared.free();
    reranker.free();
  }
}

/**
 * The page's GPU as a device with smaller limits would look: the same device, its `limits`
 * replaced, so sizing by limits can be tested on an adapter whose limits are large.
 */
async function gpuWithLimits(overrides) {
  const real = await gpu();
  const limits = {};
  for (const name in real.device.limits) limits[name] = real.device.limits[name];
  Object.assign(limits, overrides);
  const device = new Proxy(real.device, {
    get: (target, key) => (key === 'limits' ? limits : typeof target[key] === 'function' ? target[key].bind(target) : target[key]),
  });
  return { ...real, device, limits };
}

window.gpuEngine = { openGpu, GpuEncoder, gpu, gpuWithLimits, wasm, randomPlan, randomBatch, encoderFor, padded, fixtureLogits, preparedLogits, checkMatmul, checkLayerNorm, checkAttention, checkEmbeddings };
document.documentElement.dataset.ready = 'true';
