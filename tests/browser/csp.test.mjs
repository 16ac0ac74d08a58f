// The package works under a Content-Security-Policy that allows 'wasm-unsafe-eval' and nothing
// looser (no 'unsafe-eval', no inline script, no other origins), and fetches only the model URL given.

import assert from 'node:assert/strict';
import { test } from 'node:test';

import { useBrowser } from './harness.mjs';

const CSP = "default-src 'self'; script-src 'self' 'wasm-unsafe-eval'; worker-src 'self'; connect-src 'self'; style-src 'self'; img-src data:";
const TINY = '/artifacts/models/tiny.f32.gguf';

const browser = useBrowser({ headers: { 'content-security-policy': CSP } });

test('loads and reranks under a strict CSP, requesting nothing but the package and the model', { timeout: 120_000 }, async () => {
  const tab = await browser.openPage('/tests/browser/csp.html');
  const requested = [];
  tab.page.context().on('request', (request) => requested.push(new URL(request.url()).pathname));
  try {
    const got = await tab.page.evaluate(async (url) => {
      const reranker = await window.crossrank.Reranker.create({ model: url, cache: false });
      const ranked = await window.settle(reranker.rerank('vitamin d', ['sunlight and vitamin d', 'stock prices']));
      // A violation would be reported here (and as a console error, which fails the test).
      reranker.dispose();
      return ranked;
    }, TINY);
    assert.equal(got.ok, true, got.message);
    assert.equal(got.value.length, 2);
    const unexpected = requested.filter((path) => !path.startsWith('/www/') && path !== TINY);
    assert.deepEqual(unexpected, [], 'requests other than the package and the model');
    assert.ok(requested.includes(TINY), 'the model was fetched');
  } finally {
    await tab.close();
  }
});
