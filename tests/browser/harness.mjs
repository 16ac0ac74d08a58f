// Shared set-up for the browser tests: the static server, headless Chromium through
// playwright-core (installed under www/node_modules), and a page that records every page
// error, console error and failed request so that a test fails on any of them.

import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before } from 'node:test';

import { startServer } from './server.mjs';

// playwright-core is a devDependency of the npm package in www/.
const require = createRequire(new URL('../../www/package.json', import.meta.url));
const { chromium } = require('playwright-core');

/** The repository root, for paths the tests read and serve. */
export const ROOT = new URL('../../', import.meta.url);

/** A committed PyTorch reference from tests/fixtures/ (see its "about" and "command"). */
export const fixture = (name) => JSON.parse(readFileSync(new URL(`tests/fixtures/${name}`, ROOT), 'utf8'));

/** Spearman's rank correlation (no ties in real logits). */
export function spearman(a, b) {
  const ranks = (values) => {
    const order = values.map((v, i) => [v, i]).sort((x, y) => y[0] - x[0]);
    const out = new Array(values.length);
    order.forEach(([, i], rank) => (out[i] = rank));
    return out;
  };
  const [ra, rb] = [ranks(a), ranks(b)];
  const n = a.length;
  const d2 = ra.reduce((sum, r, i) => sum + (r - rb[i]) ** 2, 0);
  return 1 - (6 * d2) / (n * (n * n - 1));
}

export const CHROMIUM = process.env.CROSSRANK_CHROMIUM ?? '/usr/bin/chromium';

export const CHROMIUM_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-background-networking',
  '--disable-component-update',
  '--no-first-run',
  '--disable-sync',
];

/**
 * Switches that give headless Chromium a WebGPU adapter without a GPU: SwiftShader, Vulkan on the
 * CPU (measured on Chromium 156: `--disable-gpu` above does not stop it). Very slow: tiny models only.
 */
export const WEBGPU_ARGS = ['--enable-unsafe-webgpu', '--use-webgpu-adapter=swiftshader'];

/**
 * Headless Chromium with a fresh profile directory (so the Cache API starts empty): the one
 * launcher of the browser tests, the demo test and the benchmarks. `args` adds switches,
 * `without` drops some of CHROMIUM_ARGS (e.g. `--disable-gpu`, for a real GPU's WebGPU adapter),
 * `options` goes to playwright's launchPersistentContext (e.g. a viewport).
 * @returns {Promise<{ context: import('playwright-core').BrowserContext, version: () => Promise<string>, close: () => Promise<void> }>}
 */
export async function launchChromium({ args = [], without = [], options = {} } = {}) {
  const userDataDir = await mkdtemp(join(tmpdir(), 'crossrank-chromium-'));
  const context = await chromium.launchPersistentContext(userDataDir, {
    executablePath: CHROMIUM,
    headless: true,
    args: [...CHROMIUM_ARGS.filter((arg) => !without.includes(arg)), ...args],
    ...options,
  });
  // A persistent context opens with one blank page; callers open their own.
  for (const page of context.pages()) await page.close();
  return {
    context,
    /** Chromium's version, e.g. "156.0.8078.114", from the DevTools protocol (a persistent context has no Browser object to ask, and the user agent string reduces it to 156.0.0.0). */
    async version() {
      const page = await context.newPage();
      const session = await context.newCDPSession(page);
      const { product } = await session.send('Browser.getVersion');
      await page.close();
      return product.replace(/^\w*Chrome\//, '');
    },
    async close() {
      await context.close();
      await rm(userDataDir, { recursive: true, force: true });
    },
  };
}

/**
 * Starts the server and a browser with a fresh profile (so the Cache API starts empty).
 * `args` adds Chromium switches (e.g. WEBGPU_ARGS).
 * @param {{ mounts?: Record<string, string>, headers?: Record<string, string>, hub?: Record<string, string>, args?: string[] }} [options]
 */
export async function startBrowser({ mounts, headers, hub, args } = {}) {
  const server = await startServer({ ...(mounts ? { mounts } : {}), ...(headers ? { headers } : {}), ...(hub ? { hub } : {}) });
  const browser = await launchChromium({ args });
  const { context } = browser;

  return {
    server,
    context,
    /**
     * Opens `path` (relative to the server root) and waits for `<html data-ready>`.
     * `problems` collects what must not happen; `expectProblem(re)` allows what matches `re`.
     */
    async openPage(path = '/tests/browser/index.html') {
      const page = await context.newPage();
      const problems = [];
      const allowed = [];
      const record = (text) => {
        if (!allowed.some((pattern) => pattern.test(text))) problems.push(text);
      };
      const onConsole = (message) => {
        if (message.type() === 'error') record(`console error: ${message.text()}`);
      };
      page.on('pageerror', (error) => record(`page error: ${error.message}`));
      page.on('console', onConsole);
      page.on('worker', (worker) => worker.on('console', onConsole));
      const failedRequests = [];
      page.on('requestfailed', (request) => failedRequests.push({ url: request.url(), reason: request.failure()?.errorText ?? '' }));
      page.on('response', (response) => {
        if (response.status() >= 400) record(`HTTP ${response.status()}: ${response.url()}`);
      });
      await page.goto(server.origin + path);
      await page.waitForSelector('html[data-ready]', { timeout: 30_000 });
      return {
        page,
        problems,
        expectProblem: (pattern) => allowed.push(pattern),
        /** Fails the test on anything recorded, then closes the page. */
        async close() {
          await page.close();
          for (const { url, reason } of failedRequests) {
            // Chromium's DevTools reports some downloads read through a ReadableStream as
            // net::ERR_ABORTED although every byte arrived (a race in its bookkeeping; it happens
            // in the page and in workers). The server knows whether the response was cut short.
            const { origin, pathname, search } = new URL(url);
            const key = decodeURIComponent(pathname) + search;
            const delivered = origin === server.origin && server.hits(key) > 0 && server.cutShort(key) === 0;
            if (!(reason === 'net::ERR_ABORTED' && delivered)) record(`request failed: ${url} ${reason}`);
          }
          assert.deepEqual(problems, [], 'page errors, console errors or failed requests');
        },
      };
    },
    /** Runs `body(tab)` on a fresh page (the test page by default), then checks it and closes it. */
    async withPage(body, path) {
      const tab = await this.openPage(path);
      try {
        await body(tab);
      } finally {
        await tab.close();
      }
    },
    async close() {
      await browser.close();
      await server.close();
    },
  };
}

/**
 * One browser for a whole test file: started before its first test, closed after its last. The
 * returned object forwards to it (it does not exist yet when a test file's top level runs).
 * @param {Parameters<typeof startBrowser>[0]} [options]
 */
export function useBrowser(options) {
  let browser;
  before(async () => {
    browser = await startBrowser(options);
  });
  after(async () => {
    await browser?.close();
  });
  return {
    get server() { return browser.server; },
    openPage: (path) => browser.openPage(path),
    withPage: (body, path) => browser.withPage(body, path),
  };
}
