// Type-checked by tests/browser/api_contract.test.mjs (`tsc --noEmit --strict`): the calls the
// README shows must compile against www/index.d.ts, and misuse must not.
import { ErrorCode, Reranker, RerankerError, type ErrorCodeValue, type RerankResult } from '../../www/index';

export async function readme(): Promise<number> {
  const reranker = await Reranker.create({ model: '/models/crossrank-minilm-l4.q8_0.gguf', threads: 2 });
  const threads: number = reranker.threads;
  const docs = [{ text: 'Vitamin C prevents scurvy.', id: 7, score: 12.5 }, { text: 'Stocks fell.', id: 8, score: 3.1 }];
  const results: RerankResult<(typeof docs)[number]>[] = await reranker.rerank('what prevents scurvy', docs, {
    topK: 1,
    batchSize: 8,
    windows: { overlap: 32, aggregate: 'max' },
    fusion: { type: 'weighted', weight: 0.5 },
    scoreScale: 'minmax',
    threshold: 0.2,
    onProgress: ({ scored, total }) => console.log(`${scored}/${total}`),
  });
  const id: number | undefined = results[0]?.id;
  const many = await reranker.rerankMany([{ query: 'q', documents: ['a', 'b'] }]);
  reranker.dispose();
  // A Hugging Face model by id, converted in a worker; the cache modes; clearing the cache.
  const hub = await Reranker.create({
    model: 'cross-encoder/ms-marco-MiniLM-L-6-v2', dtype: 'q4_0', revision: 'main', hubUrl: 'https://huggingface.co',
    cache: 'reload', onProgress: (p) => (p.status === 'total' ? p.progress : 0),
  });
  const family: 'bert' | 'electra' | 'xlm-roberta' | undefined = hub.info?.modelType;
  const cacheStatus: 'downloaded' | 'revalidated' | 'unvalidated' | undefined = hub.info?.cache?.status;
  const cleared: boolean = await Reranker.clearCache();
  return (id ?? 0) + many.length + threads + (family ? 1 : 0) + (cacheStatus ? 1 : 0) + (cleared ? 1 : 0);
}

export function codes(error: unknown): ErrorCodeValue | null {
  if (error instanceof RerankerError && error.code === ErrorCode.NOT_LOADED) return error.code;
  return null;
}

export async function misuse(reranker: Reranker): Promise<void> {
  // @ts-expect-error topK is a number, not a string
  await reranker.rerank('q', ['a'], { topK: '3' });
  // @ts-expect-error there is no option named top_k
  await reranker.rerank('q', ['a'], { top_k: 3 });
  // @ts-expect-error no such dtype
  await Reranker.create({ model: 'org/name', dtype: 'q5_1' });
  // @ts-expect-error cache modes are named
  await Reranker.create({ model: 'm.gguf', cache: 'sometimes' });
  // @ts-expect-error threads is a number
  await Reranker.create({ model: 'm.gguf', threads: 'auto' });
  // @ts-expect-error a fusion needs its type
  await reranker.rerank('q', ['a'], { fusion: { weight: 0.5 } });
}

/** The worker's script served by the app itself (a CSP without blob: in worker-src). */
export async function workerUrl(): Promise<Reranker> {
  // @ts-expect-error workerUrl is a URL (string or URL object)
  await Reranker.create({ model: 'm.gguf', workerUrl: 5 });
  return Reranker.create({ model: 'm.gguf', workerUrl: new URL('/crossrank/src/worker.js', 'https://example.com/') });
}

/** The device option and what info says about it (README "WebGPU"). */
export async function device(): Promise<string> {
  const reranker = await Reranker.create({ model: 'm.gguf', device: 'auto' });
  const where: 'webgpu' | 'wasm' | undefined = reranker.info?.device;
  const vendor: string | undefined = reranker.info?.gpu?.adapter.vendor;
  const gpuBytes: number | undefined = reranker.info?.gpu?.gpuBytes;
  const why: string | null | undefined = reranker.info?.fallback;
  new Reranker({ device: 'wasm', threads: 2 }).dispose();
  try {
    await Reranker.create({ model: 'm.gguf', device: 'webgpu' });
  } catch (error) {
    if (error instanceof RerankerError && error.code === ErrorCode.WEBGPU_UNAVAILABLE) return error.message;
  }
  // @ts-expect-error no such device (the other libraries' "gpu" is "webgpu" here)
  await Reranker.create({ model: 'm.gguf', device: 'gpu' });
  return `${where} ${vendor} ${gpuBytes} ${why}`;
}
