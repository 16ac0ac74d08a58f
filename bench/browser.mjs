#!/usr/bin/env node
// crossrank (wasm) against transformers.js in headless Chromium, each in a Web Worker, on the same
// model and workloads as bench/peers.py.
//
//   node bench/browser.mjs [--model tests/models/minilm-l4] [--repeat 5] [--workload W30 --workload W100 …]
//                          [--threads 1 --threads 2] [--systems crossrank-f32,tjs-q8,…] [--out FILE.md]
//                          [--documents N] [--gpu] [--rounds N]
//
// WebGPU rows (crossrank-webgpu-*, tjs-webgpu-fp32) run only when named in --systems. Without --gpu
// the browser gets SwiftShader's adapter (Vulkan emulated on the CPU, no GPU needed): those rows
// show that the path works, never a speed; with --gpu Chromium keeps its GPU process and picks the
// machine's adapter. Either way the adapter's vendor/architecture goes into the table.
// --documents N keeps only each workload's first N documents (SwiftShader needs minutes per W30).
// --rounds N runs every system N times in turn (fresh workers each round): this machine's speed
// drifts by several percent between minutes, so a ratio from one pass can be off by that much;
// with rounds, each ratio is the mean of the rounds' ratios (each round's systems ran minutes
// apart at most), shown with its range, and each row's times pool all rounds.
//
// Needs: bench/node_modules (npm ci in bench/: transformers.js), www/node_modules (the test
// harness's playwright-core), www/pkg (./build.sh wasm), the ONNX export and
// PyTorch reference of bench/export_onnx.py, and the GGUFs that bench/peers.py converts (this
// script converts them too when target/release/crossrank exists). The browser tests' server
// (tests/browser/server.mjs) serves the repository from 127.0.0.1 with COOP/COEP headers, so the page is cross-origin isolated and ONNX Runtime Web may
// use 2 threads; no request leaves the machine (transformers.js: allowRemoteModels = false, ONNX
// Runtime's .wasm/.mjs from node_modules). Writes artifacts/bench/browser.md and browser.json.

