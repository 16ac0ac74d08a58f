// The package imported from another origin, as from a CDN (jsDelivr, unpkg): the page is served by
// one server and the package's files by another (another port is another origin), which sends
// `Access-Control-Allow-Origin: *` as CDNs do and lays the files out as jsDelivr does
// (/npm/crossrank@VERSION/src/index.js). The worker must start (through a blob: bootstrap) and score
// exactly as when the package is on the page's origin; a CSP without blob: workers, a missing
// Worker and a worker script that does not load must each reject with "worker_start" and the fix.

import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { after, before, test } from 'node:test';

import { ROOT, fixture, startBrowser } from './harness.mjs';
import { startServer } from './server.mjs';

const TIMEOUT = { timeout: 180_000 };
const PAGE = '/tests/browser/origin.html';
const TINY = '/artifacts/models/tiny.f32.gguf';
const { version } = JSON.parse(readFileSync(new URL('www/package.json', ROOT), 'utf8'));
const PACKAGE_PATH = `/npm/crossrank@${version}`;
const [a, b] = fixture('tiny.json').cases.filter((c, _, all) => c.query === all[0].query);

/** The CDN: the package's folder (src/, pkg/) with CORS headers, on an origin of its own. */
let cdn;
/** Another origin serving the package without CORS headers (a misconfigured mirror). */
let noCors;
before(async () => {
  const mounts = { [PACKAGE_PATH]: fileURLToPath(new URL('www/', ROOT)) };
  cdn = await startServer({ mounts, headers: { 'access-control-allow-origin': '*' } });
  noCors = await startServer({ mounts });
});
after(async () => {
  await cdn?.close();
  await noCors?.close();
});

const packageUrl = () => `${cdn.origin}${PACKAGE_PATH}/src/index.js`;

/** Loads the tiny model (from the page's origin) with `options` and reranks a and b. */
function rerank(page, options = {}) {
  return page.evaluate(async ({ model, query, passages, options }) => {
    const created = await window.settle(window.crossrank.Reranker.create({ model, cache: 'no-store', ...options }));
    if (!created.ok) return created;
    const reranker = created.value;
    const ranked = await window.settle(reranker.rerank(query, passages));
    reranker.dispose();
    return ranked;
  }, { model: TINY, query: a.query, passages: [a.passage, b.passage], options });
}

/** Every URL the page and its workers request, in order. */
function recordRequests(page) {
  const urls = [];
  page.context().on('request', (request) => urls.push(request.url()));
  return urls;
}

function assertStartError(outcome, pattern, label) {
  assert.equal(outcome.ok, false, `${label}: it started`);
  assert.equal(outcome.name, 'RerankerError', `${label}: ${outcome.name}: ${outcome.message}`);
  assert.equal(outcome.code, 'worker_start', `${label}: ${outcome.message}`);
  assert.match(outcome.message, pattern, label);
}

