// Type-checked with usage.ts (tests/browser/api_contract.test.mjs): the README's LangChain.js example.
import { ContextualCompressionRetriever } from '@langchain/classic/retrievers/contextual_compression';
import type { BaseRetrieverInterface } from '@langchain/core/retrievers';
import { Reranker } from '../../www/index';
import { CrossrankReranker } from '../../www/langchain';

export async function pipeline(baseRetriever: BaseRetrieverInterface): Promise<number> {
  const reranker = await Reranker.create({ model: 'cross-encoder/ms-marco-MiniLM-L-6-v2' });
  const retriever = new ContextualCompressionRetriever({
    baseCompressor: new CrossrankReranker({ reranker, topN: 3, rerankOptions: { maxLength: 256 } }),
    baseRetriever,
  });
  const docs = await retriever.invoke('what causes scurvy');
  // @ts-expect-error topK is topN here
  new CrossrankReranker({ reranker, rerankOptions: { topK: 2 } });
  return docs.length;
}
