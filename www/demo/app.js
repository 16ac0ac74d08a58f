// The demo page: BM25 (MiniSearch) over Wikipedia paragraphs (SQuAD v1.1 dev), then the crossrank
// cross-encoder reranks the top N in a Web Worker. Nothing is sent anywhere: the corpus, the index
// and the model are all in this page (and, after the first visit, in its caches).
//
// For tests, window.__crossrankDemo holds the model URL, the model's state and, for the last
// run, the exact texts given to the reranker and what it returned.

import MiniSearch from './vendor/minisearch.js';
import { Reranker } from '../src/index.js';

/** Made by make-corpus.mjs: { model } (a URL relative to this page). `?model=URL` overrides it. */
const CONFIG_URL = './data/config.json';
/** Made by make-corpus.mjs: [{ id, title, text }]. */
const CORPUS_URL = './data/corpus.json';
const DEFAULT_TOP_N = 30;
const MAX_TOP_N = 100;
const MAX_PASSAGES = 200;
/**
 * Tokens per (query, paragraph) pair. Unset, the model's own default length applies (the default
 * model records 128 tokens, what it was trained on). The native CLI takes the same as --max-length.
 */
const MAX_LENGTH = undefined;
// BM25 with k1 = 0.9, b = 0.4 (Anserini's defaults), without BM25+'s delta.
const BM25 = { k: 0.9, b: 0.4, d: 0 };
const STOP_WORDS = new Set(
  'a an and are as at be by does do for from has have in is it its of on or that the their this to was were which with'.split(' '),
);

/** The text the cross-encoder reads for a paragraph: its article's title, then the paragraph. */
const documentText = ({ title, text }) => (title ? `${title} ${text}` : text);

const $ = (id) => document.getElementById(id);
const ui = {
  form: $('search-form'),
  query: $('query'),
  topN: $('top-n'),
  passages: $('passages'),
  submit: $('submit'),
  message: $('message'),
  modelProgress: $('model-progress'),
  modelStatus: $('model-status'),
  modelName: $('model-name'),
  retryModel: $('retry-model'),
  runStatus: $('run-status'),
  firstNote: $('first-note'),
  firstList: $('first-list'),
  rerankedList: $('reranked-list'),
};

const demo = {
  modelUrl: null,
  modelState: 'loading',
  modelInfo: null,
  maxLength: MAX_LENGTH ?? null,
  corpusSize: 0,
  /** Finished runs (successful or not); tests wait for it to grow. */
  runs: 0,
  /** { mode, query, ids, candidates, firstStage, reranked, timings, error } */
  lastRun: null,
};
window.__crossrankDemo = demo;

let index = null;
/** @type {Map<string, { id: string, title: string, text: string }>} */
let documentsById = new Map();
const reranker = new Reranker();
let modelLoad = null;
let currentRun = null;

// ---- start-up ------------------------------------------------------------------------------

registerServiceWorker();
ui.topN.value = String(DEFAULT_TOP_N);
wireForm();
start();

async function start() {
  let config;
  try {
    config = await fetchJson(CONFIG_URL);
  } catch (error) {
    failModel(`Could not read ${CONFIG_URL} (${error.message}). Run node www/demo/make-corpus.mjs.`);
    config = {};
  }
  const override = new URLSearchParams(location.search).get('model');
  if (override || config.model) {
    demo.modelUrl = new URL(override || config.model, location.href).href;
    loadModel();
  } else if (demo.modelState !== 'error') {
    failModel('No model is configured: run node www/demo/make-corpus.mjs, or add ?model=URL to the address.');
  }
  await loadCorpus();
}

async function loadCorpus() {
  try {
    const documents = await fetchJson(CORPUS_URL);
    index = new MiniSearch({
      idField: 'id',
      fields: ['title', 'text'],
      processTerm: (term) => {
        const lower = term.toLowerCase();
        return STOP_WORDS.has(lower) ? null : lower;
      },
      searchOptions: { bm25: BM25 },
    });
    // In chunks, so the page stays responsive while it indexes.
    await index.addAllAsync(documents, { chunkSize: 250 });
    documentsById = new Map(documents.map((document) => [document.id, document]));
    demo.corpusSize = documents.length;
    for (const count of document.querySelectorAll('.corpus-count')) count.textContent = documents.length.toLocaleString('en');
    document.documentElement.dataset.corpusState = 'ready';
    if (demo.modelState === 'loading') setModelStatus(`Search index ready (${documents.length.toLocaleString('en')} paragraphs). Loading the model…`);
  } catch (error) {
    document.documentElement.dataset.corpusState = 'error';
    showMessage(`Could not load the Wikipedia paragraphs (${error.message}). Run node www/demo/make-corpus.mjs, or paste your own passages.`);
  }
}

