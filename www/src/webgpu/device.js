// The WebGPU adapter and device, or the reason there is none. The package decides what to do
// with an { unavailable } answer (fall back to wasm); nothing here throws for a missing GPU.

/** The limits the encoder sizes its buffers and workgroups by: asked for at the adapter's maximum. */
const RAISED_LIMITS = ['maxStorageBufferBindingSize', 'maxBufferSize', 'maxComputeWorkgroupStorageSize', 'maxComputeInvocationsPerWorkgroup'];

/** The adapter's self-description; fields a browser hides (Chromium without flags does) are ''. */
function describeAdapter(adapter) {
  const info = adapter.info ?? {};
  return {
    vendor: info.vendor ?? '',
    architecture: info.architecture ?? '',
    device: info.device ?? '',
    description: info.description ?? '',
  };
}

/**
 * Adapter + device, or why not.
 * @returns {Promise<{ device: GPUDevice, adapter: { vendor: string, architecture: string, device: string, description: string }, features: string[], limits: GPUSupportedLimits, softwareAdapter: boolean } | { unavailable: string }>}
 */
export async function openGpu() {
  const gpu = globalThis.navigator?.gpu;
  if (!gpu) return { unavailable: 'this browser has no WebGPU (navigator.gpu is undefined)' };
  let adapter;
  try {
    adapter = await gpu.requestAdapter({ powerPreference: 'high-performance' });
  } catch (error) {
    return { unavailable: `requestAdapter failed: ${error?.message ?? error}` };
  }
  if (!adapter) return { unavailable: 'no WebGPU adapter (requestAdapter returned null: no GPU, or WebGPU disabled)' };
  const requiredLimits = {};
  for (const name of RAISED_LIMITS) {
    if (adapter.limits[name] !== undefined) requiredLimits[name] = adapter.limits[name];
  }
  let device;
  try {
    device = await adapter.requestDevice({ requiredLimits });
  } catch (error) {
    return { unavailable: `requestDevice failed: ${error?.message ?? error}` };
  }
  return {
    device,
    adapter: describeAdapter(adapter),
    features: [...adapter.features].sort(),
    limits: device.limits,
    // A fallback adapter (Chromium's SwiftShader, Deno's on a machine without a GPU) is a CPU
    // emulating a GPU: device 'auto' leaves it to wasm.
    softwareAdapter: Boolean(adapter.info?.isFallbackAdapter ?? adapter.isFallbackAdapter),
  };
}
