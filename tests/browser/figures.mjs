// The figures the docs quote about the built package, measured rather than typed: the two wasm
// modules' sizes (raw and gzipped) and the wasm memory one worker holds. The docs hold each
// between markers, `<!-- generated:NAME -->…<!-- /generated -->`, and
//
//   node tests/browser/figures.mjs --write     (or ./build.sh figures)
//
// measures them (sizes from www/pkg, memory in headless Chromium) and rewrites every marked span.
// tests/browser/figures.test.mjs fails when a quoted figure is off by more than its tolerance.

import { execFileSync } from 'node:child_process';
import { readFileSync, statSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

import { ROOT, launchChromium } from './harness.mjs';
import { startServer } from './server.mjs';

/** The files whose marked spans are generated. */
export const DOCS = ['README.md', 'www/README.md'];

export const MODULES = { relaxed: 'www/pkg/crossrank_wasm_relaxed_bg.wasm', simd128: 'www/pkg/crossrank_wasm_bg.wasm' };

/**
 * How far a quoted figure may be from a measured one before the test asks for a refresh. Sizes move
 * with every Rust edit: a tolerance, rather than exact bytes, keeps small edits from failing the
 * test while a change a reader would notice (2%, some 75 KB) does; they are quoted to 0.01 MB, well
 * inside it. Memory grows in 64 KiB pages and with allocator layout: 5%, quoted to 1 MiB.
 */
export const TOLERANCE = { size: 0.02, memory: 0.05 };

/** The workload of the memory figure, as the docs describe it. */
export const MEMORY_WORKLOAD = { documents: 30, maxLength: 512, model: 'models/crossrank-minilm-l4.q8_0.gguf' };

const MB = 1e6;
const MIB = 2 ** 20;

/**
 * Raw and gzipped bytes of each build; gzipped by `gzip -9`, as build.sh logs them (Node's zlib
 * at level 9 gives 2% more, a figure no server would send).
 */
export function measureSizes() {
  return Object.fromEntries(Object.entries(MODULES).map(([build, file]) => {
    const path = fileURLToPath(new URL(file, ROOT));
    const gzipped = execFileSync('gzip', ['-9c', path], { maxBuffer: 64 * 2 ** 20 }).length;
    return [build, { raw: statSync(path).size, gzipped }];
  }));
}

/**
 * The wasm memory (bytes) of one worker's module, relaxed build, after loading the default model
 * and scoring MEMORY_WORKLOAD's documents at its maxLength (the longest pairs the model reads):
 * wasm memory never shrinks, so this is what a worker keeps.
 */
export async function measureWorkerMemory() {
  const server = await startServer();
  const browser = await launchChromium();
  try {
    const page = await browser.context.newPage();
    await page.goto(`${server.origin}/tests/browser/index.html`);
    return await page.evaluate(async ({ module, model, documents, maxLength }) => {
      const glue = await import('/www/pkg/crossrank_wasm.js');
      const wasm = await glue.default({ module_or_path: module });
      const reranker = glue.WasmReranker.fromGguf(new Uint8Array(await (await fetch(model)).arrayBuffer()));
      const words = (n, seed) => Array.from({ length: n }, (_, i) => `word${(i * 7 + seed) % 97}`).join(' ');
      reranker.logits('word5 word7', Array.from({ length: documents }, (_, d) => words(400, d)), { maxLength });
      return wasm.memory.buffer.byteLength;
    }, { ...MEMORY_WORKLOAD, module: `/${MODULES.relaxed}`, model: `/${MEMORY_WORKLOAD.model}` });
  } finally {
    await browser.close();
    await server.close();
  }
}

const mb = (bytes) => `${(bytes / MB).toFixed(2)} MB`;

/**
 * Each generated span: its text from the measurements, and the figures it quotes (to check a
 * span against new measurements without rewriting it).
 */
export const SPANS = {
  'wasm-size:relaxed': {
    text: ({ sizes }) => `${mb(sizes.relaxed.raw)} raw, ${mb(sizes.relaxed.gzipped)} gzipped`,
    figures: ({ sizes }) => [['size', sizes.relaxed.raw], ['size', sizes.relaxed.gzipped]],
  },
  'wasm-size:simd128': {
    text: ({ sizes }) => `${mb(sizes.simd128.raw)} raw, ${mb(sizes.simd128.gzipped)} gzipped`,
    figures: ({ sizes }) => [['size', sizes.simd128.raw], ['size', sizes.simd128.gzipped]],
  },
  'worker-memory': {
    text: ({ memory }) => `${Math.round(memory / MIB)} MiB`,
    figures: ({ memory }) => [['memory', memory]],
  },
};

const MARKED = /<!-- generated:([\w:-]+) -->([\s\S]*?)<!-- \/generated -->/g;

/** The marked spans of a document: `{ name, text }`. */
export const spansOf = (markdown) => [...markdown.matchAll(MARKED)].map(([, name, text]) => ({ name, text }));

/** The numbers a span's text states, in bytes: "3.82 MB" → 3.82e6, "56 MiB" → 56 · 2^20. */
export function statedFigures(text) {
  return [...text.matchAll(/([\d.]+) (MB|MiB)/g)].map(([, number, unit]) => Number(number) * (unit === 'MB' ? MB : MIB));
}

/** `markdown` with every marked span rewritten from `measured`. */
export function rewrite(markdown, measured) {
  return markdown.replace(MARKED, (whole, name) => {
    const span = SPANS[name];
    if (!span) throw new Error(`unknown generated span "${name}" (known: ${Object.keys(SPANS).join(', ')})`);
    return `<!-- generated:${name} -->${span.text(measured)}<!-- /generated -->`;
  });
}

export async function measure() {
  return { sizes: measureSizes(), memory: await measureWorkerMemory() };
}

if (process.argv[1] && import.meta.url.endsWith(process.argv[1].split('/').pop()) && process.argv.includes('--write')) {
  const measured = await measure();
  for (const file of DOCS) {
    const path = new URL(file, ROOT);
    const before = readFileSync(path, 'utf8');
    const after = rewrite(before, measured);
    if (after !== before) writeFileSync(path, after);
    console.log(`${file}: ${spansOf(after).map(({ name, text }) => `${name} = ${text}`).join('; ') || 'no generated spans'}`);
  }
}
