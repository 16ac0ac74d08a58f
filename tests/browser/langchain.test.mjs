// crossrank/langchain: a BaseDocumentCompressor for LangChain.js's ContextualCompressionRetriever,
// over a real MemoryVectorStore (its first stage: hashed bag-of-words embeddings, defined below).
// In Node the reranker is the wasm module itself (Node has no Web Worker); in Chromium it is the
// package's Reranker, bundled by Vite with the LangChain packages as an app would be.
//
//   node --test tests/browser/langchain.test.mjs   (needs ./build.sh wasm models, npm ci in www/)

import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readFileSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { test } from 'node:test';
import { fileURLToPath, pathToFileURL } from 'node:url';

import { startBrowser } from './harness.mjs';

const ROOT = new URL('../../', import.meta.url);
const path = (relative) => fileURLToPath(new URL(relative, ROOT));
// The LangChain packages are devDependencies of the npm package in www/.
const www = createRequire(path('www/package.json'));
const load = (specifier) => import(pathToFileURL(www.resolve(specifier)).href);

const { CrossrankReranker } = await import('../../www/src/langchain.js');
const { ContextualCompressionRetriever } = await load('@langchain/classic/retrievers/contextual_compression');
const { MemoryVectorStore } = await load('@langchain/classic/vectorstores/memory');
const { Document } = await load('@langchain/core/documents');
const { HashingEmbeddings, CORPUS, QUERY } = await import('./langchain-app/corpus.js');

const MINILM_CASES = JSON.parse(readFileSync(path('tests/fixtures/minilm_l4.json'), 'utf8')).cases;

/** The wasm module in Node, behind the Reranker's `rerank` signature. */
async function nodeReranker(ggufPath) {
  const glue = await import('../../www/pkg/crossrank_wasm.js');
  await glue.default({ module_or_path: readFileSync(path('www/pkg/crossrank_wasm_bg.wasm')) });
  const model = glue.WasmReranker.fromGguf(readFileSync(path(ggufPath)));
  const calls = [];
  return {
    calls,
    async rerank(query, documents, options = {}) {
      calls.push({ query, documents, options });
      const { topK, ...scoreOptions } = options;
      const [scored] = model.score([{ query, documents }], scoreOptions);
      const [ranked] = glue.orderScored([{ scored }], options);
      return ranked;
    },
  };
}

test('Node: ContextualCompressionRetriever over a MemoryVectorStore, reranked by crossrank', async () => {
  const reranker = await nodeReranker('artifacts/models/minilm-l4.f32.gguf');
  const store = await MemoryVectorStore.fromDocuments(
    CORPUS.map((text, i) => new Document({ pageContent: text, metadata: { source: `doc-${i}` } })),
    new HashingEmbeddings(),
  );
  const compressor = new CrossrankReranker({ reranker, topN: 2 });
  const retriever = new ContextualCompressionRetriever({ baseCompressor: compressor, baseRetriever: store.asRetriever({ k: 5 }) });
  const found = await retriever.invoke(QUERY);

  // The vector store handed its 5 nearest documents to crossrank, which kept the best 2.
  assert.equal(reranker.calls.length, 1);
  const { documents, options } = reranker.calls[0];
  assert.equal(documents.length, 5);
  assert.equal(options.topK, 2);
  assert.equal(found.length, 2);
  // The order and scores are crossrank's own on those 5 documents.
  const direct = await reranker.rerank(QUERY, documents);
  assert.deepEqual(found.map((d) => d.pageContent), direct.slice(0, 2).map((r) => documents[r.index]));
  for (const [i, document] of found.entries()) {
    assert.ok(Math.abs(document.metadata.relevanceScore - direct[i].score) < 1e-7);
    assert.match(document.metadata.source, /^doc-\d$/, 'metadata is kept');
  }
  assert.ok(found[0].metadata.relevanceScore >= found[1].metadata.relevanceScore);
  // Scores are the PyTorch fixture's where the pair is a fixture case.
  const plain = MINILM_CASES.find((c) => c.name === 'plain');
  const [{ metadata }] = await compressor.compressDocuments([new Document({ pageContent: plain.passage })], plain.query);
  assert.ok(Math.abs(metadata.relevanceScore - 1 / (1 + Math.exp(-plain.logit))) < 1e-5);
  assert.deepEqual(await compressor.compressDocuments([], QUERY), []);
  assert.throws(() => new CrossrankReranker({}), /needs \{ reranker \}/);
  assert.throws(() => new CrossrankReranker({ reranker, topN: 0 }), /topN must be a positive integer/);
});

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
    const reranker = await nodeReranker('artifacts/models/minilm-l4.f32.gguf');
    const direct = await reranker.rerank(got.query, got.candidates);
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
