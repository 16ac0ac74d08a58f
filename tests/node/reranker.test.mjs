// The package's Reranker in Node (worker_threads, the .wasm read from www/pkg/, models from files),
// against the PyTorch fixtures, as tests/browser/reranker.test.mjs and pool.test.mjs check it in
// Chromium: parity, every kind of model source, progress, abort, a pool, a dead worker replaced.
//
//   cd www && npm run test:node      (node --test ../tests/node/; needs ./build.sh wasm models)

import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { createServer } from 'node:http';
import { readFileSync, statSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { relative } from 'node:path';
import { describe, test } from 'node:test';
import { pathToFileURL } from 'node:url';

import {
  EXPECTED_SIMD, MINILM_CASES, MINILM_F32, PARITY_MODELS, TINY, TINY_CASES,
  assertLogit, isBlank, path, settle, sleep, watchThreads,
} from './helpers.mjs';

const { Reranker, RerankerError } = await import('../../www/src/index.js');

const TIMEOUT = { timeout: 240_000 };
const plain = MINILM_CASES.find((c) => c.name === 'plain');
const long = MINILM_CASES.find((c) => c.name === 'long_passage');

describe('parity with PyTorch, models given as file paths', () => {
  for (const model of PARITY_MODELS) {
    test(`${model.name}: logits within ${model.tolerance} of the fixture, alone and batched`, TIMEOUT, async () => {
      const reranker = await Reranker.create({ model: path(model.file), threads: 1 });
      try {
        assert.equal(reranker.info.modelType, model.modelType);
        // Node 20 cannot compile the relaxed build (its V8 has relaxed SIMD behind a flag).
        assert.equal(reranker.info.simd, EXPECTED_SIMD);
        for (const c of model.cases) {
          const [result] = await reranker.rerank(c.query, [c.passage]);
          assert.equal(result.index, 0);
          assertLogit(result, c.logit, model.tolerance, `${model.name} ${c.name}`, isBlank(c.passage));
        }
        // Cases that share a query go in one call: padding within a batch must not move a logit.
        const groups = new Map();
        for (const c of model.cases) groups.set(c.query, [...(groups.get(c.query) ?? []), c]);
        for (const members of groups.values()) {
          const results = await reranker.rerank(members[0].query, members.map((c) => c.passage));
          assert.equal(results.length, members.length);
          for (let i = 1; i < results.length; i++) assert.ok(results[i - 1].score >= results[i].score, 'sorted by score');
          for (const result of results) {
            const c = members[result.index];
            assertLogit(result, c.logit, model.tolerance, `${model.name} ${c.name} (batch of ${members.length})`, isBlank(c.passage));
          }
        }
      } finally {
        reranker.dispose();
      }
    });
  }
});

test('model: a relative path, an absolute path, a file: URL (string or URL), bytes and an ArrayBuffer all load', TIMEOUT, async () => {
  const bytes = readFileSync(path(TINY));
  const c = TINY_CASES[0];
  const sources = {
    relative: relative(process.cwd(), path(TINY)),
    absolute: path(TINY),
    'file: URL string': pathToFileURL(path(TINY)).href,
    'URL object': pathToFileURL(path(TINY)),
    Uint8Array: new Uint8Array(bytes),
    ArrayBuffer: bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength),
  };
  assert.ok(!sources.relative.startsWith('/'), 'the relative path is relative');
  for (const [name, model] of Object.entries(sources)) {
    const events = [];
    const reranker = await Reranker.create({ model, threads: 1, onProgress: (e) => events.push(e) });
    const [result] = await reranker.rerank(c.query, [c.passage]);
    reranker.dispose();
    assertLogit(result, c.logit, 1e-4, name);
    const ready = events.at(-1);
    assert.equal(ready.status, 'ready');
    assert.equal(ready.file, typeof model === 'string' || model instanceof URL ? pathToFileURL(path(TINY)).href : null, `${name}: ready.file`);
  }
});

test('a file path loads with progress events: initiate, progress up to its size, done (not from a cache), ready', TIMEOUT, async () => {
  const events = [];
  const reranker = await Reranker.create({ model: path(MINILM_F32), threads: 1, onProgress: (e) => events.push(e) });
  reranker.dispose();
  const file = pathToFileURL(path(MINILM_F32)).href;
  const size = statSync(path(MINILM_F32)).size;
  const statuses = events.map((e) => e.status);
  assert.deepEqual(statuses[0], 'initiate');
  assert.deepEqual(statuses.slice(-2), ['done', 'ready']);
  const progress = events.filter((e) => e.status === 'progress');
  assert.equal(progress.length, statuses.length - 3, `unexpected order: ${statuses.join(' ')}`);
  assert.ok(progress.length >= 3, `only ${progress.length} progress events`);
  for (let i = 1; i < progress.length; i++) assert.ok(progress[i].loaded > progress[i - 1].loaded, 'progress went backwards');
  assert.deepEqual(progress.at(-1), { status: 'progress', file, loaded: size, total: size, progress: 100 });
  assert.deepEqual(events.at(-2), { status: 'done', file, fromCache: false });
});

