// Every code block of README.md and www/README.md runs as written, or says why not (issue 33: the
// README's `fusion: { weighted: 0.5 }` had stopped working and nothing noticed).
//
// A fenced ```js / ```ts / ```sh block is run according to the HTML comment on the line before
// its fence (blank lines between are allowed):
//
//   <!-- readme-test: browser -->            (the default for js/ts) in Chromium, against the package
//                                            served by the test server
//   <!-- readme-test: node -->               in Node, as an ES module
//   <!-- readme-test: sh -->                 with bash, in a fresh directory, `crossrank` being
//                                            target/release/crossrank
//   <!-- readme-test: skip (why not) -->     not run; the reason is required
//
// Any of the first three may add `, expect: EXPRESSION`: JS evaluated after the block, in its
// scope (its top-level names; `stdout` and `stderr` for sh), that must be true. On top of that,
// every result list a JS block leaves in a top-level name (`[{ index, score, logit }]`, or a list
// of those) must have the documented shape and order; a JS block must leave at least one thing so
// checked, or an `expect`. An unmarked sh block fails: shell commands are run only when marked.
//
// A block's bare imports are mapped by IMPORTS (add a package's entry point there), and the names
// an example takes from its surroundings (`query`, `documents`, `reranker`, …) by PRELUDE.