function loadModel() {
  setModelState('loading');
  ui.retryModel.hidden = true;
  ui.modelProgress.removeAttribute('value'); // indeterminate until the size is known
  ui.modelName.textContent = `model: ${fileName(demo.modelUrl)}`;
  setModelStatus(`Loading the model ${fileName(demo.modelUrl)}…`);
  modelLoad = reranker.load(demo.modelUrl, { onProgress: showProgress }).then(
    (info) => {
      demo.modelInfo = info;
      setModelState('ready');
      ui.modelProgress.value = 100;
      const layers = info.numLayers ? `, ${info.numLayers} layers` : '';
      setModelStatus(`Model ready: ${fileName(demo.modelUrl)} (${info.precision}${layers}), running in a Web Worker on this device.`);
    },
    (error) => failModel(`The model could not be loaded: ${error.message}. BM25 search still works; reranking does not.`),
  );
}

function showProgress(progress) {
  switch (progress.status) {
    case 'progress':
      if (progress.total > 0) {
        ui.modelProgress.value = progress.progress;
        setModelStatus(`Downloading the model… ${megabytes(progress.loaded)} of ${megabytes(progress.total)} MB (${Math.floor(progress.progress)}%)`);
      } else {
        setModelStatus(`Downloading the model… ${megabytes(progress.loaded)} MB`);
      }
      break;
    case 'done':
      ui.modelProgress.value = 100;
      setModelStatus(progress.fromCache ? 'Model found in this browser\'s cache. Starting it…' : 'Model downloaded. Starting it…');
      break;
  }
}

function failModel(text) {
  setModelState('error');
  ui.modelProgress.value = 0;
  setModelStatus(text);
  ui.retryModel.hidden = demo.modelUrl === null;
}

function registerServiceWorker() {
  if (!('serviceWorker' in navigator)) return;
  // Scope /www/ so that it also serves the package's worker, its imports and the .wasm
  // offline; that needs the server's Service-Worker-Allowed header (serve.mjs sends it).
  // Without it, only this folder works offline.
  navigator.serviceWorker
    .register('./sw.js', { scope: '../' })
    .catch(() => navigator.serviceWorker.register('./sw.js'))
    .catch((error) => console.warn(`crossrank demo: no offline support (${error.message})`));
}

// ---- the form ------------------------------------------------------------------------------

function wireForm() {
  ui.form.addEventListener('submit', (event) => {
    event.preventDefault();
    void run();
  });
  for (const radio of ui.form.elements.mode) radio.addEventListener('change', () => setMode(radio.value));
  for (const button of document.querySelectorAll('button.example')) {
    button.addEventListener('click', () => {
      ui.query.value = button.dataset.query;
      ui.form.requestSubmit();
    });
  }
  ui.retryModel.addEventListener('click', () => loadModel());
  setMode(mode());
}

function mode() {
  return ui.form.elements.mode.value;
}

function setMode(value) {
  const paste = value === 'paste';
  for (const element of document.querySelectorAll('.corpus-only')) element.hidden = paste;
  for (const element of document.querySelectorAll('.paste-only')) element.hidden = !paste;
  ui.submit.textContent = paste ? 'Rerank' : 'Search';
  ui.firstNote.textContent = paste ? 'as pasted' : 'BM25';
  document.documentElement.dataset.mode = value;
  showMessage('');
}

