// What an app does: import the package by name and rerank. The test calls window.rerank.
import { Reranker } from 'crossrank';

window.rerank = async (model, query, documents) => {
  const reranker = await Reranker.create({ model });
  try {
    return await reranker.rerank(query, documents);
  } finally {
    reranker.dispose();
  }
};
document.documentElement.dataset.ready = 'true';
