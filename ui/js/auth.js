// auth.js - writes that may need the ACL token. withToken(fn) runs fn (an API write); when
// the API answers 403 (acl.token is set and the page has no token, or a wrong one) it asks
// for the token in a form (a modal <dialog>: focus moves into it, Escape cancels), keeps
// it in sessionStorage (api.js) and runs fn again. Cancelling rejects with Cancelled.
import { h } from './dom.js';
import { setToken, token } from './api.js';

export class Cancelled extends Error {}

function ask(message) {
  return new Promise((resolve) => {
    const input = h('input', { id: 'token-input', name: 'token', type: 'password',
      autocomplete: 'off', required: true, spellcheck: 'false' });
    const err = message ? h('p', { class: 'err', role: 'alert', id: 'token-err' }, message) : null;
    const dlg = h('dialog', { id: 'token-dialog', 'aria-labelledby': 'token-title' },
      h('form', { method: 'dialog' },
        h('h2', { id: 'token-title' }, 'ACL token needed'),
        h('p', {}, 'weft is set up with acl.token: changes need it. The token is kept in this ' +
          'browser tab only (sessionStorage) and sent as X-Consul-Token.'),
        err,
        h('label', { for: 'token-input' }, 'Token', input),
        h('div', { class: 'actions' },
          h('button', { type: 'submit', class: 'primary', value: 'ok' }, 'Use token'),
          h('button', { type: 'button', value: 'cancel',
            onclick: () => dlg.close('cancel') }, 'Cancel'))));
    if (err) input.setAttribute('aria-describedby', 'token-err');
    dlg.addEventListener('close', () => {
      const ok = dlg.returnValue === 'ok' && input.value !== '';
      const value = input.value;
      dlg.remove();
      resolve(ok ? value : null);
    });
    document.body.append(dlg);
    dlg.showModal();
    input.focus();
  });
}

export async function withToken(fn) {
  for (let refused = false; ; refused = true) {
    try {
      return await fn();
    } catch (e) {
      if (e.status !== 403) throw e;
      const had = token() !== '';
      const t = await ask(had || refused ? `The token was refused: ${e.detail || e.message}` : '');
      if (t === null) throw new Cancelled('cancelled');
      setToken(t);
    }
  }
}
