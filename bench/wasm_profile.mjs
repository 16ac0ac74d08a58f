#!/usr/bin/env node
// Where the wasm build spends its time in Chromium: V8's sampling profiler (DevTools protocol)
// around one workload, self time summed per function. The module runs on the page's main thread
// (workers are not reachable by a page's CDP session); one thread, as in bench/browser.mjs.
//
//   node bench/wasm_profile.mjs [--workload W30-short] [--gguf artifacts/bench/gguf/minilm-l4.q8_0.gguf]
//                               [--pkg /www/pkg] [--repeat 2] [--max-length 512] [--int8-dot dot-add|i16-dot]
//
// Function names need the module's name section, which ./build.sh wasm strips: build a copy with
// `wasm-bindgen --keep-debug` and `wasm-opt -O3 -g` under artifacts/ and pass --pkg /artifacts/….
// --int8-dot fixes the relaxed kernel's dot sequence; otherwise the warm-up run's probe chooses it.
// --callers NAME also splits the self time of each function whose name contains NAME by its
// caller (e.g. `--callers alloc_zeroed`: which buffers the zeroed allocations are).

import { existsSync } from 'node:fs';

import { startServer } from '../tests/browser/server.mjs';
import { launchChromium } from '../tests/browser/harness.mjs';

const args = { workload: 'W30-short', gguf: 'artifacts/bench/gguf/minilm-l4.q8_0.gguf', pkg: '/www/pkg', repeat: 2, maxLength: 512, top: 30, int8Dot: '', callers: '' };
for (let i = 2; i < process.argv.length; i += 2) {
  const key = process.argv[i].replace(/^--/, '').replace(/-(\w)/g, (_, c) => c.toUpperCase());
  if (!(key in args)) throw new Error(`unknown argument ${process.argv[i]} (see the comment at the top)`);
  args[key] = typeof args[key] === 'number' ? Number(process.argv[i + 1]) : process.argv[i + 1];
}
const workload = `artifacts/bench/${args.workload}.json`;
for (const file of [workload, args.gguf]) {
  if (!existsSync(file)) throw new Error(`${file} is missing: run ./build.sh bench once (it makes the workloads and GGUFs)`);
}

const server = await startServer();
const chromium = await launchChromium();
const { context } = chromium;
try {
  const page = await context.newPage();
  await page.goto(`${server.origin}/bench/browser/index.html`);
  await page.evaluate(async ({ gguf, pkg, workload, int8Dot }) => {
    const { default: init, WasmReranker, selectInt8Dot } = await import(`${pkg}/crossrank_wasm.js`);
    await init({ module_or_path: `${pkg}/crossrank_wasm_bg.wasm` });
    const bytes = new Uint8Array(await (await fetch(`/${gguf}`)).arrayBuffer());
    window.reranker = WasmReranker.fromGguf(bytes);
    if (int8Dot) selectInt8Dot(int8Dot);
    window.workload = await (await fetch(`/${workload}`)).json();
  }, { gguf: args.gguf, pkg: args.pkg, workload, int8Dot: args.int8Dot });
  const run = () =>
    page.evaluate((maxLength) => {
      const start = performance.now();
      window.reranker.logits(window.workload.query, window.workload.documents, { maxLength });
      return performance.now() - start;
    }, args.maxLength);
  console.log(`warm-up: ${(await run()).toFixed(0)} ms; int8 dot sequence: ${await page.evaluate(() => window.reranker.info().int8Dot)}${args.int8Dot ? ' (--int8-dot)' : ''}`);

  const cdp = await context.newCDPSession(page);
  await cdp.send('Profiler.enable');
  await cdp.send('Profiler.setSamplingInterval', { interval: 200 });
  await cdp.send('Profiler.start');
  const times = [];
  for (let i = 0; i < args.repeat; i++) times.push(await run());
  const { profile } = await cdp.send('Profiler.stop');
  console.log(`profiled runs: ${times.map((t) => t.toFixed(0)).join(', ')} ms`);

  // Self time per function: each sample is charged to the node it landed in.
  const byId = new Map(profile.nodes.map((node) => [node.id, node]));
  const selfSamples = new Map();
  for (const id of profile.samples) {
    const { functionName, url } = byId.get(id).callFrame;
    const name = functionName || (url ? `(anonymous) ${url.split('/').pop()}` : '(program)');
    selfSamples.set(name, (selfSamples.get(name) ?? 0) + 1);
  }
  const total = profile.samples.length;
  const rows = [...selfSamples].sort((a, b) => b[1] - a[1]).slice(0, args.top);
  console.log(`\n${total} samples; self time by function:`);
  for (const [name, count] of rows) console.log(`${((100 * count) / total).toFixed(1).padStart(5)}%  ${name.slice(0, 140)}`);

  if (args.callers) {
    const parentOf = new Map();
    for (const node of profile.nodes) for (const child of node.children ?? []) parentOf.set(child, node);
    const byCaller = new Map();
    for (const id of profile.samples) {
      const node = byId.get(id);
      if (!node.callFrame.functionName.includes(args.callers)) continue;
      const key = `${node.callFrame.functionName.slice(0, 60)} <- ${parentOf.get(id)?.callFrame.functionName.slice(0, 100) || '(root)'}`;
      byCaller.set(key, (byCaller.get(key) ?? 0) + 1);
    }
    console.log(`\nself time of functions matching "${args.callers}", by caller:`);
    for (const [key, count] of [...byCaller].sort((a, b) => b[1] - a[1]).slice(0, args.top)) console.log(`${((100 * count) / total).toFixed(1).padStart(5)}%  ${key}`);
  }
} finally {
  await chromium.close();
  await server.close();
}