/** Reads and checks the form; returns the candidates to rerank, or null after showing why not. */
function readCandidates(query) {
  if (query === '') {
    showMessage('Type a query first.');
    ui.query.focus();
    return null;
  }
  if (mode() === 'paste') {
    const lines = ui.passages.value.split(/\r?\n/).map((line) => line.trim()).filter((line) => line !== '');
    if (lines.length === 0) {
      showMessage('Paste at least one passage, one per line.');
      ui.passages.focus();
      return null;
    }
    if (lines.length > MAX_PASSAGES) {
      showMessage(`At most ${MAX_PASSAGES} passages at a time; you pasted ${lines.length}.`);
      ui.passages.focus();
      return null;
    }
    return { candidates: lines.map((text, i) => ({ id: String(i + 1), title: '', text, firstScore: null })), firstStageMs: null };
  }

  if (!index) {
    showMessage(document.documentElement.dataset.corpusState === 'error'
      ? 'The Wikipedia paragraphs could not be loaded; paste your own passages instead.'
      : 'The search index is still loading; try again in a moment.');
    return null;
  }
  const topN = Number(ui.topN.value);
  if (!Number.isInteger(topN) || topN < 1 || topN > MAX_TOP_N) {
    showMessage(`Choose how many results to rerank: a whole number from 1 to ${MAX_TOP_N}.`);
    ui.topN.focus();
    return null;
  }
  const started = performance.now();
  const hits = index.search(query).slice(0, topN);
  const firstStageMs = performance.now() - started;
  if (hits.length === 0) {
    showMessage(`No paragraph contains any word of “${query}”. Try other words.`);
    return null;
  }
  const candidates = hits.map(({ id, score }) => ({ ...documentsById.get(id), firstScore: score }));
  return { candidates, firstStageMs };
}

async function run() {
  showMessage('');
  const query = ui.query.value.trim();
  const input = readCandidates(query);
  if (!input) {
    setRunState('error');
    return;
  }
  const { candidates, firstStageMs } = input;
  const texts = candidates.map(documentText);

  currentRun?.abort();
  const controller = new AbortController();
  currentRun = controller;

  demo.lastRun = {
    mode: mode(),
    query,
    ids: candidates.map(({ id }) => id),
    candidates: texts,
    maxLength: demo.maxLength,
    firstStage: candidates.map(({ id, firstScore }) => ({ id, score: firstScore })),
    reranked: null,
    timings: { firstStageMs, rerankMs: null },
    error: null,
  };
  renderList(ui.firstList, candidates.map((candidate, i) => ({ candidate, rank: i, score: candidate.firstScore, moved: null })), 'bm25');
  renderPlaceholders(ui.rerankedList, candidates.length);
  setRunState('scoring');
  const firstStage = firstStageMs === null ? '' : `BM25: ${formatMs(firstStageMs)} over ${demo.corpusSize.toLocaleString('en')} paragraphs. `;
  ui.runStatus.textContent = demo.modelState === 'loading'
    ? `${firstStage}Waiting for the model, then scoring ${plural(texts.length, 'passage')}…`
    : `${firstStage}Scoring ${plural(texts.length, 'passage')}…`;

  try {
    await modelLoad; // not timed: the rerank time is the scoring alone
    if (currentRun !== controller) return;
    const started = performance.now();
    const scoring = ui.runStatus.textContent.replace(/…$/, '');
    const onProgress = ({ scored, total }) => {
      if (currentRun === controller && scored < total) ui.runStatus.textContent = `${scoring}: ${scored} of ${total} done…`;
    };
    const ranked = await reranker.rerank(query, texts, { maxLength: MAX_LENGTH, signal: controller.signal, onProgress });
    const rerankMs = performance.now() - started;
    if (currentRun !== controller) return;

    demo.lastRun.reranked = ranked.map(({ index, score, logit }) => ({ index, score, logit }));
    demo.lastRun.timings.rerankMs = rerankMs;
    const newRank = new Map(ranked.map(({ index }, rank) => [index, rank]));
    renderList(ui.firstList, candidates.map((candidate, i) => ({ candidate, rank: i, score: candidate.firstScore, moved: null, newRank: newRank.get(i) })), 'bm25');
    renderList(
      ui.rerankedList,
      ranked.map(({ index, score, logit }, rank) => ({ candidate: candidates[index], index, rank, score, logit, moved: index - rank })),
      'crossrank',
    );
    const workers = reranker.threads > 1 ? ` on ${reranker.threads} workers` : '';
    ui.runStatus.textContent = `${firstStage}Rerank: ${formatMs(rerankMs)} for ${plural(texts.length, 'passage')}${workers} (${formatMs(rerankMs / texts.length)} each).`;
    setRunState('done');
  } catch (error) {
    if (currentRun !== controller || error?.code === 'aborted') return;
    demo.lastRun.error = { code: error?.code ?? null, message: String(error?.message ?? error) };
    renderList(ui.rerankedList, [], 'crossrank');
    const reason = error?.code === 'not_loaded' ? 'the model is not loaded' : error.message;
    showMessage(`Reranking failed: ${reason}. The first-stage order is shown.`);
    ui.runStatus.textContent = `${firstStage}Not reranked.`;
    setRunState('error');
  } finally {
    if (currentRun === controller) {
      currentRun = null;
      demo.runs += 1;
      document.documentElement.dataset.runs = String(demo.runs);
    }
  }
}

