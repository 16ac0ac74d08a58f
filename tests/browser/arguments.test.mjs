// Issue 35 in the package: every argument shape is checked (item 11), text without tokens is blank
// (item 8), a GGUF's metadata cannot make the loader allocate without bound (item 4) and a Q8_0
// model's non-finite activations are an error, not a score (item 5). Each wrong input must reject
// with a RerankerError whose code is exact and whose message names the argument, and the same
// reranker must keep working afterwards.

import assert from 'node:assert/strict';
import { test } from 'node:test';

import { useBrowser } from './harness.mjs';

const TINY = '/artifacts/models/tiny.f32.gguf';
const MINILM_Q8 = '/models/crossrank-minilm-l4.q8_0.gguf';
const TIMEOUT = { timeout: 180_000 };
const browser = useBrowser();

/** Asserts a `window.settle` outcome: a RerankerError with `code` whose message matches `message`. */
function assertRefused(outcome, code, message, label) {
  assert.equal(outcome.ok, false, `${label} should fail`);
  assert.equal(outcome.name, 'RerankerError', `${label}: ${outcome.name}: ${outcome.message}`);
  assert.equal(outcome.code, code, `${label}: ${outcome.message}`);
  if (message) assert.match(outcome.message, message, label);
}

test('item 11: every argument shape is an invalid_input error that names the argument', TIMEOUT, () =>
  browser.withPage(async ({ page }) => {
    const got = await page.evaluate(async (url) => {
      const { Reranker } = window.crossrank;
      const r = await Reranker.create({ model: url, cache: false, threads: 1 });
      const ok = { query: 'q', documents: ['a'] };
      // Holes written with a comma would be removed by a formatter; these arrays have them.
      const sparse = (...items) => {
        const array = [];
        items.forEach((item, i) => {
          if (item !== undefined) array[i] = item;
        });
        array.length = items.length;
        return array;
      };
      const calls = {
        sparseDocuments: () => r.rerank('q', sparse('a', undefined, 'b')),
        sparseTrailing: () => r.rerank('q', sparse('a', undefined)),
        nullRequest: () => r.rerankMany([null]),
        numberRequest: () => r.rerankMany([ok, 5]),
        arrayRequest: () => r.rerankMany([['q', ['a']]]),
        sparseRequests: () => r.rerankMany(sparse(ok, undefined, ok)),
        requestsString: () => r.rerankMany('q'),
        requestQuery: () => r.rerankMany([ok, { query: 5, documents: ['a'] }]),
        requestNoDocuments: () => r.rerankMany([{ query: 'q' }]),
        requestSparseDocuments: () => r.rerankMany([ok, ok, { query: 'q', documents: sparse(undefined, 'a') }]),
        requestNullDocument: () => r.rerankMany([{ query: 'q', documents: ['a', null] }]),
        signalObject: () => r.rerank('q', ['a'], { signal: {} }),
        signalString: () => r.rerank('q', ['a'], { signal: 'abort' }),
        signalController: () => r.rerank('q', ['a'], { signal: new AbortController() }),
        manySignal: () => r.rerankMany([ok], { signal: {} }),
        onProgressNumber: () => r.rerank('q', ['a'], { onProgress: 5 }),
        returnDocumentsText: () => r.rerank('q', ['a'], { returnDocuments: 'yes' }),
        optionsNull: () => r.rerank('q', ['a'], null),
        optionsArray: () => r.rerankMany([ok], []),
        loadSignal: () => new Reranker({ threads: 1 }).load(url, { signal: {} }),
        createSignal: () => Reranker.create({ model: url, signal: {} }),
        createNull: () => Reranker.create(null),
        createNothing: () => Reranker.create(),
        createUnknown: () => Reranker.create({ model: url, colour: 'blue' }),
        createMisspelt: () => Reranker.create({ model: url, thread: 2 }),
        // The constructor throws at once (each call runs inside a `then`, so a throw rejects).
        constructorNull: () => new Reranker(null),
        constructorMisspelt: () => new Reranker({ wasmURL: '/x.wasm' }),
      };
      const outcome = {};
      for (const [name, call] of Object.entries(calls)) {
        outcome[name] = await window.settle(Promise.resolve().then(call));
        outcome[`${name}After`] = await window.settle(r.rerank('q', ['a', 'b']));
      }
      // null reads as unset, for signal as for the other options.
      outcome.signalNull = await window.settle(r.rerank('q', ['a'], { signal: null }));
      // A real AbortSignal from another realm (an iframe's) is still a signal.
      const frame = document.body.appendChild(document.createElement('iframe'));
      outcome.signalOtherRealm = await window.settle(r.rerank('q', ['a'], { signal: new frame.contentWindow.AbortController().signal }));
      frame.remove();
      r.dispose();
      return outcome;
    }, TINY);

    const cases = {
      sparseDocuments: /^documents\[1\] is missing \(sparse array\)$/,
      sparseTrailing: /^documents\[1\] is missing \(sparse array\)$/,
      nullRequest: /^requests\[0\] must be an object \{ query, documents \}, got null$/,
      numberRequest: /^requests\[1\] must be an object \{ query, documents \}, got number 5$/,
      arrayRequest: /^requests\[0\] must be an object \{ query, documents \}, got an array$/,
      sparseRequests: /^requests\[1\] is missing \(sparse array\)$/,
      requestsString: /^requests must be an array, got the string "q"$/,
      requestQuery: /^requests\[1\]\.query must be a string, got number 5$/,
      requestNoDocuments: /^requests\[0\]\.documents must be an array, got undefined$/,
      requestSparseDocuments: /^requests\[2\]\.documents\[0\] is missing \(sparse array\)$/,
      requestNullDocument: /^requests\[0\]\.documents\[1\] must be a string or an object with a string `text`, got null$/,
      signalObject: /^options\.signal must be an AbortSignal, got an object$/,
      signalString: /^options\.signal must be an AbortSignal, got the string "abort"$/,
      signalController: /^options\.signal must be an AbortSignal, got an object$/,
      manySignal: /^options\.signal must be an AbortSignal/,
      onProgressNumber: /^options\.onProgress must be a function, got number 5$/,
      returnDocumentsText: /^options\.returnDocuments must be a boolean, got the string "yes"$/,
      optionsNull: /^options must be an object, got null$/,
      optionsArray: /^options must be an object, got an array$/,
      loadSignal: /^options\.signal must be an AbortSignal, got an object$/,
      createSignal: /^options\.signal must be an AbortSignal, got an object$/,
      createNull: /^options must be an object, got null$/,
      createNothing: /^options must be an object, got undefined$/,
      createUnknown: /^unknown option "colour" \(options: model, wasmUrl, threads, workerUrl, device, onProgress,/,
      createMisspelt: /^unknown option "thread": did you mean "threads"\?/,
      constructorNull: /^options must be an object, got null$/,
      constructorMisspelt: /^unknown option "wasmURL": did you mean "wasmUrl"\?/,
    };
    for (const [name, message] of Object.entries(cases)) {
      assertRefused(got[name], 'invalid_input', message, name);
      assert.equal(got[`${name}After`].ok, true, `${name}After: ${got[`${name}After`].message}`);
    }
    assert.equal(got.signalNull.ok, true, got.signalNull.message);
    assert.equal(got.signalOtherRealm.ok, true, got.signalOtherRealm.message);
  }));

// Issue 33: a misspelt field inside `windows` or `fusion` was ignored (the call ran with the
// default), and `fusion: { weighted: 0.5 }` (the README's old shape) failed in serde's words. Both
// layers refuse them by name with the same message: the package before any work (arguments.js)
// and the wasm module for its own callers (src/options.rs check_name).
test('issue 33: fields inside windows and fusion are checked by name, with the same message in the package and in Rust', TIMEOUT, () =>
  browser.withPage(async ({ page }) => {
    const got = await page.evaluate(async (url) => {
      const { Reranker } = window.crossrank;
      const r = await Reranker.create({ model: url, cache: false, threads: 1 });
      const glue = await import('/www/pkg/crossrank_wasm.js');
      await glue.default({ module_or_path: '/www/pkg/crossrank_wasm_bg.wasm' });
      const raw = glue.WasmReranker.fromGguf(new Uint8Array(await (await fetch(url)).arrayBuffer()));
      const rawOutcome = (options) => {
        try {
          return { ok: true, value: Array.from(raw.logits('q', ['a'], options)) };
        } catch (error) {
          return { ok: false, name: error.name, code: error.code, message: error.message };
        }
      };
      const cases = {
        shorthandWeighted: { fusion: { weighted: 0.5 } },
        shorthandRrf: { fusion: { rrf: 60 } },
        misspeltWeight: { fusion: { type: 'weighted', wieght: 0.5 } },
        misspeltOverlap: { windows: { overlp: 8 } },
        unrelatedWindowField: { windows: { size: 3 } },
        missingType: { fusion: { weight: 0.5 } },
        missingWeight: { fusion: { type: 'weighted' } },
        maxLengthFraction: { maxLength: 1.5 },
        maxLengthTooLong: { maxLength: 100000 },
      };
      const outcome = {};
      for (const [name, options] of Object.entries(cases)) {
        outcome[name] = { package: await window.settle(r.rerank('q', ['a', 'b'], options)), raw: rawOutcome(options) };
      }
      outcome.after = await window.settle(r.rerank('q', ['a', 'b'], { fusion: { type: 'rrf', k: 10 }, windows: { overlap: 8 } }));
      r.dispose();
      raw.free();
      return outcome;
    }, TINY);

    const fusionShape = 'fusion is written { type: "rrf", k } or { type: "weighted", weight }';
    const expected = {
      shorthandWeighted: `unknown option "fusion.weighted": ${fusionShape}, not { weighted: … }`,
      shorthandRrf: `unknown option "fusion.rrf": ${fusionShape}, not { rrf: … }`,
      misspeltWeight: 'unknown option "fusion.wieght": did you mean "fusion.weight"? (fusion: type, k, weight)',
      misspeltOverlap: 'unknown option "windows.overlp": did you mean "windows.overlap"? (windows: overlap, aggregate)',
      unrelatedWindowField: 'unknown option "windows.size" (windows: overlap, aggregate)',
      missingType: 'fusion needs a type: { type: "rrf", k? } or { type: "weighted", weight }',
      missingWeight: 'fusion.weight is required with type "weighted": a number from 0 to 1',
      maxLengthFraction: 'maxLength must be a whole number ≥ 1, got 1.5',
      maxLengthTooLong: /^maxLength 100000 exceeds the model's \d+ position embeddings$/,
    };
    for (const [name, message] of Object.entries(expected)) {
      for (const layer of ['package', 'raw']) {
        const outcome = got[name][layer];
        assertRefused(outcome, 'invalid_input', typeof message === 'string' ? undefined : message, `${name} (${layer})`);
        if (typeof message === 'string') assert.equal(outcome.message, message, `${name} (${layer})`);
        assert.doesNotMatch(outcome.message, /missing field|unknown field|invalid type|untagged|max_length|Error:/, `${name} (${layer}): serde's or Rust's words`);
      }
    }
    assert.equal(got.after.ok, true, got.after.message);
    assert.equal(got.after.value.length, 2);
  }));

test('item 11: rerankMany names the request Rust refuses, and not for a bad option', TIMEOUT, () =>
  browser.withPage(async ({ page }) => {
    const got = await page.evaluate(async (url) => {
      const { Reranker } = window.crossrank;
      const outcome = {};
      // One worker: 12 one-document requests of equal length share chunks of 3 (input order), so
      // the blank query at 9 is found inside a chunk of several requests; with four workers, in
      // a chunk of its own.
      for (const threads of [1, 4]) {
        const r = await Reranker.create({ model: url, cache: false, threads });
        const requests = Array.from({ length: 12 }, (_, i) => ({ query: i === 9 ? ' \t' : `query ${i}`, documents: [`document ${i % 10}`] }));
        outcome[`blank${threads}`] = await window.settle(r.rerankMany(requests));
        outcome[`blankAfter${threads}`] = await window.settle(r.rerankMany(requests.filter((_, i) => i !== 9)));
        // An option is the call's, whichever chunk meets it first.
        outcome[`option${threads}`] = await window.settle(r.rerankMany(requests, { maxLength: 1.5 }));
        outcome[`single${threads}`] = await window.settle(r.rerank(' ', ['a']));
        r.dispose();
      }
      return outcome;
    }, TINY);
    for (const threads of [1, 4]) {
      assertRefused(got[`blank${threads}`], 'invalid_input', /^requests\[9\]: .*query/, `blank query, ${threads} thread(s)`);
      assert.equal(got[`blankAfter${threads}`].ok, true, got[`blankAfter${threads}`].message);
      assert.equal(got[`blankAfter${threads}`].value.length, 11);
      assertRefused(got[`option${threads}`], 'invalid_input', /^maxLength/, `bad option, ${threads} thread(s)`);
      // rerank has one request, and its own arguments: no `requests[0]` there.
      assertRefused(got[`single${threads}`], 'invalid_input', /^(?!requests).*query/, `rerank, ${threads} thread(s)`);
    }
  }));

test('item 11: CrossrankReranker (LangChain) checks what it forwards', async () => {
  const { CrossrankReranker } = await import('../../www/src/langchain.js');
  const calls = [];
  const reranker = {
    async rerank(query, documents, options) {
      calls.push({ query, documents, options });
      return documents.map((_, index) => ({ index, score: 0.5, logit: 0 }));
    },
  };
  const refused = (code, message) => (error) => {
    assert.equal(error.name, 'RerankerError');
    assert.equal(error.code, code);
    assert.match(error.message, message);
    return true;
  };
  assert.throws(() => new CrossrankReranker(null), refused('invalid_input', /^options must be an object, got null$/));
  assert.throws(() => new CrossrankReranker({}), refused('invalid_input', /needs \{ reranker \}/));
  assert.throws(() => new CrossrankReranker({ reranker, topN: 0 }), refused('invalid_input', /^topN must be a positive integer, got number 0$/));
  assert.throws(() => new CrossrankReranker({ reranker, topn: 2 }), refused('invalid_input', /^unknown option "topn": did you mean "topN"\?/));
  assert.throws(() => new CrossrankReranker({ reranker, rerankOptions: { topK: 2 } }), refused('invalid_input', /^rerankOptions\.topK is not taken: topN/));
  assert.throws(() => new CrossrankReranker({ reranker, rerankOptions: { treshold: 0.5 } }),
    refused('invalid_input', /^unknown option "treshold" in rerankOptions: did you mean "threshold"\?/));
  assert.throws(() => new CrossrankReranker({ reranker, rerankOptions: 'fast' }), refused('invalid_input', /^rerankOptions must be an object/));

  const compressor = new CrossrankReranker({ reranker, topN: 2, rerankOptions: { maxLength: 64 } });
  const doc = (pageContent) => ({ pageContent, metadata: {} });
  const holes = [doc('a')];
  holes[2] = doc('b');
  await assert.rejects(compressor.compressDocuments(null, 'q'), refused('invalid_input', /^documents must be an array, got null$/));
  await assert.rejects(compressor.compressDocuments(holes, 'q'), refused('invalid_input', /^documents\[1\] is missing \(sparse array\)$/));
  await assert.rejects(compressor.compressDocuments([doc('a'), null], 'q'), refused('invalid_input', /^documents\[1\] must be a Document with a string pageContent, got null$/));
  await assert.rejects(compressor.compressDocuments([doc('a'), { pageContent: 3 }], 'q'), refused('invalid_input', /^documents\[1\] must be a Document/));
  await assert.rejects(compressor.compressDocuments([doc('a')], undefined), refused('invalid_input', /^query must be a string, got undefined$/));
  assert.equal(calls.length, 0, 'nothing wrong was forwarded');
  const kept = await compressor.compressDocuments([doc('a'), doc('b'), doc('c')], 'q');
  assert.equal(kept.length, 3);
  assert.deepEqual(calls[0].options, { maxLength: 64, topK: 2 });
});

// Item 8: one rule for text that tokenises to nothing, as for "" (src/rerank.rs): a document is
// blank (last, in input order, score 0, so a threshold drops it); a query is refused. With the
// shipped model, before the rule: the relevant document 0.99, "\u200b" and "\u0000" 0.082 each,
// the stock-market one 0.048 (natively, `crossrank rerank`), so text without tokens outranked text.
test('item 8: text without tokens is blank: such documents rank last with score 0, such queries are refused', TIMEOUT, () =>
  browser.withPage(async ({ page }) => {
    const got = await page.evaluate(async (url) => {
      const { Reranker } = window.crossrank;
      const r = await Reranker.create({ model: url, cache: false });
      const query = 'how much vitamin d do adults need';
      const documents = [
        'Adults need about 600 IU of vitamin D a day.',
        '\u200b',
        '\u0000',
        '',
        'The stock market fell sharply on Tuesday.',
        '\u200b\u00ad\u0001 \u200b',
      ];
      const outcome = {
        ranked: await window.settle(r.rerank(query, documents)),
        // Any positive threshold drops a blank document; 1e-30 keeps every document with words.
        thresholded: await window.settle(r.rerank(query, documents, { threshold: 1e-30 })),
      };
      for (const [name, text] of Object.entries({ zeroWidth: '\u200b', control: '\u0001', softHyphen: '\u00ad', loneSurrogate: '\ud800', nul: '\u0000' })) {
        outcome[name] = await window.settle(r.rerank(text, documents));
      }
      outcome.many = await window.settle(r.rerankMany([{ query, documents }, { query: '\u200b', documents }]));
      outcome.after = await window.settle(r.rerank(query, documents.slice(0, 1)));
      r.dispose();
      return outcome;
    }, MINILM_Q8);

    assert.equal(got.ranked.ok, true, got.ranked.message);
    const ranked = got.ranked.value;
    assert.deepEqual(ranked.slice(0, 2).map((x) => x.index), [0, 4], 'the two documents with words first, the relevant one on top');
    assert.deepEqual(ranked.slice(2).map((x) => x.index), [1, 2, 3, 5], 'then every document without tokens, in input order');
    for (const x of ranked.slice(2)) assert.equal(x.score, 0, `document ${x.index} is blank: score 0`);
    assert.ok(ranked[1].score > 0, 'a document with words keeps its score');
    assert.deepEqual(got.thresholded.value.map((x) => x.index), [0, 4], 'a threshold drops the blank documents');
    for (const name of ['zeroWidth', 'control', 'softHyphen', 'loneSurrogate', 'nul']) {
      assertRefused(got[name], 'invalid_input', /query/, `query ${name}`);
    }
    assertRefused(got.many, 'invalid_input', /^requests\[1\]: /, 'rerankMany with a query without tokens');
    assert.equal(got.after.ok, true, got.after.message);
  }));

// Item 4: GGUF metadata is bounded by the file's size and a fixed cap (src/gguf.rs
// MAX_METADATA_VALUES) before anything is allocated. The issue's 100 M-element u8 array, all of
// it present (a 100 MB file), made wasm's `capacity overflow` kill the worker (worker_crashed);
// a few dozen bytes that claim 300 M elements, a 300 MB string or 2^40 entries must be
// model_format too (candle 0.11's reader already refuses these: lengths past the file's end,
// counts past 2^30).
test('item 4: GGUF metadata claiming more than the file holds is model_format, not worker_crashed', TIMEOUT, () =>
  browser.withPage(async ({ page }) => {
    const got = await page.evaluate(async () => {
      const { Reranker } = window.crossrank;
      /** A GGUF v3 header: "GGUF", version, tensor count, then metadata entries written by `entries`. */
      const gguf = ({ tensors = 0n, count, entries, tail = 16 }) => {
        const parts = [];
        const u32 = (v) => { const b = new DataView(new ArrayBuffer(4)); b.setUint32(0, v, true); parts.push(new Uint8Array(b.buffer)); };
        const u64 = (v) => { const b = new DataView(new ArrayBuffer(8)); b.setBigUint64(0, BigInt(v), true); parts.push(new Uint8Array(b.buffer)); };
        const string = (s) => { const bytes = new TextEncoder().encode(s); u64(bytes.length); parts.push(bytes); };
        parts.push(new TextEncoder().encode('GGUF'));
        u32(3);
        u64(tensors);
        u64(count);
        entries({ u32, u64, string });
        parts.push(new Uint8Array(tail)); // a few bytes of what the entries claim
        const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
        let at = 0;
        for (const p of parts) { out.set(p, at); at += p.length; }
        return out;
      };
      const files = {
        // The issue's case: an array of 100 M u8 (9 = array, 0 = u8), every byte there.
        u8ArrayPresent: gguf({ count: 1n, tail: 100_000_000, entries: ({ u32, u64, string }) => { string('crossrank.junk'); u32(9); u32(0); u64(100_000_000); } }),
        // An array of 300 M u8 in a short file.
        u8Array: gguf({ count: 1n, entries: ({ u32, u64, string }) => { string('crossrank.junk'); u32(9); u32(0); u64(300_000_000); } }),
        // The same as u32s (4 = u32), and as strings (8), each string claiming nothing yet.
        u32Array: gguf({ count: 1n, entries: ({ u32, u64, string }) => { string('crossrank.junk'); u32(9); u32(4); u64(300_000_000); } }),
        stringArray: gguf({ count: 1n, entries: ({ u32, u64, string }) => { string('crossrank.junk'); u32(9); u32(8); u64(300_000_000); } }),
        // A string value (8) of 300 M bytes, and a key of 300 M bytes.
        longString: gguf({ count: 1n, entries: ({ u32, u64, string }) => { string('crossrank.junk'); u32(8); u64(300_000_000); } }),
        longKey: gguf({ count: 1n, entries: ({ u64 }) => { u64(300_000_000); } }),
        // Counts: 2^40 metadata entries, 2^40 tensors.
        manyEntries: gguf({ count: 2n ** 40n, entries: () => {} }),
        manyTensors: gguf({ tensors: 2n ** 40n, count: 0n, entries: () => {} }),
      };
      const outcome = {};
      for (const [name, bytes] of Object.entries(files)) {
        outcome[name] = await window.settle(Reranker.create({ model: bytes, cache: false, threads: 1 }));
        if (outcome[name].ok) outcome[name].value.dispose();
        outcome[name].value = undefined;
        outcome[name].size = bytes.length;
      }
      return outcome;
    });
    for (const [name, outcome] of Object.entries(got)) {
      if (name !== 'u8ArrayPresent') assert.ok(outcome.size < 100, `${name}: ${outcome.size} bytes`);
    }
    // Every case's outcome in one message, so that one failure does not hide the others.
    const codes = Object.fromEntries(Object.entries(got).map(([name, outcome]) => [name, outcome.ok ? 'loaded' : outcome.code]));
    assert.deepEqual(codes, Object.fromEntries(Object.keys(got).map((name) => [name, 'model_format'])),
      Object.entries(got).map(([name, outcome]) => `${name}: ${outcome.message}`).join('\n'));
  }));

// Item 5: a Q8_0 model whose activations overflow must fail the call with a `compute` error, as
// the f32 path does ("non-finite logit"), instead of scoring every document with a number. The
// shipped Q8_0 file is patched in the page: one f32 bias set to 3e38 (see `patchBias`).
/**
 * Sets every element of the f32 tensor `name` in GGUF `bytes` (v2 or v3) to `value`, in place.
 * Runs in the page (its source is sent there), so it uses nothing outside itself.
 */
function patchBias(bytes, name, value) {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let at = 8;
  const u32 = () => { at += 4; return view.getUint32(at - 4, true); };
  const u64 = () => { at += 8; return Number(view.getBigUint64(at - 8, true)); };
  const string = () => { const n = u64(); at += n; return new TextDecoder().decode(bytes.subarray(at - n, at)); };
  const SIZES = { 0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 10: 8, 11: 8, 12: 8 };
  const skip = (type) => {
    if (type === 8) return string();
    if (type === 9) {
      const element = u32();
      const count = u64();
      if (SIZES[element]) at += count * SIZES[element];
      else for (let i = 0; i < count; i += 1) skip(element);
      return undefined;
    }
    at += SIZES[type];
    return type === 4 ? view.getUint32(at - 4, true) : undefined;
  };
  const tensorCount = u64();
  const entryCount = u64();
  let alignment = 32;
  for (let i = 0; i < entryCount; i += 1) {
    const key = string();
    const found = skip(u32());
    if (key === 'general.alignment') alignment = found;
  }
  let target = null;
  for (let i = 0; i < tensorCount; i += 1) {
    const tensorName = string();
    const dims = Array.from({ length: u32() }, u64);
    const type = u32();
    const offset = u64();
    if (tensorName === name) target = { dims, type, offset };
  }
  if (!target || target.type !== 0) throw new Error(`no f32 tensor ${name}`);
  const start = Math.ceil(at / alignment) * alignment + target.offset;
  const count = target.dims.reduce((a, b) => a * b, 1);
  for (let i = 0; i < count; i += 1) view.setFloat32(start + 4 * i, value, true);
  return bytes;
}

test('item 5: a Q8_0 model with non-finite activations is a compute error, not a score', TIMEOUT, () =>
  browser.withPage(async ({ page }) => {
    await page.evaluate(`window.patchBias = ${patchBias}`);
    const got = await page.evaluate(async (url) => {
      const { Reranker } = window.crossrank;
      const original = new Uint8Array(await (await fetch(url)).arrayBuffer());
      const outcome = {};
      for (const tensor of ['bert.encoder.layer.0.intermediate.dense.bias', 'bert.encoder.layer.0.attention.self.value.bias']) {
        const bytes = window.patchBias(original.slice(), tensor, 3e38);
        const r = await Reranker.create({ model: bytes, cache: false, threads: 1 });
        outcome[tensor] = { precision: r.info.precision, ...(await window.settle(r.rerank('vitamin d', ['sunlight makes vitamin d', 'stocks fell']))) };
        r.dispose();
      }
      return outcome;
    }, MINILM_Q8);
    for (const [tensor, outcome] of Object.entries(got)) {
      assert.equal(outcome.precision, 'q8_0');
      assertRefused(outcome, 'compute', /finite/, `${tensor} = 3e38`);
    }
  }));
