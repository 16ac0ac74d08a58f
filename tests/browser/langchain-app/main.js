// The README's LangChain.js example as an app (tests/browser/langchain.test.mjs calls
// window.runPipeline): a vector store finds candidates, crossrank keeps the best two.
import { Reranker } from 'crossrank';
import { CrossrankReranker } from 'crossrank/langchain';
import { ContextualCompressionRetriever } from '@langchain/classic/retrievers/contextual_compression';
import { MemoryVectorStore } from '@langchain/classic/vectorstores/memory';
import { Document } from '@langchain/core/documents';

import { CORPUS, HashingEmbeddings, QUERY } from './corpus.js';

window.runPipeline = async (model) => {
  const store = await MemoryVectorStore.fromDocuments(
    CORPUS.map((text, i) => new Document({ pageContent: text, metadata: { source: `doc-${i}` } })),
    new HashingEmbeddings(),
  );
  const reranker = await Reranker.create({ model });
  const retriever = new ContextualCompressionRetriever({
    baseCompressor: new CrossrankReranker({ reranker, topN: 2 }),
    baseRetriever: store.asRetriever({ k: 5 }),
  });
  const found = await retriever.invoke(QUERY);
  const candidates = (await store.similaritySearch(QUERY, 5)).map((document) => document.pageContent);
  reranker.dispose();
  return { query: QUERY, candidates, found: found.map(({ pageContent, metadata }) => ({ pageContent, metadata })) };
};
document.documentElement.dataset.ready = 'true';
