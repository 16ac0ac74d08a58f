// The package's contract with Rust and with its types, checked without a browser:
// - the error codes: Rust's enum (src/error.rs), protocol.js's ErrorCode and index.d.ts (its union
//   and its declared ErrorCode) name the same codes, so none can drift;
// - index.d.ts and langchain.d.ts compile under `tsc --strict`, with tests/types/ (the README's calls
//   compile, misuse does not).
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';

import { ErrorCode } from '../../www/src/protocol.js';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const read = (path) => readFileSync(join(ROOT, path), 'utf8');
/** Codes that only the native build raises: the wasm build has no filesystem (src/local.rs). */
const NATIVE_ONLY = ['io'];
/** Codes that only the package raises (loading, the worker, the queue). */
const JS_ONLY = ['fetch', 'integrity', 'not_loaded', 'aborted', 'worker_crashed', 'internal'];

function rustCodes() {
  const source = read('src/error.rs');
  const body = source.slice(source.indexOf('pub fn code(&self)'));
  const codes = [...body.slice(0, body.indexOf('\n    }\n')).matchAll(/Error::\w+[^=]*=> "(\w+)"/g)].map((m) => m[1]);
  assert.ok(codes.length >= 8, `found only ${codes} in src/error.rs`);
  return codes;
}

function declaredCodes() {
  // Without comments (they may hold quotes and semicolons).
  const types = read('www/index.d.ts').replace(/\/\*[\s\S]*?\*\//g, '').replace(/\/\/.*$/gm, '');
  const union = types.slice(types.indexOf('export type ErrorCodeValue'), types.indexOf(';', types.indexOf('export type ErrorCodeValue')));
  const unionCodes = [...union.matchAll(/\|\s*'(\w+)'/g)].map((m) => m[1]);
  const constBlock = types.slice(types.indexOf('export declare const ErrorCode'), types.indexOf('}>;', types.indexOf('export declare const ErrorCode')));
  const constEntries = [...constBlock.matchAll(/(\w+): '(\w+)';/g)].map((m) => [m[1], m[2]]);
  return { unionCodes, constEntries };
}

test('Rust, protocol.js and index.d.ts name the same error codes', () => {
  const sorted = (list) => [...list].sort();
  const fromRust = rustCodes().filter((code) => !NATIVE_ONLY.includes(code));
  const inProtocol = Object.values(ErrorCode);
  assert.deepEqual(sorted(inProtocol), sorted([...fromRust, ...JS_ONLY]), 'protocol.js ErrorCode = the wasm-reachable Rust codes + the package\'s own');
  const { unionCodes, constEntries } = declaredCodes();
  assert.deepEqual(sorted(unionCodes), sorted(inProtocol), 'index.d.ts ErrorCodeValue lists every code');
  assert.deepEqual(Object.fromEntries(constEntries), { ...ErrorCode }, 'index.d.ts declares ErrorCode exactly as protocol.js defines it');
});

test('index.d.ts and langchain.d.ts type-check, and so do the README calls (tsc --strict)', () => {
  const tsc = join(ROOT, 'www', 'node_modules', '.bin', 'tsc');
  // A throwaway tsconfig: @langchain/* (www's devDependencies) resolve from www/node_modules also
  // for tests/types/, which has no node_modules of its own.
  const config = {
    compilerOptions: {
      noEmit: true, strict: true, target: 'es2022', module: 'es2022', moduleResolution: 'bundler', lib: ['es2022', 'dom'],
      skipLibCheck: true, baseUrl: ROOT, paths: { '@langchain/*': ['www/node_modules/@langchain/*'] },
    },
    files: ['www/index.d.ts', 'www/langchain.d.ts', 'tests/types/usage.ts', 'tests/types/langchain.ts'].map((file) => join(ROOT, file)),
  };
  const dir = mkdtempSync(join(tmpdir(), 'crossrank-tsc-'));
  writeFileSync(join(dir, 'tsconfig.json'), JSON.stringify(config));
  try {
    const run = spawnSync(tsc, ['-p', join(dir, 'tsconfig.json')], { encoding: 'utf8' });
    assert.equal(run.status, 0, `tsc failed:\n${run.stdout}${run.stderr}`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
