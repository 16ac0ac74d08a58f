// How a pool shares a call's documents among its workers (www/src/pool.js planChunks): plain
// Node, no browser; the pool's behaviour in a page is in pool.test.mjs.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { planChunks } from '../../www/src/pool.js';

const request = (query, lengths) => ({ query, documents: lengths.map((n, i) => `${i}:${'x'.repeat(n)}`) });
const sizes = (chunks) => chunks.map((chunk) => chunk.size);

test('several workers: guided chunks, each half a worker\'s share of what is left, longest documents first', () => {
  // 30 documents on 2 workers: 8 6 4 3 3 2 1 1 1 1. Even sizes (4 4 4 4 4 4 3 3) left one worker
  // scoring its last chunk of 3 while the other had nothing left to take.
  const lengths = Array.from({ length: 30 }, (_, i) => (i * 37) % 101);
  const chunks = planChunks([request('q', lengths)], 2, 8);
  assert.deepEqual(sizes(chunks), [8, 6, 4, 3, 3, 2, 1, 1, 1, 1]);
  const order = chunks.flatMap((chunk) => chunk.requests[0].indices);
  assert.deepEqual([...order].sort((a, b) => a - b), lengths.map((_, i) => i), 'every document once');
  const chars = order.map((i) => lengths[i]);
  assert.deepEqual(chars, [...chars].sort((a, b) => b - a), 'longest first');
  // Capped at maxChunk, never growing, ending in single documents.
  for (const [n, threads] of [[100, 2], [30, 4], [7, 3], [500, 8]]) {
    const got = sizes(planChunks([request('q', Array(n).fill(5))], threads, 8));
    assert.equal(got.reduce((a, b) => a + b, 0), n, `${n} on ${threads}`);
    assert.ok(got.every((size, i) => size >= 1 && size <= 8 && (i === 0 || size <= got[i - 1])), `${n} on ${threads}: ${got}`);
    assert.equal(got.at(-1), 1, `${n} on ${threads}: ${got}`);
  }
});

test('one worker: at least four chunks of sizes that differ by at most one, at most maxChunk each', () => {
  assert.deepEqual(sizes(planChunks([request('q', Array(30).fill(5))], 1, 8)), [8, 8, 7, 7]);
  assert.deepEqual(sizes(planChunks([request('q', Array(100).fill(5))], 1, 8)), [...Array(9).fill(8), ...Array(4).fill(7)]);
});

test('never an empty chunk; requests kept apart within a chunk', () => {
  assert.deepEqual(sizes(planChunks([request('q', [1, 2, 3])], 4, 8)), [1, 1, 1]);
  const chunks = planChunks([request('a', [9, 1]), request('b', [5])], 1, 8);
  assert.deepEqual(sizes(chunks), [1, 1, 1]);
  assert.deepEqual(chunks.map((chunk) => chunk.requests.map((part) => [part.from, part.query, part.indices])), [[[0, 'a', [0]]], [[1, 'b', [0]]], [[0, 'a', [1]]]]);
});
