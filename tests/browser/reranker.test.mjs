// The browser API (www/src/index.js) in headless Chromium, against the real wasm build.
//
//   node --test tests/browser/
//
// Needs www/pkg/ (./build.sh wasm), artifacts/models/*.gguf (./build.sh models) and
// www/node_modules (npm ci in www/). Expected logits come from the PyTorch fixtures in
// tests/fixtures/ (made by tests/make_fixtures.py; see their "about" and "versions").

import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { existsSync, readFileSync, statSync } from 'node:fs';
import { describe, test } from 'node:test';

import { fixture, ROOT, spearman, useBrowser } from './harness.mjs';

const file = (path) => new URL(path, ROOT);

const TINY = '/artifacts/models/tiny.f32.gguf';
const MINILM_F32 = '/artifacts/models/minilm-l4.f32.gguf';
const MINILM_Q8 = '/artifacts/models/minilm-l4.q8_0.gguf';
const TINY_CASES = fixture('tiny.json').cases;
const MINILM_CASES = fixture('minilm_l4.json').cases;

const TIMEOUT = { timeout: 180_000 };

const sigmoid = (x) => 1 / (1 + Math.exp(-x));

for (const path of ['www/pkg/crossrank_wasm.js', 'www/pkg/crossrank_wasm_bg.wasm', 'www/pkg/crossrank_wasm_relaxed_bg.wasm', TINY.slice(1), MINILM_F32.slice(1), MINILM_Q8.slice(1),
  'artifacts/models/tiny-electra.f32.gguf', 'artifacts/models/tiny-xlmr.f32.gguf', 'models/crossrank-minilm-l4.q8_0.gguf']) {
  if (!existsSync(file(path))) {
    throw new Error(`${path} is missing: run ./build.sh wasm and ./build.sh models first`);
  }
}

const browser = useBrowser();

const withPage = (body) => browser.withPage(body);

/**
 * Asserts one result against its fixture case. A blank passage (empty or whitespace only) keeps
 * PyTorch's logit but gets score 0: it ranks last.
 */
function assertLogit(actual, expected, tolerance, label, blank = false) {
  const diff = Math.abs(actual.logit - expected);
  assert.ok(diff <= tolerance, `${label}: logit ${actual.logit}, PyTorch ${expected} (|diff| ${diff.toExponential(2)} > ${tolerance})`);
  const score = blank ? 0 : sigmoid(actual.logit);
  assert.ok(Math.abs(actual.score - score) < 1e-6, `${label}: score ${actual.score}, expected ${score}`);
}

const isBlank = (text) => text.trim() === '';

/** The largest |logit − PyTorch's| over `results[i]` against `cases[i]`. */
const maxDelta = (results, cases) => Math.max(...cases.map((c, i) => Math.abs(results[i].logit - c.logit)));

function assertSorted(results, label) {
  for (let i = 1; i < results.length; i++) {
    assert.ok(results[i - 1].score >= results[i].score, `${label}: results not sorted by score`);
  }
}