// ---- rendering -----------------------------------------------------------------------------

/**
 * One fixed-height row per result, so that a list of N placeholders and a list of N results
 * take the same space (no layout jump when scores arrive).
 */
function renderList(list, rows, kind) {
  list.replaceChildren(
    ...rows.map(({ candidate, index, rank, score, logit, moved, newRank }) => {
      const item = element('li', 'result');
      item.dataset.id = candidate.id;
      if (index !== undefined) item.dataset.index = String(index);
      item.append(element('span', 'rank', String(rank + 1)));

      const body = element('div', 'body');
      if (candidate.title) body.append(element('p', 'title', candidate.title));
      body.append(element('p', candidate.title ? 'snippet' : 'snippet passage', candidate.text));
      item.append(body);

      const meta = element('div', 'meta');
      if (score !== null && score !== undefined) {
        const scoreText = kind === 'bm25' ? score.toFixed(2) : score.toFixed(3);
        const scoreElement = element('span', 'score', scoreText);
        scoreElement.title = kind === 'bm25' ? 'BM25 score' : `cross-encoder score sigmoid(${logit.toFixed(3)})`;
        scoreElement.setAttribute('aria-label', `${kind === 'bm25' ? 'BM25 score' : 'score'} ${scoreText}`);
        meta.append(scoreElement);
      }
      if (moved !== null && moved !== undefined) meta.append(movement(moved));
      if (newRank !== undefined) {
        const now = element('span', 'now', `→ ${newRank + 1}`);
        now.setAttribute('aria-label', `reranked to ${newRank + 1}`);
        meta.append(now);
      }
      item.append(meta);
      return item;
    }),
  );
  list.setAttribute('aria-busy', 'false');
}

function movement(moved) {
  const span = element('span', `move ${moved > 0 ? 'up' : moved < 0 ? 'down' : 'same'}`, moved > 0 ? `▲${moved}` : moved < 0 ? `▼${-moved}` : '=');
  span.setAttribute('aria-label', moved === 0 ? 'same rank' : `${moved > 0 ? 'up' : 'down'} ${plural(Math.abs(moved), 'place')}`);
  span.title = span.getAttribute('aria-label');
  return span;
}

function renderPlaceholders(list, count) {
  list.replaceChildren(
    ...Array.from({ length: count }, (_, rank) => {
      const item = element('li', 'result placeholder');
      item.setAttribute('aria-hidden', 'true');
      item.append(element('span', 'rank', String(rank + 1)), element('div', 'body'), element('div', 'meta'));
      return item;
    }),
  );
  list.setAttribute('aria-busy', 'true');
}

// ---- small helpers -------------------------------------------------------------------------

function element(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

function showMessage(text) {
  ui.message.textContent = text;
  ui.message.classList.toggle('visible', text !== '');
}

function setModelStatus(text) {
  ui.modelStatus.textContent = text;
}

function setModelState(state) {
  demo.modelState = state;
  document.documentElement.dataset.modelState = state;
}

function setRunState(state) {
  document.documentElement.dataset.runState = state;
  ui.submit.setAttribute('aria-busy', String(state === 'scoring'));
}

async function fetchJson(url) {
  const response = await fetch(url);
  if (!response.ok) throw new Error(`HTTP ${response.status} for ${url}`);
  return response.json();
}

const fileName = (url) => decodeURIComponent(new URL(url).pathname.split('/').pop());
const megabytes = (bytes) => (bytes / 1e6).toFixed(1);
const plural = (count, word) => `${count} ${word}${count === 1 ? '' : 's'}`;
const formatMs = (ms) => (ms < 1000 ? `${ms < 10 ? ms.toFixed(1) : Math.round(ms)} ms` : `${(ms / 1000).toFixed(2)} s`);
