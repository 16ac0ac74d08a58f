// How a pool shares a call's documents among its workers (www/src/pool.js planChunks): plain
// Node, no browser; the pool's behaviour in a page is in pool.test.mjs.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { planChunks } from '../../www/src/pool.js';

const request = (query, lengths) => ({ query, documents: lengths.map((n, i) => `${i}:${'x'.repeat(n)}`) });
const sizes = (chunks) => chunks.map((chunk) => chunk.size);

test('chunks differ in size by at most one, larger first, longest documents first', () => {
  // 30 documents on 2 workers: 8 chunks, 4 4 4 4 4 4 3 3 (a fixed size of 4 left a last chunk of 2,
  // so one worker scored 16 documents and the other 14).
  const lengths = Array.from({ length: 30 }, (_, i) => (i * 37) % 101);
  const chunks = planChunks([request('q', lengths)], 2, 8);
  assert.deepEqual(sizes(chunks), [4, 4, 4, 4, 4, 4, 3, 3]);
  const order = chunks.flatMap((chunk) => chunk.requests[0].indices);
  assert.deepEqual([...order].sort((a, b) => a - b), lengths.map((_, i) => i), 'every document once');
  const chars = order.map((i) => lengths[i]);
  assert.deepEqual(chars, [...chars].sort((a, b) => b - a), 'longest first');
});

test('at most maxChunk documents per chunk; never an empty chunk; requests kept apart within a chunk', () => {
  assert.deepEqual(sizes(planChunks([request('q', Array(100).fill(5))], 2, 8)), [...Array(9).fill(8), ...Array(4).fill(7)]);
  assert.deepEqual(sizes(planChunks([request('q', [1, 2, 3])], 4, 8)), [1, 1, 1]);
  const chunks = planChunks([request('a', [9, 1]), request('b', [5])], 1, 8);
  assert.deepEqual(sizes(chunks), [1, 1, 1]);
  assert.deepEqual(chunks.map((chunk) => chunk.requests.map((part) => [part.from, part.query, part.indices])), [[[0, 'a', [0]]], [[1, 'b', [0]]], [[0, 'a', [1]]]]);
});
