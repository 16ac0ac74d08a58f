// Deno and Bun run the package as Node does (worker_threads, node:fs): runtime-check.mjs under each,
// checked here against the PyTorch fixture. Both runtimes are devDependencies of www/ (the npm
// packages `deno` and `bun`, whose optional dependencies carry the binaries); CROSSRANK_DENO and
// CROSSRANK_BUN name other binaries.
//
//   cd www && npm run test:node      (needs ./build.sh wasm models, npm ci in www/)

import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { test } from 'node:test';

import { MINILM_CASES, assertLogit, isBlank, path } from './helpers.mjs';

const RUNTIMES = [
  { name: 'Deno', binary: process.env.CROSSRANK_DENO ?? path('www/node_modules/.bin/deno'), args: ['run', '--allow-read'] },
  { name: 'Bun', binary: process.env.CROSSRANK_BUN ?? path('www/node_modules/.bin/bun'), args: [] },
];

for (const { name, binary, args } of RUNTIMES) {
  test(`${name}: parity, a pool of two, abort mid-call, a missing file, and exit without dispose`, { timeout: 180_000 }, () => {
    assert.ok(existsSync(binary), `${binary} is missing: run npm ci in www/ (${name.toLowerCase()} is a devDependency), or name one in CROSSRANK_${name.toUpperCase()}`);
    const version = execFileSync(binary, ['--version'], { encoding: 'utf8' }).trim();
    const run = spawnSync(binary, [...args, path('tests/node/runtime-check.mjs')], { cwd: path('www'), encoding: 'utf8', timeout: 150_000 });
    // A crash at exit (a signal) fails here with what the runtime printed, not with "Command failed".
    assert.ok(run.status === 0, `${name} exited with ${run.signal ?? `status ${run.status}`}:\n${run.stderr.slice(-2000)}`);
    const output = run.stdout;
    const got = JSON.parse(output.trim().split('\n').at(-1));
    const label = `${name} ${version.split('\n')[0]}`;

    assert.equal(got.threads, 2);
    assert.equal(got.info.numLayers, 4);
    // Both engines validate the relaxed-SIMD probe (V8 in Deno, JavaScriptCore in Bun).
    assert.match(got.info.simd, /^(relaxed-simd|simd128)$/);
    assert.equal(got.q8Info.simd, got.info.simd);
    // 'auto' is wasm in both, each with its reason: Bun has no WebGPU; Deno has, but its worker
    // threads crash the process at exit once they have asked for an adapter (Deno 2.9.6).
    assert.equal(got.info.device, 'wasm');
    assert.match(got.info.fallback, name === 'Deno' ? /^Deno: device "auto" does not open WebGPU in a worker thread/ : /^this runtime has no WebGPU/);
    MINILM_CASES.forEach((c, i) => {
      assertLogit(got.single[i], c.logit, 1e-4, `${label} ${c.name}`, isBlank(c.passage));
      assertLogit(got.pooled[i], c.logit, 1e-4, `${label} ${c.name} (rerankMany over two threads)`, isBlank(c.passage));
      assertLogit(got.quantised[i], c.logit, 0.05, `${label} Q8_0 ${c.name}`, isBlank(c.passage));
    });

    assert.deepEqual(got.aborted, { ok: false, name: 'RerankerError', code: 'aborted', message: 'the operation was aborted' });
    assert.ok(got.rejectedAfterMs < 100, `${label}: abort took ${got.rejectedAfterMs} ms to reject`);
    assert.equal(got.next.ok, true, got.next.message);
    assertLogit(got.next.value[0], MINILM_CASES.find((c) => c.name === 'long_passage').logit, 1e-4, `${label}: the call after the abort`);

    const missing = path('artifacts/models/none.gguf');
    assert.deepEqual(got.missing, {
      ok: false, name: 'RerankerError', code: 'fetch',
      message: `could not read ${missing}: no such file (a relative path is resolved against the current directory)`,
    });
  });
}
