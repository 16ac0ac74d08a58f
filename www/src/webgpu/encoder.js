// The encoder on WebGPU: interprets the model plan that Rust builds from the checkpoint
// (gpuPlan, see the contract in src/model/plan.rs), so BERT, ELECTRA and XLM-RoBERTa differ only
// in data (position offset, projection, activations), never in code here.
//
// Per batch: embeddings (gather + LayerNorm, ELECTRA's projection), then per layer q/k/v,
// attention, output projection + residual LayerNorm, FFN + residual LayerNorm, then the head on
// row 0 of each pair. Scratch buffers are kept between calls and grown when a batch needs more;
// a batch whose buffers would pass the device's limits (or the scratch budget) runs in
// sub-batches of whole pairs.

import { attentionGrid, Kernels, matmulGrid, Recorder, rowGrid } from './kernels.js';

/** Scratch memory a forward may use unless create() is told otherwise: larger batches split. */
const DEFAULT_SCRATCH_BYTES = 256 * 1024 * 1024;
const ACTIVATIONS = new Set(['gelu', 'gelu_new', 'relu']);

const align4 = (n) => Math.max(4, Math.ceil(n / 4) * 4);

function lostError(reason) {
  const error = new Error(`the WebGPU device was lost${reason ? `: ${reason}` : ''}`);
  error.gpuLost = true;
  return error;
}

/** Checks the plan's shape up front, so a bad plan fails at create(), not in a shader. */
function checkPlan(plan) {
  const { hiddenSize, numHeads, headSize, embeddingWidth, tensors } = plan;
  if (headSize * numHeads !== hiddenSize) throw new Error(`plan: ${numHeads} heads × ${headSize} ≠ hidden size ${hiddenSize}`);
  if (!ACTIVATIONS.has(plan.hiddenAct)) throw new Error(`plan: no WebGPU kernel for hidden_act ${plan.hiddenAct}`);
  const headActivation = plan.head.kind === 'pooler' ? 'tanh' : plan.head.activation;
  if (!['tanh', 'gelu'].includes(headActivation)) throw new Error(`plan: unknown head ${JSON.stringify(plan.head)}`);
  const needsProject = embeddingWidth !== hiddenSize;
  if (needsProject !== Boolean(tensors['embeddings.project.weight'])) {
    throw new Error(`plan: embedding width ${embeddingWidth}, hidden size ${hiddenSize}, ${needsProject ? 'no' : 'an'} embeddings.project`);
  }
  for (const [name, tensor] of Object.entries(tensors)) {
    if (tensor.dtype !== 'f32') {
      const cols = tensor.shape[tensor.shape.length - 1];
      const linear = name.endsWith('.weight') && !name.includes('Norm');
      if (!(linear || name === 'embeddings.word')) throw new Error(`plan: ${name} is ${tensor.dtype}; the WebGPU kernels read it only as f32`);
      if (cols % 32 !== 0) throw new Error(`plan: ${name} has ${cols} columns, not whole ${tensor.dtype} blocks of 32`);
    }
  }
  return headActivation;
}

export class GpuEncoder {
  /**
   * Uploads the weights (quantised ones as their GGUF blocks) and compiles the kernels the plan
   * needs. `options.scratchBytes` caps the scratch memory (tests use it to force sub-batches).
   * @param {{ device: GPUDevice, adapter: object, features: string[] }} gpu from openGpu()
   * @param {object} plan from the wasm export gpuPlan(ggufBytes)
   */
  static async create(gpu, plan, { scratchBytes = DEFAULT_SCRATCH_BYTES } = {}) {
    const headActivation = checkPlan(plan);
    const encoder = new GpuEncoder(gpu, plan, headActivation, scratchBytes);
    try {
      await encoder.#prepare(plan);
    } catch (error) {
      encoder.destroy();
      throw error;
    }
    return encoder;
  }

  /** @private use create() */
  constructor(gpu, plan, headActivation, scratchBytes) {
    this.gpu = gpu;
    this.device = gpu.device;
    // Shapes and dtypes only: the tensors' bytes live on the GPU once uploaded, and keeping them
    // here too would hold a second copy of the model in the worker's memory.
    this.plan = { ...plan, tensors: Object.fromEntries(Object.entries(plan.tensors).map(([name, { dtype, shape }]) => [name, { dtype, shape }])) };
    this.headActivation = headActivation;
    this.scratchBytes = scratchBytes;
    this.weights = new Map();
    this.weightBytes = 0;
    this.scratch = null;
    this.kernels = Kernels.of(this.device);
    this.recorder = new Recorder(this.device);
    this.lost = null;
    this.whenLost = this.device.lost.then((info) => {
      this.lost = info;
      return info;
    });
  }

