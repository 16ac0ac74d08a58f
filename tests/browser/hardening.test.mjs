// The bad-input catalogue at the JS layer (issue 9): each entry gets its exact error code (or a
// correct answer) and the next valid call on the same Reranker still succeeds.

import assert from 'node:assert/strict';
import { test } from 'node:test';

import { useBrowser } from './harness.mjs';

const TINY = '/artifacts/models/tiny.f32.gguf';
const browser = useBrowser();

test('odd inputs from JS: codes, answers, and a working reranker afterwards', { timeout: 180_000 }, async () => {
  const tab = await browser.openPage();
  try {
    const got = await tab.page.evaluate(async (url) => {
      const { Reranker } = window.crossrank;
      const r = await Reranker.create({ model: url, cache: false });
      const run = (...args) => window.settle(r.rerank(...args));
      const ok = () => run('vitamin d', ['sunlight', 'stocks']);
      const outcome = {};
      const cases = {
        loneSurrogate: ['q \ud800', ['a \udfff b', 'x\ud83d']],
        nul: ['q\0', ['a\0b', '\0']],
        emptyQuery: ['', ['a']],
        blankQuery: [' \n\t', ['a']],
        emptyDocument: ['q', ['', '   ']],
        nonString: ['q', ['a', { text: 5 }]],
        nullDocument: ['q', [null]],
        topKZero: ['q', ['a'], { topK: 0 }],
        topKNegative: ['q', ['a'], { topK: -3 }],
        topKNaN: ['q', ['a'], { topK: NaN }],
        topKHuge: ['q', ['a', 'b'], { topK: 1e6 }],
        topKFraction: ['q', ['a'], { topK: 2.5 }],
        noDocuments: ['q', []],
        noDocumentsTopKZero: ['q', [], { topK: 0 }],
        thresholdNaN: ['q', ['a'], { threshold: NaN }],
        badFusion: ['q', ['a'], { fusion: { type: 'magic' } }],
        badWindows: ['q', ['a'], { windows: { overlap: -1 } }],
        megabyte: ['q', ['word '.repeat(200_000)]],
        snakeCaseOption: ['q', ['a'], { top_k: 1 }],
        misspeltOption: ['q', ['a'], { treshold: 0.5 }],
        unrelatedOption: ['q', ['a'], { colour: 'blue' }],
        thresholdText: ['q', ['a'], { threshold: 'high' }],
        fusionWeightText: ['q', ['a'], { fusion: { type: 'weighted', weight: '0.5' } }],
        windowsNumber: ['q', ['a'], { windows: 3 }],
      };
      for (const [name, args] of Object.entries(cases)) {
        outcome[name] = await run(...args);
        outcome[`${name}After`] = await ok();
      }
      const many = Array.from({ length: 10_000 }, (_, i) => `document ${i} about topic ${i % 37}`);
      outcome.tenThousand = await run('topic 5', many, { topK: 3 });
      // Past the call limits (window.crossrank.LIMITS): refused before any work, however it is split.
      const { documentsPerCall, charactersPerCall } = window.crossrank.LIMITS;
      outcome.limits = { documentsPerCall, charactersPerCall };
      outcome.tooMany = await run('q', Array.from({ length: documentsPerCall + 1 }, () => 'a'));
      outcome.tooManyAcross = await window.settle(r.rerankMany([
        { query: 'q', documents: Array.from({ length: documentsPerCall / 2 }, () => 'a') },
        { query: 'q', documents: Array.from({ length: documentsPerCall / 2 + 1 }, () => 'a') },
      ]));
      // The same 1 Mi-character string 65 times: 65 Mi characters, little memory.
      const long = 'x'.repeat(2 ** 20);
      outcome.tooLong = await run('q', Array.from({ length: 65 }, () => long));
      outcome.tooLongAfter = await ok();
      // Abort after completion changes nothing; abort before start rejects at once.
      const controller = new AbortController();
      outcome.beforeAbort = await run('q', ['a'], { signal: controller.signal });
      controller.abort();
      outcome.afterAbort = await ok();
      outcome.preAborted = await run('q', ['a'], { signal: controller.signal });
      // A call made during dispose rejects with not_loaded, as does one after.
      const pending = run('q', ['a']);
      r.dispose();
      outcome.duringDispose = await pending;
      outcome.afterDispose = await run('q', ['a']);
      // Before any load.
      outcome.beforeLoad = await window.settle(new Reranker().rerank('q', ['a']));
      return outcome;
    }, TINY);

    const codes = {
      emptyQuery: 'invalid_input', blankQuery: 'invalid_input', nonString: 'invalid_input', nullDocument: 'invalid_input',
      topKZero: 'invalid_input', topKNegative: 'invalid_input', topKNaN: 'invalid_input', thresholdNaN: 'invalid_input',
      topKFraction: 'invalid_input', noDocumentsTopKZero: 'invalid_input',
      badFusion: 'invalid_input', badWindows: 'invalid_input',
      snakeCaseOption: 'invalid_input', misspeltOption: 'invalid_input', unrelatedOption: 'invalid_input',
      thresholdText: 'invalid_input', fusionWeightText: 'invalid_input', windowsNumber: 'invalid_input',
    };
    for (const [name, code] of Object.entries(codes)) {
      assert.equal(got[name].ok, false, `${name} should fail`);
      assert.equal(got[name].code, code, `${name}: ${got[name].message}`);
    }
    for (const name of ['loneSurrogate', 'nul', 'emptyDocument', 'topKHuge', 'megabyte']) {
      assert.equal(got[name].ok, true, `${name}: ${got[name].message}`);
      assert.ok(got[name].value.every((r) => Number.isFinite(r.logit)), name);
    }
    assert.equal(got.topKHuge.value.length, 2);
    // Options are checked by Rust's one parser (the CLI's too), also when there is nothing to rank.
    assert.equal(got.topKFraction.message, 'topK must be a whole number ≥ 1, got 2.5');
    assert.deepEqual(got.noDocuments, { ok: true, value: [] });
    assert.match(got.noDocumentsTopKZero.message, /top_?k must be/i);
    // Unknown option names are refused, naming the option meant when one is close.
    assert.match(got.snakeCaseOption.message, /^unknown option "top_k": did you mean "topK"\?/);
    assert.match(got.misspeltOption.message, /^unknown option "treshold": did you mean "threshold"\?/);
    assert.match(got.unrelatedOption.message, /^unknown option "colour" \(options: topK, returnDocuments,/);
    // A value of the wrong type names the option (Rust checks these, for every caller).
    assert.equal(got.thresholdText.message, 'threshold: expected a number, got "high"');
    assert.equal(got.fusionWeightText.message, 'fusion.weight: expected a number, got "0.5"');
    assert.equal(got.windowsNumber.message, 'windows: expected a boolean or an object, got number 3');
    for (const [name, value] of Object.entries(got)) {
      if (name.endsWith('After')) assert.equal(value.ok, true, `${name}: ${value.message}`);
    }
    assert.equal(got.tenThousand.ok, true, got.tenThousand.message);
    assert.deepEqual(got.limits, { documentsPerCall: 100_000, charactersPerCall: 64 * 2 ** 20 });
    assert.equal(got.tooMany.message, 'a call takes at most 100,000 documents, got 100,001: split them over several calls');
    assert.equal(got.tooManyAcross.message, got.tooMany.message);
    assert.match(got.tooLong.message, /^a call takes at most 67,108,864 characters of text, got 68,157,441: /);
    for (const name of ['tooMany', 'tooManyAcross', 'tooLong']) assert.equal(got[name].code, 'invalid_input', name);
    assert.equal(got.tenThousand.value.length, 3);
    assert.equal(got.beforeAbort.ok, true);
    assert.equal(got.afterAbort.ok, true);
    assert.equal(got.preAborted.code, 'aborted');
    assert.equal(got.duringDispose.code, 'not_loaded');
    assert.equal(got.afterDispose.code, 'not_loaded');
    assert.equal(got.beforeLoad.code, 'not_loaded');
  } finally {
    await tab.close();
  }
});

// Issue 17's bound in the browser: a huge document is read across the JS boundary only as far as
// its pair needs (src/wasm.rs `read_documents`), so wasm memory, which never shrinks, stays where
// a 1 KB document leaves it, and the logit is the kept prefix's.
test('a 50 MB document: wasm memory as for a 1 KB one, and the logit of its kept prefix', { timeout: 180_000 }, async () => {
  const tab = await browser.openPage();
  try {
    const got = await tab.page.evaluate(async () => {
      const glue = await import('/www/pkg/crossrank_wasm.js');
      const wasm = await glue.default({ module_or_path: '/www/pkg/crossrank_wasm_relaxed_bg.wasm' });
      const bytes = new Uint8Array(await (await fetch('/models/crossrank-minilm-l4.q8_0.gguf')).arrayBuffer());
      const model = glue.WasmReranker.fromGguf(bytes);
      const words = (n) => Array.from({ length: n }, (_, i) => `word${i % 97}`).join(' ');
      const query = 'word5 word7';
      const time = (documents) => {
        const start = performance.now();
        const logits = model.logits(query, documents, {});
        return { logit: logits[0], ms: performance.now() - start, memory: wasm.memory.buffer.byteLength };
      };
      const small = time([words(150)]);
      const twoKb = time([words(300)]);
      const huge = words(7_500_000);
      const big = time([huge]);
      const head = time([words(600)]);
      // With windows too: the document is read only as far as its (at most 256) windows reach.
      const bigWindows = model.logits(query, [huge], { windows: true })[0];
      const headWindows = model.logits(query, [words(60_000)], { windows: true })[0];
      const windowsMemory = wasm.memory.buffer.byteLength;
      return { small, twoKb, big, head, chars: huge.length, smallChars: words(150).length, bigWindows, headWindows, windowsMemory };
    });
    assert.ok(got.chars >= 50_000_000 && got.smallChars <= 1100, `${got.chars} and ${got.smallChars} characters`);
    assert.ok(got.big.memory <= 1.2 * got.small.memory, `wasm memory ${got.big.memory} after the 50 MB document, ${got.small.memory} after 1 KB`);
    assert.equal(got.big.logit, got.head.logit, 'the huge document scores as its first 600 words');
    assert.ok(Number.isFinite(got.bigWindows));
    assert.equal(got.bigWindows, got.headWindows, 'with windows, the huge document scores as its first 60,000 words');
    assert.ok(got.windowsMemory <= 1.2 * got.small.memory, `wasm memory ${got.windowsMemory} after the 50 MB document with windows`);
    console.log(`# 1 KB: ${got.small.ms.toFixed(0)} ms, 2 KB: ${got.twoKb.ms.toFixed(0)} ms, 50 MB: ${got.big.ms.toFixed(0)} ms; wasm memory ${(got.small.memory / 2 ** 20).toFixed(1)} → ${(got.big.memory / 2 ** 20).toFixed(1)} MiB`);
  } finally {
    await tab.close();
  }
});