import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { basename, join, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import { gzipSync } from 'node:zlib';

import { launchChromium, WEBGPU_ARGS } from '../tests/browser/harness.mjs';
import { startServer } from '../tests/browser/server.mjs';

const ROOT = resolve(fileURLToPath(new URL('..', import.meta.url)));
const BENCH = join(ROOT, 'artifacts', 'bench');
// W100 only when asked (--workload W100): the targets are about W30, and W100 triples the run time.
const WORKLOADS = ['W30', 'W30-short'];
const CPU_SYSTEMS = ['crossrank-f32', 'crossrank-q8_0', 'crossrank-q8_0-simd128', 'crossrank-q8_0-dequantize', 'crossrank-q8_0-blocks', 'crossrank-q8_0-npm', 'tjs-fp32', 'tjs-q8'];
const WEBGPU_SYSTEMS = ['crossrank-webgpu-f32', 'crossrank-webgpu-q8_0', 'crossrank-webgpu-q8_0-npm', 'tjs-webgpu-fp32'];
const SYSTEMS = [...CPU_SYSTEMS, ...WEBGPU_SYSTEMS];
const isWebGpu = (system) => WEBGPU_SYSTEMS.includes(system);
const LABELS = {
  'crossrank-f32': 'crossrank wasm f32',
  'crossrank-q8_0': 'crossrank wasm q8_0 (default: matmul "int8", relaxed-SIMD build)',
  'crossrank-q8_0-simd128': 'crossrank wasm q8_0 (matmul "int8", SIMD128 build: browsers without relaxed SIMD)',
  'crossrank-q8_0-dequantize': 'crossrank wasm q8_0 (matmul "dequantize")',
  'crossrank-q8_0-blocks': 'crossrank wasm q8_0 (matmul "blocks")',
  // The npm package as users call it: Reranker.create({ threads }), one worker per thread.
  'crossrank-q8_0-npm': 'crossrank npm package q8_0 (Reranker, `threads` workers)',
  'tjs-fp32': 'transformers.js fp32',
  'tjs-q8': 'transformers.js q8 (int8)',
  // The WGSL encoder (www/src/webgpu/) on batches that the wasm build tokenises (prepare/finish).
  'crossrank-webgpu-f32': 'crossrank WebGPU f32 weights',
  'crossrank-webgpu-q8_0': 'crossrank WebGPU q8_0 weights (dequantised in the shader)',
  // The package as users call it: Reranker.create({ device: 'webgpu' }) (its worker runs the same engine).
  'crossrank-webgpu-q8_0-npm': 'crossrank npm package q8_0, device "webgpu"',
  'tjs-webgpu-fp32': 'transformers.js WebGPU fp32',
};
const ISOLATED = {
  'Cross-Origin-Opener-Policy': 'same-origin',
  'Cross-Origin-Embedder-Policy': 'require-corp',
  'Cross-Origin-Resource-Policy': 'same-origin',
};
// An inert switch that tells this run's browser process apart from any other Chromium on the machine.
const MARKER = `--crossrank-bench=${process.pid}`;
const CLOCK_TICKS = 100; // USER_HZ on Linux

function parseArgs(argv) {
  const args = { model: 'tests/models/minilm-l4', repeat: 5, repeatW100: 3, workloads: [], threads: [], systems: CPU_SYSTEMS, out: join(BENCH, 'browser.md'), documents: 0, gpu: false, rounds: 1 };
  for (let i = 0; i < argv.length; i++) {
    const value = () => argv[++i];
    switch (argv[i]) {
      case '--model': args.model = value(); break;
      case '--repeat': args.repeat = Number(value()); break;
      case '--repeat-w100': args.repeatW100 = Number(value()); break;
      case '--workload': args.workloads.push(value()); break;
      case '--threads': args.threads.push(Number(value())); break;
      case '--systems': args.systems = value().split(','); break;
      case '--out': args.out = resolve(value()); break;
      case '--documents': args.documents = Number(value()); break;
      case '--gpu': args.gpu = true; break;
      case '--rounds': args.rounds = Number(value()); break;
      default: throw new Error(`unknown argument ${argv[i]} (see the comment at the top of bench/browser.mjs)`);
    }
  }
  if (!args.workloads.length) args.workloads = WORKLOADS;
  if (!args.threads.length) args.threads = [1, 2];
  for (const system of args.systems) if (!SYSTEMS.includes(system)) throw new Error(`unknown system ${system}: one of ${SYSTEMS.join(', ')}`);
  return args;
}

function need(path, how) {
  if (!existsSync(path)) throw new Error(`${path.replace(ROOT + sep, '')} is missing: ${how}`);
  return path;
}

/** The GGUFs bench/peers.py writes; converted here when missing and the CLI is built. */
function ensureGguf(modelDir, name, dtype) {
  const path = join(BENCH, 'gguf', `${name}.${dtype}.gguf`);
  if (!existsSync(path)) {
    const cli = need(join(ROOT, 'target', 'release', 'crossrank'), 'run ./build.sh cli (or python3 bench/peers.py first)');
    mkdirSync(join(BENCH, 'gguf'), { recursive: true });
    execFileSync(cli, ['convert', '--model', modelDir, '--dtype', dtype, '--out', path, '--source', name], { stdio: 'inherit' });
  }
  return path;
}

/** /proc/<pid>/stat of every process: pid -> { ppid, cpu seconds (user + system) }. */
function processTable() {
  const table = new Map();
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      table.set(Number(entry), { ppid: Number(fields[1]), cpu: (Number(fields[11]) + Number(fields[12])) / CLOCK_TICKS });
    } catch {
      // the process ended meanwhile
    }
  }
  return table;
}

