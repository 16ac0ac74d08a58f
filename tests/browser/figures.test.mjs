// The docs' generated figures (wasm sizes, memory per worker; tests/browser/figures.mjs) agree with
// the package as built, within their tolerance; past it, refresh them with `./build.sh figures`.

import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';

import { DOCS, SPANS, TOLERANCE, measure, rewrite, spansOf, statedFigures } from './figures.mjs';
import { ROOT } from './harness.mjs';

test('every generated figure in the READMEs is within its tolerance of the built package', { timeout: 180_000 }, async () => {
  const measured = await measure();
  console.log(`# measured: ${JSON.stringify(measured)}`);
  const seen = new Set();
  for (const file of DOCS) {
    for (const { name, text } of spansOf(readFileSync(new URL(file, ROOT), 'utf8'))) {
      assert.ok(SPANS[name], `${file}: unknown generated span "${name}"`);
      seen.add(name);
      const stated = statedFigures(text);
      const figures = SPANS[name].figures(measured);
      assert.equal(stated.length, figures.length, `${file}: "${text}" should state ${figures.length} figures (refresh: ./build.sh figures)`);
      figures.forEach(([kind, value], i) => {
        const off = Math.abs(stated[i] - value) / value;
        assert.ok(off <= TOLERANCE[kind], `${file}: ${name} says "${text}", measured ${SPANS[name].text(measured)} (${(off * 100).toFixed(1)}% off, tolerance ${TOLERANCE[kind] * 100}%): run ./build.sh figures`);
      });
    }
  }
  // Each figure is stated somewhere: a span that disappears from the docs is noticed.
  assert.deepEqual([...seen].sort(), Object.keys(SPANS).sort());
});

test('the rewriter fills a marked span from measurements and refuses an unknown one', () => {
  const measured = { sizes: { relaxed: { raw: 3_821_134, gzipped: 1_270_881 }, simd128: { raw: 3_796_564, gzipped: 1_262_484 } }, memory: 56.1 * 2 ** 20 };
  const doc = 'a <!-- generated:wasm-size:relaxed -->old<!-- /generated --> b <!-- generated:worker-memory -->?<!-- /generated -->';
  assert.equal(rewrite(doc, measured),
    'a <!-- generated:wasm-size:relaxed -->3.82 MB raw, 1.27 MB gzipped<!-- /generated --> b <!-- generated:worker-memory -->56 MiB<!-- /generated -->');
  assert.deepEqual(statedFigures('3.82 MB raw, 1.27 MB gzipped'), [3.82e6, 1.27e6]);
  assert.throws(() => rewrite('<!-- generated:nope -->x<!-- /generated -->', measured), /unknown generated span "nope"/);
});
