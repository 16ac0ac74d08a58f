// The CSP test page's script (inline scripts are blocked there): the same globals as index.html.
import * as crossrank from '../../www/src/index.js';

window.crossrank = crossrank;
window.settle = (promise) => promise.then(
  (value) => ({ ok: true, value }),
  (error) => ({ ok: false, name: error?.name, code: error?.code, message: String(error?.message ?? error) }),
);
document.documentElement.dataset.ready = 'true';
