// The default model's npm package, crossrank-minilm-l4 (models/npm/), as Node sees it: `npm pack`
// ships the GGUF (copied in from models/ by its prepack), card, licence and entry points and nothing
// else; installed from that tarball into a fresh project, a Node script imports `modelUrl` by the
// package's name and gets a file: URL of the installed GGUF, whose bytes are the shipped file's and
// have the exported sha256; a script reranks with it on crossrank's Node runtime; the types compile
// with crossrank's `Reranker.create`. (The Vite build's test reranks with it in Chromium.)
//
//   node --test tests/node/model-package.test.mjs

import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { fileURLToPath, pathToFileURL } from 'node:url';

const ROOT = new URL('../../', import.meta.url);
const PACKAGE = fileURLToPath(new URL('models/npm/', ROOT));
const GGUF = 'crossrank-minilm-l4.q8_0.gguf';
const SHIPPED = readFileSync(new URL(`models/${GGUF}`, ROOT));
const RECORDED_SHA256 = readFileSync(new URL(`models/${GGUF}.sha256`, ROOT), 'utf8').split(/\s+/)[0];
const TRAINED_LENGTH = JSON.parse(readFileSync(new URL('tests/fixtures/default_model.json', ROOT), 'utf8')).max_length;

const npm = (args, cwd) => execFileSync('npm', args, { cwd, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
const sha256Hex = (bytes) => createHash('sha256').update(bytes).digest('hex');

/** A fresh project with the packed model package (and crossrank, linked from www/) installed. */
let project;

before(() => {
  project = mkdtempSync(join(tmpdir(), 'crossrank-model-package-'));
  const [{ filename }] = JSON.parse(npm(['pack', '--json', '--pack-destination', project], PACKAGE));
  writeFileSync(join(project, 'package.json'), JSON.stringify({
    name: 'model-package-check',
    private: true,
    type: 'module',
    dependencies: { crossrank: pathToFileURL(fileURLToPath(new URL('www/', ROOT))).href, 'crossrank-minilm-l4': `file:${filename}` },
  }));
  npm(['install', '--offline', '--no-audit', '--no-fund', '--no-package-lock'], project);
});

after(() => rmSync(project, { recursive: true, force: true }));

test('npm pack ships the GGUF, its card, licence, README and entry points only', () => {
  const [pack] = JSON.parse(npm(['pack', '--dry-run', '--json'], PACKAGE));
  const files = pack.files.map((file) => file.path).sort();
  assert.deepEqual(files, ['LICENSE', 'MODEL_CARD.md', 'README.md', GGUF, 'index.d.ts', 'index.js', 'package.json']);
  assert.equal(pack.files.find((file) => file.path === GGUF).size, SHIPPED.length);

  const manifest = JSON.parse(readFileSync(join(PACKAGE, 'package.json'), 'utf8'));
  assert.equal(manifest.name, 'crossrank-minilm-l4');
  assert.equal(manifest.type, 'module');
  assert.equal(manifest.sideEffects, false);
  assert.equal(manifest.license, 'CC-BY-SA-4.0', 'the weights adapt SQuAD v1.1 (CC BY-SA 4.0): ShareAlike');
  assert.deepEqual(Object.keys(manifest.dependencies ?? {}), [], 'the package has no runtime dependencies');
  assert.deepEqual(Object.keys(manifest.exports['.']), ['types', 'default'], 'types first');
  const targets = Object.values(manifest.exports).flatMap((target) => (typeof target === 'string' ? [target] : Object.values(target)));
  for (const target of targets) assert.ok(files.includes(target.replace(/^\.\//, '')), `export ${target} is not in the package`);

  const licence = readFileSync(join(PACKAGE, 'LICENSE'), 'utf8');
  assert.match(licence, /Attribution-ShareAlike 4\.0 International Public License/);
  assert.match(licence, /Section 5 -- Disclaimer of Warranties and Limitation of Liability\./);
  assert.match(licence, /Rajpurkar, Jian Zhang, Konstantin Lopyrev\s+and Percy Liang/);
  assert.match(licence, /all-MiniLM-L6-v2[\s\S]*Apache License\s+Version 2\.0/);
});

test('the packed GGUF is the shipped file, with the recorded sha256', () => {
  const installed = readFileSync(join(project, 'node_modules', 'crossrank-minilm-l4', GGUF));
  assert.equal(sha256Hex(installed), RECORDED_SHA256);
  assert.ok(installed.equals(SHIPPED), `the installed GGUF differs from models/${GGUF}`);
});

test('a Node script imports modelUrl by name: a file: URL of the installed GGUF, with the exported sha256', () => {
  writeFileSync(join(project, 'check.mjs'), [
    "import { maxLength, modelUrl, sha256 } from 'crossrank-minilm-l4';",
    "const file = import.meta.resolve('crossrank-minilm-l4/crossrank-minilm-l4.q8_0.gguf');",
    'console.log(JSON.stringify({ modelUrl: modelUrl.href, isUrl: modelUrl instanceof URL, sha256, maxLength, file }));',
  ].join('\n'));
  const run = spawnSync(process.execPath, ['check.mjs'], { cwd: project, encoding: 'utf8' });
  assert.equal(run.status, 0, run.stderr);
  const exported = JSON.parse(run.stdout);
  const installed = pathToFileURL(join(project, 'node_modules', 'crossrank-minilm-l4', GGUF)).href;
  assert.deepEqual(exported, { modelUrl: installed, isUrl: true, sha256: RECORDED_SHA256, maxLength: TRAINED_LENGTH, file: installed });
  const bytes = readFileSync(new URL(exported.modelUrl));
  assert.equal(sha256Hex(bytes), exported.sha256);
  assert.ok(bytes.equals(SHIPPED));
});

// The README's first example, in Node: both packages installed, the model by its exported URL and
// sha256, a query of the default model's fixture (20 candidates) scored within the Q8_0 tolerance
// the browser tests use for this model (0.15) of PyTorch, in PyTorch's order at the top.
test('a Node script reranks with the model from its package (the README\'s first example, in Node)', () => {
  const { query, documents, logits } = JSON.parse(readFileSync(new URL('tests/fixtures/default_model.json', ROOT), 'utf8')).ranking[1];
  writeFileSync(join(project, 'rerank.mjs'), [
    "import { Reranker } from 'crossrank';",
    "import { modelUrl, sha256 } from 'crossrank-minilm-l4';",
    'const reranker = await Reranker.create({ model: modelUrl, sha256 });',
    `const results = await reranker.rerank(${JSON.stringify(query)}, ${JSON.stringify(documents)});`,
    'console.log(JSON.stringify({ results, info: reranker.info }));',
    'reranker.dispose();',
  ].join('\n'));
  const run = spawnSync(process.execPath, ['rerank.mjs'], { cwd: project, encoding: 'utf8', timeout: 120_000 });
  assert.equal(run.status, 0, run.stderr);
  const { results, info } = JSON.parse(run.stdout);
  assert.equal(info.precision, 'q8_0');
  assert.equal(results.length, documents.length);
  for (const { index, logit } of results) {
    assert.ok(Math.abs(logit - logits[index]) <= 0.15, `candidate ${index}: logit ${logit}, PyTorch ${logits[index]}`);
  }
  const expected = logits.map((logit, index) => ({ logit, index })).sort((a, b) => b.logit - a.logit).slice(0, 3).map((r) => r.index);
  assert.deepEqual(results.slice(0, 3).map((r) => r.index), expected);
});

test('its types compile with crossrank\'s Reranker.create (tsc --strict)', () => {
  writeFileSync(join(project, 'usage.ts'), [
    "import { Reranker } from 'crossrank';",
    "import { maxLength, modelUrl, sha256 } from 'crossrank-minilm-l4';",
    'export async function top(query: string, documents: string[]): Promise<number | undefined> {',
    '  const reranker = await Reranker.create({ model: modelUrl, sha256 });',
    '  const [best] = await reranker.rerank(query, documents, { maxLength });',
    '  reranker.dispose();',
    '  return best?.index;',
    '}',
    '// @ts-expect-error: modelUrl is a URL, not a string',
    'export const path: string = modelUrl;',
  ].join('\n'));
  writeFileSync(join(project, 'tsconfig.json'), JSON.stringify({
    compilerOptions: { strict: true, noEmit: true, target: 'es2022', module: 'esnext', moduleResolution: 'bundler', lib: ['es2022', 'dom'], skipLibCheck: false },
    files: ['usage.ts'],
  }));
  const tsc = fileURLToPath(new URL('www/node_modules/typescript/bin/tsc', ROOT));
  const run = spawnSync(process.execPath, [tsc, '-p', join(project, 'tsconfig.json')], { encoding: 'utf8' });
  assert.equal(run.status, 0, `tsc failed:\n${run.stdout}${run.stderr}`);
});
