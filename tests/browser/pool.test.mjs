// Several workers per reranker (`threads`): a call's documents are split into chunks that the
// workers score as they become free, and one of them orders the union. Everything a caller sees
// must be what one worker gives: results, errors, progress, abort and crash recovery.
//
//   node --test tests/browser/pool.test.mjs   (needs ./build.sh wasm models)

import assert from 'node:assert/strict';
import { test } from 'node:test';

import { fixture, useBrowser } from './harness.mjs';

const MINILM_F32 = '/artifacts/models/minilm-l4.f32.gguf';
const TINY = '/artifacts/models/tiny.f32.gguf';
const MINILM_CASES = fixture('minilm_l4.json').cases;
const TIMEOUT = { timeout: 240_000 };

const browser = useBrowser();

const withPage = (body) => browser.withPage(body);

/** Same order and indices; logits within `tolerance` (batches differ, so summation order may). */
function assertSameResults(actual, expected, tolerance, label) {
  assert.deepEqual(actual.map((r) => r.index), expected.map((r) => r.index), `${label}: order`);
  actual.forEach((result, i) => {
    const want = expected[i];
    assert.ok(Math.abs(result.logit - want.logit) <= tolerance, `${label}: logit ${result.logit} vs ${want.logit}`);
    assert.deepEqual(Object.keys(result).sort(), Object.keys(want).sort(), `${label}: fields`);
    if (want.fused !== undefined) assert.ok(Math.abs(result.fused - want.fused) <= tolerance, `${label}: fused`);
    assert.deepEqual(result.bestWindow, want.bestWindow, `${label}: bestWindow`);
  });
}

test('two workers give one worker\'s results for every option, and PyTorch\'s logits', TIMEOUT, () =>
  withPage(async ({ page }) => {
    // Every fixture passage against one query, as first-stage candidates with scores.
    const query = MINILM_CASES[0].query;
    const documents = MINILM_CASES.map((c, i) => ({ text: c.passage, id: c.name, score: (i * 7) % 5 }));
    const got = await page.evaluate(async ({ url, query, documents }) => {
      const { Reranker } = window.crossrank;
      const variants = {
        plain: {},
        topK: { topK: 3 },
        rrf: { fusion: { type: 'rrf', k: 10 } },
        weighted: { fusion: { type: 'weighted', weight: 0.3 } },
        windows: { windows: { overlap: 16 }, maxLength: 64 },
        minmax: { scoreScale: 'minmax', threshold: 0.25 },
      };
      const outcome = {};
      for (const threads of [1, 2]) {
        const reranker = await Reranker.create({ model: url, threads });
        const results = { threads: reranker.threads };
        for (const [name, options] of Object.entries(variants)) {
          results[name] = await window.settle(reranker.rerank(query, documents, options));
        }
        results.many = await window.settle(reranker.rerankMany([
          { query, documents: documents.slice(0, 5) },
          { query: 'an unrelated question about weather', documents: [] },
          { query: 'weather', documents: documents.slice(3) },
        ]));
        reranker.dispose();
        outcome[threads] = results;
      }
      return outcome;
    }, { url: MINILM_F32, query, documents });

    assert.equal(got[1].threads, 1);
    assert.equal(got[2].threads, 2);
    for (const name of ['plain', 'topK', 'rrf', 'weighted', 'windows', 'minmax', 'many']) {
      assert.equal(got[1][name].ok, true, `${name}, 1 thread: ${got[1][name].message}`);
      assert.equal(got[2][name].ok, true, `${name}, 2 threads: ${got[2][name].message}`);
      const [one, two] = [got[1][name].value, got[2][name].value];
      if (name === 'many') {
        assert.equal(two.length, 3);
        assert.deepEqual(two[1], []);
        two.forEach((list, i) => assertSameResults(list, one[i], 1e-5, `many[${i}]`));
      } else {
        assertSameResults(two, one, 1e-5, name);
      }
    }
    assert.equal(got[2].topK.value.length, 3);
    // The fixture cases whose query is this one: PyTorch's logits, from the pool.
    for (const c of MINILM_CASES.filter((x) => x.query === query)) {
      const result = got[2].plain.value.find((r) => r.id === c.name);
      assert.ok(Math.abs(result.logit - c.logit) <= 1e-4, `${c.name}: ${result.logit} vs PyTorch ${c.logit}`);
    }
  }));