function findBrowserPid() {
  for (const entry of readdirSync('/proc')) {
    try {
      const argv = readFileSync(`/proc/${entry}/cmdline`, 'utf8').split('\0');
      if (argv.includes(MARKER) && !argv.some((arg) => arg.startsWith('--type='))) return Number(entry);
    } catch {
      // not ours or gone
    }
  }
  throw new Error('cannot find the Chromium browser process in /proc');
}

/** CPU seconds used so far by the browser and all its descendants (renderer, workers' threads, GPU, utility). */
function treeCpuSeconds(root) {
  const table = processTable();
  const children = new Map();
  for (const [pid, { ppid }] of table) children.set(ppid, [...(children.get(ppid) ?? []), pid]);
  let total = 0;
  const stack = [root];
  while (stack.length) {
    const pid = stack.pop();
    total += table.get(pid)?.cpu ?? 0;
    stack.push(...(children.get(pid) ?? []));
  }
  return total;
}

/** HEAD's short hash, marked when the work tree differs from it (the build may hold uncommitted code). */
function gitRevision() {
  const git = (...args) => {
    try {
      return execFileSync('git', args, { cwd: ROOT, encoding: 'utf8' }).trim();
    } catch {
      return '';
    }
  };
  return (git('rev-parse', '--short', 'HEAD') || 'unknown') + (git('status', '--porcelain', '--untracked-files=no') ? '+changes' : '');
}

const median = (values) => {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
};
const maxDelta = (a, b) => Math.max(...a.map((x, i) => Math.abs(x - b[i])));
const bytesOf = (path) => statSync(path).size;
const delta = (value) => (Number.isNaN(value) ? '—' : value.toExponential(1));
const gzipBytes = (path) => gzipSync(readFileSync(path), { level: 9 }).length;
const load = () => loadavg().slice(0, 2).map((x) => x.toFixed(1)).join('/');
const fmt = (n) => n.toLocaleString('en-US');

