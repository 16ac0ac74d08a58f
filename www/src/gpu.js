// The WebGPU backend as the worker uses it: where a model's encoder runs (chosen at load: an
// adapter, the upload, the self-check), a rerank through the wasm model's prepare → GPU batches →
// finish, and a device that is lost. The arithmetic is the engine's (webgpu/index.js); tokenising,
// windows, fusion and ordering stay in the wasm model, so both devices give the same reply, and the
// wasm model stays loaded beside the GPU's copy: it tokenises, and it takes over when the GPU fails.

import { Device, ErrorCode, RerankerError } from './protocol.js';
import { selfCheck } from './selfcheck.js';
import { testHooks } from './testhooks.js';
import { gpuPlan } from './wasm.js';

/**
 * What `info` says about the device (index.d.ts's DeviceInfo): where the encoder runs, the
 * adapter when it is WebGPU, and why not WebGPU when `auto` wanted it.
 * @typedef {{ device: 'webgpu' | 'wasm', gpu: object | null, fallback: string | null }} DeviceInfo
 */

/** One model's encoder on one GPU device, until it is lost or replaced. */
export class GpuBackend {
  #gpu;
  #encoder;
  /** Why the device can no longer be used (lost, or it failed a call); null while it can. */
  lost = null;
  /** Set by close(): a loss that follows is ours, not news. */
  #closed = false;

