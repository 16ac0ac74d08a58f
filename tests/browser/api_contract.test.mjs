// The package's contract with Rust and with its types, checked without a browser:
// - the error codes: Rust's (src/error.rs, generated into www/src/contract.js; tests/contract.rs
//   fails while that file is stale), protocol.js's ErrorCode and index.d.ts (its union and its
//   declared ErrorCode) name the same codes, so none can drift;
// - the options: index.d.ts's RerankOptions, WindowOptions and Fusion declare exactly the engine's
//   options (src/options.rs, generated into contract.js: names, types, strings) and the package's
//   own, and the package accepts exactly those names;
// - index.d.ts and langchain.d.ts compile under `tsc --strict`, with tests/types/ (the README's calls
//   compile, misuse does not).
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';

import { ENGINE_OPTIONS, ENGINE_OPTION_NAMES, RUST_ERROR_CODES } from '../../www/src/contract.js';
import { Reranker } from '../../www/src/index.js';
import { ErrorCode } from '../../www/src/protocol.js';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const read = (path) => readFileSync(join(ROOT, path), 'utf8');
/** Codes that only the package raises (loading, the worker, the queue). */
const JS_ONLY = ['fetch', 'integrity', 'not_loaded', 'aborted', 'worker_crashed', 'worker_start', 'webgpu_unavailable', 'internal'];
/** Options of rerank that the package handles itself; the others go to Rust. */
const JS_ONLY_OPTIONS = ['returnDocuments', 'signal', 'onProgress'];
const sorted = (list) => [...list].sort();

/** index.d.ts without comments (they may hold quotes, braces and semicolons). */
const declarations = () => read('www/index.d.ts').replace(/\/\*[\s\S]*?\*\//g, '').replace(/\/\/.*$/gm, '');

function declaredCodes() {
  const types = declarations();
  const union = types.slice(types.indexOf('export type ErrorCodeValue'), types.indexOf(';', types.indexOf('export type ErrorCodeValue')));
  const unionCodes = [...union.matchAll(/\|\s*'(\w+)'/g)].map((m) => m[1]);
  const constBlock = types.slice(types.indexOf('export declare const ErrorCode'), types.indexOf('}>;', types.indexOf('export declare const ErrorCode')));
  const constEntries = [...constBlock.matchAll(/(\w+): '(\w+)';/g)].map((m) => [m[1], m[2]]);
  return { unionCodes, constEntries };
}

test('Rust, protocol.js and index.d.ts name the same error codes', () => {
  const inProtocol = Object.values(ErrorCode);
  assert.ok(Object.keys(RUST_ERROR_CODES).length >= 7, 'contract.js lists Rust\'s codes');
  assert.deepEqual({ ...ErrorCode }, { ...RUST_ERROR_CODES, ...Object.fromEntries(JS_ONLY.map((code) => [code.toUpperCase(), code])) },
    'protocol.js ErrorCode = the wasm-reachable Rust codes (contract.js) + the package\'s own');
  const { unionCodes, constEntries } = declaredCodes();
  assert.deepEqual(sorted(unionCodes), sorted(inProtocol), 'index.d.ts ErrorCodeValue lists every code');
  assert.deepEqual(Object.fromEntries(constEntries), { ...ErrorCode }, 'index.d.ts declares ErrorCode exactly as protocol.js defines it');
});

/** The body of `export interface <name> { … }` or `export type <name> = …;`, as `name: type` pairs. */
function declaredFields(name) {
  const types = declarations();
  const start = types.search(new RegExp(`export (interface ${name} \\{|type ${name} =)`));
  assert.ok(start >= 0, `index.d.ts declares no ${name}`);
  let depth = 0;
  let end = start;
  for (; end < types.length; end += 1) {
    if (types[end] === '{') depth += 1;
    if (types[end] === '}' && --depth === 0 && types.startsWith('interface', start + 7)) break;
    if (types[end] === ';' && depth === 0) break;
  }
  const body = types.slice(types.indexOf(types.startsWith('interface', start + 7) ? '{' : '=', start) + 1, end);
  // `name?: type;` or `name: type }` at any depth of object literals (Fusion's variants).
  return [...body.matchAll(/(\w+)\??:\s*([^;}]+?)\s*[;}]/g)].map((m) => ({ name: m[1], type: m[2].trim() }));
}

/** The JS types a TypeScript type admits, as contract.js names them. */
function jsTypes(type) {
  return sorted(new Set(type.split('|').map((part) => part.trim()).filter(Boolean).map((part) => {
    if (part === 'number' || part === 'boolean' || part === 'string') return part;
    return part.startsWith("'") ? 'string' : 'object';
  })));
}

const stringValues = (type) => [...type.matchAll(/'(\w+)'/g)].map((m) => m[1]);

test('index.d.ts declares exactly the options Rust reads, with their types and strings', () => {
  const rerank = declaredFields('RerankOptions');
  assert.deepEqual(sorted(rerank.map((field) => field.name)), sorted([...ENGINE_OPTION_NAMES, ...JS_ONLY_OPTIONS]),
    'RerankOptions = the engine\'s options (contract.js) + the package\'s own');
  // An object option's fields: windows.* in WindowOptions, fusion.* across Fusion's variants.
  const objects = { windows: declaredFields('WindowOptions'), fusion: declaredFields('Fusion') };
  for (const [name, spec] of Object.entries(ENGINE_OPTIONS)) {
    const [parent, field] = name.includes('.') ? name.split('.') : [null, name];
    const declared = (parent ? objects[parent] : rerank).filter((f) => f.name === field);
    assert.ok(declared.length > 0, `index.d.ts does not declare ${name}`);
    const type = declared.map((f) => f.type).join(' | ').replace(/\bWindowOptions\b|\bFusion\b/g, 'object');
    assert.deepEqual(jsTypes(type), sorted(spec.types), `${name}: index.d.ts says ${type}`);
    if (spec.values) assert.deepEqual(sorted(new Set(stringValues(type))), sorted(spec.values), `${name}: index.d.ts says ${type}`);
  }
  for (const [parent, fields] of Object.entries(objects)) {
    for (const { name } of fields) assert.ok(`${parent}.${name}` in ENGINE_OPTIONS, `index.d.ts declares ${parent}.${name}, which Rust does not read`);
  }
});

test('the package accepts exactly the options index.d.ts declares (batchSize too)', async () => {
  const reranker = new Reranker({ threads: 1 });
  const refusal = await reranker.rerank('q', ['a'], { colour: 'blue' }).catch((error) => error);
  assert.equal(refusal.code, 'invalid_input');
  const listed = refusal.message.match(/\(options: (.*)\)$/)[1].split(', ');
  assert.deepEqual(listed, declaredFields('RerankOptions').map((field) => field.name), 'the known names, in index.d.ts\'s order');
  // A known name passes the package's check and reaches the queue, which has no model.
  for (const name of listed) {
    const error = await reranker.rerank('q', ['a'], { [name]: undefined }).catch((e) => e);
    assert.equal(error.code, 'not_loaded', `${name}: ${error.message}`);
  }
  const snake = await reranker.rerank('q', ['a'], { batch_size: 4 }).catch((error) => error);
  assert.match(snake.message, /^unknown option "batch_size": did you mean "batchSize"\?/);
  reranker.dispose();
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
