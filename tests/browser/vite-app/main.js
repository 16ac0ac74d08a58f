// What an app does: import the package by name and rerank. The test calls window.rerank.
import { Reranker } from 'crossrank';
// The default model from its own package: Vite emits the GGUF as an asset and modelUrl is its URL.
import { maxLength, modelUrl, sha256 } from 'crossrank-minilm-l4';

window.rerank = async (model, query, documents) => {
  const reranker = await Reranker.create({ model });
  try {
    return await reranker.rerank(query, documents);
  } finally {
    reranker.dispose();
  }
};

window.defaultModel = { url: modelUrl.href, sha256, maxLength };
window.rerankWithDefaultModel = async (query, documents) => {
  const reranker = await Reranker.create({ model: modelUrl, sha256 });
  try {
    return { results: await reranker.rerank(query, documents), info: reranker.info };
  } finally {
    reranker.dispose();
  }
};
document.documentElement.dataset.ready = 'true';