  async #prepare(plan) {
    const { device } = this;
    const limit = Math.min(device.limits.maxStorageBufferBindingSize, device.limits.maxBufferSize);
    for (const [name, { data }] of Object.entries(plan.tensors)) {
      if (data.byteLength > limit) throw new Error(`${name} takes ${data.byteLength} bytes; this GPU binds at most ${limit} bytes per buffer`);
    }
    device.pushErrorScope('out-of-memory');
    for (const [name, { data }] of Object.entries(plan.tensors)) {
      const size = align4(data.byteLength);
      const buffer = device.createBuffer({ label: name, size, usage: GPUBufferUsage.STORAGE, mappedAtCreation: true });
      new Uint8Array(buffer.getMappedRange()).set(data);
      buffer.unmap();
      this.weights.set(name, buffer);
      this.weightBytes += size;
    }
    const outOfMemory = await device.popErrorScope();
    if (outOfMemory) throw new Error(`uploading the weights: ${outOfMemory.message}`);
    // Compile every variant now, not in the first logits() call.
    this.pipelines = await this.#pipelines();
  }

  async #pipelines() {
    const { kernels, plan } = this;
    const dtype = (name) => plan.tensors[name].dtype;
    const matmuls = new Map();
    const matmul = (weight, activation) => {
      const key = `${dtype(weight)} ${activation}`;
      if (!matmuls.has(key)) matmuls.set(key, kernels.matmul(dtype(weight), activation));
      return key;
    };
    this.linears = {};
    const linear = (weight, activation = 'none') => {
      this.linears[weight] = matmul(`${weight}.weight`, activation);
    };
    if (this.weights.has('embeddings.project.weight')) linear('embeddings.project');
    for (let i = 0; i < plan.numLayers; i++) {
      for (const name of ['query', 'key', 'value', 'attentionOutput', 'output']) linear(`layers.${i}.${name}`);
      linear(`layers.${i}.intermediate`, plan.hiddenAct);
    }
    linear('head.dense', this.headActivation);
    linear('head.out');
    const resolved = {
      embeddings: await kernels.embeddings(dtype('embeddings.word')),
      layerNorm: await kernels.layerNorm(false),
      addLayerNorm: await kernels.layerNorm(true),
      attention: await kernels.attention(plan.headSize),
      matmul: new Map(),
    };
    for (const [key, pipeline] of matmuls) resolved.matmul.set(key, await pipeline);
    return resolved;
  }

  /** What runs where: the adapter, its features, f32 arithmetic, and the GPU memory held. */
  get info() {
    return {
      adapter: this.gpu.adapter,
      features: this.gpu.features,
      precision: 'f32',
      gpuBytes: this.weightBytes + (this.scratch?.bytes ?? 0) + this.recorder.bytes,
    };
  }

  /** Scratch bytes one pair of `seqLen` tokens takes (its share of every buffer). */
  scratchBytesPerPair(seqLen) {
    const { hiddenSize, intermediateSize } = this.plan;
    // ids, types, mask; x, x1, q, k, v, ctx, t; the FFN's intermediate; the head's row and logit.
    const perToken = 3 * 4 + (7 * hiddenSize + intermediateSize) * 4;
    return seqLen * perToken + hiddenSize * 4 + 4;
  }

  /** Pairs per forward for this sequence length, so that every scratch buffer fits. */
  pairsPerRun(seqLen) {
    const { hiddenSize, intermediateSize, embeddingWidth } = this.plan;
    const limits = this.device.limits;
    const widest = Math.max(hiddenSize, intermediateSize, embeddingWidth) * 4;
    const perPair = this.scratchBytesPerPair(seqLen);
    const byBinding = Math.floor(Math.min(limits.maxStorageBufferBindingSize, limits.maxBufferSize) / (seqLen * widest));
    const byBudget = Math.floor(this.scratchBytes / perPair);
    const pairs = Math.min(byBinding, byBudget);
    if (pairs < 1) throw new Error(`one pair of ${seqLen} tokens needs ${perPair} bytes of GPU scratch memory, more than this encoder may use (${this.scratchBytes}) or one buffer may hold`);
    return pairs;
  }

  /** Scratch buffers for `pairs` pairs of `seqLen` tokens, reused while they are large enough. */
  #scratchFor(pairs, seqLen) {
    const tokens = pairs * seqLen;
    if (this.scratch && this.scratch.tokens >= tokens && this.scratch.pairs >= pairs) return this.scratch;
    this.scratch?.destroy();
    const { hiddenSize, intermediateSize } = this.plan;
    const buffers = [];
    const make = (label, size, usage = GPUBufferUsage.STORAGE) => {
      const buffer = this.device.createBuffer({ label, size: align4(size), usage });
      buffers.push(buffer);
      return buffer;
    };
    const input = GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_DST;
    const hidden = (label) => make(label, tokens * hiddenSize * 4);
    this.scratch = {
      tokens,
      pairs,
      inputIds: make('input ids', tokens * 4, input),
      tokenTypes: make('token types', tokens * 4, input),
      mask: make('attention mask', tokens * 4, input),
      x: hidden('hidden state'),
      x1: hidden('hidden state after attention'),
      q: hidden('queries'),
      k: hidden('keys'),
      v: hidden('values'),
      ctx: hidden('attention context'),
      t: hidden('sublayer output'),
      h: make('intermediate', tokens * intermediateSize * 4),
      pooled: make('head dense', pairs * hiddenSize * 4),
      logits: make('logits', pairs * 4, GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC),
      bytes: 0,
      destroy: () => buffers.forEach((buffer) => buffer.destroy()),
    };
    this.scratch.bytes = buffers.reduce((sum, buffer) => sum + buffer.size, 0);
    return this.scratch;
  }

  /** The kernel steps of one forward over `pairs` × `seqLen` tokens. */
  #steps(pairs, seqLen, s) {
    const { plan, pipelines, weights } = this;
    const { hiddenSize, embeddingWidth, layerNormEps: eps } = plan;
    const tokens = pairs * seqLen;
    const steps = [];
    const w = (name) => weights.get(name);
    const linear = (name, x, y, rows, { xStride, cols, inner }) => {
      const shape = plan.tensors[`${name}.weight`].shape;
      const n = cols ?? shape[0];
      const k = inner ?? shape[1];
      steps.push({
        pipeline: pipelines.matmul.get(this.linears[name]),
        buffers: [x, w(`${name}.weight`), w(`${name}.bias`), y],
        params: { a: rows, b: n, c: k, d: xStride ?? k },
        grid: matmulGrid(rows, n),
      });
    };
    // residualStride: the residual's row stride when it is row 0 of each pair (the last layer).
    const layerNorm = (a, residual, name, out, width, rows = tokens, residualStride = width) => steps.push({
      pipeline: residual ? pipelines.addLayerNorm : pipelines.layerNorm,
      buffers: [a, w(`${name}.weight`), w(`${name}.bias`), out, ...(residual ? [residual] : [])],
      params: { a: rows, b: width, c: residualStride, g: eps },
      grid: rowGrid(rows),
    });

    steps.push({
      pipeline: pipelines.embeddings,
      buffers: [s.inputIds, s.tokenTypes, w('embeddings.word'), w('embeddings.position'), w('embeddings.tokenType'), s.t],
      params: { a: tokens, b: seqLen, c: embeddingWidth, d: plan.positionOffset },
      grid: rowGrid(tokens),
    });
    if (weights.has('embeddings.project.weight')) {
      layerNorm(s.t, null, 'embeddings.norm', s.x1, embeddingWidth);
      linear('embeddings.project', s.x1, s.x, tokens, {});
    } else {
      layerNorm(s.t, null, 'embeddings.norm', s.x, embeddingWidth);
    }
    for (let i = 0; i < plan.numLayers; i++) {
      const layer = `layers.${i}`;
      // The head reads only row 0 ([CLS]) of each pair, so the last layer computes only that row
      // after its keys and values: its queries, context, projections and FFN run on `pairs` rows.
      const last = i === plan.numLayers - 1;
      const rows = last ? pairs : tokens;
      const pairStride = seqLen * hiddenSize;
      linear(`${layer}.query`, s.x, s.q, rows, last ? { xStride: pairStride } : {});
      linear(`${layer}.key`, s.x, s.k, tokens, {});
      linear(`${layer}.value`, s.x, s.v, tokens, {});
      const queries = last ? 1 : seqLen;
      steps.push({
        pipeline: pipelines.attention,
        buffers: [s.q, s.k, s.v, s.mask, s.ctx],
        params: { a: pairs, b: seqLen, c: hiddenSize, d: queries, g: 1 / Math.sqrt(plan.headSize) },
        grid: attentionGrid(pairs, queries, plan.numHeads),
      });
      linear(`${layer}.attentionOutput`, s.ctx, s.t, rows, {});
      layerNorm(s.t, s.x, `${layer}.attentionNorm`, s.x1, hiddenSize, rows, last ? pairStride : hiddenSize);
      linear(`${layer}.intermediate`, s.x1, s.h, rows, {});
      linear(`${layer}.output`, s.h, s.t, rows, {});
      layerNorm(s.t, s.x1, `${layer}.outputNorm`, s.x, hiddenSize, rows);
    }
    // x now holds one row per pair (numLayers ≥ 1; with none it would be every token).
    const headStride = plan.numLayers > 0 ? hiddenSize : seqLen * hiddenSize;
    linear('head.dense', s.x, s.pooled, pairs, { xStride: headStride });
    linear('head.out', s.pooled, s.logits, pairs, {});
    return steps;
  }

  /**
   * The logit of each row of a padded batch (as WasmReranker.prepare's batch(i) gives it).
   * @param {{ rows: number, seqLen: number, inputIds: Uint32Array, tokenTypeIds: Uint32Array, attentionMask: Uint32Array }} batch
   * @returns {Promise<Float32Array>}
   */
  async logits(batch) {
    if (this.lost) throw lostError(this.lost.message);
    if (!this.weights.size) throw new Error('this GpuEncoder was destroyed');
    const { rows, seqLen } = batch;
    const u32 = (values) => (values instanceof Uint32Array ? values : Uint32Array.from(values));
    const inputIds = u32(batch.inputIds);
    const tokenTypes = u32(batch.tokenTypeIds);
    const mask = u32(batch.attentionMask);
    for (const [name, values] of [['inputIds', inputIds], ['tokenTypeIds', tokenTypes], ['attentionMask', mask]]) {
      if (values.length !== rows * seqLen) throw new Error(`batch.${name} holds ${values.length} values, not rows × seqLen = ${rows * seqLen}`);
    }
    const positions = this.plan.tensors['embeddings.position'].shape[0];
    if (seqLen + this.plan.positionOffset > positions) {
      throw new Error(`batch of ${seqLen} tokens: the model has position embeddings for ${positions - this.plan.positionOffset}`);
    }
    const result = new Float32Array(rows);
    if (rows === 0) return result;

    const { device } = this;
    const perRun = this.pairsPerRun(seqLen);
    const readback = device.createBuffer({ label: 'logits readback', size: align4(rows * 4), usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST });
    device.pushErrorScope('out-of-memory');
    device.pushErrorScope('validation');
    let recordError = null;
    try {
      for (let start = 0; start < rows; start += perRun) {
        const pairs = Math.min(perRun, rows - start);
        const scratch = this.#scratchFor(Math.min(perRun, rows), seqLen);
        const from = start * seqLen;
        const to = from + pairs * seqLen;
        device.queue.writeBuffer(scratch.inputIds, 0, inputIds.subarray(from, to));
        device.queue.writeBuffer(scratch.tokenTypes, 0, tokenTypes.subarray(from, to));
        device.queue.writeBuffer(scratch.mask, 0, mask.subarray(from, to));
        const commands = device.createCommandEncoder({ label: 'encoder forward' });
        // Params are written now for this submit; the next sub-batch writes its own after it.
        this.recorder.record(this.#steps(pairs, seqLen, scratch), commands);
        commands.copyBufferToBuffer(scratch.logits, 0, readback, start * 4, pairs * 4);
        device.queue.submit([commands.finish()]);
      }
    } catch (error) {
      recordError = error;
    }
    const scopes = Promise.all([device.popErrorScope(), device.popErrorScope()]);
    const lost = this.whenLost.then((info) => { throw lostError(info.message); });
    lost.catch(() => {}); // observed through the races below; never an unhandled rejection
    try {
      if (recordError) throw recordError;
      const [validation, outOfMemory] = await Promise.race([scopes, lost]);
      if (validation) throw new Error(`WebGPU validation error: ${validation.message}`);
      if (outOfMemory) throw new Error(`the GPU ran out of memory: ${outOfMemory.message}`);
      try {
        await Promise.race([readback.mapAsync(GPUMapMode.READ), lost]);
      } catch (error) {
        // A map that fails after a clean submit means the device went away.
        if (error.gpuLost) throw error;
        throw lostError(this.lost?.message ?? error.message);
      }
      result.set(new Float32Array(readback.getMappedRange(), 0, rows));
      readback.unmap();
      return result;
    } finally {
      readback.destroy();
    }
  }

  /** Frees the GPU buffers; the device stays (it is the package's). */
  destroy() {
    for (const buffer of this.weights.values()) buffer.destroy();
    this.weights.clear();
    this.weightBytes = 0;
    this.scratch?.destroy();
    this.scratch = null;
    this.recorder.destroy();
  }
}
