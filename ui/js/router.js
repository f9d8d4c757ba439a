// router.js - hash routing, so that every view and every selection has its own URL
// (#/services, #/services/web, #/services/web/web-1) that can be bookmarked and shared, and
// the server has one page to serve.
//
// A view module adds its routes with route(pattern, render): pattern segments are literals
// or ":name" (one percent-decoded segment); render(params, outlet, query) draws into outlet
// and returns a function that undoes what it started (subscriptions, timers), run before
// the next view draws.

const routes = [];
let outlet = null;
let cleanup = null;
let fallback = '#/services';
const listeners = new Set();

export function route(pattern, render) {
  routes.push({ parts: pattern.split('/').filter(Boolean), render });
}

// The URL of a view: href('services', name, id) -> '#/services/<name>/<id>', each segment
// percent-encoded (names may hold any character but '/').
export function href(...segments) {
  return '#/' + segments.map((s) => encodeURIComponent(s)).join('/');
}

export function setFallback(h) { fallback = h; }

// Called with the current path's first segment after each navigation (the nav marks it).
export function onNavigate(fn) { listeners.add(fn); }

function parse() {
  const raw = location.hash.replace(/^#/, '');
  const [path, qs] = raw.split('?', 2);
  let segs;
  try {
    segs = path.split('/').filter(Boolean).map(decodeURIComponent);
  } catch {
    segs = null;
  }
  return { segs, query: new URLSearchParams(qs || '') };
}

function match(segs) {
  for (const r of routes) {
    if (r.parts.length !== segs.length) continue;
    const params = {};
    let ok = true;
    r.parts.forEach((p, i) => {
      if (p.startsWith(':')) params[p.slice(1)] = segs[i];
      else if (p !== segs[i]) ok = false;
    });
    if (ok) return { r, params };
  }
  return null;
}

function render() {
  const { segs, query } = parse();
  const m = segs && match(segs);
  if (!m) {
    location.replace(fallback);
    return;
  }
  if (cleanup) cleanup();
  cleanup = null;
  outlet.replaceChildren();
  cleanup = m.r.render(m.params, outlet, query) || null;
  for (const fn of listeners) fn(segs[0]);
  // A keyboard or screen-reader user lands on the new view's heading.
  const h1 = outlet.querySelector('h1');
  if (h1) {
    h1.tabIndex = -1;
    h1.focus({ preventScroll: true });
  }
}

// Updates the query part of the current URL (a filter) without drawing the view again.
export function setQuery(query) {
  const { segs } = parse();
  const qs = query.toString();
  const url = '#/' + segs.map((s) => encodeURIComponent(s)).join('/') + (qs ? '?' + qs : '');
  history.replaceState(null, '', url);
}

export function start(el) {
  outlet = el;
  window.addEventListener('hashchange', render);
  render();
}
