// Test-only worker script (webgpu.test.mjs passes it as `workerUrl`): the package's worker with
// www/src/testhooks.js set from this script's query string first, to make happen on demand what a
// healthy adapter never does.
//   ?selfCheckOffset=5     every GPU logit of the load-time self-check is off by 5: the check fails
//   ?scratchBytes=262144   the engine's scratch budget is 256 KiB: its batches must split
//   ?loseAt=2              the GPU device is destroyed (device.lost) after the worker's 2nd GPU
//                          batch of a rerank, counted over all its calls

import { testHooks } from '/www/src/testhooks.js';

const params = new URL(import.meta.url).searchParams;
if (params.has('selfCheckOffset')) testHooks.selfCheckOffset = Number(params.get('selfCheckOffset'));
if (params.has('scratchBytes')) testHooks.scratchBytes = Number(params.get('scratchBytes'));
if (params.has('loseAt')) {
  const loseAt = Number(params.get('loseAt'));
  let batches = 0;
  testHooks.afterBatch = (device) => {
    batches += 1;
    if (batches === loseAt) device.destroy();
  };
}

// After the hooks are set: a static import would run worker.js first.
await import('/www/src/worker.js');