test('a Hugging Face model folder on disk (a path ending in "/") is converted in a worker, as crossrank convert does', TIMEOUT, async () => {
  const reranker = await Reranker.create({ model: `${path('tests/models/tiny')}/`, dtype: 'f32', threads: 1 });
  try {
    for (const c of TINY_CASES.slice(0, 4)) assertLogit((await reranker.rerank(c.query, [c.passage]))[0], c.logit, 1e-4, `converted ${c.name}`, isBlank(c.passage));
  } finally {
    reranker.dispose();
  }
});

test('files that cannot be read are "fetch" RerankerErrors naming the path', TIMEOUT, async () => {
  const missing = path('artifacts/models/no-such-model.gguf');
  const cases = [
    [missing, `could not read ${missing}: no such file (a relative path is resolved against the current directory)`],
    [path('artifacts/models'), `${path('artifacts/models')} is not a regular file: a model file must be one (a directory, device or FIFO has no size to check)`],
    ['/dev/zero', '/dev/zero is not a regular file: a model file must be one (a directory, device or FIFO has no size to check)'],
  ];
  for (const [model, message] of cases) {
    const got = await settle(Reranker.create({ model, threads: 1 }));
    assert.equal(got.ok, false, `${model} loaded`);
    assert.ok(got.error instanceof RerankerError, `${model}: ${got.name}`);
    assert.equal(got.code, 'fetch', got.message);
    assert.equal(got.message, message);
  }
  // A file that is there but not a model is the engine's error, named by its path.
  const notModel = path('tests/fixtures/tiny.json');
  const got = await settle(Reranker.create({ model: notModel, threads: 1 }));
  assert.equal(got.code, 'model_format');
  assert.equal(got.message, `${pathToFileURL(notModel).href} is JSON, not a GGUF model file (an error from the server, or a config.json?)`);
});

