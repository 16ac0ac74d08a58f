// Test-only: sets www/src/testhooks.js from the query string of the worker's script
// (webgpu-hooks.js?…, whose header lists the switches). Its own module so that webgpu-hooks.js can
// import it before worker.js, statically: a worker that awaited a dynamic import first would miss
// the page's first message (a module worker's messages are dispatched as soon as it runs).

import { testHooks } from '/www/src/testhooks.js';

const params = new URL(self.location.href).searchParams;
if (params.has('softwareAdapter')) testHooks.softwareAdapter = true;
if (params.has('selfCheckOffset')) testHooks.selfCheckOffset = Number(params.get('selfCheckOffset'));
if (params.has('int8Dot')) testHooks.int8Dot = params.get('int8Dot');
if (params.has('scratchBytes')) testHooks.scratchBytes = Number(params.get('scratchBytes'));
if (params.has('loseAt')) {
  const loseAt = Number(params.get('loseAt'));
  let batches = 0;
  testHooks.afterBatch = (device) => {
    batches += 1;
    if (batches === loseAt) device.destroy();
  };
}
