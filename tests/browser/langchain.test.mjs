// crossrank/langchain: a BaseDocumentCompressor for LangChain.js's ContextualCompressionRetriever,
// in Chromium: the README's pipeline, bundled by Vite with the LangChain packages as an app would
// be, against the package's Reranker in Node as the reference. The same pipeline in Node (no
// bundler, no polyfill) is tests/node/langchain.test.mjs.
//
//   node --test tests/browser/langchain.test.mjs   (needs ./build.sh wasm models, npm ci in www/)

import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readFileSync, rmSync } from 'node:fs';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';

import { startBrowser } from './harness.mjs';

const ROOT = new URL('../../', import.meta.url);
const path = (relative) => fileURLToPath(new URL(relative, ROOT));

const { Reranker } = await import('../../www/src/index.js');

test('Chromium: the README\'s pipeline, bundled by Vite, with the package\'s Reranker', { timeout: 240_000 }, async () => {
  const app = path('tests/browser/langchain-app');
  rmSync(`${app}/dist`, { recursive: true, force: true });
  // Links node_modules/crossrank to www/ and the LangChain packages to www/'s; no registry needed.
  execFileSync('npm', ['install', '--offline', '--no-audit', '--no-fund', '--no-package-lock'], { cwd: app, stdio: 'pipe' });
  execFileSync(process.execPath, [path('www/node_modules/vite/bin/vite.js'), 'build', '--logLevel', 'warn'], { cwd: app, stdio: 'pipe' });
  const browser = await startBrowser({ mounts: { '/': `${app}/dist`, '/artifacts': path('artifacts') } });
  try {
    const tab = await browser.openPage('/');
    const got = await tab.page.evaluate(() => window.runPipeline('/artifacts/models/minilm-l4.f32.gguf'));
    await tab.close();
    const reranker = await Reranker.create({ model: path('artifacts/models/minilm-l4.f32.gguf'), threads: 1 });
    const direct = await reranker.rerank(got.query, got.candidates);
    reranker.dispose();
    assert.equal(got.found.length, 2);
    got.found.forEach((document, i) => {
      assert.equal(document.pageContent, got.candidates[direct[i].index]);
      assert.ok(Math.abs(document.metadata.relevanceScore - direct[i].score) < 1e-5, `${document.metadata.relevanceScore} vs ${direct[i].score}`);
    });
  } finally {
    await browser.close();
  }
});

test('Node: the raw module throws errors with the name and code the package uses', async () => {
  const glue = await import('../../www/pkg/crossrank_wasm.js');
  await glue.default({ module_or_path: readFileSync(path('www/pkg/crossrank_wasm_bg.wasm')) });
  assert.throws(() => glue.WasmReranker.fromGguf(new TextEncoder().encode('not a model')), (error) => {
    assert.equal(error.name, 'RerankerError');
    assert.equal(error.code, 'model_format');
    return true;
  });
});
