// crossrank/langchain in Node: LangChain.js's ContextualCompressionRetriever over a real
// MemoryVectorStore (its first stage: the hashed bag-of-words embeddings of
// tests/browser/langchain-app/corpus.js), reranked by the package's own Reranker on worker_threads,
// with no Worker polyfill, no HTTP server and no wasmUrl. The same pipeline bundled by Vite runs in
// Chromium in tests/browser/langchain.test.mjs.
//
//   cd www && npm run test:node      (needs ./build.sh wasm models, npm ci in www/)

import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import { test } from 'node:test';
import { pathToFileURL } from 'node:url';

import { MINILM_CASES, MINILM_F32, path } from './helpers.mjs';

// The LangChain packages are devDependencies of the npm package in www/.
const www = createRequire(path('www/package.json'));
const load = (specifier) => import(pathToFileURL(www.resolve(specifier)).href);

const { Reranker } = await import('../../www/src/index.js');
const { CrossrankReranker } = await import('../../www/src/langchain.js');
const { ContextualCompressionRetriever } = await load('@langchain/classic/retrievers/contextual_compression');
const { MemoryVectorStore } = await load('@langchain/classic/vectorstores/memory');
const { Document } = await load('@langchain/core/documents');
const { HashingEmbeddings, CORPUS, QUERY } = await import('../browser/langchain-app/corpus.js');

test('ContextualCompressionRetriever over a MemoryVectorStore, reranked by the package\'s Reranker in Node', { timeout: 120_000 }, async () => {
  assert.equal(typeof globalThis.Worker, 'undefined', 'this test must run without a Worker polyfill');
  const reranker = await Reranker.create({ model: path(MINILM_F32), threads: 2 });
  try {
    // The compressor's calls, recorded on the way to the real method.
    const calls = [];
    const rerank = reranker.rerank.bind(reranker);
    reranker.rerank = (query, documents, options) => {
      calls.push({ query, documents, options });
      return rerank(query, documents, options);
    };
    const store = await MemoryVectorStore.fromDocuments(
      CORPUS.map((text, i) => new Document({ pageContent: text, metadata: { source: `doc-${i}` } })),
      new HashingEmbeddings(),
    );
    const compressor = new CrossrankReranker({ reranker, topN: 2 });
    const retriever = new ContextualCompressionRetriever({ baseCompressor: compressor, baseRetriever: store.asRetriever({ k: 5 }) });
    const found = await retriever.invoke(QUERY);

    // The vector store handed its 5 nearest documents to crossrank, which kept the best 2.
    assert.equal(calls.length, 1);
    const { documents, options } = calls[0];
    assert.equal(documents.length, 5);
    assert.equal(options.topK, 2);
    assert.equal(found.length, 2);
    // The order and scores are crossrank's own on those 5 documents.
    const direct = await rerank(QUERY, documents);
    assert.deepEqual(found.map((d) => d.pageContent), direct.slice(0, 2).map((r) => documents[r.index]));
    for (const [i, document] of found.entries()) {
      assert.ok(Math.abs(document.metadata.relevanceScore - direct[i].score) < 1e-7);
      assert.match(document.metadata.source, /^doc-\d$/, 'metadata is kept');
    }
    assert.ok(found[0].metadata.relevanceScore > found[1].metadata.relevanceScore);
    // Scores are the PyTorch fixture's where the pair is a fixture case.
    const plain = MINILM_CASES.find((c) => c.name === 'plain');
    const [{ metadata }] = await compressor.compressDocuments([new Document({ pageContent: plain.passage })], plain.query);
    assert.ok(Math.abs(metadata.relevanceScore - 1 / (1 + Math.exp(-plain.logit))) < 1e-5);
    assert.deepEqual(await compressor.compressDocuments([], QUERY), []);
  } finally {
    reranker.dispose();
  }
});
