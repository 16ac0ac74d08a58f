// Fills this package with the files it ships from models/: the GGUF and its card. They are copied,
// not committed twice (21 MB) nor symlinked (npm pack skips symlinks), and the copies are
// git-ignored. npm runs this before `npm pack` and `npm publish`; `./build.sh model-package` runs it
// too. It fails when the model's sha256 is not the one index.js exports and models/ records, so a
// retrained model cannot ship with a stale digest.
import { createHash } from 'node:crypto';
import { copyFileSync, readFileSync } from 'node:fs';
import { basename } from 'node:path';
import { fileURLToPath } from 'node:url';

import { modelUrl, sha256 } from './index.js';

const MODELS = new URL('../', import.meta.url);
const name = basename(fileURLToPath(modelUrl));
const source = new URL(name, MODELS);

const actual = createHash('sha256').update(readFileSync(source)).digest('hex');
const recorded = readFileSync(new URL(`${name}.sha256`, MODELS), 'utf8').split(/\s+/)[0];
if (actual !== recorded || actual !== sha256) {
  console.error(`models/${name} has sha256 ${actual}; models/${name}.sha256 records ${recorded} and models/npm/index.js exports ${sha256}: update them together`);
  process.exit(1);
}
copyFileSync(source, modelUrl);
copyFileSync(new URL('MODEL_CARD.md', MODELS), new URL('MODEL_CARD.md', import.meta.url));
