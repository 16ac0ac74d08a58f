// Hugging Face models in the browser by id: a local server serves model folders in the Hub's
// layout (resolve → 302 → CDN, ETag, 401 for a gated repository), never the internet. The worker
// fetches config.json, the tokenizer and model.safetensors, converts them exactly as
// `crossrank convert` does, and caches the GGUF; the cache is revalidated against the server.
//
//   node --test tests/browser/hub.test.mjs   (needs ./build.sh cli wasm models)

import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { copyFileSync, cpSync, mkdtempSync, readFileSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { fileURLToPath } from 'node:url';

import { fetchError, httpError } from '../../www/src/fetch.js';
import { modelUrlHint } from '../../www/src/hub.js';
import { startBrowser } from './harness.mjs';
import { startServer } from './server.mjs';

const ROOT = new URL('../../', import.meta.url);
const path = (relative) => fileURLToPath(new URL(relative, ROOT));
const fixture = (name) => JSON.parse(readFileSync(path(`tests/fixtures/${name}`), 'utf8'));
const CLI = path('target/release/crossrank');
const TIMEOUT = { timeout: 300_000 };
const CACHE = 'crossrank-models-v1';

const scratch = mkdtempSync(join(tmpdir(), 'crossrank-hub-'));
/** A copy of a test model folder, changed by `edit(dir)`. */
function folder(name, from, edit = () => {}) {
  const dir = join(scratch, name);
  cpSync(path(from), dir, { recursive: true });
  edit(dir);
  return dir;
}

const HUB = {
  'test/minilm-l4': path('tests/models/minilm-l4'),
  'test/tiny': folder('tiny', 'tests/models/tiny'),
  'test/tiny-vocab': folder('tiny-vocab', 'tests/models/tiny', (dir) => rmSync(join(dir, 'tokenizer.json'))),
  'test/xlmr': path('tests/models/tiny-xlmr'),
  'test/gpt2': folder('gpt2', 'tests/models/tiny', (dir) => {
    const config = JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8'));
    writeFileSync(join(dir, 'config.json'), JSON.stringify({ ...config, model_type: 'gpt2', architectures: ['GPT2LMHeadModel'] }));
  }),
  'test/bin-only': path('tests/models/tiny-bin'),
  // What comes instead of a model folder's small files: each is refused before the weights.
  'test/html-config': folder('html-config', 'tests/models/tiny', (dir) =>
    writeFileSync(join(dir, 'config.json'), '<!DOCTYPE html>\n<html><head><title>Sign in</title></head><body>Please log in</body></html>')),
  'test/text-config': folder('text-config', 'tests/models/tiny', (dir) => writeFileSync(join(dir, 'config.json'), 'Service temporarily unavailable')),
  'test/not-config': folder('not-config', 'tests/models/tiny', (dir) => writeFileSync(join(dir, 'config.json'), '{"error":"Repository not found"}')),
  'test/html-tokenizer': folder('html-tokenizer', 'tests/models/tiny', (dir) => writeFileSync(join(dir, 'tokenizer.json'), '<html><body>502 Bad Gateway</body></html>')),
  'test/no-config': folder('no-config', 'tests/models/tiny', (dir) => rmSync(join(dir, 'config.json'))),
};
const GGUFS = join(scratch, 'gguf');
/** What the cross-origin mirrors serve: a GGUF file and a model folder. */
const MIRRORED = join(scratch, 'mirrored');

let browser;
before(async () => {
  cpSync(path('artifacts/models/tiny.f32.gguf'), join(GGUFS, 'model.gguf'), { recursive: true });
  cpSync(path('artifacts/models/tiny.f32.gguf'), join(MIRRORED, 'model.gguf'), { recursive: true });
  cpSync(path('tests/models/tiny'), join(MIRRORED, 'tiny'), { recursive: true });
  browser = await startBrowser({ mounts: { '/': path('.'), '/scratch': GGUFS }, hub: HUB });
});
after(async () => {
  await browser?.close();
  rmSync(scratch, { recursive: true, force: true });
});

const withPage = (body) => browser.withPage(body);

const hub = () => `${browser.server.origin}/hub`;
const sha256 = (bytes) => createHash('sha256').update(bytes).digest('hex');

test('a Hub id loads: the worker\'s q8_0 conversion is the CLI\'s GGUF, byte for byte; the next load is one cached file', TIMEOUT, () =>
  withPage(async ({ page }) => {
    const cases = fixture('minilm_l4.json').cases;
    const got = await page.evaluate(async ({ hubUrl, cases, cache }) => {
      const { Reranker } = window.crossrank;
      const events = [];
      const reranker = await Reranker.create({ model: 'test/minilm-l4', hubUrl, dtype: 'q8_0', threads: 1, onProgress: (e) => events.push(e) });
      const logits = [];
      for (const { query, passage } of cases) logits.push((await reranker.rerank(query, [passage]))[0].logit);
      const info = reranker.info;
      reranker.dispose();
      const entry = await (await caches.open(cache)).match(`${hubUrl}/test/minilm-l4/resolve/main/crossrank-q8_0.gguf`);
      const bytes = new Uint8Array(await entry.arrayBuffer());
      const digest = Array.from(new Uint8Array(await crypto.subtle.digest('SHA-256', bytes)), (b) => b.toString(16).padStart(2, '0')).join('');
      const again = await Reranker.create({ model: 'test/minilm-l4', hubUrl, threads: 1 });
      const second = (await again.rerank(cases[0].query, [cases[0].passage]))[0].logit;
      again.dispose();
      return { events, logits, info, digest, size: bytes.length, second };
    }, { hubUrl: hub(), cases, cache: CACHE });

    // The CLI on the same folder, recording the same source (the Hub id).
    const out = join(scratch, 'cli.q8_0.gguf');
    execFileSync(CLI, ['convert', '--model', HUB['test/minilm-l4'], '--dtype', 'q8_0', '--source', 'test/minilm-l4', '--out', out], { stdio: 'pipe' });
    const cli = readFileSync(out);
    assert.equal(got.size, cli.length);
    assert.equal(got.digest, sha256(cli), 'the browser\'s GGUF differs from crossrank convert\'s');

    assert.equal(got.info.precision, 'q8_0');
    cases.forEach((c, i) => assert.ok(Math.abs(got.logits[i] - c.logit) <= 0.05, `${c.name}: ${got.logits[i]} vs PyTorch ${c.logit}`));
    assert.equal(got.second, got.logits[0], 'the cached file gives the same logits');
    // Each file was fetched once, through the Hub's redirect to the CDN; the second load only asked
    // whether they changed.
    for (const file of ['config.json', 'tokenizer.json', 'tokenizer_config.json', 'model.safetensors']) {
      assert.equal(browser.server.hits(`/hub/test/minilm-l4/resolve/main/${file}`), 1, file);
      assert.equal(browser.server.hits(`/cdn/test/minilm-l4/${file}`), 1, file);
      assert.equal(browser.server.heads(`/cdn/test/minilm-l4/${file}`), 1, `${file} revalidated`);
    }
    assert.equal(browser.server.hits('/hub/test/minilm-l4/resolve/main/vocab.txt'), 0, 'tokenizer.json was there: vocab.txt is not needed');
    // Progress per file and in total.
    const files = new Set(got.events.filter((e) => e.status === 'initiate').map((e) => e.file.split('/').pop()));
    assert.deepEqual([...files].sort(), ['config.json', 'model.safetensors', 'tokenizer.json', 'tokenizer_config.json']);
    const totals = got.events.filter((e) => e.status === 'total');
    assert.ok(totals.length > 2);
    assert.equal(totals.at(-1).loaded, totals.at(-1).total);
    assert.equal(totals.at(-1).progress, 100);
    assert.equal(got.events.at(-1).status, 'ready');
  }));

test('a changed file at the same URL is fetched again; reload, no-store and clearCache', TIMEOUT, () =>
  withPage(async ({ page }) => {
    const c = fixture('tiny.json').cases[0];
    const load = (options) => page.evaluate(async ({ hubUrl, c, options }) => {
      const reranker = await window.crossrank.Reranker.create({ model: 'test/tiny', hubUrl, dtype: 'f32', threads: 1, ...options });
      const [result] = await reranker.rerank(c.query, [c.passage]);
      reranker.dispose();
      return result.logit;
    }, { hubUrl: hub(), c, options });
    const weights = '/cdn/test/tiny/model.safetensors';

    assert.ok(Math.abs((await load({})) - c.logit) <= 1e-4);
    await load({});
    assert.equal(browser.server.hits(weights), 1, 'the second load came from the cache');
    // The file changes on the server (new mtime, so a new ETag): noticed and fetched again.
    const later = new Date(Date.now() + 60_000);
    utimesSync(join(HUB['test/tiny'], 'model.safetensors'), later, later);
    await load({});
    assert.equal(browser.server.hits(weights), 2, 'the changed file was not fetched again');
    await load({ cache: 'reload' });
    assert.equal(browser.server.hits(weights), 3, 'cache: "reload" downloads');
    await load({ cache: 'no-store' });
    assert.equal(browser.server.hits(weights), 4, 'cache: "no-store" downloads');
    await load({});
    assert.equal(browser.server.hits(weights), 4, '"reload" wrote the cache');

    const cleared = await page.evaluate(async (cache) => {
      const deleted = await window.crossrank.Reranker.clearCache();
      return { deleted, left: await caches.has(cache), again: await window.crossrank.Reranker.clearCache() };
    }, CACHE);
    assert.deepEqual(cleared, { deleted: true, left: false, again: false });
    await load({});
    assert.equal(browser.server.hits(weights), 5, 'after clearCache the file is downloaded');
  }));

test('a GGUF URL is revalidated too: a file replaced on the server is noticed', TIMEOUT, () =>
  withPage(async ({ page }) => {
    const load = () => page.evaluate(async (url) => {
      const reranker = await window.crossrank.Reranker.create({ model: url, threads: 1 });
      const info = reranker.info;
      reranker.dispose();
      return info;
    }, '/scratch/model.gguf');
    assert.equal((await load()).hiddenSize, 32);
    assert.equal((await load()).hiddenSize, 32);
    assert.equal(browser.server.hits('/scratch/model.gguf'), 1);
    assert.equal(browser.server.heads('/scratch/model.gguf'), 1);
    copyFileSync(path('artifacts/models/minilm-l4.q8_0.gguf'), join(GGUFS, 'model.gguf'));
    assert.equal((await load()).hiddenSize, 384, 'the replaced file was not picked up');
    assert.equal(browser.server.hits('/scratch/model.gguf'), 2);
  }));

test('vocab.txt when tokenizer.json is missing; a multilingual XLM-RoBERTa by id', TIMEOUT, () =>
  withPage(async ({ page, expectProblem }) => {
    expectProblem(/HTTP 404: .*\/test\/tiny-vocab\/resolve\/main\/tokenizer\.json$/); // asked for first, on purpose
    const tiny = fixture('tiny.json').cases;
    const xlmr = fixture('tiny_xlmr.json').cases;
    const got = await page.evaluate(async ({ hubUrl, tiny, xlmr }) => {
      const score = async (model, cases) => {
        const reranker = await window.crossrank.Reranker.create({ model, hubUrl, dtype: 'f32', threads: 1 });
        const logits = [];
        for (const { query, passage } of cases) logits.push((await reranker.rerank(query, [passage]))[0].logit);
        const info = reranker.info;
        reranker.dispose();
        return { logits, info };
      };
      return { vocab: await score('test/tiny-vocab', tiny), xlmr: await score('test/xlmr', xlmr) };
    }, { hubUrl: hub(), tiny, xlmr });
    tiny.forEach((c, i) => assert.ok(Math.abs(got.vocab.logits[i] - c.logit) <= 1e-4, `vocab.txt ${c.name}: ${got.vocab.logits[i]} vs ${c.logit}`));
    assert.equal(browser.server.hits('/hub/test/tiny-vocab/resolve/main/tokenizer.json'), 1, 'tokenizer.json was asked for first');
    assert.equal(browser.server.hits('/cdn/test/tiny-vocab/vocab.txt'), 1);
    assert.equal(got.xlmr.info.modelType, 'xlm-roberta');
    xlmr.forEach((c, i) => assert.ok(Math.abs(got.xlmr.logits[i] - c.logit) <= 1e-4, `XLM-R ${c.name}: ${got.xlmr.logits[i]} vs ${c.logit}`));
  }));

test('each failure has its own code and a message naming the file', TIMEOUT, () =>
  withPage(async ({ page, expectProblem }) => {
    expectProblem(/HTTP 40[14]/);
    const got = await page.evaluate(async (hubUrl) => {
      const { Reranker } = window.crossrank;
      const attempt = (model, options = {}) => window.settle(Reranker.create({ model, hubUrl, threads: 1, ...options }));
      return {
        gated: await attempt('gated/secret-model'),
        missing: await attempt('test/no-such-model'),
        revision: await attempt('test/tiny', { revision: 'v9' }),
        entry: await attempt('test/no-config'),
        architecture: await attempt('test/gpt2'),
        binOnly: await attempt('test/bin-only'),
        html: await attempt('/tests/browser/index.html'),
        json: await attempt('/tests/models/tiny/config.json'),
        dtype: await attempt('test/tiny', { dtype: 'q5_1' }),
        dtypeOnGguf: await attempt('/artifacts/models/tiny.f32.gguf', { dtype: 'q8_0' }),
        cacheMode: await attempt('test/tiny', { cache: 'sometimes' }),
        unknownOption: await attempt('test/tiny', { revison: 'v1' }),
      };
    }, hub());
    const expect = {
      // The Hub's X-Error-Code, each with its own reason and fix.
      gated: ['fetch', /gated\/secret-model\/resolve\/main\/config\.json: HTTP 401, a gated repository \(GatedRepo\) \(the Hub says: Access to model gated\/secret-model is restricted\.[^)]*\): accept its licence on the Hub, then serve its files from a mirror of your own .*cannot send your Hugging Face token safely$/],
      missing: ['fetch', /test\/no-such-model\/resolve\/main\/config\.json: HTTP 401, repository not found \(RepoNotFound\) \(the Hub says: Repository not found\): check the model id; a private repository needs a Hugging Face token/],
      revision: ['fetch', /test\/tiny\/resolve\/v9\/config\.json: HTTP 404, revision not found \(RevisionNotFound\) .*: check the revision option/],
      entry: ['fetch', /test\/no-config\/resolve\/main\/config\.json: HTTP 404, the repository has no such file at this revision \(EntryNotFound\)/],
      architecture: ['config', /test\/gpt2\/resolve\/main\/config\.json.*unknown model_type "gpt2"/],
      binOnly: ['fetch', /model\.safetensors was not found \(404\); a pytorch_model\.bin cannot be read in the browser/],
      html: ['model_format', /tests\/browser\/index\.html is an HTML page, not a GGUF model file/],
      json: ['model_format', /tests\/models\/tiny\/config\.json is JSON, not a GGUF model file/],
      dtype: ['invalid_input', /dtype must be one of "q8_0", "q4_0", "f16", "f32"/],
      dtypeOnGguf: ['invalid_input', /dtype applies to Hugging Face models/],
      cacheMode: ['invalid_input', /cache must be "default", "reload" or "no-store"/],
      unknownOption: ['invalid_input', /unknown option "revison": did you mean "revision"\?/],
    };
    for (const [name, [code, message]] of Object.entries(expect)) {
      assert.equal(got[name].ok, false, name);
      assert.equal(got[name].code, code, `${name}: ${got[name].message}`);
      assert.match(got[name].message, message, name);
    }
  }));