test('imported from another origin, the workers start and score exactly as on the page\'s origin', TIMEOUT, async () => {
  const browser = await startBrowser();
  try {
    // The same page, first with the package on its own origin, then from the CDN's.
    let sameOrigin;
    await browser.withPage(async ({ page }) => {
      sameOrigin = await rerank(page, { threads: 2 }); // as below, so that both share the work alike
    }, PAGE);
    assert.equal(sameOrigin.ok, true, sameOrigin.message);

    let crossOrigin;
    let requested;
    const workers = [];
    await browser.withPage(async ({ page, expectProblem }) => {
      expectProblem(/^console error: Failed to load resource: net::ERR_FILE_NOT_FOUND$/); // the fetches of revoked blob: URLs
      expectProblem(/^request failed: blob:\S+ net::ERR_FILE_NOT_FOUND$/);
      requested = recordRequests(page);
      page.on('worker', (worker) => workers.push(worker.url()));
      crossOrigin = await rerank(page, { threads: 2 });
      // Each bootstrap's blob: URL is revoked once its worker has started: fetching it fails.
      const fetched = await page.evaluate((urls) => Promise.all(urls.map((url) => fetch(url).then(() => 'fetched', (error) => error.name))), workers);
      assert.deepEqual(fetched, workers.map(() => 'TypeError'), 'a blob: URL was not revoked');
    }, `${PAGE}?package=${encodeURIComponent(packageUrl())}`);

    assert.equal(crossOrigin.ok, true, crossOrigin.message);
    assert.deepEqual(crossOrigin.value, sameOrigin.value, 'scores differ between the two origins');
    for (const result of crossOrigin.value) {
      const expected = [a, b][result.index].logit;
      assert.ok(Math.abs(result.logit - expected) <= 1e-4, `logit ${result.logit}, PyTorch ${expected}`);
    }
    // Two workers, both same-origin blob: bootstraps; the package's files all came from the CDN.
    assert.equal(workers.length, 2, `workers: ${workers.join(', ')}`);
    for (const url of workers) assert.ok(url.startsWith(`blob:${browser.server.origin}/`), url);
    const fromPage = requested.filter((url) => url.startsWith(`${browser.server.origin}/www/`));
    assert.deepEqual(fromPage, [], 'package files fetched from the page\'s origin');
    assert.ok(cdn.hits(`${PACKAGE_PATH}/src/worker.js`) >= 1, 'worker.js was not fetched from the CDN');
    assert.ok(cdn.hits(`${PACKAGE_PATH}/pkg/crossrank_wasm_relaxed_bg.wasm`) >= 1, 'the .wasm was not fetched from the CDN');
  } finally {
    await browser.close();
  }
});

test('a CSP without blob: workers rejects with "worker_start" and the fix; workerUrl on the page\'s origin then works', TIMEOUT, async () => {
  // Everything the package needs from the CDN except a blob: worker.
  const csp = `default-src 'self'; script-src 'self' ${cdn.origin} 'wasm-unsafe-eval'; worker-src 'self'; connect-src 'self' ${cdn.origin}; style-src 'self'; img-src data:`;
  const browser = await startBrowser({ headers: { 'content-security-policy': csp } });
  try {
    await browser.withPage(async ({ page, expectProblem }) => {
      expectProblem(/Content Security Policy/); // Chromium reports the refused worker on the console
      const refused = await rerank(page);
      assertStartError(refused, /Content-Security-Policy refuses blob: workers/, 'blob: refused');
      assert.match(refused.message, /add blob: to worker-src \(with that origin\), or serve crossrank's files from this origin and pass workerUrl/);
      assert.ok(refused.message.includes(`${cdn.origin}${PACKAGE_PATH}/src/worker.js`), refused.message);
      assert.ok(refused.cause?.name === 'SecurityError' || refused.cause?.name === 'error', JSON.stringify(refused.cause));

      // The package still comes from the CDN; only the worker's script is the page's own copy.
      const served = await rerank(page, { workerUrl: '/www/src/worker.js', threads: 1 });
      assert.equal(served.ok, true, served.message);
      for (const result of served.value) {
        const expected = [a, b][result.index].logit;
        assert.ok(Math.abs(result.logit - expected) <= 1e-4, `logit ${result.logit}, PyTorch ${expected}`);
      }
    }, `${PAGE}?package=${encodeURIComponent(packageUrl())}`);
  } finally {
    await browser.close();
  }
});

test('the CSP www/README.md gives for a CDN import is enough: blob: and the CDN in worker-src, the CDN in script-src and connect-src', TIMEOUT, async () => {
  // www/README.md's policy as written, with this test's CDN in place of https://cdn.jsdelivr.net.
  const documented = readFileSync(new URL('www/README.md', ROOT), 'utf8').match(/^Content-Security-Policy: (.*cdn\.jsdelivr\.net.*)$/m);
  assert.ok(documented, 'www/README.md shows no CSP for a CDN import');
  const csp = documented[1].replaceAll('https://cdn.jsdelivr.net', cdn.origin);
  assert.match(csp, /worker-src blob: http:/);
  const browser = await startBrowser({ headers: { 'content-security-policy': csp } });
  try {
    await browser.withPage(async ({ page }) => {
      const ranked = await rerank(page, { threads: 1 });
      assert.equal(ranked.ok, true, ranked.message);
      for (const result of ranked.value) {
        const expected = [a, b][result.index].logit;
        assert.ok(Math.abs(result.logit - expected) <= 1e-4, `logit ${result.logit}, PyTorch ${expected}`);
      }
    }, `${PAGE}?package=${encodeURIComponent(packageUrl())}`);
  } finally {
    await browser.close();
  }
});

test('a CSP that lets the worker start but not fetch the CDN\'s .wasm: "fetch", naming connect-src', TIMEOUT, async () => {
  const csp = `script-src 'self' ${cdn.origin} 'wasm-unsafe-eval'; worker-src blob: ${cdn.origin}; connect-src 'self'`;
  const browser = await startBrowser({ headers: { 'content-security-policy': csp } });
  try {
    await browser.withPage(async ({ page }) => {
      const outcome = await rerank(page, { threads: 1 });
      assert.equal(outcome.code, 'fetch', outcome.message);
      assert.ok(outcome.message.startsWith(`could not load ${cdn.origin}${PACKAGE_PATH}/pkg/crossrank_wasm_relaxed_bg.wasm: `), outcome.message);
      assert.match(outcome.message, /must allow it in connect-src\)$/);
    }, `${PAGE}?package=${encodeURIComponent(packageUrl())}`);
  } finally {
    await browser.close();
  }
});

