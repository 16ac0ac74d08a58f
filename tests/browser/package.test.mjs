// What `npm publish` would ship: `npm pack --dry-run` lists exactly the package's runtime files
// (the page modules: the facade, its argument checks, queue, pool and worker slot; the worker's:
// message loop, backend, WebGPU (the device choice, the self-check, the test-only hooks, the WGSL
// engine), fetch, cache, Hub and sha256; the protocol; the wasm and its glue, the
// types, README and LICENSE), no tests, demo or sources of the build, and a size worth stating.
//
//   node --test tests/browser/package.test.mjs   (needs ./build.sh wasm)

import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';

const WWW = fileURLToPath(new URL('../../www/', import.meta.url));

test('npm pack ships the runtime files only, with LICENSE and README', () => {
  const [pack] = JSON.parse(execFileSync('npm', ['pack', '--dry-run', '--json', '--ignore-scripts'], { cwd: WWW, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] }));
  const files = pack.files.map((file) => file.path).sort();
  assert.deepEqual(files, [
    'LICENSE',
    'README.md',
    'index.d.ts',
    'langchain.d.ts',
    'package.json',
    'pkg/crossrank_wasm.d.ts',
    'pkg/crossrank_wasm.js',
    'pkg/crossrank_wasm_bg.wasm',
    'pkg/crossrank_wasm_bg.wasm.d.ts',
    'pkg/crossrank_wasm_relaxed_bg.wasm',
    'src/arguments.js',
    'src/cache.js',
    'src/contract.js',
    'src/fetch.js',
    'src/gpu.js',
    'src/hub.js',
    'src/index.js',
    'src/integrity.js',
    'src/langchain.js',
    'src/node/files.js',
    'src/node/threads.js',
    'src/node/worker.js',
    'src/pool.js',
    'src/progress.js',
    'src/protocol.js',
    'src/queue.js',
    'src/selfcheck.js',
    'src/slot.js',
    'src/spawn.js',
    'src/testhooks.js',
    'src/wasm.js',
    'src/webgpu/device.js',
    'src/webgpu/encoder.js',
    'src/webgpu/index.js',
    'src/webgpu/kernels.js',
    'src/webgpu/shaders.js',
    'src/worker.js',
  ]);
  // Every export points at a shipped file.
  const manifest = JSON.parse(readFileSync(`${WWW}package.json`, 'utf8'));
  const targets = Object.values(manifest.exports).flatMap((target) => (typeof target === 'string' ? [target] : Object.values(target)));
  for (const target of targets) assert.ok(files.includes(target.replace(/^\.\//, '')), `export ${target} is not in the package`);
  assert.equal(manifest.license, 'Apache-2.0');
  assert.match(readFileSync(`${WWW}LICENSE`, 'utf8'), /Apache License\s+Version 2\.0/);
  assert.deepEqual(Object.keys(manifest.dependencies ?? {}), [], 'the package has no runtime dependencies');
  assert.equal(manifest.peerDependenciesMeta['@langchain/core'].optional, true);
  // The two wasm builds are most of it: ~1.25 MB packed, ~3.8 MB unpacked each (a browser fetches
  // only one; BENCHMARKS.md tracks the modules).
  console.log(`# npm pack: ${pack.size} bytes packed, ${pack.unpackedSize} unpacked, ${files.length} files`);
  assert.ok(pack.size < 3_000_000, `package is ${pack.size} bytes packed`);
});