test('config.json and the tokenizer are checked before a byte of the weights is asked for', TIMEOUT, () =>
  withPage(async ({ page }) => {
    const repos = ['test/html-config', 'test/text-config', 'test/not-config', 'test/html-tokenizer'];
    const got = await page.evaluate(async ({ hubUrl, repos }) => {
      const results = {};
      for (const model of repos) results[model] = await window.settle(window.crossrank.Reranker.create({ model, hubUrl, threads: 1 }));
      return results;
    }, { hubUrl: hub(), repos });
    const at = (repo, file) => `${file} at ${hub()}/${repo}/resolve/main/${file}`.replace(/[.?*+^$()[\]{}|\\/]/g, '\\$&');
    const expect = {
      'test/html-config': ['fetch', new RegExp(`^${at('test/html-config', 'config.json')} is an HTML page \\(served as application/json; charset=utf-8\\), not JSON: is the URL a model folder\\?`)],
      'test/text-config': ['config', new RegExp(`^${at('test/text-config', 'config.json')} is not JSON \\(.*; served as application/json; charset=utf-8\\): "Service temporarily unavailable"$`)],
      'test/not-config': ['config', new RegExp(`^${at('test/not-config', 'config.json')} is JSON but not a model's config \\(it has neither "model_type" nor "architectures"\\): "\\{\\\\"error\\\\":\\\\"Repository not found\\\\"\\}"`)],
      'test/html-tokenizer': ['fetch', new RegExp(`^${at('test/html-tokenizer', 'tokenizer.json')} is an HTML page \\(served as application/json; charset=utf-8\\), not JSON`)],
    };
    for (const repo of repos) {
      const [code, message] = expect[repo];
      assert.equal(got[repo].ok, false, repo);
      assert.equal(got[repo].code, code, `${repo}: ${got[repo].message}`);
      assert.match(got[repo].message, message, repo);
      assert.equal(browser.server.hits(`/hub/${repo}/resolve/main/config.json`), 1, `${repo}: config.json asked for`);
      assert.equal(browser.server.hits(`/hub/${repo}/resolve/main/model.safetensors`), 0, `${repo}: the weights were asked for`);
      assert.equal(browser.server.hits(`/cdn/${repo}/model.safetensors`), 0, `${repo}: the weights were downloaded`);
    }
  }));