test('no Worker, a worker script that does not load, or one without CORS: "worker_start" with the fix', TIMEOUT, async () => {
  const browser = await startBrowser();
  try {
    await browser.withPage(async ({ page }) => {
      const outcome = await rerank(page);
      assertStartError(outcome, /^there is no Worker in this JavaScript environment .*create the Reranker in a page or in a dedicated worker$/, 'no Worker');
    }, `${PAGE}?noWorker`);

    await browser.withPage(async ({ page, expectProblem }) => {
      expectProblem(/HTTP 404: .*\/missing\/worker\.js/);
      const missing = await rerank(page, { workerUrl: '/missing/worker.js' });
      assertStartError(missing, /^crossrank's worker did not start: http:\/\/127\.0\.0\.1:\d+\/missing\/worker\.js failed/, 'a 404 worker script');
      assert.match(missing.message, /next to the rest of crossrank's files \(src\/ and pkg\/, as in the npm package\)/);
      assert.equal(missing.cause?.name, 'error', JSON.stringify(missing.cause));

      // Another origin without Access-Control-Allow-Origin: the bootstrap's import fails.
      expectProblem(/CORS policy|request failed: .*worker\.js/);
      const url = `${noCors.origin}${PACKAGE_PATH}/src/worker.js`;
      const blocked = await rerank(page, { workerUrl: url });
      assertStartError(blocked, /^crossrank's worker did not start: a blob: worker importing http:\/\/127\.0\.0\.1:\d+\/npm\/crossrank@[^/]+\/src\/worker\.js failed/, 'no CORS');
      assert.ok(blocked.message.includes(url), blocked.message);
      assert.match(blocked.message, /its server must send Access-Control-Allow-Origin .* must allow blob: and that origin in worker-src/);

      // A wrong shape is the argument's error, not the worker's.
      const shape = await rerank(page, { workerUrl: 5 });
      assert.equal(shape.code, 'invalid_input', shape.message);
      assert.equal(shape.message, 'options.workerUrl must be a URL (a string or a URL object), got number 5');

      // After all that, the same page starts its worker normally.
      const fine = await rerank(page, { threads: 1 });
      assert.equal(fine.ok, true, fine.message);
    }, PAGE);
  } finally {
    await browser.close();
  }
});