async function main() {
  const args = parseArgs(process.argv.slice(2));
  const modelDir = resolve(ROOT, args.model);
  const name = basename(modelDir);
  // PyTorch's logits (and the ONNX export the peers run) come from export_onnx.py; crossrank alone
  // can run without them (e.g. on random base-size shapes, bench/family_shapes.py), with no Δ column.
  const needsPeers = args.systems.some((system) => system.startsWith('tjs'));
  const onnxDir = join(BENCH, 'onnx', name);
  const referencePath = join(onnxDir, 'reference.json');
  const reference = needsPeers || existsSync(referencePath)
    ? JSON.parse(readFileSync(need(referencePath, `run python3 bench/export_onnx.py --model ${args.model}`), 'utf8'))
    : null;
  if (needsPeers) need(join(ROOT, 'bench', 'node_modules', '@huggingface', 'transformers'), 'run npm ci in bench/');
  need(join(ROOT, 'www', 'pkg', 'crossrank_wasm_bg.wasm'), 'run ./build.sh wasm');
  const workloads = Object.fromEntries(
    args.workloads.map((w) => {
      const workload = JSON.parse(readFileSync(need(join(BENCH, `${w}.json`), 'run python3 bench/make_workloads.py'), 'utf8'));
      if (args.documents) workload.documents = workload.documents.slice(0, args.documents);
      return [w, workload];
    }),
  );
  const repeats = Object.fromEntries(args.workloads.map((w) => [w, w === 'W100' ? args.repeatW100 : args.repeat]));
  const ggufs = {};
  for (const dtype of ['f32', 'q8_0']) {
    if (args.systems.some((system) => system.startsWith('crossrank') && system.endsWith('-f32') === (dtype === 'f32'))) {
      ggufs[dtype] = ensureGguf(modelDir, name, dtype);
    }
  }

  // The browser tests' server and launcher; the page is cross-origin isolated, so that ONNX
  // Runtime Web may use threads.
  const server = await startServer({ headers: ISOLATED });
  const { origin } = server;
  // WebGPU: SwiftShader's adapter unless --gpu, which keeps Chromium's GPU process for a real one.
  const webgpu = args.systems.some(isWebGpu);
  const browser = webgpu && args.gpu
    ? await launchChromium({ args: [MARKER, '--enable-unsafe-webgpu', '--enable-features=Vulkan'], without: ['--disable-gpu'] })
    : await launchChromium({ args: [MARKER, ...(webgpu ? WEBGPU_ARGS : [])] });
  const report = {
    machine: `${cpus()[0]?.model ?? '?'}, ${cpus().length} CPUs`,
    chromium: await browser.version(),
    model: args.model,
    load_start: load(),
    repeats,
    documents: args.documents,
    rows: [],
  };
  try {
    const browserPid = findBrowserPid();
    const page = await browser.context.newPage();
    const errors = [];
    page.on('pageerror', (error) => errors.push(`page error: ${error.message}`));
    page.on('requestfailed', (request) => errors.push(`request failed: ${request.url()} (${request.failure()?.errorText ?? 'no reason given'})`));
    page.on('response', (response) => response.status() >= 400 && errors.push(`HTTP ${response.status()}: ${response.url()}`));
    page.on('console', (message) => message.type() === 'error' && errors.push(`console: ${message.text()}`));
    await page.goto(`${origin}/bench/browser/index.html`);
    await page.waitForFunction(() => window.ready === true);
    const isolated = await page.evaluate(() => self.crossOriginIsolated);
    report.crossOriginIsolated = isolated;
    for (let round = 0; round < args.rounds; round++) for (const threads of args.threads) {
      if (threads > 1 && !isolated) {
        console.error(`skipping ${threads} threads: the page is not cross-origin isolated`);
        continue;
      }
      for (const system of args.systems) {
        // crossrank's wasm module is single-threaded: run it directly at 1 thread only; the npm
        // package spreads a call over `threads` workers.
        if (system.startsWith('crossrank') && !system.endsWith('-npm') && threads !== 1) continue;
        // WebGPU rows run once: the GPU is not divided by threads.
        if (isWebGpu(system) && threads !== args.threads[0]) continue;
        const model = system.startsWith('crossrank')
          ? {
            gguf: `/${join('artifacts', 'bench', 'gguf', basename(system.endsWith('-f32') ? ggufs.f32 : ggufs.q8_0))}`,
            webgpu: isWebGpu(system) && !system.endsWith('-npm'),
            device: isWebGpu(system) ? 'webgpu' : undefined,
            matmul: system.match(/-(blocks|dequantize)$/)?.[1] ?? null,
            npm: system.endsWith('-npm'),
            // The relaxed-SIMD build is what the package runs in Chromium; the other paths have no
            // relaxed kernel, so they run on the plain build.
            wasm: /-(simd128|blocks|dequantize)$/.test(system) ? '/www/pkg/crossrank_wasm_bg.wasm' : '/www/pkg/crossrank_wasm_relaxed_bg.wasm',
          }
          : { localModelPath: '/artifacts/bench/onnx/', name };
        const loadAt = load();
        errors.length = 0;
        await page.evaluate(() => window.startWorker());
        const loaded = await page.evaluate((message) => window.call(message), { type: 'load', system, threads, model });
        const row = { system, label: LABELS[system], threads, load: loadAt, load_ms: loaded.load_ms, info: loaded.info, results: {} };
        for (const w of args.workloads) {
          const full = reference?.workloads[w];
          const ref = full && args.documents ? { ...full, input_ids: full.input_ids.slice(0, args.documents), logits: full.logits.slice(0, args.documents) } : full;
          const call = () => page.evaluate((workload) => window.call({ type: 'run', workload }), workloads[w]);
          const first = await call(); // warm-up
          if (first.input_ids && ref && JSON.stringify(first.input_ids) !== JSON.stringify(ref.input_ids)) throw new Error(`${system} ${w}: token ids differ from PyTorch's`);
          const times = [];
          const cpu = [];
          for (let i = 0; i < repeats[w]; i++) {
            const cpuBefore = treeCpuSeconds(browserPid);
            const run = await call();
            cpu.push((treeCpuSeconds(browserPid) - cpuBefore) * 1e3);
            times.push(run.ms);
            if (run.memory_bytes) row.wasm_memory_bytes = run.memory_bytes;
            if (run.gpu_bytes) row.gpu_bytes = run.gpu_bytes;
            if (run.int8_dot) row.int8_dot = run.int8_dot; // after the runs: the worker's probe has chosen
          }
          const sorted = [...times].sort((a, b) => a - b);
          row.results[w] = { first_ms: first.ms, median_ms: median(sorted), min_ms: sorted[0], max_ms: sorted.at(-1), cpu_ms: median(cpu), times_ms: times, cpu_times_ms: cpu, max_delta: ref ? maxDelta(first.logits, ref.logits) : NaN };
        }
        await page.evaluate(() => window.stopWorker());
        if (errors.length) throw new Error(`${system}: ${errors.join('\n')}`);
        row.model_bytes = system.startsWith('crossrank')
          ? bytesOf(system.endsWith('-f32') ? ggufs.f32 : ggufs.q8_0)
          : bytesOf(join(onnxDir, 'onnx', system === 'tjs-q8' ? 'model_quantized.onnx' : 'model.onnx'));
        if (loaded.info?.adapter) {
          // Each WebGPU system asks for its own adapter: the table names every one that answered.
          report.adapters ??= [];
          const known = report.adapters.find((entry) => JSON.stringify(entry.adapter) === JSON.stringify(loaded.info.adapter));
          if (known) known.systems.push(system);
          else report.adapters.push({ adapter: loaded.info.adapter, systems: [system] });
        }
        report.rows.push(row);
        console.error(`  ${row.label} ×${threads}: ` + Object.entries(row.results).map(([w, r]) => `${w} ${r.median_ms.toFixed(0)} ms (Δ ${delta(r.max_delta)})`).join(', ') + `  [load ${loadAt}]` + (row.int8_dot ? ` [int8 dot: ${row.int8_dot}]` : ''));
      }
    }
  } finally {
    await browser.close();
    await server.close();
  }
  report.load_end = load();
  report.rounds = args.rounds;
  report.rows = poolRounds(report.rows);
  const ortWasm = join(ROOT, 'bench', 'node_modules', 'onnxruntime-web', 'dist', 'ort-wasm-simd-threaded.asyncify.wasm');
  const crossrankWasm = join(ROOT, 'www', 'pkg', 'crossrank_wasm_bg.wasm');
  const crossrankRelaxedWasm = join(ROOT, 'www', 'pkg', 'crossrank_wasm_relaxed_bg.wasm');
  const transformersJs = join(ROOT, 'bench', 'node_modules', '@huggingface', 'transformers', 'dist', 'transformers.min.js');
  report.code_bytes = {
    'crossrank_wasm_bg.wasm': [bytesOf(crossrankWasm), gzipBytes(crossrankWasm)],
    'crossrank_wasm_relaxed_bg.wasm': [bytesOf(crossrankRelaxedWasm), gzipBytes(crossrankRelaxedWasm)],
    'crossrank_wasm.js': [bytesOf(join(ROOT, 'www', 'pkg', 'crossrank_wasm.js')), gzipBytes(join(ROOT, 'www', 'pkg', 'crossrank_wasm.js'))],
    'ort-wasm-simd-threaded.asyncify.wasm (ONNX Runtime Web)': [bytesOf(ortWasm), gzipBytes(ortWasm)],
    'transformers.min.js (bundles ONNX Runtime Web\'s JS)': [bytesOf(transformersJs), gzipBytes(transformersJs)],
  };
  report.versions = {
    '@huggingface/transformers': JSON.parse(readFileSync(join(ROOT, 'bench/node_modules/@huggingface/transformers/package.json'))).version,
    'onnxruntime-web': JSON.parse(readFileSync(join(ROOT, 'bench/node_modules/onnxruntime-web/package.json'))).version,
    chromium: report.chromium,
    crossrank: `www/pkg built ${statSync(crossrankWasm).mtime.toISOString().slice(0, 16)} UTC, tree ${gitRevision()}`,
  };
  const text = render(report, args.workloads);
  mkdirSync(BENCH, { recursive: true });
  writeFileSync(args.out.replace(/\.md$/, '.json'), JSON.stringify(report, null, 1));
  writeFileSync(args.out, text);
  process.stdout.write(text);
}

