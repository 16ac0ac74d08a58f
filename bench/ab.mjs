#!/usr/bin/env node
// Two builds of the wasm module, A and B, on one workload in headless Chromium: timed in
// alternating rounds (A, B, A, B, …), each round in a fresh module Web Worker (its own compile,
// probe and memory, as a user's worker would have), and their logits compared bit for bit. This
// machine's speed drifts by several percent between minutes, so only alternating runs tell a
// change of a few percent from the drift; and a change meant to keep the numbers must show
// `identical: true` here before its speed means anything.
//
//   node bench/ab.mjs --a /artifacts/pkgA --b /www/pkg [--workload W30] [--rounds 2] [--repeat 3]
//                     [--gguf artifacts/bench/gguf/minilm-l4.q8_0.gguf] [--int8-dot dot-add|i16-dot]
//
// A build is a directory served from the repository root holding crossrank_wasm.js and the
// module: crossrank_wasm_relaxed_bg.wasm where it has one (www/pkg after ./build.sh wasm), else
// crossrank_wasm_bg.wasm (a copy built as bench/wasm_profile.mjs's header says). --int8-dot fixes
// the relaxed kernel's dot sequence (both are compared then); otherwise each worker's probe picks.
// Each round prints the median of --repeat runs after one warm-up run.

import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

import { startServer } from '../tests/browser/server.mjs';
import { launchChromium, ROOT } from '../tests/browser/harness.mjs';

const args = { a: '', b: '', workload: 'W30', rounds: 2, repeat: 3, gguf: 'artifacts/bench/gguf/minilm-l4.q8_0.gguf', int8Dot: '' };
for (let i = 2; i < process.argv.length; i += 2) {
  const key = process.argv[i].replace(/^--/, '').replace(/-(\w)/g, (_, c) => c.toUpperCase());
  if (!(key in args) || process.argv[i + 1] === undefined) throw new Error(`bad argument ${process.argv[i]} (see the comment at the top)`);
  args[key] = typeof args[key] === 'number' ? Number(process.argv[i + 1]) : process.argv[i + 1];
}
if (!args.a || !args.b) throw new Error('--a and --b name the two builds (directories under the repository, e.g. /www/pkg)');
const root = ROOT.pathname;
const moduleOf = (dir) => {
  for (const file of ['crossrank_wasm_relaxed_bg.wasm', 'crossrank_wasm_bg.wasm']) if (existsSync(join(root, dir, file))) return `${dir}/${file}`;
  throw new Error(`${dir} holds no crossrank_wasm*_bg.wasm`);
};
const builds = { A: { dir: args.a, wasm: moduleOf(args.a) }, B: { dir: args.b, wasm: moduleOf(args.b) } };
const workloadFile = join(root, 'artifacts', 'bench', `${args.workload}.json`);
for (const file of [workloadFile, join(root, args.gguf)]) {
  if (!existsSync(file)) throw new Error(`${file} is missing: run ./build.sh bench once (it makes the workloads and GGUFs)`);
}
const workload = JSON.parse(readFileSync(workloadFile, 'utf8'));

// The worker: one build, a warm-up run, then `repeat` timed runs; replies with the times and the
// last run's logits.
const WORKER = `
self.onmessage = async ({ data: { dir, wasm, gguf, workload, repeat, int8Dot } }) => {
  try {
    const module = await import(dir + '/crossrank_wasm.js');
    await module.default({ module_or_path: wasm });
    if (int8Dot) module.selectInt8Dot(int8Dot);
    const reranker = module.WasmReranker.fromGguf(new Uint8Array(await (await fetch(gguf)).arrayBuffer()));
    reranker.logits(workload.query, workload.documents);
    const times = [];
    let logits;
    for (let i = 0; i < repeat; i++) {
      const start = performance.now();
      logits = reranker.logits(workload.query, workload.documents);
      times.push(performance.now() - start);
    }
    self.postMessage({ times, logits: Array.from(logits), int8Dot: reranker.info().int8Dot });
  } catch (error) {
    self.postMessage({ error: String(error?.stack ?? error) });
  }
};`;

const server = await startServer();
const chromium = await launchChromium();
try {
  const page = await chromium.context.newPage();
  await page.goto(`${server.origin}/bench/browser/index.html`);
  const run = (build) => page.evaluate(async ({ source, message }) => {
    // A module worker from a blob resolves absolute paths against its own URL: pass full ones.
    const worker = new Worker(URL.createObjectURL(new Blob([source], { type: 'text/javascript' })), { type: 'module' });
    try {
      return await new Promise((resolve, reject) => {
        worker.onmessage = ({ data }) => (data.error ? reject(new Error(data.error)) : resolve(data));
        worker.onerror = (event) => reject(new Error(event.message || 'the worker failed to start'));
        worker.postMessage(message);
      });
    } finally {
      worker.terminate();
    }
  }, {
    source: WORKER,
    message: {
      dir: `${server.origin}${build.dir}`, wasm: `${server.origin}/${build.wasm.replace(/^\//, '')}`, gguf: `${server.origin}/${args.gguf}`,
      workload, repeat: args.repeat, int8Dot: args.int8Dot,
    },
  });
  const median = (times) => [...times].sort((x, y) => x - y)[Math.floor(times.length / 2)];
  const logits = {};
  const medians = { A: [], B: [] };
  for (let round = 1; round <= args.rounds; round++) {
    for (const name of ['A', 'B']) {
      const result = await run(builds[name]);
      logits[name] ??= result.logits;
      medians[name].push(median(result.times));
      console.log(`round ${round} ${name} (${builds[name].wasm}, ${result.int8Dot ?? 'no int8 dot'}): median ${median(result.times).toFixed(0)} ms (${result.times.map((t) => t.toFixed(0)).join(' ')})`);
    }
  }
  const identical = logits.A.length === logits.B.length && logits.A.every((v, i) => Object.is(v, logits.B[i]));
  const worst = Math.max(...logits.A.map((v, i) => Math.abs(v - logits.B[i])));
  const ratio = medians.B.reduce((sum, b, i) => sum + b / medians.A[i], 0) / args.rounds;
  console.log(`${args.workload}: B/A ${ratio.toFixed(3)} (mean over rounds of B's median over A's); logits identical: ${identical}${identical ? '' : ` (max |Δ| ${worst.toExponential(2)})`}`);
} finally {
  await chromium.close();
  await server.close?.();
}
process.exit(0);