test('an http URL loads with fetch; Node has no Cache API, so every load downloads it', TIMEOUT, async () => {
  let hits = 0;
  const body = readFileSync(path(TINY));
  const server = createServer((request, response) => {
    hits++;
    response.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': body.length, etag: '"v1"' });
    response.end(body);
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  try {
    const url = `http://127.0.0.1:${server.address().port}/tiny.f32.gguf`;
    for (let load = 1; load <= 2; load++) {
      const events = [];
      const reranker = await Reranker.create({ model: url, threads: 2, onProgress: (e) => events.push(e) });
      const c = TINY_CASES[1];
      assertLogit((await reranker.rerank(c.query, [c.passage]))[0], c.logit, 1e-4, `load ${load}`);
      reranker.dispose();
      assert.equal(events.find((e) => e.status === 'done').fromCache, false);
      // The second worker of the pool got the bytes from the first, not from the server.
      assert.equal(hits, load);
    }
  } finally {
    server.close();
  }
});

test('Node without relaxed SIMD: the relaxed build named by wasmUrl fails as "unsupported"; the SIMD128 one runs', TIMEOUT, async () => {
  const relaxed = path('www/pkg/crossrank_wasm_relaxed_bg.wasm');
  const got = await settle(Reranker.create({ model: path(TINY), wasmUrl: relaxed, threads: 1 }));
  if (EXPECTED_SIMD === 'simd128') {
    assert.equal(got.code, 'unsupported', got.message);
    assert.match(got.message, /^crossrank's WebAssembly did not compile .*: WebAssembly\.\w+\(\): Compiling function #\d+ failed: simd opcode not available/);
  } else {
    assert.equal(got.ok, true, got.message);
    assert.equal(got.value.info.simd, 'relaxed-simd');
    got.value.dispose();
  }
  const reranker = await Reranker.create({ model: path(TINY), wasmUrl: path('www/pkg/crossrank_wasm_bg.wasm'), threads: 1 });
  assert.equal(reranker.info.simd, 'simd128');
  reranker.dispose();
  const missing = await settle(Reranker.create({ model: path(TINY), wasmUrl: path('www/pkg/none.wasm'), threads: 1 }));
  assert.equal(missing.code, 'fetch');
  assert.equal(missing.message, `could not read ${path('www/pkg/none.wasm')}: no such file (a relative path is resolved against the current directory)`);
});

test('device: Node has no WebGPU, so "auto" runs on wasm and says why; "webgpu" rejects with webgpu_unavailable', TIMEOUT, async () => {
  const reranker = await Reranker.create({ model: path(TINY), threads: 1 });
  try {
    assert.equal(reranker.info.device, 'wasm');
    assert.equal(reranker.info.gpu, null);
    assert.match(reranker.info.fallback, /no WebGPU \(navigator\.gpu is undefined/);
  } finally {
    reranker.dispose();
  }
  const strict = await settle(Reranker.create({ model: path(TINY), threads: 1, device: 'webgpu' }));
  assert.equal(strict.code, 'webgpu_unavailable');
  assert.match(strict.message, /^device "webgpu" cannot be used: this runtime has no WebGPU/);
  const wasm = await Reranker.create({ model: path(TINY), threads: 1, device: 'wasm' });
  assert.deepEqual([wasm.info.device, wasm.info.gpu, wasm.info.fallback], ['wasm', null, null]);
  wasm.dispose();
});

test('threads: one per core (os.availableParallelism), at most 4, unless told', TIMEOUT, async () => {
  const reranker = new Reranker();
  assert.equal(reranker.threads, Math.max(1, Math.min(4, availableParallelism())));
  reranker.dispose();
  assert.equal(new Reranker({ threads: 3 }).threads, 3);
});

test('abort: before start, while queued and mid-rerank (the thread is ended at once); the next call works', TIMEOUT, async () => {
  const threads = watchThreads();
  try {
    const reranker = await Reranker.create({ model: path(MINILM_F32), threads: 1 });
    assert.equal(threads.started.length, 1);

    const early = new AbortController();
    early.abort();
    const before = await settle(reranker.rerank(long.query, [long.passage], { signal: early.signal }));
    assert.equal(before.code, 'aborted');

    const queued = new AbortController();
    const running = settle(reranker.rerank(long.query, [long.passage, long.passage]));
    const waiting = settle(reranker.rerank(plain.query, [plain.passage], { signal: queued.signal }));
    queued.abort();
    assert.equal((await waiting).code, 'aborted');
    const unaffected = await running;
    assert.equal(unaffected.ok, true, unaffected.message);
    assertLogit(unaffected.value[0], long.logit, 1e-4, 'the call before the aborted one');
    assert.equal(threads.exited.length, 0, 'a queued abort ended a thread');

    const controller = new AbortController();
    const midway = settle(reranker.rerank(long.query, Array(24).fill(long.passage), { signal: controller.signal }));
    await sleep(500);
    const abortedAt = performance.now();
    controller.abort();
    const mid = await midway;
    const rejectedAfterMs = performance.now() - abortedAt;
    assert.equal(mid.code, 'aborted', mid.message);
    assert.ok(mid.error instanceof RerankerError);
    assert.ok(rejectedAfterMs < 100, `abort took ${rejectedAfterMs} ms to reject`);

    const next = await settle(reranker.rerank(plain.query, [plain.passage]));
    assert.equal(next.ok, true, next.message);
    assertLogit(next.value[0], plain.logit, 1e-4, 'the call after the abort');
    // The busy thread was ended by the abort and a fresh one loaded the model (from the bytes kept).
    assert.equal(threads.started.length, 2);
    for (let i = 0; i < 50 && threads.exited.length < 1; i++) await sleep(20);
    assert.deepEqual(threads.exited, [threads.started[0]]);
    reranker.dispose();
    for (let i = 0; i < 50 && threads.exited.length < 2; i++) await sleep(20);
    assert.equal(threads.exited.length, 2, 'dispose ended the fresh thread');
  } finally {
    threads.restore();
  }
});

test('a pool of two threads gives one thread\'s results for every option, and PyTorch\'s logits', TIMEOUT, async () => {
  const threads = watchThreads();
  const query = MINILM_CASES[0].query;
  const documents = MINILM_CASES.map((c, i) => ({ text: c.passage, id: c.name, score: (i * 7) % 5 }));
  const variants = {
    plain: {},
    topK: { topK: 3, returnDocuments: true },
    windows: { windows: { overlap: 16, aggregate: 'max' }, maxLength: 64 },
    fusion: { fusion: { type: 'rrf', k: 10 } },
    threshold: { threshold: 0.5, scoreScale: 'minmax' },
  };
  const one = await Reranker.create({ model: path(MINILM_F32), threads: 1 });
  const two = await Reranker.create({ model: path(MINILM_F32), threads: 2 });
  try {
    assert.equal(threads.started.length, 3);
    assert.equal(two.threads, 2);
    for (const [name, options] of Object.entries(variants)) {
      const expected = await one.rerank(query, documents, options);
      const events = [];
      const actual = await two.rerank(query, documents, { ...options, onProgress: (e) => events.push(e) });
      assert.deepEqual(actual.map((r) => r.index), expected.map((r) => r.index), `${name}: order`);
      actual.forEach((result, i) => {
        assert.deepEqual(Object.keys(result).sort(), Object.keys(expected[i]).sort(), `${name}: fields`);
        assert.ok(Math.abs(result.logit - expected[i].logit) <= 1e-5, `${name}: logit ${result.logit} vs ${expected[i].logit}`);
        assert.deepEqual(result.bestWindow, expected[i].bestWindow, `${name}: bestWindow`);
        assert.equal(result.id, documents[result.index].id);
      });
      assert.deepEqual(events.at(-1), { status: 'rerank', scored: documents.length, total: documents.length });
    }
    const results = await two.rerank(query, documents);
    for (const result of results) {
      const c = MINILM_CASES[result.index];
      // Not a fixture pair (one query for all passages): only the fixture's own query is checked.
      if (c.query === query) assertLogit(result, c.logit, 1e-4, `pool ${c.name}`, isBlank(c.passage));
    }
    const many = await two.rerankMany(MINILM_CASES.slice(0, 6).map((c) => ({ query: c.query, documents: [c.passage] })));
    many.forEach(([result], i) => assertLogit(result, MINILM_CASES[i].logit, 1e-4, `rerankMany ${MINILM_CASES[i].name}`, isBlank(MINILM_CASES[i].passage)));
  } finally {
    one.dispose();
    two.dispose();
    threads.restore();
  }
});

test('a thread of the pool that dies is replaced with the model; a call it was in fails with "worker_crashed" or completes', TIMEOUT, async () => {
  const threads = watchThreads();
  const reranker = await Reranker.create({ model: path(MINILM_F32), threads: 2 });
  try {
    assert.equal(threads.started.length, 2);
    // Between calls: the next call finds it dead and starts a fresh one.
    await threads.started[1].terminate();
    await sleep(50);
    const between = await reranker.rerank(plain.query, Array(8).fill(plain.passage));
    assert.equal(between.length, 8);
    for (const result of between) assertLogit(result, plain.logit, 1e-4, 'after a thread died between calls');
    assert.equal(threads.started.length, 3, 'a fresh thread replaced the dead one');

    // Mid-call: ended from outside while it scores a chunk.
    const events = [];
    const call = settle(reranker.rerank(long.query, Array(16).fill(long.passage), { onProgress: (e) => events.push(e) }));
    for (let i = 0; i < 500 && events.length === 0; i++) await sleep(10);
    await threads.started[0].terminate();
    const outcome = await call;
    if (outcome.ok) {
      assert.equal(outcome.value.length, 16);
      for (const result of outcome.value) assertLogit(result, long.logit, 1e-4, 'completed despite the death');
    } else {
      assert.equal(outcome.code, 'worker_crashed', outcome.message);
      assert.ok(outcome.error instanceof RerankerError);
      assert.match(outcome.message, /^the worker failed: the worker thread exited with code 1$/);
    }
    const next = await reranker.rerank(long.query, [long.passage]);
    assertLogit(next[0], long.logit, 1e-4, 'the call after');
  } finally {
    reranker.dispose();
    threads.restore();
  }
});

test('a script that never calls dispose() still exits, and does not exit while a call runs', TIMEOUT, () => {
  const script = `
    import { Reranker } from ${JSON.stringify(pathToFileURL(path('www/src/index.js')).href)};
    const reranker = await Reranker.create({ model: ${JSON.stringify(path(MINILM_F32))}, threads: 2 });
    reranker.rerank(${JSON.stringify(long.query)}, Array(16).fill(${JSON.stringify(long.passage)}))
      .then((results) => console.log(JSON.stringify(results.map((r) => r.logit))));
  `;
  const started = performance.now();
  const run = spawnSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8', timeout: 120_000 });
  assert.equal(run.status, 0, `exit ${run.status} ${run.signal ?? ''}: ${run.stderr}`);
  const logits = JSON.parse(run.stdout);
  assert.equal(logits.length, 16);
  for (const logit of logits) assert.ok(Math.abs(logit - long.logit) <= 1e-4, `${logit}`);
  assert.ok(performance.now() - started < 120_000);
});
