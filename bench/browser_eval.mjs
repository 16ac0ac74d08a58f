#!/usr/bin/env node
// Reranks a BEIR-style set's first-stage candidates with the npm package in headless Chromium
// (the build and kernel the browser picks: relaxed SIMD in Chromium) and writes a TREC run, so
// that `crossrank eval --run` scores the browser's ranking with exactly the CLI's metrics.
//
//   node bench/browser_eval.mjs --data ../shared/data/trec-dl/dl19 --out artifacts/eval/dl19-browser.run
//        [--candidates bm25_top100.tsv] [--model /models/crossrank-minilm-l4.q8_0.gguf] [--threads 2] [--depth 100]
//        [--wasm-url URL]
//   target/release/crossrank eval --corpus …/corpus.jsonl --queries …/queries.jsonl --qrels …/qrels/test.tsv \
//        --candidates …/bm25_top100.tsv --run artifacts/eval/dl19-browser.run --min-relevance 2 --markdown
//
// Documents are `title + " " + text`, trimmed, as `crossrank eval` builds them; each call gets the
// model's default max_length, as the CLI's eval does for a GGUF that records one.

import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';

import { startServer } from '../tests/browser/server.mjs';
import { launchChromium } from '../tests/browser/harness.mjs';

const args = { data: '', candidates: 'bm25_top100.tsv', out: '', model: '/models/crossrank-minilm-l4.q8_0.gguf', threads: 2, depth: 100, wasmUrl: '' };
for (let i = 2; i < process.argv.length; i += 2) {
  const key = process.argv[i].replace(/^--/, '').replace(/-(\w)/g, (_, c) => c.toUpperCase());
  if (!(key in args)) throw new Error(`unknown argument ${process.argv[i]} (see the comment at the top)`);
  args[key] = typeof args[key] === 'number' ? Number(process.argv[i + 1]) : process.argv[i + 1];
}
if (!args.data || !args.out) throw new Error('--data DIR and --out FILE are required (see the comment at the top)');

const jsonLines = (path) => readFileSync(path, 'utf8').split('\n').filter(Boolean).map((line) => JSON.parse(line));
const queries = new Map(jsonLines(join(args.data, 'queries.jsonl')).map((q) => [q._id, q.text]));
const corpus = new Map(jsonLines(join(args.data, 'corpus.jsonl')).map((d) => [d._id, `${d.title ?? ''} ${d.text ?? ''}`.trim()]));
const candidates = new Map();
for (const line of readFileSync(join(args.data, args.candidates), 'utf8').split('\n').slice(1).filter(Boolean)) {
  const [query, doc, rank] = line.split('\t');
  if (!candidates.has(query)) candidates.set(query, []);
  candidates.get(query).push({ doc, rank: Number(rank) });
}
const work = [...candidates].map(([query, list]) => ({
  id: query,
  query: queries.get(query),
  ids: list.sort((a, b) => a.rank - b.rank).slice(0, args.depth).map((c) => c.doc),
}));

const server = await startServer();
const chromium = await launchChromium();
try {
  const page = await chromium.context.newPage();
  await page.goto(`${server.origin}/bench/browser/index.html`);
  const info = await page.evaluate(async ({ model, threads, wasmUrl }) => {
    const { Reranker } = await import('/www/src/index.js');
    window.reranker = await Reranker.create({ model, threads, cache: false, ...(wasmUrl ? { wasmUrl } : {}) });
    return window.reranker.info;
  }, args);
  console.error(`model ${args.model}: ${JSON.stringify(info)}; ${work.length} queries × ≤ ${args.depth}`);
  const lines = [];
  const start = performance.now();
  for (const { id, query, ids } of work) {
    const documents = ids.map((doc) => corpus.get(doc) ?? '');
    const ranked = await page.evaluate(([query, documents]) => window.reranker.rerank(query, documents), [query, documents]);
    ranked.forEach(({ index, logit }, rank) => lines.push(`${id} Q0 ${ids[index]} ${rank + 1} ${logit} crossrank-browser-${info.simd}`));
  }
  console.error(`${((performance.now() - start) / 1000).toFixed(1)} s`);
  mkdirSync(dirname(args.out), { recursive: true });
  writeFileSync(args.out, lines.join('\n') + '\n');
} finally {
  await chromium.close();
  await server.close();
}