describe('parity with PyTorch', () => {
  const models = [
    { name: 'tiny f32', url: TINY, cases: TINY_CASES, tolerance: 1e-4, layers: 2, modelType: 'bert' },
    { name: 'MiniLM-L-4 f32', url: MINILM_F32, cases: MINILM_CASES, tolerance: 1e-4, layers: 4 },
    { name: 'MiniLM-L-4 Q8_0', url: MINILM_Q8, cases: MINILM_CASES, tolerance: 0.05, layers: 4 },
    // The fallback for browsers without relaxed SIMD, forced by naming its file.
    { name: 'MiniLM-L-4 Q8_0 (SIMD128 build)', url: MINILM_Q8, wasmUrl: '/www/pkg/crossrank_wasm_bg.wasm', simd: 'simd128', cases: MINILM_CASES, tolerance: 0.05, layers: 4 },
    // The other families (tests/make_family_fixtures.py): ELECTRA with a projected 32-wide
    // embedding, XLM-RoBERTa with a SentencePiece tokenizer, offset positions and RTL/CJK pairs.
    { name: 'tiny ELECTRA f32', url: '/artifacts/models/tiny-electra.f32.gguf', cases: fixture('tiny_electra.json').cases, tolerance: 1e-4, layers: 2, modelType: 'electra' },
    { name: 'tiny XLM-RoBERTa f32', url: '/artifacts/models/tiny-xlmr.f32.gguf', cases: fixture('tiny_xlmr.json').cases, tolerance: 1e-4, layers: 2, maxPositions: 512, modelType: 'xlm-roberta' },
  ];
  for (const model of models) {
    test(`${model.name}: logits within ${model.tolerance} of the fixture, alone and batched`, TIMEOUT, () =>
      withPage(async ({ page }) => {
        const got = await page.evaluate(async ({ url, wasmUrl, cases }) => {
          const reranker = await window.crossrank.Reranker.create({ model: url, ...(wasmUrl ? { wasmUrl } : {}) });
          const single = [];
          for (const { query, passage } of cases) single.push(...(await reranker.rerank(query, [passage])));
          // Cases that share a query go in one call: padding within a batch must not move a logit.
          const groups = new Map();
          cases.forEach(({ query }, i) => groups.set(query, [...(groups.get(query) ?? []), i]));
          const batches = [];
          for (const [query, members] of groups) {
            const results = await reranker.rerank(query, members.map((i) => cases[i].passage));
            batches.push({ members, results });
          }
          const info = reranker.info;
          reranker.dispose();
          return { single, batches, info };
        }, { url: model.url, wasmUrl: model.wasmUrl, cases: model.cases });

        assert.equal(got.info.numLayers, model.layers);
        // Chromium has relaxed SIMD: the worker picks that build unless told otherwise.
        assert.equal(got.info.simd, model.simd ?? 'relaxed-simd');
        if (model.maxPositions) assert.equal(got.info.maxPositions, model.maxPositions);
        if (model.modelType) assert.equal(got.info.modelType, model.modelType);
        model.cases.forEach((c, i) => {
          assert.equal(got.single[i].index, 0);
          assertLogit(got.single[i], c.logit, model.tolerance, `${model.name} ${c.name}`, isBlank(c.passage));
        });
        // The README's precision table quotes this line.
        console.log(`# ${model.name} (${got.info.simd}): max |Δlogit| vs PyTorch ${maxDelta(got.single, model.cases).toExponential(2)}`);
        for (const { members, results } of got.batches) {
          assert.equal(results.length, members.length);
          assertSorted(results, model.name);
          for (const result of results) {
            const c = model.cases[members[result.index]];
            assertLogit(result, c.logit, model.tolerance, `${model.name} ${c.name} (batch of ${members.length})`, isBlank(c.passage));
          }
        }
      }));
  }
});

// The shipped default model on the build Chromium picks (relaxed SIMD: int8 linear layers and
// int8 attention) against PyTorch f32, as tests/default_model.rs checks it natively: parity
// pairs within the q8_0 tolerance (0.15) and each of the 20 SQuAD queries ranked with Spearman
// ≥ 0.99 over its 20 candidates.
// Both builds: the relaxed one Chromium picks, and the SIMD128 fallback forced by naming its file.
for (const { simd, wasmUrl } of [{ simd: 'relaxed-simd' }, { simd: 'simd128', wasmUrl: '/www/pkg/crossrank_wasm_bg.wasm' }]) {
  test(`the default model in Chromium (${simd}) ranks like PyTorch: Spearman ≥ 0.99 per query, logits within 0.15`, TIMEOUT, () =>
    withPage(async ({ page }) => {
      const { cases, ranking } = fixture('default_model.json');
      const got = await page.evaluate(async ({ cases, ranking, wasmUrl }) => {
        const reranker = await window.crossrank.Reranker.create({ model: '/models/crossrank-minilm-l4.q8_0.gguf', cache: false, ...(wasmUrl ? { wasmUrl } : {}) });
        const parity = [];
        for (const { query, passage } of cases) parity.push((await reranker.rerank(query, [passage]))[0]);
        const ranked = [];
        for (const { query, documents } of ranking) ranked.push(await reranker.rerank(query, documents));
        const info = reranker.info;
        reranker.dispose();
        return { parity, ranked, info };
      }, { cases, ranking, wasmUrl });
      assert.equal(got.info.simd, simd);
      cases.forEach((c, i) => assertLogit(got.parity[i], c.logit, 0.15, `default model ${c.name}`, isBlank(c.passage)));
      // The README's precision table quotes this line.
      console.log(`# default model (${got.info.simd}): max |Δlogit| vs PyTorch ${maxDelta(got.parity, cases).toFixed(3)}`);
      ranking.forEach(({ query, logits }, q) => {
        const ours = new Array(logits.length);
        for (const { index, logit } of got.ranked[q]) ours[index] = logit;
        const rho = spearman(ours, logits);
        assert.ok(rho >= 0.99, `query ${JSON.stringify(query)}: Spearman ${rho.toFixed(4)} against PyTorch f32`);
      });
    }));
}

