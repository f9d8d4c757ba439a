// notice.js - the page's one message line (role="alert"): errors from the API, written as
// it wrote them, and short confirmations. It stays until dismissed, replaced, or the page
// goes to another view.
import { h, replace } from './dom.js';

const el = () => document.getElementById('notice');

export function notify(message, kind = 'error') {
  const n = el();
  n.dataset.kind = kind;
  replace(n, h('p', {}, message),
    h('button', { type: 'button', onclick: clearNotice, 'aria-label': 'Dismiss message' }, 'Dismiss'));
  n.hidden = false;
}

export function clearNotice() {
  const n = el();
  n.hidden = true;
  n.replaceChildren();
}
