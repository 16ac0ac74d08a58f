// Test-only worker script (webgpu.test.mjs passes it as `workerUrl`): the package's worker with
// www/src/testhooks.js set first (webgpu-hooks-setup.js), to make happen on demand what a healthy
// adapter never does. Switches, in this script's query string:
//   ?softwareAdapter       device 'auto' takes a software adapter (SwiftShader), as it does not otherwise
//   ?selfCheckOffset=5     every GPU logit of the load-time self-check is off by 5: the check fails
//   ?scratchBytes=600000   the engine's scratch budget is 600 kB: its batches must split
//   ?int8Dot=dot-add       the relaxed int8 kernel runs this dot sequence (not the probe's choice)
//   ?loseAt=2              the GPU device is destroyed (device.lost) after the worker's 2nd GPU
//                          batch of a rerank, counted over all its calls

import './webgpu-hooks-setup.js'; // first: modules run in the order they are imported
import '/www/src/worker.js';