import assert from 'node:assert/strict';
import { execFile, execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, symlinkSync, mkdirSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { promisify } from 'node:util';

import { ROOT, useBrowser } from './harness.mjs';

const REPO = fileURLToPath(ROOT);
const READMES = ['README.md', 'www/README.md'];
const CLI = join(REPO, 'target/release/crossrank');

/** Bare import specifiers of the examples → files in this repository. */
export const IMPORTS = {
  crossrank: 'www/src/index.js',
  'crossrank/langchain': 'www/src/langchain.js',
  // Its GGUF is copied in by the package's prepack (run below), as `npm pack` would.
  'crossrank-minilm-l4': 'models/npm/index.js',
};

/**
 * Hugging Face ids the examples load → a local folder in the Hub's layout that stands in for it
 * (the Hub cannot be reached from the tests). Requests to https://huggingface.co are answered from
 * here, in the page and in its workers; any other id is a 404, as on the Hub.
 */
const HUB_STAND_INS = {
  'cross-encoder/ms-marco-MiniLM-L-6-v2': 'tests/models/minilm-l4',
  'cross-encoder/ms-marco-MiniLM-L-4-v2': 'tests/models/minilm-l4',
};

/** Paths the sh examples name that stand for the reader's own files → the repository's fixtures. */
const SH_FILES = {
  'path/to/hf-cross-encoder': 'tests/models/minilm-l4',
};

/**
 * What an example takes from its surroundings, defined for it only when it uses the name and does
 * not declare it, in the browser and in Node alike.
 */
const PRELUDE = {
  query: `'what causes scurvy?'`,
  documents: `['Scurvy is caused by a lack of vitamin C.', 'Paris is the capital of France.', 'Vitamin C is found in citrus fruit.']`,
  docsA: `['Scurvy is caused by a lack of vitamin C.', 'Paris is in France.']`,
  docsB: `['Oily fish and egg yolks contain vitamin D.', 'The Eiffel Tower is in Paris.']`,
  onProgress: `(progress) => {}`,
  signal: `new AbortController().signal`,
  bar: `{ value: 0 }`,
  reranker: `await PreludeReranker.create({ model: '/models/crossrank-minilm-l4.q8_0.gguf', cache: false })`,
};

/** The code blocks of `markdown`: `{ file, line, lang, code, marker }` (marker: the parsed comment, or null). */
export function codeBlocks(markdown, file) {
  const lines = markdown.split('\n');
  const blocks = [];
  for (let i = 0; i < lines.length; i += 1) {
    const open = lines[i].match(/^```(\w*)\s*$/);
    if (!open) continue;
    const end = lines.findIndex((line, j) => j > i && /^```\s*$/.test(line));
    assert.notEqual(end, -1, `${file}:${i + 1}: unclosed code block`);
    let before = i - 1;
    while (before >= 0 && lines[before].trim() === '') before -= 1;
    const comment = before >= 0 ? lines[before].match(/^<!--\s*readme-test:\s*(.*?)\s*-->\s*$/) : null;
    blocks.push({ file, line: i + 1, lang: open[1], code: lines.slice(i + 1, end).join('\n'), marker: comment ? parseMarker(comment[1], `${file}:${before + 1}`) : null });
    i = end;
  }
  return blocks;
}

/** `browser`, `node`, `sh` (each with an optional `, expect: …`) or `skip (reason)`. */
export function parseMarker(text, where) {
  const skip = text.match(/^skip\s*\((.+)\)$/);
  if (skip) return { mode: 'skip', reason: skip[1] };
  const run = text.match(/^(browser|node|sh)(?:\s*,\s*expect:\s*(.+))?$/);
  assert.ok(run, `${where}: readme-test marker "${text}" is not browser, node, sh (each with an optional ", expect: …") or skip (reason)`);
  return { mode: run[1], expect: run[2] };
}

/** How a block is run: its marker's mode, else `browser` for JS and TS; other languages are not code to run. */
export function modeOf(block) {
  if (block.marker) return block.marker.mode;
  if (['js', 'javascript', 'mjs', 'ts', 'typescript'].includes(block.lang)) return 'browser';
  if (['sh', 'bash', 'shell'].includes(block.lang)) return 'unmarked-sh';
  return 'not-code';
}

/**
 * A JS block as the body of an async function: its static imports become `await import(…)` of the
 * mapped files (`resolve(file)` gives the URL), and it returns its top-level names. TS is
 * transpiled first.
 */
export function asFunctionBody(block, resolve) {
  let code = block.code;
  if (['ts', 'typescript'].includes(block.lang)) {
    const require = createRequire(new URL('../../www/package.json', import.meta.url));
    code = require('typescript').transpileModule(code, { compilerOptions: { target: 99, module: 99 } }).outputText;
  }
  code = code.replace(/^import\s+([\s\S]+?)\s+from\s+['"]([^'"]+)['"];?/gm, (_, bindings, specifier) => {
    assert.ok(specifier in IMPORTS, `${block.file}:${block.line}: import of "${specifier}": add it to IMPORTS in tests/browser/readme.test.mjs`);
    const url = JSON.stringify(resolve(IMPORTS[specifier]));
    if (bindings.startsWith('* as ')) return `const ${bindings.slice(5)} = await import(${url});`;
    if (bindings.startsWith('{')) return `const ${bindings.replace(/\s+as\s+/g, ': ')} = await import(${url});`;
    return `const { default: ${bindings} } = await import(${url});`;
  });
  const declared = [...code.matchAll(/^(?:const|let|var)\s+(\[[^\]]*\]|\{[^}]*\}|[\w$]+)/gm)]
    .flatMap(([, target]) => target.replace(/[[\]{}]/g, '').split(',').map((name) => name.split(':').pop().trim()))
    .filter(Boolean);
  const prelude = Object.entries(PRELUDE)
    .filter(([name]) => !declared.includes(name) && new RegExp(`\\b${name}\\b`).test(code))
    .map(([name, value]) => `const ${name} = ${value};`);
  // The prelude's Reranker under a name of its own; the block in a scope of its own, so that it
  // may declare what the prelude also defines.
  const preludeImport = `const { Reranker: PreludeReranker } = await import(${JSON.stringify(resolve(IMPORTS.crossrank))});`;
  const names = [...new Set([...declared, ...prelude.map((line) => line.match(/^const (\w+)/)[1])])];
  return [preludeImport, ...prelude, '{', code, `return { ${names.join(', ')} };`, '}'].join('\n');
}

/**
 * Checks the values a block left (run where they live: in the page or in Node), returning what
 * was checked and what failed. Result lists must be `[{ index, score, logit }]`: distinct indices,
 * score in [0, 1], ordered by `fused` (with fusion) or by `logit`, blank documents (score 0) last.
 */
