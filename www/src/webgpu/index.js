// The WebGPU encoder engine: openGpu() finds an adapter and device, GpuEncoder runs the model
// plan (wasm export gpuPlan) on it and returns the logits of prepared batches. The worker
// (www/src/worker.js) owns the device, watches device.lost and falls back to wasm.

export { openGpu } from './device.js';
export { GpuEncoder } from './encoder.js';