// The relaxed kernel sums its int8 products with the i32 relaxed dot-add or with the i16 relaxed
// dot + dot by ones: i16-dot until a worker's first long int8 call, after which it times both and
// keeps the faster (src/wasm.rs, DotProbe). Both must give the same integers, so the same logits
// to the bit, on the model and the windows' many batches.
test('the relaxed int8 kernel: both dot sequences give identical logits; info.int8Dot names the choice after the first long call', TIMEOUT, () =>
  withPage(async ({ page }) => {
    const long = MINILM_CASES.find((c) => c.name === 'long_passage');
    const got = await page.evaluate(async ({ url, cases, long }) => {
      const run = async (workerUrl) => {
        const reranker = await window.crossrank.Reranker.create({ model: url, threads: 1, ...(workerUrl ? { workerUrl } : {}) });
        const atLoad = reranker.info.int8Dot;
        // A call long enough (≥ 200 ms) for the probe; the ranks of 8 copies need not be checked.
        const started = performance.now();
        await reranker.rerank(long.query, Array(8).fill(long.passage));
        const longCallMs = performance.now() - started;
        const logits = [];
        for (const { query, passage } of cases) logits.push((await reranker.rerank(query, [passage]))[0].logit);
        const windows = await reranker.rerank(long.query, [long.passage, cases[0].passage], { maxLength: 64, windows: { overlap: 16 } });
        logits.push(...windows.map((r) => r.logit));
        const info = reranker.info;
        reranker.dispose();
        return { atLoad, longCallMs, logits, info };
      };
      return {
        probed: await run(null),
        dotAdd: await run('/tests/browser/webgpu-hooks.js?int8Dot=dot-add'),
        i16Dot: await run('/tests/browser/webgpu-hooks.js?int8Dot=i16-dot'),
      };
    }, { url: MINILM_Q8, cases: MINILM_CASES, long });
    assert.equal(got.probed.atLoad, 'i16-dot', 'before any long call the kernel runs the i16 sequence');
    assert.ok(got.probed.longCallMs >= 200, `the long call took ${got.probed.longCallMs} ms: too short to probe`);
    assert.match(got.probed.info.int8Dot, /^(dot-add|i16-dot)$/);
    console.log(`# the probe after a ${got.probed.longCallMs.toFixed(0)} ms call chose ${got.probed.info.int8Dot} on this CPU`);
    // A test's choice holds: no probe replaces it after the long call.
    assert.deepEqual([got.dotAdd.atLoad, got.dotAdd.info.int8Dot], ['dot-add', 'dot-add']);
    assert.deepEqual([got.i16Dot.atLoad, got.i16Dot.info.int8Dot], ['i16-dot', 'i16-dot']);
    assert.equal(got.dotAdd.logits.length, MINILM_CASES.length + 2);
    assert.deepEqual(got.dotAdd.logits, got.i16Dot.logits, 'the two dot sequences gave different logits');
    assert.deepEqual(got.probed.logits, got.i16Dot.logits);
    MINILM_CASES.forEach((c, i) => assert.ok(Math.abs(got.i16Dot.logits[i] - c.logit) <= 0.05, `${c.name}: ${got.i16Dot.logits[i]} vs PyTorch ${c.logit}`));
  }));

// The relaxed-SIMD kernel has a scalar definition (what native CPUs' kernels equal too): with both
// dot sequences, with and without a bias, and on weights and rows that leave every remainder of
// its tiles, it must give the definition's outputs bit for bit.
test('crossrank_wasm_relaxed_bg.wasm: the int8 kernel gives its scalar definition\'s outputs, bit for bit', TIMEOUT, () =>
  withPage(async ({ page }) => {
    const agrees = await page.evaluate(async () => {
      const wasm = await import('/www/pkg/crossrank_wasm.js');
      await wasm.default({ module_or_path: '/www/pkg/crossrank_wasm_relaxed_bg.wasm' });
      return wasm.int8KernelAgrees();
    });
    assert.equal(agrees, true);
  }));

// Int8 attention's SIMD128 code against its definitions, bit for bit, in both modules (the Rust
// tests run only the portable code natively): the softmax straight to digits (non_negative_block)
// gives the digits and scales of writing the probabilities out and quantising them; the keys and
// values are rounded as the Q8_0 definition rounds (their largest |v| found with f32x4.pmax). Each
// hook throws naming the first case that differs.
const attentionHooks = [
  ['softmaxDigitsAgree', "int8 attention's softmax gives its definition's digits and scales"],
  ['q8RoundingAgrees', "attention's keys and values are rounded as the Q8_0 definition rounds"],
];
for (const module of ['crossrank_wasm_relaxed_bg.wasm', 'crossrank_wasm_bg.wasm']) {
  for (const [hook, what] of attentionHooks) {
    test(`${module}: ${what}, bit for bit`, TIMEOUT, () =>
      withPage(async ({ page }) => {
        const agrees = await page.evaluate(async ({ module, hook }) => {
          const wasm = await import('/www/pkg/crossrank_wasm.js');
          await wasm.default({ module_or_path: `/www/pkg/${module}` });
          return wasm[hook]();
        }, { module, hook });
        assert.equal(agrees, true);
      }));
  }
}

