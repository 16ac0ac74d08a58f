import { BaseDocumentCompressor } from '@langchain/core/retrievers/document_compressors';
import type { DocumentInterface } from '@langchain/core/documents';
import type { RerankOptions, RerankResult } from './index';

/** Reranks a retriever's documents with crossrank, for `ContextualCompressionRetriever`. */
export declare class CrossrankReranker extends BaseDocumentCompressor {
  /** Throws a RerankerError (code "invalid_input", naming the option) for options of the wrong shape. */
  constructor(options: {
    /** A crossrank `Reranker` (or anything with its `rerank`). */
    reranker: { rerank(query: string, documents: string[], options?: RerankOptions): Promise<RerankResult[]> };
    /** Documents to keep, best first. Default 3. */
    topN?: number;
    /** Passed to every rerank call (maxLength, windows, threshold, …); topK is topN. */
    rerankOptions?: Omit<RerankOptions, 'topK'>;
  });
  readonly topN: number;
  /** The topN documents, best first, with `metadata.relevanceScore` = sigmoid(logit). */
  compressDocuments(documents: DocumentInterface[], query: string): Promise<DocumentInterface[]>;
}
