// The worker_threads entry (Node, Deno, Bun): worker.js's message loop, with the thread's parentPort standing
// in for the Web Worker's `self` (Node's MessagePort has the same addEventListener('message') and
// postMessage(message, transfer)). Started by node/threads.js; a browser never loads it.

import { parentPort } from 'node:worker_threads';

globalThis.self = parentPort;
await import('../worker.js');