// The activation quantiser has a SIMD128 version in wasm and a portable definition (what native
// CPUs run): they must give the same digits, scales and zero points, or the builds' logits part.
// Both modules, on blocks made to hit the edges: ties, one-signed blocks, zeros and −0, subnormal
// spans, values near f32's limits, inf and NaN.
for (const module of ['crossrank_wasm_relaxed_bg.wasm', 'crossrank_wasm_bg.wasm']) {
  test(`${module}: the SIMD activation quantiser gives its portable definition's digits, bit for bit`, TIMEOUT, () =>
    withPage(async ({ page }) => {
      const got = await page.evaluate(async (module) => {
        const wasm = await import('/www/pkg/crossrank_wasm.js');
        await wasm.default({ module_or_path: `/www/pkg/${module}` });
        let seed = 7;
        const random = () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
        const normal = () => Math.sqrt(-2 * Math.log(random() + 1e-12)) * Math.cos(2 * Math.PI * random());
        const block = (f) => Float32Array.from({ length: 32 }, (_, i) => f(i));
        const blocks = [
          ...Array.from({ length: 400 }, (_, b) => block(() => normal() * 10 ** ((b % 9) - 4))),
          ...Array.from({ length: 50 }, () => block(() => Math.abs(normal()))), // GELU-like, one sign
          ...Array.from({ length: 50 }, () => block(() => -Math.abs(normal()))),
          block((i) => i + 0.5), block((i) => (i % 2 ? 127 : 0) + (i % 5) * 0.5), // ties
          block(() => 0), block(() => -0), block((i) => (i === 7 ? 3 : 0)), block((i) => (i === 31 ? -1e-3 : 0)),
          block((i) => (i % 3) * 1e-45), block((i) => (i % 2 ? 1e-40 : -1e-40)), // subnormal spans
          block((i) => (i % 2 ? 3e38 : -3e38)), block((i) => i * 1e37),
          block((i) => (i === 5 ? Infinity : i)), block((i) => (i === 9 ? -Infinity : i)), block((i) => (i === 0 ? NaN : i)),
        ];
        const values = new Float32Array(blocks.length * 32);
        blocks.forEach((b, i) => values.set(b, i * 32));
        const each = blocks.map((b) => wasm.digitQuantiserAgrees(b));
        // Whole: the quantiser takes four blocks at a time (a block per lane); from the second,
        // third and fourth block on, each edge block also sits in every other lane of a four.
        const whole = [0, 1, 2, 3].map((k) => wasm.digitQuantiserAgrees(values.subarray(k * 32)));
        return { whole, disagreeing: each.flatMap((ok, i) => (ok ? [] : [i])), count: blocks.length };
      }, module);
      assert.deepEqual(got.disagreeing, [], `blocks whose digits differ from the definition (of ${got.count})`);
      assert.deepEqual(got.whole, [true, true, true, true]);
    }));
}

test('the SIMD128 build has no int8 dot sequence to choose: info.int8Dot is null; an f32 model keeps the default', TIMEOUT, () =>
  withPage(async ({ page }) => {
    const got = await page.evaluate(async ({ q8, f32 }) => {
      const simd128 = await window.crossrank.Reranker.create({ model: q8, threads: 1, wasmUrl: '/www/pkg/crossrank_wasm_bg.wasm' });
      const plain = await window.crossrank.Reranker.create({ model: f32, threads: 1 });
      const infos = [simd128.info, plain.info];
      simd128.dispose();
      plain.dispose();
      return infos;
    }, { q8: MINILM_Q8, f32: MINILM_F32 });
    assert.deepEqual([got[0].simd, got[0].int8Dot], ['simd128', null]);
    // A worker that scores only an f32 model never times the sequences: the default stands.
    assert.deepEqual([got[1].simd, got[1].int8Dot], ['relaxed-simd', 'i16-dot']);
  }));

test('progress events: initiate, progress up to 100%, done, ready', TIMEOUT, () =>
  withPage(async ({ page }) => {
    const url = `${MINILM_Q8}?t=progress`;
    const events = await page.evaluate(async (url) => {
      const events = [];
      const reranker = await window.crossrank.Reranker.create({ model: url, onProgress: (event) => events.push(event) });
      reranker.dispose();
      return events;
    }, url);

    const size = statSync(file(MINILM_Q8.slice(1))).size;
    const statuses = events.map((e) => e.status);
    assert.equal(statuses[0], 'initiate');
    assert.deepEqual(statuses.slice(-2), ['done', 'ready']);
    const progress = events.filter((e) => e.status === 'progress');
    assert.equal(progress.length, statuses.length - 3, `unexpected order: ${statuses.join(' ')}`);
    assert.ok(progress.length >= 3, `only ${progress.length} progress events`);
    for (let i = 1; i < progress.length; i++) {
      assert.ok(progress[i].loaded >= progress[i - 1].loaded && progress[i].progress >= progress[i - 1].progress, 'progress went backwards');
    }
    for (const event of progress) assert.ok(event.progress >= 0 && event.progress <= 100 && event.total === size);
    assert.deepEqual(progress.at(-1), { status: 'progress', file: browser.server.origin + url, loaded: size, total: size, progress: 100 });
    assert.equal(events.at(-2).fromCache, false);
    assert.equal(events.at(-1).info.hiddenSize, 384);
  }));