test('progress while reranking: chunks of documents, in order, ending at the total', TIMEOUT, () =>
  withPage(async ({ page }) => {
    const got = await page.evaluate(async ({ url }) => {
      const { Reranker } = window.crossrank;
      const reranker = await Reranker.create({ model: url, threads: 2 });
      const documents = Array.from({ length: 37 }, (_, i) => `document ${i} about ${'vitamins '.repeat(i % 9)}`);
      const events = [];
      const results = await reranker.rerank('vitamins', documents, { onProgress: (e) => events.push(e) });
      const manyEvents = [];
      await reranker.rerankMany([{ query: 'a', documents: documents.slice(0, 4) }, { query: 'b', documents: documents.slice(0, 3) }],
        { onProgress: (e) => manyEvents.push(e) });
      const bad = await window.settle(reranker.rerank('q', ['d'], { onProgress: 'yes' }));
      reranker.dispose();
      return { events, manyEvents, count: results.length, bad };
    }, { url: TINY });

    assert.equal(got.count, 37);
    assert.ok(got.events.length >= 4, `only ${got.events.length} progress events`);
    let previous = 0;
    for (const event of got.events) {
      assert.equal(event.status, 'rerank');
      assert.equal(event.total, 37);
      assert.ok(event.scored > previous && event.scored <= 37, JSON.stringify(got.events));
      previous = event.scored;
    }
    assert.equal(previous, 37);
    assert.equal(got.manyEvents.at(-1).scored, 7);
    assert.equal(got.manyEvents.at(-1).total, 7);
    assert.equal(got.bad.code, 'invalid_input');
    assert.match(got.bad.message, /onProgress must be a function/);
  }));

test('errors are one worker\'s errors, and the pool keeps working after them', TIMEOUT, () =>
  withPage(async ({ page }) => {
    const c = MINILM_CASES[0];
    const got = await page.evaluate(async ({ url, c }) => {
      const { Reranker } = window.crossrank;
      const outcome = {};
      for (const threads of [1, 2]) {
        const reranker = await Reranker.create({ model: url, threads });
        const docs = Array(9).fill(c.passage);
        outcome[threads] = {
          weight: await window.settle(reranker.rerank(c.query, docs, { fusion: { type: 'weighted', weight: 2 } })),
          emptyQuery: await window.settle(reranker.rerank('  ', docs)),
          threshold: await window.settle(reranker.rerank(c.query, docs, { threshold: Number.NaN })),
          after: await window.settle(reranker.rerank(c.query, [c.passage])),
        };
        reranker.dispose();
      }
      outcome.badThreads = [0, 2.5, 17, 'auto'].map((threads) => {
        try {
          new Reranker({ threads });
          return null;
        } catch (error) {
          return { code: error.code, message: error.message };
        }
      });
      return outcome;
    }, { url: TINY, c: fixture('tiny.json').cases[0] });

    for (const key of ['weight', 'emptyQuery', 'threshold']) {
      assert.equal(got[1][key].ok, false, key);
      assert.equal(got[2][key].code, got[1][key].code, key);
      assert.equal(got[2][key].message, got[1][key].message, key);
    }
    assert.equal(got[2].weight.code, 'invalid_input');
    assert.equal(got[2].after.ok, true, got[2].after.message);
    assert.ok(Math.abs(got[2].after.value[0].logit - fixture('tiny.json').cases[0].logit) <= 1e-4);
    for (const bad of got.badThreads) {
      assert.equal(bad?.code, 'invalid_input');
      assert.match(bad.message, /threads must be a whole number from 1 to 16/);
    }
  }));

