// Generates the demo's git-ignored files:
//
//   node www/demo/make-corpus.mjs [corpus.jsonl[.gz]]   (from the repository root, or anywhere)
//
//   www/demo/data/corpus.json      the paragraphs to search: [{ id, title, text }]
//   www/demo/data/config.json      { model }: the model the page loads by default
//   www/demo/vendor/minisearch.js  MiniSearch's ESM build, so the page needs no CDN and no bundler
//
// By default the corpus is the 2,067 Wikipedia paragraphs of SQuAD v1.1 dev (CC BY-SA 4.0),
// committed in corpus/squad-dev-v1.1.jsonl.gz (corpus/README.md says where it comes from), so
// this needs nothing outside the repository. Pass a BEIR corpus.jsonl (plain or gzipped; one
// { _id, title, text } a line) to search another corpus instead.

import { copyFileSync, existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { gunzipSync } from 'node:zlib';

const DEMO = dirname(fileURLToPath(import.meta.url));
const REPO = join(DEMO, '..', '..');

const CORPUS = process.argv[2] ?? join(DEMO, 'corpus', 'squad-dev-v1.1.jsonl.gz');

// The page's default model: the shipped one (the only models/*.gguf), else the MiniLM-L-4 test
// model (paths from the repository root). The page can load another one with ?model=URL.
const SHIPPED = existsSync(join(REPO, 'models'))
  ? readdirSync(join(REPO, 'models')).filter((name) => name.endsWith('.gguf')).sort().map((name) => `models/${name}`)
  : [];
const MODEL_CANDIDATES = [...SHIPPED, 'artifacts/models/minilm-l4.q8_0.gguf'];

function writeCorpus() {
  if (!existsSync(CORPUS)) {
    throw new Error(`${CORPUS} not found: give the path of a BEIR corpus.jsonl (or .jsonl.gz) as the first argument`);
  }
  const raw = readFileSync(CORPUS);
  const documents = (CORPUS.endsWith('.gz') ? gunzipSync(raw) : raw)
    .toString('utf8')
    .split('\n')
    .filter((line) => line.trim() !== '')
    .map((line) => {
      // BEIR names the id _id; the committed corpus names it id.
      const { _id, id, title, text } = JSON.parse(line);
      return { id: String(_id ?? id), title: (title ?? '').trim(), text: (text ?? '').trim() };
    });
  const out = join(DEMO, 'data', 'corpus.json');
  mkdirSync(dirname(out), { recursive: true });
  writeFileSync(out, JSON.stringify(documents));
  console.log(`${relative(REPO, out)}: ${documents.length} documents from ${CORPUS}`);
}

function writeConfig() {
  const model = MODEL_CANDIDATES.find((path) => existsSync(join(REPO, path)));
  if (!model) {
    throw new Error(`no model found (looked for ${MODEL_CANDIDATES.join(', ')}); run ./build.sh models`);
  }
  // Relative to the page (www/demo/), so the demo works wherever the repository is served.
  const config = { model: `../../${model}` };
  const out = join(DEMO, 'data', 'config.json');
  writeFileSync(out, `${JSON.stringify(config, null, 2)}\n`);
  console.log(`${relative(REPO, out)}: model ${model}`);
}

function copyMiniSearch() {
  // MiniSearch is a dependency of the npm package in www/ (npm ci there installs it).
  const require = createRequire(join(REPO, 'www', 'package.json'));
  // (Its exports map hides package.json, so look along Node's resolution paths.)
  const packageDir = require.resolve.paths('minisearch')
    .map((dir) => join(dir, 'minisearch'))
    .find((dir) => existsSync(join(dir, 'package.json')));
  if (!packageDir) throw new Error('minisearch is not installed: run npm ci in www/');
  const { version } = JSON.parse(readFileSync(join(packageDir, 'package.json'), 'utf8'));
  const vendor = join(DEMO, 'vendor');
  mkdirSync(vendor, { recursive: true });
  // Without its sourceMappingURL line: the map is not copied.
  const source = readFileSync(join(packageDir, 'dist', 'es', 'index.js'), 'utf8').replace(/\n\/\/# sourceMappingURL=.*\s*$/, '\n');
  writeFileSync(join(vendor, 'minisearch.js'), `// MiniSearch ${version} (MIT, see minisearch.LICENSE.txt), copied by make-corpus.mjs\n${source}`);
  copyFileSync(join(packageDir, 'LICENSE.txt'), join(vendor, 'minisearch.LICENSE.txt'));
  console.log(`${relative(REPO, join(vendor, 'minisearch.js'))}: MiniSearch ${version}`);
}

writeCorpus();
writeConfig();
copyMiniSearch();