test('a second load comes from the Cache API, with no request for the model', TIMEOUT, async () => {
  const url = `${TINY}?t=cache`;
  const load = (page, options) =>
    page.evaluate(async ({ url, options, c }) => {
      const events = [];
      const reranker = await window.crossrank.Reranker.create({ model: url, ...options, onProgress: (e) => events.push(e) });
      const [result] = await reranker.rerank(c.query, [c.passage]);
      reranker.dispose();
      return { fromCache: events.find((e) => e.status === 'done').fromCache, result };
    }, { url, options, c: TINY_CASES[0] });

  await withPage(async ({ page }) => {
    const first = await load(page, {});
    assert.equal(first.fromCache, false);
    assert.equal(browser.server.hits(url), 1);
    const keys = await page.evaluate(async () => (await (await caches.open('crossrank-models-v1')).keys()).map((r) => r.url));
    assert.ok(keys.includes(browser.server.origin + url), `not in the cache: ${keys}`);
  });

  // A new page, as on a later visit.
  await withPage(async ({ page }) => {
    // Requests from the page and from its worker.
    const requested = [];
    const onRequest = (request) => requested.push(`${request.method()} ${request.url()}`);
    page.context().on('request', onRequest);
    const second = await load(page, {});
    page.context().off('request', onRequest);
    assert.equal(second.fromCache, true);
    assertLogit(second.result, TINY_CASES[0].logit, 1e-4, 'from the cache');
    assert.equal(browser.server.hits(url), 1, 'the model was downloaded again');
    // Only a HEAD: is the cached file still the one on the server? (Yes: same ETag.)
    assert.deepEqual(requested.filter((u) => u.includes('.gguf')), [`HEAD ${browser.server.origin}${url}`]);
    assert.equal(browser.server.heads(url), 1);

    const uncached = await load(page, { cache: false });
    assert.equal(uncached.fromCache, false);
    assert.equal(browser.server.hits(url), 2, 'cache: false must download');
  });
});

test('a sha256 mismatch rejects with "integrity" and is never cached', TIMEOUT, () =>
  withPage(async ({ page }) => {
    const url = `${TINY}?t=integrity`;
    const sha256 = createHash('sha256').update(readFileSync(file(TINY.slice(1)))).digest('hex');
    const run = (options) =>
      page.evaluate(({ url, options }) => window.settle(window.crossrank.Reranker.create({ model: url, ...options }).then((r) => r.dispose())), { url, options });

    const wrong = await run({ sha256: '0'.repeat(64) });
    assert.equal(wrong.code, 'integrity', wrong.message);
    assert.match(wrong.message, new RegExp(sha256));
    assert.equal(browser.server.hits(url), 1);

    assert.equal((await run({ sha256: sha256.toUpperCase() })).ok, true);
    assert.equal(browser.server.hits(url), 2, 'the mismatching file was cached');
    assert.equal((await run({ sha256 })).ok, true);
    assert.equal(browser.server.hits(url), 2, 'the verified file was not cached');

    const bytes = await page.evaluate(async (url) => {
      const bytes = new Uint8Array(await (await fetch(url)).arrayBuffer());
      return window.settle(window.crossrank.Reranker.create({ model: bytes, sha256: '1'.repeat(64) }));
    }, TINY);
    assert.equal(bytes.code, 'integrity');

    const malformed = await run({ sha256: 'abc' });
    assert.equal(malformed.code, 'invalid_input');
  }));

