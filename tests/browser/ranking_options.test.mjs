// Issue 8's ranking options in the npm API give exactly what the native CLI gives: long-document
// windows, RRF and weighted fusion, min-max scores with a threshold, and rerankMany.
//
//   node --test tests/browser/ranking_options.test.mjs   (needs ./build.sh cli wasm models)

import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';

import { ROOT, useBrowser } from './harness.mjs';

const CLI = fileURLToPath(new URL('target/release/crossrank', ROOT));
const TINY = '/artifacts/models/tiny.f32.gguf';
const TIMEOUT = { timeout: 180_000 };
if (!existsSync(CLI)) throw new Error(`${CLI} is missing: run ./build.sh cli first`);

const QUERY = 'vitamin d measurements';
const LONG = '😀 ' + Array.from({ length: 60 }, (_, i) => `Sentence ${i} reports heterogeneous vitamin-D measurements in cohort ${i}.`).join(' ');
const DOCUMENTS = [
  { text: 'vitamin d in sunlight', score: 3.5 },
  { text: 'stocks fell sharply', score: 9.0 },
  { text: LONG, score: 1.0 },
  { text: 'd vitamins and bones', score: 7.25 },
  { text: 'weather report for tuesday', score: 2.0 },
];

/** Each case: the npm options and the same thing as CLI flags. */
const CASES = [
  { name: 'plain', options: {}, flags: [] },
  { name: 'windows', options: { windows: { overlap: 16 }, maxLength: 64 }, flags: ['--windows', '--window-overlap', '16', '--max-length', '64'] },
  { name: 'windows mean', options: { windows: { overlap: 8, aggregate: 'mean' }, maxLength: 48 }, flags: ['--windows', '--window-overlap', '8', '--window-aggregate', 'mean', '--max-length', '48'] },
  { name: 'rrf', options: { fusion: { type: 'rrf', k: 10 } }, flags: ['--fusion', 'rrf', '--rrf-k', '10'] },
  { name: 'weighted', options: { fusion: { type: 'weighted', weight: 0.3 } }, flags: ['--fusion', 'weighted', '--fusion-weight', '0.3'] },
  { name: 'minmax threshold', options: { scoreScale: 'minmax', threshold: 0.25, topK: 3 }, flags: ['--score-scale', 'minmax', '--threshold', '0.25'], topK: 3 },
];

function cli(flags, topK) {
  const args = ['rerank', '--model', fileURLToPath(new URL(TINY.slice(1), ROOT)), '--query', QUERY, ...flags];
  if (topK) args.push('--top-k', String(topK));
  const out = execFileSync(CLI, args, { input: JSON.stringify(DOCUMENTS), encoding: 'utf8' });
  return JSON.parse(out);
}

/** The window's text: the CLI counts characters (code points), the npm API UTF-16 units. */
const cliWindowText = (text, w) => (w ? [...text].slice(w.start, w.end).join('') : null);
const jsWindowText = (text, w) => (w ? text.slice(w.start, w.end) : null);

const browser = useBrowser();

test('every ranking option gives the CLI\'s order, scores and windows; rerankMany equals single calls', TIMEOUT, async () => {
  const tab = await browser.openPage();
  try {
    const got = await tab.page.evaluate(async ({ url, query, documents, cases }) => {
      const reranker = await window.crossrank.Reranker.create({ model: url });
      const results = {};
      for (const { name, options } of cases) results[name] = await reranker.rerank(query, documents, options);
      const many = await reranker.rerankMany(
        [{ query, documents }, { query: 'weather', documents: documents.slice(3) }],
        { topK: 2 },
      );
      const weather = await reranker.rerank('weather', documents.slice(3), { topK: 2 });
      reranker.dispose();
      return { results, many, weather };
    }, { url: TINY, query: QUERY, documents: DOCUMENTS, cases: CASES });

    for (const { name, flags, topK } of CASES) {
      const expected = cli(flags, topK);
      const actual = got.results[name];
      assert.deepEqual(actual.map((r) => r.index), expected.map((r) => r.index), `${name}: order`);
      actual.forEach((r, i) => {
        const e = expected[i];
        assert.ok(Math.abs(r.logit - e.logit) < 1e-5, `${name}: logit ${r.logit} vs CLI ${e.logit}`);
        assert.ok(Math.abs(r.score - e.score) < 1e-5, `${name}: score ${r.score} vs CLI ${e.score}`);
        if (e.fused !== null) assert.ok(Math.abs(r.fused - e.fused) < 1e-6, `${name}: fused ${r.fused} vs CLI ${e.fused}`);
        else assert.equal(r.fused, undefined);
        const text = DOCUMENTS[r.index].text;
        assert.equal(jsWindowText(text, r.bestWindow), cliWindowText(text, e.bestWindow), `${name}: best window of document ${r.index}`);
      });
    }
    // The long document really was windowed: its best window is a part of it, starting on a word.
    const long = got.results.windows.find((r) => r.index === 2);
    assert.ok(long.bestWindow.end - long.bestWindow.start < LONG.length);
    assert.ok(got.results['minmax threshold'].every((r) => r.score >= 0.25));
    // Batching across queries changes only the summation order: same order, logits within 1e-5.
    const same = (a, b, label) => {
      assert.deepEqual(a.map((r) => r.index), b.map((r) => r.index), label);
      a.forEach((r, i) => assert.ok(Math.abs(r.logit - b[i].logit) < 1e-5, label));
    };
    same(got.many[0], got.results.plain.slice(0, 2), 'rerankMany, first query');
    same(got.many[1], got.weather, 'rerankMany, second query');
  } finally {
    await tab.close();
  }
});
