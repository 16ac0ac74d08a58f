// The `device` option (issue 32) in headless Chromium: WebGPU on SwiftShader, Chromium's CPU
// implementation of a GPU (`--enable-unsafe-webgpu --use-webgpu-adapter=swiftshader`; `--disable-gpu`
// does not hide it), against the wasm path of the same build, and a plain Chromium (no adapter)
// for the fallback.
//
//   node --test tests/browser/webgpu.test.mjs
//
// SwiftShader computes ~0.2 GFLOP/s, so every test uses the tiny fixture models (2 layers, 32 wide).
// What a healthy adapter never does (a failing self-check, a small buffer budget, a lost device) is
// made to happen by tests/browser/webgpu-hooks.js, a worker script passed as `workerUrl` that sets
// www/src/testhooks.js first. The engine's own parity with PyTorch is webgpu-engine.test.mjs's.

import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { describe, test } from 'node:test';

import { ROOT, WEBGPU_ARGS, fixture, spearman, useBrowser } from './harness.mjs';

const TIMEOUT = { timeout: 300_000 };
const HOOKS = '/tests/browser/webgpu-hooks.js';

const MODELS = {
  bert: '/artifacts/models/tiny.f32.gguf',
  electra: '/artifacts/models/tiny-electra.f32.gguf',
  'xlm-roberta': '/artifacts/models/tiny-xlmr.f32.gguf',
};
for (const path of Object.values(MODELS)) {
  if (!existsSync(new URL(path.slice(1), ROOT))) throw new Error(`${path} is missing: run ./build.sh models first`);
}
/** The tiny BERT's Hugging Face folder, converted to Q8_0 in a worker by the package. */
const TINY_FOLDER = '/tests/models/tiny/';

/**
 * GPU against wasm, both f32 throughout: only the order of summation differs. For Q8_0 the wasm
 * path quantises activations to int8 (selfcheck.js's tolerance, which says why).
 */
const F32_TOLERANCE = 1e-3;
const Q8_TOLERANCE = 0.25;

const gpuBrowser = useBrowser({ args: WEBGPU_ARGS });
const plainBrowser = useBrowser();

const QUERY = 'how do vaccines protect against disease';
const DOCUMENTS = [
  { text: 'Vaccines train the immune system to recognise a pathogen.', id: 'a', score: 3.5 },
  { text: 'The stock market closed higher on Friday after a volatile week of trading in technology shares.', id: 'b', score: 9 },
  { text: 'Measles vaccination has cut deaths from the disease sharply since 2000. '.repeat(6), id: 'c', score: 1 },
  { text: 'Paris is the capital of France.', id: 'd', score: 4 },
  { text: '', id: 'e', score: 0 },
  { text: 'An antibody is a protein that binds to a specific antigen, marking it for the immune system to destroy.', id: 'f', score: 7 },
];

/**
 * The calls every device must answer alike: plain, batched across queries, windows (a 32-token
 * limit so the long document is split), both fusions, topK and a threshold. Run in the page.
 */
const CALLS = [
  ['plain', {}],
  ['windows', { maxLength: 32, windows: { overlap: 8, aggregate: 'max' } }],
  ['windows mean', { maxLength: 32, windows: { overlap: 8, aggregate: 'mean' }, batchSize: 3 }],
  ['rrf', { fusion: { type: 'rrf', k: 10 } }],
  ['weighted topK', { fusion: { type: 'weighted', weight: 0.5 }, topK: 3 }],
  ['minmax threshold', { scoreScale: 'minmax', threshold: 0.2 }],
];

/** Runs CALLS and a rerankMany with `createOptions`; returns the results and the reranker's info. */
async function runCalls(page, createOptions) {
  return page.evaluate(async ({ createOptions, query, documents, calls }) => {
    const { Reranker } = window.crossrank;
    const outcome = await window.settle(Reranker.create({ cache: false, threads: 1, ...createOptions }));
    if (!outcome.ok) return { error: outcome };
    const reranker = outcome.value;
    const results = {};
    for (const [name, options] of calls) results[name] = await reranker.rerank(query, documents, options);
    results.many = await reranker.rerankMany([
      { query, documents: documents.slice(0, 3) },
      { query: 'capital of France', documents: documents.slice(3) },
    ]);
    const info = reranker.info;
    reranker.dispose();
    return { results, info };
  }, { createOptions, query: QUERY, documents: DOCUMENTS, calls: CALLS });
}

