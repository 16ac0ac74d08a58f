// crossrank for LangChain.js: a document compressor that reranks what a retriever found, in the
// browser, for `ContextualCompressionRetriever` — the JS counterpart of LangChain's
// `CrossEncoderReranker`. `@langchain/core` is a peer dependency: install it beside crossrank.
//
//   import { Reranker } from 'crossrank';
//   import { CrossrankReranker } from 'crossrank/langchain';
//   const compressor = new CrossrankReranker({ reranker: await Reranker.create({ model }), topN: 3 });
//   const retriever = new ContextualCompressionRetriever({ baseCompressor: compressor, baseRetriever });

import { BaseDocumentCompressor } from '@langchain/core/retrievers/document_compressors';
import { Document } from '@langchain/core/documents';

import { RERANK_OPTIONS, checkArray, checkOptionFields, checkOptions, describe, invalid } from './arguments.js';

/** What `rerankOptions` may hold: rerank's options but topK, which is topN here. */
const FORWARDED_OPTIONS = RERANK_OPTIONS.filter((name) => name !== 'topK');

export class CrossrankReranker extends BaseDocumentCompressor {
  /**
   * @param {{ reranker: { rerank: Function }, topN?: number, rerankOptions?: object }} options
   *   reranker: a crossrank `Reranker` (anything with its `rerank(query, texts, options)`);
   *   topN: how many documents to keep (default 3, as LangChain's CrossEncoderReranker);
   *   rerankOptions: passed to every rerank call (maxLength, windows, threshold, …).
   * A wrong shape throws a RerankerError with code "invalid_input" that names it.
   */
  constructor(options = {}) {
    super();
    const { reranker, topN = 3, rerankOptions = {} } = checkOptions(options, ['reranker', 'topN', 'rerankOptions']);
    if (!reranker || typeof reranker.rerank !== 'function') {
      throw invalid('CrossrankReranker needs { reranker }: a crossrank Reranker (await Reranker.create({ model }))');
    }
    if (!Number.isInteger(topN) || topN < 1) throw invalid(`topN must be a positive integer, got ${describe(topN)}`);
    if ('topK' in Object(rerankOptions)) throw invalid('rerankOptions.topK is not taken: topN sets how many documents are kept');
    checkOptions(rerankOptions, FORWARDED_OPTIONS, 'rerankOptions');
    checkOptionFields(rerankOptions);
    this.reranker = reranker;
    this.topN = topN;
    this.rerankOptions = rerankOptions;
  }

  /**
   * The `topN` documents most relevant to `query`, best first, each a copy with the reranker's
   * score (sigmoid of the logit, in (0, 1)) in `metadata.relevanceScore`.
   * @param {import('@langchain/core/documents').DocumentInterface[]} documents
   * @param {string} query
   */
  async compressDocuments(documents, query) {
    if (typeof query !== 'string') throw invalid(`query must be a string, got ${describe(query)}`);
    const texts = checkArray(documents, 'documents').map((document, index) => {
      if (document === null || typeof document !== 'object' || typeof document.pageContent !== 'string') {
        throw invalid(`documents[${index}] must be a Document with a string pageContent, got ${describe(document)}`);
      }
      return document.pageContent;
    });
    if (texts.length === 0) return [];
    const ranked = await this.reranker.rerank(query, texts, {
      ...this.rerankOptions,
      topK: this.topN,
    });
    return ranked.map(({ index, score }) => {
      const { pageContent, metadata, id } = documents[index];
      return new Document({ pageContent, id, metadata: { ...metadata, relevanceScore: score } });
    });
  }
}
