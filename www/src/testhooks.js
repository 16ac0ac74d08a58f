// Test-only. tests/browser/webgpu-hooks.js, a worker script that the WebGPU tests pass as
// `workerUrl`, sets these before it imports worker.js, to make happen on demand what a healthy
// adapter never does: a self-check that fails, a small buffer budget, a device lost mid-call; and
// the int8 dot sequence a CPU's probe would not pick.
// Nothing in the package sets them; unset, they change nothing.

export const testHooks = {
  /** Lets device 'auto' take a software (fallback) adapter: SwiftShader is the tests' only one. */
  softwareAdapter: false,
  /** Added to every GPU logit of the load-time self-check (not of a rerank): the check then fails. */
  selfCheckOffset: 0,
  /** Bytes: the engine's scratch budget (GpuEncoder.create's scratchBytes), low so that batches must split. */
  scratchBytes: null,
  /** `(device, batchIndex)` after each GPU batch of a rerank; `device.destroy()` there loses the device. */
  afterBatch: null,
  /** 'dot-add' or 'i16-dot': the relaxed int8 kernel's dot sequence from the load on; no probe replaces it. */
  int8Dot: null,
};