/**
 * One result list against another: the same documents with logits within `tolerance`, each list
 * in its own order; the same order where the reference's neighbours are further apart than that.
 */
function assertSameResults(actual, expected, tolerance, label) {
  assert.equal(actual.length, expected.length, `${label}: ${actual.length} results, expected ${expected.length}`);
  const byIndex = new Map(actual.map((result) => [result.index, result]));
  for (const want of expected) {
    const got = byIndex.get(want.index);
    assert.ok(got, `${label}: document ${want.index} missing`);
    const diff = Math.abs(got.logit - want.logit);
    assert.ok(diff <= tolerance, `${label}: document ${want.index} logit ${got.logit}, wasm ${want.logit} (|diff| ${diff.toExponential(2)} > ${tolerance})`);
    assert.deepEqual(got.bestWindow, want.bestWindow, `${label}: document ${want.index} bestWindow`);
    assert.equal(got.id, want.id, `${label}: document ${want.index} id`);
  }
  const key = (result) => result.fused ?? result.logit;
  for (let i = 1; i < expected.length; i += 1) {
    if (Math.abs(key(expected[i - 1]) - key(expected[i])) > 2 * tolerance) {
      assert.equal(actual[i].index, expected[i].index, `${label}: position ${i}`);
    }
  }
}

function assertAllSame(gpu, wasm, tolerance, label) {
  for (const name of Object.keys(wasm)) {
    if (name === 'many') {
      wasm.many.forEach((list, i) => assertSameResults(gpu.many[i], list, tolerance, `${label} rerankMany[${i}]`));
    } else {
      assertSameResults(gpu[name], wasm[name], tolerance, `${label} ${name}`);
    }
  }
}

function assertOnGpu(info, label) {
  assert.equal(info.device, 'webgpu', `${label}: ${info.fallback}`);
  assert.equal(info.fallback, null, label);
  assert.equal(info.gpu.adapter.architecture, 'swiftshader', label);
  assert.ok(Array.isArray(info.gpu.features), label);
  assert.ok(info.gpu.gpuBytes > 0, `${label}: gpuBytes ${info.gpu.gpuBytes}`);
}

describe('device "webgpu" gives the results of device "wasm"', () => {
  for (const [family, url] of Object.entries(MODELS)) {
    test(`tiny ${family} f32: every ranking option, within ${F32_TOLERANCE}`, TIMEOUT, () =>
      gpuBrowser.withPage(async ({ page }) => {
        const wasm = await runCalls(page, { model: url, device: 'wasm' });
        const gpu = await runCalls(page, { model: url, device: 'webgpu' });
        assert.equal(gpu.error, undefined, JSON.stringify(gpu.error));
        assert.deepEqual([wasm.info.device, wasm.info.gpu, wasm.info.fallback], ['wasm', null, null]);
        assertOnGpu(gpu.info, family);
        assert.equal(gpu.info.modelType, family);
        assertAllSame(gpu.results, wasm.results, F32_TOLERANCE, family);
      }));
  }

  test(`tiny BERT converted to Q8_0: within ${Q8_TOLERANCE} (wasm quantises activations, the GPU does not)`, TIMEOUT, () =>
    gpuBrowser.withPage(async ({ page }) => {
      const wasm = await runCalls(page, { model: TINY_FOLDER, dtype: 'q8_0', device: 'wasm' });
      const gpu = await runCalls(page, { model: TINY_FOLDER, dtype: 'q8_0', device: 'webgpu' });
      assert.equal(gpu.error, undefined, JSON.stringify(gpu.error));
      assert.equal(gpu.info.precision, 'q8_0');
      assertOnGpu(gpu.info, 'q8_0');
      assertAllSame(gpu.results, wasm.results, Q8_TOLERANCE, 'q8_0');
    }));
});

// The shipped default model on WebGPU against PyTorch f32, as reranker.test.mjs checks the wasm
// builds: parity pairs within the q8_0 tolerance (0.15) and its SQuAD queries ranked with Spearman
// ≥ 0.99 over their 20 candidates. SwiftShader takes seconds a pair, so CI ranks the first
// DEFAULT_QUERIES queries; CROSSRANK_WEBGPU_ALL_QUERIES=1 ranks all 20.
const DEFAULT_QUERIES = process.env.CROSSRANK_WEBGPU_ALL_QUERIES === '1' ? Infinity : 2;