/**
 * One row per (system, threads) from the rounds' rows: times pooled, `round_medians` kept for the
 * ratios, the first (cold) call and the load as medians over the rounds.
 */
function poolRounds(rows) {
  const pooled = [];
  for (const row of rows) {
    const same = pooled.find((p) => p.system === row.system && p.threads === row.threads);
    if (!same) {
      pooled.push({ ...row, load_ms_rounds: [row.load_ms], results: Object.fromEntries(Object.entries(row.results).map(([w, r]) => [w, { ...r, round_medians: [r.median_ms], first_rounds: [r.first_ms] }])) });
      continue;
    }
    same.load_ms_rounds.push(row.load_ms);
    same.load_ms = median([...same.load_ms_rounds].sort((a, b) => a - b));
    for (const [w, r] of Object.entries(row.results)) {
      const into = same.results[w];
      into.times_ms.push(...r.times_ms);
      into.cpu_times_ms.push(...r.cpu_times_ms);
      into.round_medians.push(r.median_ms);
      into.first_rounds.push(r.first_ms);
      const sorted = [...into.times_ms].sort((a, b) => a - b);
      Object.assign(into, {
        median_ms: median(sorted), min_ms: sorted[0], max_ms: sorted.at(-1),
        cpu_ms: median([...into.cpu_times_ms].sort((a, b) => a - b)),
        first_ms: median([...into.first_rounds].sort((a, b) => a - b)),
        max_delta: Math.max(into.max_delta, r.max_delta),
      });
    }
  }
  return pooled;
}

