// Compute pipelines (compiled once per device and kernel variant) and the recorder that turns a
// list of kernel steps into one compute pass: each step gets its own 32-byte slot of one uniform
// buffer, so a whole encoder forward is a single submit.

import { attentionShader, attentionStorageBytes, embeddingsShader, KEY_TILE, layerNormShader, matmulShader, QUERY_TILE, TILE } from './shaders.js';

const MAX_GROUPS = 65535; // WebGPU's guaranteed maxComputeWorkgroupsPerDimension
const PARAMS_BYTES = 32;

const perDevice = new WeakMap();

/** The compiled kernels of one device, each variant compiled on first use and kept. */
export class Kernels {
  /** The device's kernels, shared by every encoder on it (a model loaded again compiles nothing). */
  static of(device) {
    let kernels = perDevice.get(device);
    if (!kernels) perDevice.set(device, (kernels = new Kernels(device)));
    return kernels;
  }

  constructor(device) {
    this.device = device;
    /** @type {Map<string, Promise<GPUComputePipeline>>} */
    this.pipelines = new Map();
  }

  #pipeline(key, source) {
    let pipeline = this.pipelines.get(key);
    if (!pipeline) {
      const module = this.device.createShaderModule({ label: key, code: source() });
      pipeline = this.device.createComputePipelineAsync({ label: key, layout: 'auto', compute: { module, entryPoint: 'main' } });
      this.pipelines.set(key, pipeline);
      // A failed compile is not kept: the next encoder tries again (its caller sees the error).
      pipeline.catch(() => this.pipelines.delete(key));
    }
    return pipeline;
  }

  matmul(dtype, activation) { return this.#pipeline(`matmul ${dtype} ${activation}`, () => matmulShader(dtype, activation)); }
  embeddings(dtype) { return this.#pipeline(`embeddings ${dtype}`, () => embeddingsShader(dtype)); }
  layerNorm(residual) { return this.#pipeline(`layernorm${residual ? ' + residual' : ''}`, () => layerNormShader(residual)); }
  attention(headSize) {
    // Halve the key tile until keys, values and mask fit the device's workgroup memory.
    let keyTile = KEY_TILE;
    while (keyTile > 1 && attentionStorageBytes(headSize, keyTile) > this.device.limits.maxComputeWorkgroupStorageSize) keyTile /= 2;
    return this.#pipeline(`attention ${headSize} keys ${keyTile}`, () => attentionShader(headSize, keyTile));
  }
}

/** A grid of ≥ n workgroups within the per-dimension limit (row kernels index y·width + x). */
export function rowGrid(n) {
  return n <= MAX_GROUPS ? [n, 1, 1] : [MAX_GROUPS, Math.ceil(n / MAX_GROUPS), 1];
}

export const matmulGrid = (rows, cols) => [Math.ceil(cols / TILE), Math.ceil(rows / TILE), 1];
export const attentionGrid = (pairs, queries, heads) => [Math.ceil(queries / QUERY_TILE), heads, pairs];

/**
 * One step: `pipeline` (resolved), `buffers` bound at 1, 2, … in order, `params` (up to six u32
 * in a…f, two f32 in g and h) and the `grid` to dispatch.
 * @typedef {{ pipeline: GPUComputePipeline, buffers: GPUBuffer[], params: { a?: number, b?: number, c?: number, d?: number, e?: number, f?: number, g?: number, h?: number }, grid: number[] }} Step
 */

/** Records steps into a command encoder; keeps (and grows) the uniform buffer of their params. */
export class Recorder {
  constructor(device) {
    this.device = device;
    this.slot = Math.max(PARAMS_BYTES, device.limits.minUniformBufferOffsetAlignment);
    this.buffer = null;
    this.capacity = 0;
  }

  get bytes() { return this.buffer?.size ?? 0; }

  /** @param {Step[]} steps @param {GPUCommandEncoder} encoder */
  record(steps, encoder) {
    const size = steps.length * this.slot;
    if (size > this.capacity) {
      this.buffer?.destroy();
      this.capacity = size;
      this.buffer = this.device.createBuffer({ label: 'kernel params', size, usage: GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST });
    }
    const data = new ArrayBuffer(size);
    steps.forEach(({ params }, i) => {
      const words = new Uint32Array(data, i * this.slot, 6);
      ['a', 'b', 'c', 'd', 'e', 'f'].forEach((name, j) => { words[j] = params[name] ?? 0; });
      const floats = new Float32Array(data, i * this.slot + 24, 2);
      floats[0] = params.g ?? 0;
      floats[1] = params.h ?? 0;
    });
    this.device.queue.writeBuffer(this.buffer, 0, data);
    const pass = encoder.beginComputePass();
    steps.forEach(({ pipeline, buffers, grid }, i) => {
      const entries = [{ binding: 0, resource: { buffer: this.buffer, offset: i * this.slot, size: PARAMS_BYTES } }];
      buffers.forEach((buffer, j) => entries.push({ binding: j + 1, resource: { buffer } }));
      pass.setPipeline(pipeline);
      pass.setBindGroup(0, this.device.createBindGroup({ layout: pipeline.getBindGroupLayout(0), entries }));
      pass.dispatchWorkgroups(...grid);
    });
    pass.end();
  }

  destroy() {
    this.buffer?.destroy();
    this.buffer = null;
    this.capacity = 0;
  }
}