export const checkValues = `(values, expect) => {
  const checked = [];
  const failures = [];
  const isResult = (r) => r && typeof r === 'object' && Number.isInteger(r.index) && typeof r.score === 'number' && typeof r.logit === 'number';
  const isList = (v) => Array.isArray(v) && v.length > 0 && v.every(isResult);
  const checkList = (name, list) => {
    checked.push(name);
    const indices = new Set(list.map((r) => r.index));
    if (indices.size !== list.length) failures.push(name + ': an index twice');
    for (const r of list) if (!(r.score >= 0 && r.score <= 1)) failures.push(name + ': score ' + r.score + ' outside [0, 1]');
    const key = (r) => (r.fused ?? r.logit);
    for (let i = 1; i < list.length; i += 1) {
      const blank = list[i].score === 0 && (list[i].fused ?? 0) === 0;
      if (!blank && key(list[i]) > key(list[i - 1])) failures.push(name + ': results ' + (i - 1) + ' and ' + i + ' out of order');
    }
  };
  for (const [name, value] of Object.entries(values)) {
    if (isList(value)) checkList(name, value);
    else if (Array.isArray(value) && value.length > 0 && value.every(isList)) value.forEach((list, i) => checkList(name + '[' + i + ']', list));
  }
  if (expect) {
    checked.push('expect: ' + expect);
    let holds;
    try {
      holds = Function(...Object.keys(values), 'return (' + expect + ');')(...Object.values(values));
    } catch (error) {
      holds = 'threw ' + error;
    }
    if (holds !== true) failures.push('expect: ' + expect + ' is ' + holds);
  }
  for (const value of Object.values(values)) if (value && typeof value.dispose === 'function') value.dispose();
  return { checked, failures };
}`;

// The default model's package as packed: its GGUF beside index.js (git-ignored; prepack copies it in).
execFileSync(process.execPath, [join(REPO, 'models/npm/prepack.mjs')]);

const browser = useBrowser();
const execFileAsync = promisify(execFile);

/** Answers https://huggingface.co/ID/resolve/REVISION/FILE from HUB_STAND_INS, once per browser context. */
const routed = new WeakSet();
async function standInForTheHub(context) {
  if (routed.has(context)) return;
  routed.add(context);
  await context.route('https://huggingface.co/**', (route) => {
    const headers = { 'access-control-allow-origin': '*', 'access-control-expose-headers': 'etag, x-error-code' };
    const match = new URL(route.request().url()).pathname.match(/^\/([^/]+\/[^/]+)\/resolve\/[^/]+\/(.+)$/);
    const folder = match && HUB_STAND_INS[match[1]];
    if (!folder) return route.fulfill({ status: 404, headers: { ...headers, 'x-error-code': 'RepoNotFound' }, body: 'Repository not found' });
    const path = join(REPO, folder, match[2]);
    if (!existsSync(path)) return route.fulfill({ status: 404, headers: { ...headers, 'x-error-code': 'EntryNotFound' }, body: 'Entry not found' });
    return route.fulfill({ status: 200, headers: { ...headers, etag: `"${match[2]}"` }, path });
  });
}

async function runInBrowser(block) {
  const tab = await browser.openPage();
  try {
    await standInForTheHub(tab.page.context());
    const origin = browser.server.origin;
    const body = asFunctionBody(block, (file) => `${origin}/${file}`);
    return await tab.page.evaluate(async ({ body, checkValues, expect }) => {
      const AsyncFunction = (async () => {}).constructor;
      let values;
      try {
        values = await new AsyncFunction(body)();
      } catch (error) {
        return { checked: [], failures: [`threw ${error?.name}: ${error?.message ?? error}`] };
      }
      // eslint-disable-next-line no-eval
      return (0, eval)(checkValues)(values, expect);
    }, { body, checkValues, expect: block.marker?.expect });
  } finally {
    await tab.close();
  }
}