test(`the default model on WebGPU ranks like PyTorch: Spearman ≥ 0.99 per query, logits within 0.15`, { timeout: 1_800_000 }, () =>
  gpuBrowser.withPage(async ({ page }) => {
    const { cases, ranking: all } = fixture('default_model.json');
    const ranking = all.slice(0, DEFAULT_QUERIES);
    const got = await page.evaluate(async ({ cases, ranking }) => {
      const reranker = await window.crossrank.Reranker.create({ model: '/models/crossrank-minilm-l4.q8_0.gguf', cache: false, device: 'webgpu' });
      const parity = await reranker.rerankMany(cases.map(({ query, passage }) => ({ query, documents: [passage] })));
      const ranked = await reranker.rerankMany(ranking.map(({ query, documents }) => ({ query, documents })));
      const info = reranker.info;
      reranker.dispose();
      return { parity: parity.map((results) => results[0]), ranked, info };
    }, { cases, ranking });
    assert.equal(got.info.device, 'webgpu');
    let worst = 0;
    cases.forEach(({ name, logit }, i) => {
      const off = Math.abs(got.parity[i].logit - logit);
      worst = Math.max(worst, off);
      assert.ok(off <= 0.15, `${name}: ${got.parity[i].logit} on WebGPU, ${logit} in PyTorch`);
    });
    console.log(`# default model (WebGPU, SwiftShader): max |Δlogit| vs PyTorch ${worst.toFixed(3)} over ${cases.length} pairs`);
    ranking.forEach(({ query, logits }, q) => {
      const ours = new Array(logits.length);
      for (const { index, logit } of got.ranked[q]) ours[index] = logit;
      const rho = spearman(ours, logits);
      assert.ok(rho >= 0.99, `query ${JSON.stringify(query)}: Spearman ${rho.toFixed(4)} against PyTorch f32`);
    });
  }));

describe('device "auto"', () => {
  test('picks WebGPU where there is a (hardware) adapter, and one worker does the work', TIMEOUT, () =>
    gpuBrowser.withPage(async ({ page }) => {
      await page.evaluate(async ({ url, workerUrl }) => {
        window.reranker = await window.crossrank.Reranker.create({ model: url, threads: 3, workerUrl });
      }, { url: MODELS.bert, workerUrl: `${HOOKS}?softwareAdapter` });
      const workers = page.workers().length;
      const got = await page.evaluate(async () => {
        const { reranker } = window;
        const progress = [];
        const results = await reranker.rerank('q', ['a', 'b', 'c', 'd', 'e', 'f', 'g', 'h'], { onProgress: (p) => progress.push(p.scored) });
        const out = { info: reranker.info, threads: reranker.threads, results: results.length, progress };
        reranker.dispose();
        return out;
      });
      assertOnGpu(got.info, 'auto');
      assert.equal(workers, 1, 'the other two workers are not started');
      assert.equal(got.threads, 3, 'threads still reports the option');
      assert.equal(got.results, 8);
      assert.equal(got.progress.at(-1), 8);
    }));

  test('leaves a software adapter (SwiftShader, isFallbackAdapter) to wasm, saying why; "webgpu" takes it', TIMEOUT, () =>
    gpuBrowser.withPage(async ({ page }) => {
      const got = await page.evaluate(async (url) => {
        const { Reranker } = window.crossrank;
        const auto = await Reranker.create({ model: url, threads: 1 });
        const info = auto.info;
        auto.dispose();
        return { info };
      }, MODELS.bert);
      assert.equal(got.info.device, 'wasm');
      assert.match(got.info.fallback, /^the only WebGPU adapter is a software one/);
    }));

  test('falls back to wasm without an adapter (plain Chromium), saying why; "webgpu" rejects', TIMEOUT, () =>
    plainBrowser.withPage(async ({ page }) => {
      const got = await page.evaluate(async (url) => {
        const { Reranker } = window.crossrank;
        const auto = await Reranker.create({ model: url, threads: 1 });
        const results = await auto.rerank('q', ['a', 'b']);
        const info = auto.info;
        auto.dispose();
        const strict = await window.settle(Reranker.create({ model: url, threads: 1, device: 'webgpu' }));
        return { info, results: results.length, strict, hasGpu: 'gpu' in navigator };
      }, MODELS.bert);
      assert.equal(got.hasGpu, true, 'Chromium has navigator.gpu, but no adapter');
      assert.equal(got.info.device, 'wasm');
      assert.equal(got.info.gpu, null);
      assert.match(got.info.fallback, /adapter/i);
      assert.equal(got.results, 2);
      assert.equal(got.strict.ok, false);
      assert.equal(got.strict.code, 'webgpu_unavailable');
      assert.match(got.strict.message, /^device "webgpu" cannot be used: .*adapter/i);
    }));

  test('falls back to wasm when the self-check fails; "webgpu" rejects', TIMEOUT, () =>
    gpuBrowser.withPage(async ({ page }) => {
      const got = await page.evaluate(async ({ url, workerUrl }) => {
        const { Reranker } = window.crossrank;
        const auto = await Reranker.create({ model: url, threads: 1, workerUrl });
        const results = await auto.rerank('q', ['a', 'b']);
        const info = auto.info;
        auto.dispose();
        const strict = await window.settle(Reranker.create({ model: url, threads: 1, workerUrl, device: 'webgpu' }));
        return { info, results: results.length, strict };
      }, { url: MODELS.bert, workerUrl: `${HOOKS}?softwareAdapter&selfCheckOffset=5` });
      assert.equal(got.info.device, 'wasm');
      assert.match(got.info.fallback, /self-check failed: a fixed pair scored .* on the GPU and .* on wasm/);
      assert.equal(got.results, 2);
      assert.equal(got.strict.code, 'webgpu_unavailable');
      assert.match(got.strict.message, /self-check failed/);
    }));
});