/** Peer time over crossrank's: one ratio of medians, or with rounds the mean of each round's and its range. */
function ratio(peer, mine) {
  const [p, m] = [peer.round_medians ?? [peer.median_ms], mine.round_medians ?? [mine.median_ms]];
  if (p.length < 2 || p.length !== m.length) return (peer.median_ms / mine.median_ms).toFixed(2);
  const each = p.map((t, i) => t / m[i]);
  return `${(each.reduce((a, b) => a + b, 0) / each.length).toFixed(2)} (${Math.min(...each).toFixed(2)}–${Math.max(...each).toFixed(2)})`;
}

function render(report, workloads) {
  const lines = [];
  lines.push(`Headless Chromium ${report.chromium} on ${report.machine}; cross-origin isolated: ${report.crossOriginIsolated}. Model: \`${report.model}\`. ` +
    `Each system in a fresh module Web Worker; repeats ${Object.entries(report.repeats).map(([w, n]) => `${w} ×${n}`).join(', ')} after one warm-up` +
    (report.rounds > 1 ? `, in each of ${report.rounds} rounds (the systems in turn; a row's times pool the rounds). ` : '. ') +
    `Load average (1/5 min) ${report.load_start} at start, ${report.load_end} at end. ` +
    '"CPU ms/run": CPU time of the whole Chromium process tree during a timed run (every thread, from /proc), the measure that other work on the cores does not inflate. ' +
    '"wasm memory": crossrank\'s linear memory after the runs (it only grows; "GPU": the WebGPU encoder\'s weights and scratch buffers). "load ms": worker start to ready (fetch, compile, parse). ' +
    '"first ms": the first (cold) call after the load, which the median leaves out.' +
    (report.documents ? ` Every workload cut to its first ${report.documents} documents.` : ''));
  const emulated = (report.adapters ?? []).some(({ adapter }) => adapter.architecture === 'swiftshader');
  for (const { adapter: { vendor, architecture, device, description }, systems } of report.adapters ?? []) {
    lines.push('');
    lines.push(`WebGPU adapter of ${systems.join(', ')}: vendor "${vendor}", architecture "${architecture}"${device ? `, device "${device}"` : ''}${description ? `, "${description}"` : ''}.`);
  }
  if (emulated) {
    lines.push('');
    lines.push('**SwiftShader is Vulkan emulated on the CPU: the WebGPU rows show that the path works and agrees with PyTorch; their times say nothing about a GPU, and no speed ratio is given for them.**');
  }
  lines.push('');
  lines.push('| system | threads | workload | median ms | min–max ms | CPU ms/run | ms/pair | max \\|Δlogit\\| vs PyTorch | model bytes | wasm memory MiB | load ms | first ms | load avg |');
  lines.push('|---|---|---|---|---|---|---|---|---|---|---|---|---|');
  for (const row of report.rows) {
    for (const w of workloads) {
      const r = row.results[w];
      if (!r) continue;
      lines.push(`| ${row.label}${row.int8_dot ? ` [int8 dot: ${row.int8_dot}]` : ''} | ${row.threads} | ${w} | ${r.median_ms.toFixed(0)} | ${r.min_ms.toFixed(0)}–${r.max_ms.toFixed(0)} | ${r.cpu_ms.toFixed(0)} | ` +
        `${(r.median_ms / pairsOf(w)).toFixed(1)} | ${delta(r.max_delta)} | ${fmt(row.model_bytes)} | ` +
        `${row.wasm_memory_bytes ? (row.wasm_memory_bytes / 2 ** 20).toFixed(0) : row.gpu_bytes ? `GPU ${(row.gpu_bytes / 2 ** 20).toFixed(0)}` : '—'} | ${row.load_ms.toFixed(0)} | ${r.first_ms?.toFixed(0) ?? '—'} | ${row.load} |`);
    }
  }
  lines.push('');
  lines.push('transformers.js\'s median time over crossrank\'s, same workload, same run (above 1 means crossrank is faster)' +
    (report.rounds > 1 ? `; the mean of ${report.rounds} rounds' ratios, their range in brackets:` : ':'));
  lines.push('');
  const crossrankRows = report.rows.filter((row) => row.system.startsWith('crossrank'));
  const peerRows = report.rows.filter((row) => !row.system.startsWith('crossrank'));
  lines.push('| crossrank | threads | workload | ' + peerRows.map((row) => `${row.label} ×${row.threads}`).join(' | ') + ' |');
  lines.push('|---|---|---|' + peerRows.map(() => '---|').join(''));
  for (const mine of crossrankRows) {
    for (const w of workloads) {
      if (!mine.results[w]) continue;
      // WebGPU rows compare with WebGPU peers, CPU rows with CPU peers.
      lines.push(`| ${mine.label.replace('crossrank wasm ', '')} | ${mine.threads} | ${w} | ` +
        peerRows.map((peer) => (peer.results[w] && isWebGpu(peer.system) === isWebGpu(mine.system) && !(emulated && isWebGpu(mine.system)) ? ratio(peer.results[w], mine.results[w]) : '—')).join(' | ') + ' |');
    }
  }
  lines.push('');
  lines.push('| code | bytes | gzip -9 |\n|---|---|---|');
  for (const [file, [raw, gz]] of Object.entries(report.code_bytes)) lines.push(`| ${file} | ${fmt(raw)} | ${fmt(gz)} |`);
  lines.push('');
  lines.push('Versions: ' + Object.entries(report.versions).map(([k, v]) => `${k} ${v}`).join(', ') + '.');
  return lines.join('\n') + '\n';
}

const PAIRS = {};
function pairsOf(workload) {
  PAIRS[workload] ??= JSON.parse(readFileSync(join(BENCH, `${workload}.json`), 'utf8')).documents.length;
  return PAIRS[workload];
}

main().catch((error) => {
  console.error(error);
  process.exit(1);
});