test('a fetch the browser refuses (no CORS headers on another origin) names CORS and the network', TIMEOUT, async () => {
  // A second server is another origin (another port), and it sends no Access-Control-Allow-Origin.
  const other = await startServer({ mounts: { '/': path('.') }, hub: HUB });
  try {
    await withPage(async ({ page, expectProblem }) => {
      expectProblem(/blocked by CORS policy/);
      expectProblem(/Failed to load resource/);
      expectProblem(new RegExp(`request failed: ${other.origin}/.* net::ERR_FAILED`));
      const got = await page.evaluate(async ({ origin }) => {
        const { Reranker } = window.crossrank;
        return {
          gguf: await window.settle(Reranker.create({ model: `${origin}/artifacts/models/tiny.f32.gguf`, threads: 1 })),
          hubId: await window.settle(Reranker.create({ model: 'test/tiny', hubUrl: `${origin}/hub`, threads: 1 })),
        };
      }, { origin: other.origin });
      const cors = (url) => new RegExp(`^could not fetch ${url.replace(/[.?*+^$()[\]{}|\\/]/g, '\\$&')}: the network failed \\(offline\\?\\) or the server does not allow cross-origin requests \\(CORS: it must send Access-Control-Allow-Origin for this page's origin`);
      assert.equal(got.gguf.code, 'fetch', got.gguf.message);
      assert.match(got.gguf.message, cors(`${other.origin}/artifacts/models/tiny.f32.gguf`));
      assert.equal(got.hubId.code, 'fetch', got.hubId.message);
      assert.match(got.hubId.message, cors(`${other.origin}/hub/test/tiny/resolve/main/config.json`));
    });
  } finally {
    await other.close();
  }
});