async function runInNode(block) {
  const dir = mkdtempSync(join(tmpdir(), 'crossrank-readme-'));
  try {
    const body = asFunctionBody(block, (file) => pathToFileURL(join(REPO, file)).href);
    const script = `const values = await (async () => {\n${body}\n})();\n` +
      `const report = (${checkValues})(values, ${JSON.stringify(block.marker?.expect ?? null)});\n` +
      'console.log(JSON.stringify(report));\n';
    writeFileSync(join(dir, 'block.mjs'), script);
    const { stdout } = await execFileAsync(process.execPath, [join(dir, 'block.mjs')], { cwd: REPO, timeout: 120_000 });
    return JSON.parse(stdout.trim().split('\n').pop());
  } catch (error) {
    return { checked: [], failures: [`failed: ${error.stderr || error.message}`] };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

async function runShell(block) {
  const dir = mkdtempSync(join(tmpdir(), 'crossrank-readme-'));
  try {
    for (const [name, target] of Object.entries(SH_FILES)) {
      mkdirSync(dirname(join(dir, name)), { recursive: true });
      symlinkSync(join(REPO, target), join(dir, name));
    }
    const env = { ...process.env, PATH: `${dirname(CLI)}:${process.env.PATH}` };
    let stdout;
    let stderr;
    try {
      ({ stdout, stderr } = await execFileAsync('bash', ['-euo', 'pipefail', '-c', block.code], { cwd: dir, env, timeout: 120_000 }));
    } catch (error) {
      return { checked: [], failures: [`exit ${error.code}: ${error.stderr}`] };
    }
    const expect = block.marker?.expect;
    if (!expect) return { checked: ['exit 0'], failures: [] };
    const holds = Function('stdout', 'stderr', `return (${expect});`)(stdout, stderr);
    return { checked: ['exit 0', `expect: ${expect}`], failures: holds === true ? [] : [`expect: ${expect} is ${holds}; stdout:\n${stdout}`] };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

test('the marker parser: runnable modes, skip needs a reason, unmarked shell is not run', () => {
  const blocks = codeBlocks([
    '<!-- readme-test: skip (needs the Hub) -->', '```js', 'a', '```',
    '```sh', 'rm -rf /', '```',
    '<!-- readme-test: sh, expect: stdout === "1\\n" -->', '', '```sh', 'echo 1', '```',
    '```', 'Content-Security-Policy: …', '```',
    '```ts', 'const x: number = 1;', '```',
  ].join('\n'), 'example.md');
  assert.deepEqual(blocks.map(modeOf), ['skip', 'unmarked-sh', 'sh', 'not-code', 'browser']);
  assert.equal(blocks[0].marker.reason, 'needs the Hub');
  assert.equal(blocks[2].marker.expect, 'stdout === "1\\n"');
  assert.equal(blocks[2].line, 10);
  assert.throws(() => parseMarker('skip', 'x.md:1'), /is not browser, node, sh/);
  assert.throws(() => parseMarker('run', 'x.md:1'), /is not browser, node, sh/);
  // Imports are mapped, top-level names returned, and the prelude given only what the block uses.
  const body = asFunctionBody({ file: 'x.md', line: 1, lang: 'js', code: "import { Reranker as R } from 'crossrank';\nconst [a, b] = await R.x(query);" }, (file) => `/${file}`);
  assert.match(body, /^const \{ Reranker: R \} = await import\("\/www\/src\/index\.js"\);$/m);
  assert.match(body, /^const query = /m);
  assert.doesNotMatch(body, /const documents/);
  assert.match(body, /return \{ R, a, b, query \};/);
  assert.throws(() => asFunctionBody({ file: 'x.md', line: 3, lang: 'js', code: "import x from 'left-pad';" }, String), /x\.md:3: import of "left-pad": add it to IMPORTS/);
});

for (const file of READMES) {
  const blocks = codeBlocks(readFileSync(join(REPO, file), 'utf8'), file);
  for (const block of blocks) {
    const mode = modeOf(block);
    if (mode === 'not-code') continue;
    const name = `${file}:${block.line} (${block.lang}, ${mode}${mode === 'skip' ? `: ${block.marker.reason}` : ''})`;
    if (mode === 'skip') {
      test(name, { skip: block.marker.reason });
      continue;
    }
    test(name, { timeout: 240_000 }, async () => {
      assert.notEqual(mode, 'unmarked-sh', `${name}: shell blocks run only when marked: put <!-- readme-test: sh --> or <!-- readme-test: skip (why) --> before it`);
      if (mode === 'sh') assert.ok(existsSync(CLI), `${CLI} is not built (cargo build --release --features cli)`);
      const run = { browser: runInBrowser, node: runInNode, sh: runShell }[mode];
      const { checked, failures } = await run(block);
      assert.deepEqual(failures, [], `${name}:\n${block.code}`);
      assert.ok(checked.length > 0, `${name}: nothing to check: leave its results in a top-level name or add ", expect: …" to its marker`);
    });
  }
}