test('abort mid-rerank ends the busy workers at once; the next call works; dispose ends them all', TIMEOUT, () =>
  withPage(async ({ page }) => {
    const closed = [];
    page.on('worker', (worker) => worker.on('close', () => closed.push(worker.url())));
    const long = MINILM_CASES.find((c) => c.name === 'long_passage');
    const plain = MINILM_CASES.find((c) => c.name === 'plain');
    const got = await page.evaluate(async ({ url, long, plain }) => {
      const { Reranker } = window.crossrank;
      const reranker = await Reranker.create({ model: url, threads: 2 });
      const controller = new AbortController();
      const events = [];
      const midway = window.settle(reranker.rerank(long.query, Array(24).fill(long.passage), {
        signal: controller.signal,
        onProgress: (e) => events.push(e),
      }));
      await new Promise((resolve) => setTimeout(resolve, 500));
      const abortedAt = performance.now();
      controller.abort();
      const mid = await midway;
      const rejectedAfterMs = performance.now() - abortedAt;
      const eventsAtAbort = events.length;
      const next = await window.settle(reranker.rerank(plain.query, [plain.passage]));
      await new Promise((resolve) => setTimeout(resolve, 300));
      const eventsLater = events.length;
      reranker.dispose();
      return { mid, rejectedAfterMs, next, eventsAtAbort, eventsLater };
    }, { url: `${MINILM_F32}?t=pool-abort`, long, plain });

    assert.equal(got.mid.code, 'aborted', got.mid.message);
    assert.ok(got.rejectedAfterMs < 100, `abort took ${got.rejectedAfterMs} ms to reject`);
    assert.equal(got.eventsLater, got.eventsAtAbort, 'progress was reported after the abort');
    assert.equal(got.next.ok, true, got.next.message);
    assert.ok(Math.abs(got.next.value[0].logit - plain.logit) <= 1e-4, `after the abort: ${got.next.value[0].logit}`);
    assert.equal(browser.server.hits(`${MINILM_F32}?t=pool-abort`), 1, 'fresh workers downloaded the model again');
    // Both workers were busy (24 long pairs): both ended by the abort, both fresh ones by dispose().
    for (let i = 0; i < 50 && closed.length < 4; i++) await new Promise((resolve) => setTimeout(resolve, 100));
    assert.equal(closed.length, 4, `workers closed: ${closed.length}`);
  }));

test('a worker of the pool that dies mid-call fails the call with "worker_crashed" or is replaced; the next call works', TIMEOUT, () =>
  withPage(async ({ page, expectProblem }) => {
    expectProblem(/simulated crash/);
    const long = MINILM_CASES.find((c) => c.name === 'long_passage');
    await page.evaluate(async ({ url, long }) => {
      window.reranker = await window.crossrank.Reranker.create({ model: url, threads: 2 });
      window.events = [];
      window.call = window.settle(window.reranker.rerank(long.query, Array(16).fill(long.passage), {
        onProgress: (e) => window.events.push(e),
      }));
    }, { url: `${MINILM_F32}?t=pool-crash`, long });
    await page.waitForFunction(() => window.events.length > 0);
    const [worker] = page.workers();
    await worker.evaluate(() => setTimeout(() => {
      throw new Error('simulated crash');
    }));
    const call = await page.evaluate(() => window.call);
    // The worker died either with a chunk in it (the call fails, as with one worker) or between
    // two chunks (it is replaced, with the model, and the call completes correctly).
    if (call.ok) {
      assert.equal(call.value.length, 16);
      for (const result of call.value) assert.ok(Math.abs(result.logit - long.logit) <= 1e-4, `${result.logit}`);
    } else {
      assert.equal(call.code, 'worker_crashed', call.message);
    }
    const next = await page.evaluate(async (long) => window.settle(window.reranker.rerank(long.query, [long.passage])), long);
    assert.equal(next.ok, true, next.message);
    assert.ok(Math.abs(next.value[0].logit - long.logit) <= 1e-4);
    assert.equal(browser.server.hits(`${MINILM_F32}?t=pool-crash`), 1, 'the replacement read the model from the cache');
    await page.evaluate(() => window.reranker.dispose());
  }));