test('a folder URL without its "/" gets a hint, and with it loads', TIMEOUT, () =>
  withPage(async ({ page, expectProblem }) => {
    expectProblem(/HTTP 404: .*\/tests\/models\/tiny$/);
    const c = fixture('tiny.json').cases[0];
    const got = await page.evaluate(async (c) => {
      const { Reranker } = window.crossrank;
      const without = await window.settle(Reranker.create({ model: '/tests/models/tiny', threads: 1 }));
      const reranker = await Reranker.create({ model: '/tests/models/tiny/', dtype: 'f32', threads: 1, cache: 'no-store' });
      const [result] = await reranker.rerank(c.query, [c.passage]);
      reranker.dispose();
      return { without, logit: result.logit };
    }, c);
    const origin = browser.server.origin;
    assert.equal(got.without.code, 'fetch');
    assert.equal(got.without.message,
      `could not fetch ${origin}/tests/models/tiny: HTTP 404 Not Found: did you mean ${origin}/tests/models/tiny/ (a model folder's URL ends in "/")?`);
    assert.ok(Math.abs(got.logit - c.logit) <= 1e-4, 'the URL the hint names is the folder');
  }));

test('X-Error-Code, a failed fetch and URL hints, message by message (no browser)', () => {
  const url = 'https://huggingface.co/org/name/resolve/main/config.json';
  const hubError = (status, code, said) => httpError(url, new Response(null, { status, headers: { 'x-error-code': code, 'x-error-message': said } }));
  const messages = [
    hubError(401, 'RepoNotFound', 'Repository not found'),
    hubError(401, 'GatedRepo', 'Access to model org/name is restricted.'),
    hubError(404, 'RevisionNotFound', 'Invalid rev id: v2'),
    hubError(404, 'EntryNotFound', 'Entry not found'),
    hubError(403, 'DisabledRepo', 'Access to this resource is disabled.'),
  ].map((error) => {
    assert.equal(error.name, 'RerankerError');
    assert.equal(error.code, 'fetch');
    return error.message;
  });
  assert.deepEqual(messages, [
    `could not fetch ${url}: HTTP 401, repository not found (RepoNotFound) (the Hub says: Repository not found): check the model id; a private repository needs a Hugging Face token, which a browser page cannot send safely: serve its files from a mirror of your own`,
    `could not fetch ${url}: HTTP 401, a gated repository (GatedRepo) (the Hub says: Access to model org/name is restricted.): accept its licence on the Hub, then serve its files from a mirror of your own (hubUrl, or a folder URL): a browser page cannot send your Hugging Face token safely`,
    `could not fetch ${url}: HTTP 404, revision not found (RevisionNotFound) (the Hub says: Invalid rev id: v2): check the revision option (a branch, tag or commit of the repository)`,
    `could not fetch ${url}: HTTP 404, the repository has no such file at this revision (EntryNotFound) (the Hub says: Entry not found)`,
    `could not fetch ${url}: HTTP 403 (DisabledRepo) (the Hub says: Access to this resource is disabled.)`,
  ]);
  // Where the header is not readable (a server that does not expose it): the status alone.
  assert.match(httpError(url, new Response(null, { status: 401 })).message, /: HTTP 401 \(a gated or private repository: the browser cannot send your Hugging Face token/);
  assert.equal(httpError('https://x.test/m', new Response(null, { status: 404, statusText: 'Not Found' }), ': hint').message, 'could not fetch https://x.test/m: HTTP 404 Not Found: hint');
  assert.equal(httpError('https://x.test/m', new Response(null, { status: 500, statusText: 'Oops' }), ': hint').message, 'could not fetch https://x.test/m: HTTP 500 Oops');

  const failed = fetchError('https://x.test/m.gguf', new TypeError('Failed to fetch'));
  assert.equal(failed.code, 'fetch');
  assert.match(failed.message, /^could not fetch https:\/\/x\.test\/m\.gguf: the network failed \(offline\?\) or the server does not allow cross-origin requests \(CORS: it must send Access-Control-Allow-Origin/);
  assert.equal(failed.cause.message, 'Failed to fetch');

  assert.equal(modelUrlHint('https://example.com/models/minilm'), ': did you mean https://example.com/models/minilm/ (a model folder\'s URL ends in "/")?');
  assert.equal(modelUrlHint('https://example.com/models/minilm.gguf'), '');
  assert.equal(modelUrlHint('https://example.com/models/minilm/'), '');
  assert.equal(modelUrlHint('https://huggingface.co/cross-encoder/ms-marco-MiniLM-L-6-v2'),
    ': a Hugging Face model page; to load the model, pass its id "cross-encoder/ms-marco-MiniLM-L-6-v2" as model');
  assert.equal(modelUrlHint('https://huggingface.co/cross-encoder/ms-marco-MiniLM-L-6-v2/tree/main'),
    ': a Hugging Face model page; to load the model, pass its id "cross-encoder/ms-marco-MiniLM-L-6-v2" as model');
});

test('info.cache: revalidated where the server gives a validator; a cross-origin mirror without one says it cannot revalidate', TIMEOUT, async () => {
  // Two mirrors on other origins, both allowing this page (CORS) and sending no Last-Modified: one
  // exposes its ETag (Access-Control-Expose-Headers), the other does not, so that the page reads
  // only Content-Length there.
  const cors = { 'access-control-allow-origin': '*', 'last-modified': null };
  const hidden = await startServer({ mounts: { '/': MIRRORED }, headers: cors });
  const exposed = await startServer({ mounts: { '/': MIRRORED }, headers: { ...cors, 'access-control-expose-headers': 'ETag, Content-Length' } });
  const load = async (model, options = {}) => {
    let got;
    await withPage(async ({ page, expectProblem }) => {
      // Chromium's race on streamed downloads (see harness.mjs), which it excuses only for its own
      // server: the mirrors' cutShort counts, checked below, say whether every byte went out.
      for (const mirror of [hidden, exposed]) expectProblem(new RegExp(`^request failed: ${mirror.origin}/\\S+ net::ERR_ABORTED$`));
      got = await page.evaluate(async ({ model, options }) => {
        const reranker = await window.crossrank.Reranker.create({ model, threads: 1, ...options });
        const { info } = reranker;
        reranker.dispose();
        return { cache: info.cache, hiddenSize: info.hiddenSize };
      }, { model, options });
    });
    return got;
  };
  const touch = (file) => {
    const later = new Date(Date.now() + 120_000);
    utimesSync(file, later, later);
  };
  try {
    // Same origin: the ETag is readable.
    assert.deepEqual((await load('/scratch/model.gguf', { cache: 'reload' })).cache, { status: 'downloaded' });
    assert.deepEqual((await load('/scratch/model.gguf')).cache, { status: 'revalidated' });
    // A model given as bytes has no cache to speak of.
    let bytes;
    await withPage(async ({ page }) => {
      bytes = await page.evaluate(async () => {
        const file = await (await fetch('/artifacts/models/tiny.f32.gguf')).arrayBuffer();
        const reranker = await window.crossrank.Reranker.create({ model: file, threads: 1 });
        const { cache } = reranker.info;
        reranker.dispose();
        return cache;
      });
    });
    assert.equal(bytes, null);

    const gguf = `${hidden.origin}/model.gguf`;
    const cannot = new RegExp(`${hidden.origin.replace(/[.]/g, '\\.')} gives this page neither an ETag nor a Last-Modified header \\(a cross-origin server must name ETag in Access-Control-Expose-Headers\\), only the length, so a changed file of the same size would be served from the cache: expose ETag \\(or send Last-Modified\\), or load with cache: 'reload' after changing the model$`);
    const first = await load(gguf);
    assert.equal(first.cache.status, 'downloaded');
    assert.match(first.cache.message, /^stored in the Cache API, but later loads cannot revalidate it: /);
    assert.match(first.cache.message, cannot);
    const second = await load(gguf);
    assert.equal(second.cache.status, 'unvalidated');
    assert.match(second.cache.message, /^the cached copy could not be revalidated: /);
    assert.match(second.cache.message, cannot);
    assert.equal(hidden.hits('/model.gguf'), 1);
    // The file changes on the server (a new ETag, the same size): not noticed, and the info says so.
    touch(join(MIRRORED, 'model.gguf'));
    const third = await load(gguf);
    assert.equal(third.cache.status, 'unvalidated');
    assert.equal(hidden.hits('/model.gguf'), 1, 'the server cannot tell us, so the cached copy was used');
    assert.equal(hidden.heads('/model.gguf'), 2);

    // A converted model from such a mirror's folder says the same.
    const folderFirst = await load(`${hidden.origin}/tiny/`, { dtype: 'f32' });
    assert.equal(folderFirst.cache.status, 'downloaded');
    assert.match(folderFirst.cache.message, cannot);
    const folderSecond = await load(`${hidden.origin}/tiny/`, { dtype: 'f32' });
    assert.equal(folderSecond.cache.status, 'unvalidated');
    assert.match(folderSecond.cache.message, cannot);
    assert.equal(hidden.hits('/tiny/model.safetensors'), 1);

    // The fix the message names: with ETag exposed, a changed file is noticed.
    const fixed = `${exposed.origin}/model.gguf`;
    assert.deepEqual((await load(fixed)).cache, { status: 'downloaded' });
    assert.deepEqual((await load(fixed)).cache, { status: 'revalidated' });
    touch(join(MIRRORED, 'model.gguf'));
    assert.deepEqual((await load(fixed)).cache, { status: 'downloaded' });
    assert.equal(exposed.hits('/model.gguf'), 2, 'the changed file was fetched again');
    for (const file of ['/model.gguf', '/tiny/model.safetensors', '/tiny/config.json']) {
      assert.equal(hidden.cutShort(file) + exposed.cutShort(file), 0, `${file} was cut short`);
    }
  } finally {
    await hidden.close();
    await exposed.close();
  }
});