  /**
   * @param {object} gpu openGpu()'s adapter and device
   * @param {object} encoder a GpuEncoder holding the model
   * @param {(reason: string) => void} onLost told once when the device is lost on its own
   */
  constructor(gpu, encoder, onLost) {
    this.#gpu = gpu;
    this.#encoder = encoder;
    gpu.device.lost.then((info) => {
      if (this.#closed) return;
      this.fail(`the GPU device was lost (${info?.reason ?? 'unknown'}${info?.message ? `: ${info.message}` : ''})`);
      onLost(this.lost);
    });
  }

  /** What `info.gpu` reports: the engine's own account (adapter, features, precision, gpuBytes). */
  get info() {
    return this.#encoder.info;
  }

  /**
   * `requests` scored on the GPU: exactly what `model.score(requests, options)` returns. Rust's
   * errors (a bad option, an empty query) come from prepare and keep their code; a GPU failure
   * rejects with `gpuFailed` set (see worker.js, which then finishes the call on wasm).
   */
  async score(model, requests, options, { checking = false } = {}) {
    const prepared = model.prepare(requests, options);
    try {
      const parts = [];
      let rows = 0;
      for (let index = 0; index < prepared.batchCount; index += 1) {
        let logits;
        try {
          logits = await this.#encoder.logits(prepared.batch(index));
        } catch (error) {
          throw gpuFailure(error);
        }
        parts.push(logits);
        rows += logits.length;
        if (!checking) testHooks.afterBatch?.(this.#gpu.device, index);
      }
      const all = new Float32Array(rows);
      let offset = 0;
      for (const part of parts) {
        all.set(part, offset);
        offset += part.length;
      }
      try {
        return prepared.finish(all);
      } catch (error) {
        // Non-finite logits: the GPU's fault when wasm computes the same pairs finitely, which
        // the caller finds out by scoring them there.
        throw error?.code === ErrorCode.COMPUTE ? gpuFailure(error) : error;
      }
    } finally {
      prepared.free();
    }
  }

  /** Marks the device unusable for the reason given (the first reason stays). */
  fail(reason) {
    this.lost ??= reason;
    this.close();
  }

  /** Frees the GPU's copy of the model and the device; a loss that follows is not reported. */
  close() {
    if (this.#closed) return;
    this.#closed = true;
    try {
      this.#encoder.destroy();
      this.#gpu.device.destroy();
    } catch {
      // Already gone: nothing left to free.
    }
  }
}

function gpuFailure(error) {
  const failure = new Error(`the GPU failed: ${error?.message ?? error}`, { cause: error });
  failure.gpuFailed = true;
  failure.gpuLost = error?.gpuLost === true;
  return failure;
}

/**
 * The first half of choosing the device, before the model is read: the adapter and device as
 * `device` asks (`{ gpu }`), or why not (`{ reason }`); `{}` for `wasm`, which never touches the
 * GPU (not even to import the engine). Started with the download; never rejects.
 */
export async function openDevice(device) {
  if (device === Device.WASM) return {};
  if (typeof navigator === 'undefined' || !navigator.gpu) {
    return { reason: typeof globalThis.process?.versions?.node === 'string' ?
      'this runtime has no WebGPU (navigator.gpu is undefined: Node and Bun have none, Deno only with --unstable-webgpu)' :
      'this browser has no WebGPU (navigator.gpu is undefined: not supported or turned off, or not a secure context: https: or localhost)' };
  }
  if (device === Device.AUTO && typeof globalThis.Deno === 'object') {
    // Measured with Deno 2.9.6 and no crossrank code: a worker thread that asks for a WebGPU
    // adapter makes the process crash at exit (SIGSEGV) in about half the runs. 'auto' must not
    // risk that; 'webgpu' is the user's explicit choice.
    return { reason: 'Deno: device "auto" does not open WebGPU in a worker thread (Deno 2.9 can crash at exit, SIGSEGV, once a worker has used WebGPU); device "webgpu" opts in' };
  }
  try {
    // Loaded only here: a wasm-only reranker never fetches the engine and its shaders.
    const engine = await import('./webgpu/index.js');
    const gpu = await engine.openGpu();
    if (!gpu.device) return { reason: gpu.unavailable ?? 'no WebGPU adapter' };
    if (device === Device.AUTO && gpu.softwareAdapter && !testHooks.softwareAdapter) {
      // The adapter is asked for once, with a device, and the device destroyed when not kept:
      // Deno 2.9 crashes at exit (SIGSEGV, about one run in two) when a worker thread ends
      // holding an adapter that never got a device (tests/node/runtimes.test.mjs).
      gpu.device.destroy();
      return { reason: 'the only WebGPU adapter is a software one (isFallbackAdapter: a CPU emulating a GPU, slower than wasm); device "webgpu" would use it' };
    }
    return { gpu, engine };
  } catch (error) {
    return { reason: `the WebGPU engine did not start: ${error?.message ?? error}` };
  }
}

/**
 * The GGUF `bytes` as the GPU engine's plan, when `opened` has a GPU (else null). Called before the
 * wasm model is read: the plan reads the weights once more inside wasm, and wasm memory never
 * shrinks, so this order lets the model reuse that memory (measured with the default model: 64 MiB
 * of wasm memory, against 93 MiB the other way round). A file gpuPlan cannot read gives null here;
 * fromGguf then says what is wrong with it.
 */
export function readPlan(opened, bytes) {
  if (!opened.gpu) return null;
  try {
    return gpuPlan(bytes);
  } catch (error) {
    if (error instanceof WebAssembly.RuntimeError) throw error;
    opened.reason = `the model could not be described for the GPU: ${error?.message ?? error}`;
    return null;
  }
}

/**
 * The second half: where `model` (a WasmReranker) runs its encoder, given openDevice's answer and
 * readPlan's plan. Resolves to `{ backend: GpuBackend | null, device: DeviceInfo }`: `auto` falls
 * back to wasm with the reason in `fallback`; `webgpu` rejects with `webgpu_unavailable` and that
 * reason. Frees the GPU device it does not keep.
 */
export async function chooseDevice(model, opened, plan, { device, check, onLost }) {
  if (device === Device.WASM) return { backend: null, device: { device: Device.WASM, gpu: null, fallback: null } };
  const { backend, reason } = plan ? await startBackend(model, opened, plan, { check, onLost }) : { reason: opened.reason };
  if (!backend) opened.gpu?.device.destroy();
  if (backend) return { backend, device: { device: Device.WEBGPU, gpu: backend.info, fallback: null } };
  if (device === Device.WEBGPU) throw new RerankerError(ErrorCode.WEBGPU_UNAVAILABLE, `device "webgpu" cannot be used: ${reason}`);
  return { backend: null, device: wasmFallback(reason) };
}

/** The DeviceInfo of a worker that runs on wasm because WebGPU could not be used (or no longer can). */
export function wasmFallback(reason) {
  return { device: Device.WASM, gpu: null, fallback: reason };
}

async function startBackend(model, { gpu, engine }, plan, { check, onLost }) {
  let encoder;
  try {
    const scratchBytes = testHooks.scratchBytes;
    encoder = await engine.GpuEncoder.create(gpu, plan, scratchBytes ? { scratchBytes } : {});
  } catch (error) {
    return { reason: `the model could not be put on the GPU: ${error?.message ?? error}` };
  }
  const backend = new GpuBackend(gpu, encoder, onLost);
  if (check) {
    const { precision } = model.info();
    const failed = await selfCheck(
      precision,
      (requests) => model.score(requests, {}),
      (requests) => backend.score(model, requests, {}, { checking: true }),
      testHooks.selfCheckOffset,
    ).catch((error) => {
      if (error instanceof WebAssembly.RuntimeError) throw error;
      return `the WebGPU self-check failed: ${error?.message ?? error}`;
    });
    if (failed) {
      backend.close();
      return { reason: failed };
    }
  }
  return { backend };
}
