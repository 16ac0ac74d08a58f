// The first stage of the LangChain test: a few passages and a real (if simple) embedding, hashed
// bag-of-words vectors, so that MemoryVectorStore finds candidates with no model download.
// Plain methods rather than a subclass of LangChain's Embeddings: a vector store needs only these.

export const QUERY = 'what causes vitamin d deficiency';

export const CORPUS = [
  'Vitamin D deficiency is caused by too little sunlight exposure and poor diet.',
  'Vitamin C deficiency causes scurvy, with bleeding gums and fatigue.',
  'The stock market closed higher on Tuesday after a volatile session.',
  'Sunlight exposure lets the skin make vitamin D; people indoors all winter often lack it.',
  'A diet of oily fish and eggs provides some vitamin D.',
  'Paris is the capital of France and its largest city.',
  'Deficiency of iron is the most common cause of anaemia.',
];

export class HashingEmbeddings {
  constructor(dimensions = 256) {
    this.dimensions = dimensions;
  }

  #embed(text) {
    const vector = new Array(this.dimensions).fill(0);
    for (const word of text.toLowerCase().match(/[a-z0-9]+/g) ?? []) {
      let hash = 2166136261;
      for (const char of word) hash = Math.imul(hash ^ char.charCodeAt(0), 16777619) >>> 0;
      vector[hash % this.dimensions] += 1;
    }
    const norm = Math.hypot(...vector) || 1;
    return vector.map((value) => value / norm);
  }

  async embedDocuments(texts) {
    return texts.map((text) => this.#embed(text));
  }

  async embedQuery(text) {
    return this.#embed(text);
  }
}
