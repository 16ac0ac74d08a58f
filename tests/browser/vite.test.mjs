// The npm package through a bundler: tests/browser/vite-app imports `crossrank` (a file:
// dependency on www/) and its default model `crossrank-minilm-l4` (the tarball `npm pack` makes of
// models/npm, as a user installs it), and is built by `vite build` with no configuration at all.
// The output must hold the worker, the .wasm and the GGUF, and must rerank in Chromium like the
// unbundled package.
//
//   node --test tests/browser/

import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, renameSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { before, test } from 'node:test';

import { fixture, startBrowser } from './harness.mjs';

const ROOT = new URL('../../', import.meta.url);
const APP = fileURLToPath(new URL('./vite-app/', import.meta.url));
const VITE = fileURLToPath(new URL('www/node_modules/vite/bin/vite.js', ROOT));
const WASM = new URL('www/pkg/crossrank_wasm_bg.wasm', ROOT);
const RELAXED_WASM = new URL('www/pkg/crossrank_wasm_relaxed_bg.wasm', ROOT);
const MODEL_PACKAGE = fileURLToPath(new URL('models/npm/', ROOT));
const DEFAULT_MODEL = new URL('models/crossrank-minilm-l4.q8_0.gguf', ROOT);

const assets = () => readdirSync(new URL('./vite-app/dist/assets/', import.meta.url));
const bundled = (name) => readFileSync(new URL(`./vite-app/dist/assets/${name}`, import.meta.url));

before(() => {
  rmSync(new URL('./vite-app/dist', import.meta.url), { recursive: true, force: true });
  rmSync(new URL('./vite-app/node_modules', import.meta.url), { recursive: true, force: true });
  // The model package as npm publishes it (its prepack copies the GGUF and card from models/).
  const packs = mkdtempSync(join(tmpdir(), 'crossrank-model-pack-'));
  try {
    const [{ filename }] = JSON.parse(execFileSync('npm', ['pack', '--json', '--pack-destination', packs], { cwd: MODEL_PACKAGE, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] }));
    renameSync(join(packs, filename), join(APP, 'crossrank-minilm-l4.tgz'));
  } finally {
    rmSync(packs, { recursive: true, force: true });
  }
  // Links node_modules/crossrank to www/ and unpacks the model's tarball; the registry is not needed.
  execFileSync('npm', ['install', '--offline', '--no-audit', '--no-fund', '--no-package-lock'], { cwd: APP, stdio: 'pipe' });
  execFileSync(process.execPath, [VITE, 'build', '--logLevel', 'warn'], { cwd: APP, stdio: 'pipe' });
});

test('vite build bundles the worker and the .wasm, and the app reranks', { timeout: 180_000 }, async () => {
  const worker = assets().find((name) => /^worker-.*\.js$/.test(name));
  // Both builds are bundled (the worker picks one at run time); Chromium runs the relaxed one.
  const wasm = assets().find((name) => /^crossrank_wasm_bg-.*\.wasm$/.test(name));
  const relaxed = assets().find((name) => /^crossrank_wasm_relaxed_bg-.*\.wasm$/.test(name));
  assert.ok(worker, `no worker chunk in dist/assets: ${assets().join(', ')}`);
  assert.ok(wasm && relaxed, `not both .wasm builds in dist/assets: ${assets().join(', ')}`);
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

// The default model from its package, as the README's first example loads it: Vite emits the GGUF
// as an asset, `modelUrl` is that asset's URL, `sha256` is checked, and the scores are PyTorch's
// within the Q8_0 tolerance the other browser tests use for this model (0.15; the int8 path of
// the relaxed-SIMD build).
test('vite build emits the default model\'s GGUF from crossrank-minilm-l4, and the app reranks with it', { timeout: 180_000 }, async () => {
  const gguf = assets().find((name) => /^crossrank-minilm-l4\.q8_0-.*\.gguf$/.test(name));
  assert.ok(gguf, `no GGUF in dist/assets: ${assets().join(', ')}`);
  assert.ok(bundled(gguf).equals(readFileSync(DEFAULT_MODEL)), 'the bundled GGUF differs from models/');
  const recorded = readFileSync(new URL('models/crossrank-minilm-l4.q8_0.gguf.sha256', ROOT), 'utf8').split(/\s+/)[0];
  const { ranking, max_length: trainedLength } = fixture('default_model.json');
  // Its three best candidates are more than twice the tolerance apart, so their order is PyTorch's.
  const { query, documents, logits } = ranking[1];

  const browser = await startBrowser({ mounts: { '/': fileURLToPath(new URL('./vite-app/dist/', import.meta.url)) } });
  try {
    const tab = await browser.openPage('/');
    const exported = await tab.page.evaluate(() => window.defaultModel);
    assert.deepEqual(exported, { url: `${browser.server.origin}/assets/${gguf}`, sha256: recorded, maxLength: trainedLength });
    const { results, info } = await tab.page.evaluate(
      ({ query, documents }) => window.rerankWithDefaultModel(query, documents),
      { query, documents },
    );
    await tab.close();
    assert.equal(info.precision, 'q8_0');
    assert.equal(info.defaultMaxLength, trainedLength, 'the GGUF records the length the package exports');
    assert.equal(results.length, documents.length);
    for (const { index, logit } of results) {
      assert.ok(Math.abs(logit - logits[index]) <= 0.15, `candidate ${index}: logit ${logit}, PyTorch ${logits[index]}`);
    }
    const worst = Math.max(...results.map(({ index, logit }) => Math.abs(logit - logits[index])));
    console.log(`# default model from its package in Chromium: max |Δlogit| ${worst.toFixed(4)} against PyTorch f32 over ${documents.length} candidates`);
    const pytorchOrder = logits.map((logit, index) => ({ logit, index })).sort((a, b) => b.logit - a.logit).map(({ index }) => index);
    assert.deepEqual(results.slice(0, 3).map(({ index }) => index), pytorchOrder.slice(0, 3));
    // One download: the first worker fetches the file, the others get it from the first.
    assert.equal(browser.server.hits(`/assets/${gguf}`), 1);
  } finally {
    await browser.close();
  }
});
