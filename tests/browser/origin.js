// The page of origin.test.mjs: imports the package from the URL in `?package=` (another origin,
// as from a CDN; default: this page's own copy), after deleting `Worker` when `?noWorker` is set.
// The same globals as index.html, and `settle` keeps an error's cause.
const params = new URLSearchParams(location.search);
if (params.has('noWorker')) delete globalThis.Worker;
const crossrank = await import(params.get('package') ?? '../../www/src/index.js');

window.crossrank = crossrank;
window.settle = (promise) => promise.then(
  (value) => ({ ok: true, value }),
  (error) => ({
    ok: false, name: error?.name, code: error?.code, message: String(error?.message ?? error),
    cause: error?.cause === undefined ? undefined : { name: error.cause?.name ?? error.cause?.type, message: String(error.cause?.message ?? '') },
  }),
);
document.documentElement.dataset.ready = 'true';
