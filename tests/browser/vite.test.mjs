// The npm package through a bundler: tests/browser/vite-app imports `crossrank` (a file:
// dependency on www/) and is built by `vite build` with no configuration at all. The output
// must hold the worker and the .wasm, and must rerank in Chromium like the unbundled package.
//
//   node --test tests/browser/

import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync, rmSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { test } from 'node:test';

import { startBrowser } from './harness.mjs';

const ROOT = new URL('../../', import.meta.url);
const APP = fileURLToPath(new URL('./vite-app/', import.meta.url));
const VITE = fileURLToPath(new URL('www/node_modules/vite/bin/vite.js', ROOT));
const WASM = new URL('www/pkg/crossrank_wasm_bg.wasm', ROOT);
const RELAXED_WASM = new URL('www/pkg/crossrank_wasm_relaxed_bg.wasm', ROOT);

test('vite build bundles the worker and the .wasm, and the app reranks', { timeout: 180_000 }, async () => {
  rmSync(new URL('./vite-app/dist', import.meta.url), { recursive: true, force: true });
  // Links node_modules/crossrank to www/; the registry is not needed.
  execFileSync('npm', ['install', '--offline', '--no-audit', '--no-fund', '--no-package-lock'], { cwd: APP, stdio: 'pipe' });
  execFileSync(process.execPath, [VITE, 'build', '--logLevel', 'warn'], { cwd: APP, stdio: 'pipe' });

  const assets = readdirSync(new URL('./vite-app/dist/assets/', import.meta.url));
  const worker = assets.find((name) => /^worker-.*\.js$/.test(name));
  // Both builds are bundled (the worker picks one at run time); Chromium runs the relaxed one.
  const wasm = assets.find((name) => /^crossrank_wasm_bg-.*\.wasm$/.test(name));
  const relaxed = assets.find((name) => /^crossrank_wasm_relaxed_bg-.*\.wasm$/.test(name));
  assert.ok(worker, `no worker chunk in dist/assets: ${assets.join(', ')}`);
  assert.ok(wasm && relaxed, `not both .wasm builds in dist/assets: ${assets.join(', ')}`);
  const bundled = (name) => readFileSync(new URL(`./vite-app/dist/assets/${name}`, import.meta.url));
  assert.ok(bundled(wasm).equals(readFileSync(WASM)), 'the bundled SIMD128 .wasm differs from www/pkg');
  assert.ok(bundled(relaxed).equals(readFileSync(RELAXED_WASM)), 'the bundled relaxed-SIMD .wasm differs from www/pkg');

  const browser = await startBrowser({
    mounts: { '/': fileURLToPath(new URL('./vite-app/dist/', import.meta.url)), '/artifacts': fileURLToPath(new URL('artifacts/', ROOT)) },
  });
  try {
    const tab = await browser.openPage('/');
    const { cases } = JSON.parse(readFileSync(new URL('tests/fixtures/tiny.json', ROOT), 'utf8'));
    const [a, b] = cases.filter((c) => c.query === cases[0].query);
    const results = await tab.page.evaluate(
      ({ a, b }) => window.rerank('/artifacts/models/tiny.f32.gguf', a.query, [a.passage, b.passage]),
      { a, b },
    );
    // Each worker of the pool (default: one per core, at most 4) loads the worker chunk and the .wasm.
    const threads = await tab.page.evaluate(() => Math.max(1, Math.min(4, navigator.hardwareConcurrency)));
    await tab.close();
    assert.equal(results.length, 2);
    for (const result of results) {
      const expected = [a, b][result.index].logit;
      assert.ok(Math.abs(result.logit - expected) <= 1e-4, `logit ${result.logit}, PyTorch ${expected}`);
    }
    for (const asset of [worker, relaxed]) {
      const hits = browser.server.hits(`/assets/${asset}`);
      assert.ok(hits >= 1 && hits <= threads, `${asset} fetched ${hits} times for ${threads} workers`);
    }
    assert.equal(browser.server.hits(`/assets/${wasm}`), 0, 'a browser with relaxed SIMD fetched the SIMD128 build too');
  } finally {
    await browser.close();
  }
});
