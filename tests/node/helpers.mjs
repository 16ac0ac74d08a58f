// What the Node, Deno and Bun tests share: paths, the PyTorch fixtures and how a result is held
// against them (as tests/browser/reranker.test.mjs does), and the worker_threads a test can watch.

import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

export const ROOT = new URL('../../', import.meta.url);
/** A path inside the repository. */
export const path = (relative) => fileURLToPath(new URL(relative, ROOT));

/** A committed PyTorch reference from tests/fixtures/ (see its "about" and "command"). */
export const fixture = (name) => JSON.parse(readFileSync(new URL(`tests/fixtures/${name}`, ROOT), 'utf8'));

export const TINY = 'artifacts/models/tiny.f32.gguf';
export const MINILM_F32 = 'artifacts/models/minilm-l4.f32.gguf';
export const MINILM_Q8 = 'artifacts/models/minilm-l4.q8_0.gguf';
export const TINY_CASES = fixture('tiny.json').cases;
export const MINILM_CASES = fixture('minilm_l4.json').cases;

for (const file of ['www/pkg/crossrank_wasm.js', 'www/pkg/crossrank_wasm_bg.wasm', 'www/pkg/crossrank_wasm_relaxed_bg.wasm', TINY, MINILM_F32, MINILM_Q8,
  'artifacts/models/tiny-electra.f32.gguf', 'artifacts/models/tiny-xlmr.f32.gguf']) {
  if (!existsSync(path(file))) throw new Error(`${file} is missing: run ./build.sh wasm and ./build.sh models first`);
}

/**
 * The parity models, as tests/browser/reranker.test.mjs lists them: f32 within 1e-4 of PyTorch,
 * Q8_0 within the int8 tolerance.
 */
export const PARITY_MODELS = [
  { name: 'tiny f32', file: TINY, cases: TINY_CASES, tolerance: 1e-4, modelType: 'bert' },
  { name: 'MiniLM-L-4 f32', file: MINILM_F32, cases: MINILM_CASES, tolerance: 1e-4, modelType: 'bert' },
  { name: 'MiniLM-L-4 Q8_0', file: MINILM_Q8, cases: MINILM_CASES, tolerance: 0.05, modelType: 'bert' },
  { name: 'tiny ELECTRA f32', file: 'artifacts/models/tiny-electra.f32.gguf', cases: fixture('tiny_electra.json').cases, tolerance: 1e-4, modelType: 'electra' },
  { name: 'tiny XLM-RoBERTa f32', file: 'artifacts/models/tiny-xlmr.f32.gguf', cases: fixture('tiny_xlmr.json').cases, tolerance: 1e-4, modelType: 'xlm-roberta' },
];

const sigmoid = (x) => 1 / (1 + Math.exp(-x));
export const isBlank = (text) => text.trim() === '';

/** One result against its fixture case; a blank passage keeps PyTorch's logit but scores 0. */
export function assertLogit(actual, expected, tolerance, label, blank = false) {
  const diff = Math.abs(actual.logit - expected);
  assert.ok(diff <= tolerance, `${label}: logit ${actual.logit}, PyTorch ${expected} (|diff| ${diff.toExponential(2)} > ${tolerance})`);
  const score = blank ? 0 : sigmoid(actual.logit);
  assert.ok(Math.abs(actual.score - score) < 1e-6, `${label}: score ${actual.score}, expected ${score}`);
}

// The 35-byte probe www/src/wasm.js validates: whether this engine has relaxed SIMD.
const RELAXED_SIMD_PROBE = new Uint8Array([
  0, 97, 115, 109, 1, 0, 0, 0, 1, 6, 1, 96, 1, 123, 1, 123, 3, 2, 1, 0, 10, 13, 1, 11, 0, 32, 0, 32, 0, 32, 0, 253, 147, 2, 11,
]);
/** The build the worker should pick here. Node 20's V8 has relaxed SIMD only behind a flag. */
export const EXPECTED_SIMD = WebAssembly.validate(RELAXED_SIMD_PROBE) ? 'relaxed-simd' : 'simd128';

/**
 * Records every worker_threads thread started from now on, so that a test can count the threads
 * an abort ended or end one itself. The package takes worker_threads through
 * process.getBuiltinModule, whose object is the mutable CommonJS one.
 */
export function watchThreads() {
  const threads = process.getBuiltinModule('node:worker_threads');
  const Original = threads.Worker;
  const started = [];
  const exited = [];
  threads.Worker = class extends Original {
    constructor(...args) {
      super(...args);
      started.push(this);
      this.on('exit', () => exited.push(this));
    }
  };
  return { started, exited, restore: () => void (threads.Worker = Original) };
}

/** Settles `promise` into `{ ok, value }` or `{ ok: false, code, name, message }`. */
export async function settle(promise) {
  try {
    return { ok: true, value: await promise };
  } catch (error) {
    return { ok: false, code: error?.code, name: error?.name, message: error?.message, error };
  }
}

export const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