test('abort: before start, while queued, and mid-rerank; the next call works', TIMEOUT, () =>
  withPage(async ({ page }) => {
    let workersClosed = 0;
    page.on('worker', (worker) => worker.on('close', () => workersClosed++));
    const long = MINILM_CASES.find((c) => c.name === 'long_passage');
    const plain = MINILM_CASES.find((c) => c.name === 'plain');
    const got = await page.evaluate(async ({ url, long, plain }) => {
      const { Reranker } = window.crossrank;
      // One worker, so that the workers ended can be counted (pool.test.mjs: several).
      const reranker = await Reranker.create({ model: url, threads: 1 });
      const manyLong = Array(24).fill(long.passage);

      const early = new AbortController();
      early.abort();
      const before = await window.settle(reranker.rerank(long.query, [long.passage], { signal: early.signal }));

      // A queued call is dropped without touching the running one.
      const queued = new AbortController();
      const running = window.settle(reranker.rerank(long.query, manyLong.slice(0, 2)));
      const waiting = window.settle(reranker.rerank(plain.query, [plain.passage], { signal: queued.signal }));
      queued.abort();
      const whileQueued = await waiting;
      const unaffected = await running;

      // Mid-rerank: the worker is busy in wasm; aborting ends it and rejects at once.
      const controller = new AbortController();
      const started = performance.now();
      const midway = window.settle(reranker.rerank(long.query, manyLong, { signal: controller.signal }));
      await new Promise((resolve) => setTimeout(resolve, 500));
      const abortedAt = performance.now();
      controller.abort();
      const mid = await midway;
      const rejectedAfterMs = performance.now() - abortedAt;

      const next = await window.settle(reranker.rerank(plain.query, [plain.passage]));
      reranker.dispose();
      return { before, whileQueued, unaffected, mid, rejectedAfterMs, ranForMs: abortedAt - started, next };
    }, { url: `${MINILM_F32}?t=abort`, long, plain });

    assert.equal(got.before.code, 'aborted');
    assert.equal(got.whileQueued.code, 'aborted');
    assert.equal(got.unaffected.ok, true, got.unaffected.message);
    assertLogit(got.unaffected.value[0], long.logit, 1e-4, 'the call before the aborted one');
    assert.equal(got.mid.code, 'aborted', got.mid.message);
    assert.ok(got.rejectedAfterMs < 100, `abort took ${got.rejectedAfterMs} ms to reject`);
    assert.equal(got.next.ok, true, got.next.message);
    assertLogit(got.next.value[0], plain.logit, 1e-4, 'the call after the abort');
    assert.equal(browser.server.hits(`${MINILM_F32}?t=abort`), 1, 'the fresh worker downloaded the model again');
    // One worker ended by the mid-rerank abort (the others must not end one), one by dispose().
    for (let i = 0; i < 50 && workersClosed < 2; i++) await new Promise((resolve) => setTimeout(resolve, 100));
    assert.equal(workersClosed, 2);
  }));

test('after an abort, a model given as bytes or loaded with cache: false comes back without the network', TIMEOUT, () =>
  withPage(async ({ page }) => {
    const url = `${TINY}?t=abort-uncached`;
    const c = TINY_CASES[0];
    const got = await page.evaluate(async ({ url, c }) => {
      const { Reranker } = window.crossrank;
      const bytes = new Uint8Array(await (await fetch(url)).arrayBuffer());
      const outcome = {};
      for (const [name, options] of [['bytes', { model: bytes }], ['cache: false', { model: url, cache: false }]]) {
        const reranker = await Reranker.create(options);
        if (name === 'bytes') bytes.fill(0); // the caller's buffer is theirs again once loaded
        const controller = new AbortController();
        // The call is in the worker as soon as it is made, so this aborts a running call.
        const running = window.settle(reranker.rerank(c.query, [c.passage], { signal: controller.signal }));
        controller.abort();
        outcome[name] = { aborted: await running, next: await window.settle(reranker.rerank(c.query, [c.passage])) };
        reranker.dispose();
      }
      return outcome;
    }, { url, c });
    for (const [name, { aborted, next }] of Object.entries(got)) {
      assert.equal(aborted.code, 'aborted', `${name}: ${aborted.message}`);
      assert.equal(next.ok, true, `${name}: ${next.message}`);
      assertLogit(next.value[0], c.logit, 1e-4, `${name}, after the abort`);
    }
    assert.equal(browser.server.hits(url), 2, 'one fetch by the page, one load with cache: false');
  }));

test('aborting a load mid-download rejects with "aborted"; a later load works', TIMEOUT, () =>
  withPage(async ({ page, expectProblem }) => {
    expectProblem(/request failed: .*t=abort-load/); // the download is cut short on purpose
    const got = await page.evaluate(async ({ url, good, c }) => {
      const reranker = new window.crossrank.Reranker();
      const controller = new AbortController();
      const loading = window.settle(reranker.load(url, {
        signal: controller.signal,
        onProgress: (e) => e.status === 'progress' && controller.abort(),
      }));
      const aborted = await loading;
      const info = reranker.info;
      const afterAbort = await window.settle(reranker.rerank(c.query, [c.passage]));
      await reranker.load(good);
      const [result] = await reranker.rerank(c.query, [c.passage]);
      reranker.dispose();
      return { aborted, info, afterAbort, result };
    }, { url: `${TINY}?t=abort-load&rate=100000`, good: TINY, c: TINY_CASES[0] });
    assert.equal(got.aborted.code, 'aborted');
    assert.equal(got.info, null);
    assert.equal(got.afterAbort.code, 'not_loaded');
    assertLogit(got.result, TINY_CASES[0].logit, 1e-4, 'after an aborted load');
  }));

