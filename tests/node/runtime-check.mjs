// Run by runtimes.test.mjs under Deno and Bun (`deno run --allow-read runtime-check.mjs`, `bun
// runtime-check.mjs`): the package's Reranker from a file path, one call per fixture case, a pool
// of two, an abort mid-call and the call after it, and the Q8_0 model. Prints one JSON line for the test to check.

const { Reranker } = await import('../../www/src/index.js');

const root = new URL('../../', import.meta.url);
const file = (relative) => decodeURIComponent(new URL(relative, root).pathname);
const cases = JSON.parse(await (await import('node:fs/promises')).readFile(file('tests/fixtures/minilm_l4.json'), 'utf8')).cases;
const long = cases.find((c) => c.name === 'long_passage');
const settle = (promise) => promise.then((value) => ({ ok: true, value }), (error) => ({ ok: false, name: error?.name, code: error?.code, message: error?.message }));

const reranker = await Reranker.create({ model: file('artifacts/models/minilm-l4.f32.gguf'), threads: 2 });
const single = [];
for (const c of cases) single.push((await reranker.rerank(c.query, [c.passage]))[0]);
const pooled = await reranker.rerankMany(cases.map((c) => ({ query: c.query, documents: [c.passage] })));

const controller = new AbortController();
const midway = settle(reranker.rerank(long.query, Array(24).fill(long.passage), { signal: controller.signal }));
await new Promise((resolve) => setTimeout(resolve, 500));
const abortedAt = performance.now();
controller.abort();
const aborted = await midway;
const rejectedAfterMs = performance.now() - abortedAt;
const next = await settle(reranker.rerank(long.query, [long.passage]));
const info = reranker.info;
const threads = reranker.threads;
reranker.dispose();
// Q8_0: the int8 kernels, on the relaxed dot product where the engine validates relaxed SIMD.
const q8 = await Reranker.create({ model: file('artifacts/models/minilm-l4.q8_0.gguf'), threads: 1 });
const quantised = [];
for (const c of cases) quantised.push((await q8.rerank(c.query, [c.passage]))[0]);
const q8Info = q8.info;
const missing = await settle(Reranker.create({ model: file('artifacts/models/none.gguf') }));
// No dispose() for q8: the process must exit by itself.
console.log(JSON.stringify({ info, q8Info, threads, single, quantised, pooled: pooled.map(([result]) => result), aborted, rejectedAfterMs, next, missing }));
