// api.js - the page's one way to the API on its own origin: JSON reads, writes that carry
// the ACL token, and the event stream. Every error becomes an ApiError whose message is the
// API's own ({"error": "..."} bodies), prefixed with the method, path and status.

const TOKEN_KEY = 'weft.token';

export class ApiError extends Error {
  constructor(method, path, status, statusText, detail) {
    super(`${method} ${path}: ${status ? `${status} ${statusText}` : 'no answer'}` +
          (detail ? `: ${detail}` : ''));
    this.status = status;
    this.detail = detail;
  }
}

// The ACL token lives in sessionStorage only: gone when the tab is closed.
export function token() {
  try { return sessionStorage.getItem(TOKEN_KEY) || ''; } catch { return ''; }
}
export function setToken(t) {
  try {
    if (t) sessionStorage.setItem(TOKEN_KEY, t);
    else sessionStorage.removeItem(TOKEN_KEY);
  } catch { /* storage disabled: the token is not kept */ }
}

async function request(method, path, { body, auth } = {}) {
  const headers = { Accept: 'application/json' };
  if (auth && token()) headers['X-Consul-Token'] = token();
  let res;
  try {
    res = await fetch(path, { method, headers, body, cache: 'no-store' });
  } catch (e) {
    throw new ApiError(method, path, 0, '', 'weft cannot be reached');
  }
  const text = await res.text();
  let data = null;
  try { data = text ? JSON.parse(text) : null; } catch { data = null; }
  if (!res.ok) {
    const detail = data && typeof data.error === 'string' ? data.error : text.trim().slice(0, 300);
    throw new ApiError(method, path, res.status, res.statusText, detail);
  }
  return { data, index: Number(res.headers.get('X-Consul-Index') || 0) };
}

export function get(path) { return request('GET', path); }

// A write (PUT, POST); with the token from sessionStorage when there is one. A 403 comes
// back as an ApiError with status 403: the caller asks for a token (auth.js) and retries.
export function write(method, path, body) { return request(method, path, { body, auth: true }); }

// Server-Sent Events from path: handlers maps an event name to a function of its parsed
// data; onState(state) hears 'live' and 'down' (the browser reconnects by itself, with
// Last-Event-ID). Returns a function that closes the stream.
export function events(path, handlers, onState) {
  const es = new EventSource(path);
  es.onopen = () => onState && onState('live');
  es.onerror = () => onState && onState('down');
  for (const [name, fn] of Object.entries(handlers)) {
    es.addEventListener(name, (e) => {
      let data = null;
      try { data = JSON.parse(e.data); } catch { return; }
      fn(data, e);
    });
  }
  return () => es.close();
}