test('a corrupt model rejects with the Rust code; the reranker stays usable', TIMEOUT, () =>
  withPage(async ({ page }) => {
    const truncated = `${TINY}?truncate=100000`;
    const got = await page.evaluate(async ({ truncated, good, c }) => {
      const reranker = new window.crossrank.Reranker();
      const fromUrl = await window.settle(reranker.load(truncated));
      const rerankAfter = await window.settle(reranker.rerank(c.query, [c.passage]));
      const garbage = await window.settle(reranker.load(new Uint8Array(4096).fill(7)));
      const again = await window.settle(reranker.load(truncated));
      const loaded = await window.settle(reranker.load(good));
      const [result] = await reranker.rerank(c.query, [c.passage]);
      reranker.dispose();
      return { fromUrl, rerankAfter, garbage, again, loaded, result };
    }, { truncated, good: TINY, c: TINY_CASES[0] });

    assert.equal(got.fromUrl.code, 'model_format', got.fromUrl.message);
    // The message names the URL (not a made-up file name), and bytes as bytes.
    assert.ok(got.fromUrl.message.startsWith(`${browser.server.origin}${truncated}: `), got.fromUrl.message);
    assert.match(got.garbage.message, /^the model bytes: /);
    assert.equal(got.rerankAfter.code, 'not_loaded');
    assert.match(got.rerankAfter.message, /last load failed/);
    assert.equal(got.garbage.code, 'model_format', got.garbage.message);
    assert.equal(got.again.code, got.fromUrl.code);
    assert.equal(browser.server.hits(truncated), 2, 'a file that failed to parse was cached');
    assert.equal(got.loaded.ok, true, got.loaded.message);
    assertLogit(got.result, TINY_CASES[0].logit, 1e-4, 'after the failed loads');
  }));

test('calls made while the model loads wait for it, in order; behind a failed load they reject', TIMEOUT, () =>
  withPage(async ({ page }) => {
    const cases = TINY_CASES.slice(0, 4);
    const got = await page.evaluate(async ({ url, cases }) => {
      const { Reranker } = window.crossrank;
      const order = [];
      const reranker = new Reranker();
      const loading = reranker.load(url).then(() => order.push('load'));
      const calls = cases.map((c, i) => reranker.rerank(c.query, [c.passage]).then(([result]) => {
        order.push(`rerank ${i}`);
        return result;
      }));
      await loading;
      const results = await Promise.all(calls);
      reranker.dispose();

      const failing = new Reranker();
      const failedLoad = window.settle(failing.load(`${url}?truncate=1000`));
      const behind = window.settle(failing.rerank(cases[0].query, [cases[0].passage]));
      const outcome = { failedLoad: await failedLoad, behind: await behind };
      failing.dispose();
      return { order, results, ...outcome };
    }, { url: TINY, cases });

    assert.deepEqual(got.order, ['load', 'rerank 0', 'rerank 1', 'rerank 2', 'rerank 3']);
    got.results.forEach((result, i) => assertLogit(result, cases[i].logit, 1e-4, cases[i].name, isBlank(cases[i].passage)));
    assert.equal(got.failedLoad.code, 'model_format', got.failedLoad.message);
    assert.equal(got.behind.code, 'not_loaded');
  }));

test('dispose terminates the worker; pending and later calls reject with "not_loaded"', TIMEOUT, () =>
  withPage(async ({ page }) => {
    const closed = [];
    page.on('worker', (worker) => worker.on('close', () => closed.push(worker.url())));
    const got = await page.evaluate(async ({ url, c }) => {
      const reranker = await window.crossrank.Reranker.create({ model: url });
      const threads = reranker.threads;
      const pending = window.settle(reranker.rerank(c.query, [c.passage]));
      reranker.dispose();
      reranker.dispose(); // twice is fine
      return {
        pending: await pending,
        rerank: await window.settle(reranker.rerank(c.query, [c.passage])),
        load: await window.settle(reranker.load(url)),
        info: reranker.info,
        threads,
      };
    }, { url: TINY, c: TINY_CASES[0] });
    assert.equal(got.pending.code, 'not_loaded');
    assert.equal(got.rerank.code, 'not_loaded');
    assert.equal(got.load.code, 'not_loaded');
    assert.equal(got.info, null);
    // Every worker of the pool (default: one per core, at most 4) ends.
    assert.equal(got.threads, Math.max(1, Math.min(4, await page.evaluate(() => navigator.hardwareConcurrency))));
    for (let i = 0; i < 50 && closed.length < got.threads; i++) await new Promise((resolve) => setTimeout(resolve, 100));
    assert.equal(closed.length, got.threads, 'the workers were not terminated');
    for (const url of closed) assert.match(url, /worker\.js$/);
  }));

