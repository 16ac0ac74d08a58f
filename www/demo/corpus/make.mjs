// Makes squad-dev-v1.1.jsonl.gz, the demo's committed corpus, from SQuAD v1.1 dev:
//
//   node www/demo/corpus/make.mjs [path/to/dev-v1.1.jsonl.gz]
//
// The input (default ../shared/data/squad/dev-v1.1.jsonl.gz beside the repository; see its
// PROVENANCE.md) has one paragraph a line: { title, para_idx, context, qas }. The output has one
// paragraph a line, in the same order, without the questions:
//   { "id": "<title>-<para_idx>", "title": "<title, underscores as spaces>", "text": "<context>" }
// The texts are unchanged. gzip level 9, so the same input always gives the same bytes.
// Only the maintainers need this script; www/demo/make-corpus.mjs reads its output.

import { readFileSync, writeFileSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { constants, gunzipSync, gzipSync } from 'node:zlib';

const HERE = dirname(fileURLToPath(import.meta.url));
const REPO = join(HERE, '..', '..', '..');
const INPUT = process.argv[2] ?? join(REPO, '..', 'shared', 'data', 'squad', 'dev-v1.1.jsonl.gz');
const OUTPUT = join(HERE, 'squad-dev-v1.1.jsonl.gz');

const raw = readFileSync(INPUT);
const source = INPUT.endsWith('.gz') ? gunzipSync(raw).toString('utf8') : raw.toString('utf8');
const ids = new Set();
const lines = source
  .split('\n')
  .filter((line) => line.trim() !== '')
  .map((line) => {
    const { title, para_idx: paraIdx, context } = JSON.parse(line);
    if (typeof title !== 'string' || !Number.isInteger(paraIdx) || typeof context !== 'string') {
      throw new Error(`${INPUT}: not a SQuAD paragraph line: ${line.slice(0, 80)}…`);
    }
    const id = `${title}-${paraIdx}`;
    if (ids.has(id)) throw new Error(`${INPUT}: ${id} appears twice`);
    ids.add(id);
    return JSON.stringify({ id, title: title.replaceAll('_', ' '), text: context });
  });
writeFileSync(OUTPUT, gzipSync(`${lines.join('\n')}\n`, { level: constants.Z_BEST_COMPRESSION }));
console.log(`${relative(REPO, OUTPUT)}: ${lines.length} paragraphs from ${INPUT}`);