describe('a lost GPU device', () => {
  test('mid-call: the call finishes on wasm with the same results; later calls run on wasm and info says why', TIMEOUT, () =>
    gpuBrowser.withPage(async ({ page }) => {
      const documents = DOCUMENTS.map((document) => document.text);
      const got = await page.evaluate(async ({ url, workerUrl, query, documents }) => {
        const { Reranker } = window.crossrank;
        const wasm = await Reranker.create({ model: url, threads: 1, device: 'wasm' });
        const expected = await wasm.rerank(query, documents);
        wasm.dispose();
        // batchSize 1: each chunk of this worker is several GPU batches, and the device is
        // destroyed after the first, inside the worker's batch loop.
        const reranker = await Reranker.create({ model: url, threads: 2, workerUrl: `${workerUrl}?loseAt=1`, device: 'webgpu' });
        const before = reranker.info;
        const during = await window.settle(reranker.rerank(query, documents, { batchSize: 1 }));
        const after = reranker.info;
        const later = await window.settle(reranker.rerank(query, documents));
        reranker.dispose();
        return { expected, before, during, after, later };
      }, { url: MODELS.bert, workerUrl: HOOKS, query: QUERY, documents });
      assertOnGpu(got.before, 'before the loss');
      assert.equal(got.during.ok, true, got.during.message);
      assertSameResults(got.during.value, got.expected, F32_TOLERANCE, 'the call that lost its device');
      assert.equal(got.after.device, 'wasm');
      assert.equal(got.after.gpu, null);
      assert.match(got.after.fallback, /lost|GPU failed/);
      assert.equal(got.later.ok, true, got.later.message);
      assertSameResults(got.later.value, got.expected, 1e-5, 'the call after, on wasm');
    }));

  test('between calls: the next call runs on wasm', TIMEOUT, () =>
    gpuBrowser.withPage(async ({ page }) => {
      const got = await page.evaluate(async ({ url, workerUrl, query }) => {
        const { Reranker } = window.crossrank;
        const wasm = await Reranker.create({ model: url, threads: 1, device: 'wasm' });
        const expected = await wasm.rerank(query, ['one document', 'another one']);
        wasm.dispose();
        const reranker = await Reranker.create({ model: url, threads: 1, workerUrl: `${workerUrl}?loseAt=1`, device: 'webgpu' });
        // One document, one batch: the device is destroyed after this call's last batch.
        const first = await window.settle(reranker.rerank(query, ['one document']));
        // device.lost resolves on its own time; the page hears of it by a `device` message.
        for (let i = 0; i < 100 && reranker.info.device === 'webgpu'; i += 1) await new Promise((resolve) => setTimeout(resolve, 20));
        const info = reranker.info;
        const next = await window.settle(reranker.rerank(query, ['one document', 'another one']));
        reranker.dispose();
        return { expected, first, info, next };
      }, { url: MODELS.bert, workerUrl: HOOKS, query: QUERY });
      assert.equal(got.first.ok, true, got.first.message);
      assert.equal(got.info.device, 'wasm');
      assert.match(got.info.fallback, /the GPU device was lost \(destroyed/);
      assert.equal(got.next.ok, true, got.next.message);
      assertSameResults(got.next.value, got.expected, 1e-5, 'the call after the loss');
    }));
});

test('a small buffer budget splits the GPU batches; results unchanged', TIMEOUT, () =>
  gpuBrowser.withPage(async ({ page }) => {
    const normal = await runCalls(page, { model: MODELS.bert, device: 'webgpu' });
    // The tiny model's scratch is ~1.2 KB per token of a batch (encoder.js pairsPerRun; 279,492
    // bytes for the longest pair here, 240 tokens): 600 kB holds two such pairs, so its batches
    // run two pairs at a time.
    const small = await runCalls(page, { model: MODELS.bert, device: 'webgpu', workerUrl: `${HOOKS}?scratchBytes=600000` });
    assert.equal(small.error, undefined, JSON.stringify(small.error));
    assertOnGpu(small.info, 'small budget');
    assertAllSame(small.results, normal.results, 1e-5, 'small budget');
  }));

test('abort during a GPU call rejects at once; the next call runs on WebGPU again', TIMEOUT, () =>
  gpuBrowser.withPage(async ({ page }) => {
    const got = await page.evaluate(async ({ url, query }) => {
      const { Reranker } = window.crossrank;
      const reranker = await Reranker.create({ model: url, threads: 2, device: 'webgpu' });
      const documents = Array.from({ length: 64 }, (_, i) => `passage ${i} about vaccines and the immune system `.repeat(4));
      const expected = await reranker.rerank(query, documents.slice(0, 3));
      const controller = new AbortController();
      const call = window.settle(reranker.rerank(query, documents, { signal: controller.signal }));
      // A task later: the first chunk is in the worker, which awaits the GPU.
      setTimeout(() => controller.abort(), 0);
      const aborted = await call;
      const next = await window.settle(reranker.rerank(query, documents.slice(0, 3)));
      const info = reranker.info;
      reranker.dispose();
      return { expected, aborted, next, info };
    }, { url: MODELS.bert, query: QUERY });
    assert.equal(got.aborted.code, 'aborted', got.aborted.message);
    assert.equal(got.next.ok, true, got.next.message);
    assertSameResults(got.next.value, got.expected, 1e-6, 'after the abort');
    assertOnGpu(got.info, 'after the abort');
  }));

test('a bad device is refused with the values and the nearest', TIMEOUT, () =>
  plainBrowser.withPage(async ({ page }) => {
    const got = await page.evaluate(async () => {
      const { Reranker } = window.crossrank;
      const attempt = (run) => { try { run(); return { ok: true }; } catch (error) { return { code: error.code, message: error.message }; } };
      return {
        gpu: await window.settle(Reranker.create({ model: '/m.gguf', device: 'gpu' })),
        cpu: attempt(() => new Reranker({ device: 'cpu' })),
        number: attempt(() => new Reranker({ device: 1 })),
        misspelt: attempt(() => new Reranker({ devise: 'wasm' })),
      };
    });
    assert.equal(got.gpu.code, 'invalid_input');
    assert.equal(got.gpu.message, 'options.device must be "auto", "webgpu", "wasm", got the string "gpu": did you mean "webgpu"?');
    assert.match(got.cpu.message, /got the string "cpu": did you mean "wasm"\?$/);
    assert.equal(got.number.message, 'options.device must be "auto", "webgpu", "wasm", got number 1');
    assert.match(got.misspelt.message, /^unknown option "devise": did you mean "device"\?/);
  }));