test('documents as { text, id } objects, returnDocuments, topK and input validation', TIMEOUT, () =>
  withPage(async ({ page }) => {
    const byName = (name) => MINILM_CASES.find((x) => x.name === name);
    // a and b share a query, so their fixture logits apply; c is just another text.
    const [a, b, c] = [byName('plain'), byName('unrelated'), byName('scifact_pos')];
    const documents = [{ text: a.passage, id: 'a', source: 'pubmed' }, b.passage, { text: c.passage, id: 7 }];
    const got = await page.evaluate(async ({ url, query, documents }) => {
      const reranker = await window.crossrank.Reranker.create({ model: url });
      const run = (...args) => window.settle(reranker.rerank(...args));
      const outcome = {
        full: await run(query, documents, { returnDocuments: true }),
        plain: await run(query, documents),
        top: await run(query, documents, { topK: 2 }),
        empty: await run(query, []),
        notString: await run(query, [documents[1], 42]),
        noText: await run(query, [{ id: 1 }]),
        badQuery: await run(5, documents),
        notArray: await run(query, 'one document'),
        badTopK: await run(query, documents, { topK: 0 }),
        badMaxLength: await run(query, documents, { maxLength: 1.5 }),
        hugeMaxLength: await run(query, documents, { maxLength: 100000 }),
        short: await run(query, documents, { maxLength: 16 }),
      };
      reranker.dispose();
      return outcome;
    }, { url: MINILM_F32, query: a.query, documents });

    assert.equal(got.full.ok, true, got.full.message);
    const full = got.full.value;
    assert.equal(full.length, 3);
    assertSorted(full, 'objects');
    for (const result of full) {
      assert.deepEqual(result.document, documents[result.index]);
      if (typeof documents[result.index] === 'string') assert.ok(!('id' in result));
      else assert.equal(result.id, documents[result.index].id);
    }
    assertLogit(full.find((r) => r.id === 'a'), a.logit, 1e-4, 'document a');
    assertLogit(full.find((r) => r.index === 1), b.logit, 1e-4, 'document b');
    assert.ok(got.plain.value.every((r) => !('document' in r)), 'documents returned without returnDocuments');
    assert.deepEqual(got.top.value, got.plain.value.slice(0, 2));
    assert.deepEqual(got.empty, { ok: true, value: [] });
    for (const key of ['notString', 'noText', 'badQuery', 'notArray', 'badTopK', 'badMaxLength']) {
      assert.equal(got[key].code, 'invalid_input', `${key}: ${JSON.stringify(got[key])}`);
    }
    assert.match(got.notString.message, /documents\[1\]/);
    assert.equal(got.hugeMaxLength.code, 'invalid_input', JSON.stringify(got.hugeMaxLength));
    assert.equal(got.short.ok, true, got.short.message);
  }));

test('a crashed worker rejects what it was doing with "worker_crashed"; the next call gets a fresh one', TIMEOUT, () =>
  withPage(async ({ page, expectProblem }) => {
    expectProblem(/simulated crash/);
    expectProblem(/request failed: .*t=crash/); // the slow download dies with its worker
    const url = `${TINY}?t=crash`;
    const c = TINY_CASES[0];
    const crashWorker = async () => {
      const [worker] = page.workers();
      const closed = new Promise((resolve) => worker.on('close', resolve));
      await worker.evaluate(() => setTimeout(() => {
        throw new Error('simulated crash');
      }));
      await closed;
    };
    const rerank = () =>
      page.evaluate(async (c) => window.settle(window.reranker.rerank(c.query, [c.passage]).then(([result]) => result)), c);

    await page.evaluate(async (url) => {
      // One worker, so that page.workers() finds it (pool.test.mjs crashes one of several).
      window.reranker = await window.crossrank.Reranker.create({ model: url, threads: 1 });
    }, url);

    // Idle: the next call starts a fresh worker and loads the model again, from the cache.
    await crashWorker();
    const afterIdleCrash = await rerank();
    assert.equal(afterIdleCrash.ok, true, afterIdleCrash.message);
    assertLogit(afterIdleCrash.value, c.logit, 1e-4, 'after a crash while idle');
    assert.equal(browser.server.hits(url), 1, 'the model was downloaded again');

    // Busy: a slow load is in flight when the worker dies.
    await page.evaluate((url) => {
      window.events = [];
      window.loading = window.settle(window.reranker.load(`${url}&rate=100000`, { onProgress: (e) => window.events.push(e) }));
    }, url);
    await page.waitForFunction(() => window.events.some((e) => e.status === 'progress'));
    await crashWorker();
    const loading = await page.evaluate(() => window.loading);
    assert.equal(loading.code, 'worker_crashed', loading.message);

    const next = await page.evaluate(async (url) => window.settle(window.reranker.load(url)), url);
    assert.equal(next.ok, true, next.message);
    const afterBusyCrash = await rerank();
    assertLogit(afterBusyCrash.value, c.logit, 1e-4, 'after a crash during a load');
    assert.equal(browser.server.hits(url), 1, 'the model was downloaded again');
    await page.evaluate(() => window.reranker.dispose());
  }));
