// views/breakers.js - the Circuit breakers view, after Hystrix's dashboard: one tile per
// upstream (a route's own breaker and each instance's), its circle sized by its requests/s
// and coloured by its state (closed green, half-open amber, open red; the state is written
// out too, never colour alone), its failure rate, the time until it goes half-open
// (counting down live), and the timeline of its transitions with their reasons. Data: the
// upstreams' history (history.js) and GET /v1/weft/history/transitions, polled each second.
//
//   #/breakers                       every upstream's tile
//   #/breakers/<route>               the route's tiles and its timeline
//   #/breakers/<route>/<upstream>    one upstream (HOST:PORT, or `route` for the route's own
//                                    breaker): its tile, its state over 15 minutes, timeline
import { h, replace } from '../dom.js';
import { href, route } from '../router.js';
import { get } from '../api.js';
import { subscribe } from '../registry.js';
import { pollHistory, last, now, fmtRate, fmtPct } from '../history.js';

export const nav = { label: 'Breakers', href: '#/breakers', segment: 'breakers' };

const STATES = ['closed', 'open', 'half_open'];   // the history's 0, 1, 2
const TEXT = { closed: 'closed', open: 'open', half_open: 'half-open', none: 'no breaker' };
const OWN = 'route';  // the URL segment of a route's own breaker (its upstream is "")
const POLL_MS = 1000;
const KEEP = 64;      // transitions kept per route, as weft keeps them

const segOf = (upstream) => (upstream === '' ? OWN : upstream);
const upOf = (seg) => (seg === OWN ? '' : seg);
const upLabel = (upstream) => (upstream === '' ? 'route\u2019s own breaker' : upstream);

function clockSec(ms) {
  const d = new Date(ms);
  return [d.getHours(), d.getMinutes(), d.getSeconds()].map((x) => String(x).padStart(2, '0')).join(':');
}

// Transitions of every route (or one), kept and polled with since = the newest seen.
function pollTransitions(routeName, onData, onError) {
  const byRoute = new Map(); // route -> {breaker, dropped, list: [...]}
  let since = 0;
  let timer = null;
  let stopped = false;
  async function tick() {
    try {
      const q = new URLSearchParams();
      if (since) q.set('since', String(since - 1)); // -1: one at the same ms is not missed
      if (routeName) q.set('route', routeName);
      const { data } = await get(`/v1/weft/history/transitions?${q}`);
      if (stopped) return;
      for (const r of data.routes || []) {
        const kept = byRoute.get(r.route) || { list: [], keys: new Set() };
        kept.breaker = r.breaker;
        kept.dropped = r.dropped;
        for (const t of r.transitions || []) {
          const k = `${t.time_ms}|${t.upstream}|${t.from}|${t.to}|${t.reason}`;
          if (kept.keys.has(k)) continue;
          kept.keys.add(k);
          kept.list.push(t);
          if (t.time_ms > since) since = t.time_ms;
        }
        if (kept.list.length > KEEP) kept.list.splice(0, kept.list.length - KEEP);
        byRoute.set(r.route, kept);
      }
      onData(byRoute);
    } catch (e) {
      if (!stopped) onError(e);
    }
    if (!stopped) timer = setTimeout(tick, POLL_MS);
  }
  tick();
  return () => { stopped = true; if (timer) clearTimeout(timer); };
}

// The tile's numbers from one history entry.
function stateOf(sr) {
  const s = last(sr.state);
  return s === null ? 'none' : STATES[s] || 'none';
}

function countdownText(left, state) {
  if (state !== 'open') return '';
  if (left > 0) return `half-open in ${Math.ceil(left / 1000)} s`;
  return 'half-open at the next request';
}

// Draws the tiles of entries into grid; returns the countdowns to tick.
function tiles(entries, hist, trans, big) {
  let maxRps = 0;
  for (const e of entries) maxRps = Math.max(maxRps, now(e.series.requests_per_s) || 0);
  const countdowns = [];
  const els = entries.map((e) => {
    const sr = e.series;
    const state = stateOf(sr);
    const rps = now(sr.requests_per_s) || 0;
    const fr = last(sr.failure_rate);
    const er = now(sr.error_ratio);
    const until = last(sr.ms_until_half_open) || 0;
    const r = maxRps > 0 ? 8 + 22 * Math.sqrt(rps / maxRps) : 8;
    const lastT = ((trans.get(e.route) || { list: [] }).list.filter((t) => t.upstream === e.upstream)).at(-1);
    const cd = h('span', { class: 'countdown', 'data-countdown': '' }, countdownText(until - (performance.now() - hist.received), state));
    if (state === 'open') countdowns.push({ el: cd, deadline: hist.received + until });
    const label = `${e.route} ${upLabel(e.upstream)}`;
    return h('article', { class: `tile${big ? ' big' : ''}`, 'data-state': state, 'data-route': e.route,
      'data-upstream': e.upstream, 'aria-label': `${label}: ${TEXT[state]}` },
    volume(r),
    h('div', { class: 'tile-body' },
      h('h3', {}, h('a', { href: href('breakers', e.route, segOf(e.upstream)),
        'data-key': `tile:${e.route}:${e.upstream}` }, upLabel(e.upstream))),
      h('p', { class: 'tile-route' }, 'route ', h('a', { href: href('gateway', e.route) }, e.route)),
      h('p', {}, h('span', { class: 'badge state' }, TEXT[state]), ' ', cd),
      h('dl', { class: 'meta' },
        h('dt', {}, 'Requests/s'), h('dd', {}, fmtRate(rps)),
        h('dt', {}, 'Failure rate (window)'), h('dd', {}, fr === null ? '–' : fmtPct(fr)),
        h('dt', {}, 'Errors (last second)'), h('dd', {}, er === null ? '–' : fmtPct(er))),
      lastT ? h('p', { class: 'reason' }, `${TEXT[lastT.to] || lastT.to}: ${lastT.reason} (${lastT.detail})`) : null));
  });
  return { els, countdowns };
}

// The volume circle (radius from the requests/s), drawn in the state's colour by the CSS.
function volume(r) {
  const NS = 'http://www.w3.org/2000/svg';
  const svg = document.createElementNS(NS, 'svg');
  for (const [k, v] of Object.entries({ class: 'vol', viewBox: '0 0 60 60', width: 60, height: 60,
    'aria-hidden': 'true' })) svg.setAttribute(k, String(v));
  const c = document.createElementNS(NS, 'circle');
  c.setAttribute('cx', '30');
  c.setAttribute('cy', '30');
  c.setAttribute('r', r.toFixed(1));
  svg.append(c);
  return svg;
}

function timeline(list, withUpstream) {
  if (!list.length) return h('p', { class: 'empty' }, 'No transition yet.');
  return h('ol', { class: 'timeline', reversed: true }, [...list].reverse().map((t) =>
    h('li', { 'data-to': t.to, 'data-reason': t.reason },
      h('time', { datetime: new Date(t.time_ms).toISOString() }, clockSec(t.time_ms)), ' ',
      withUpstream ? h('span', { class: 'tl-up' }, `${upLabel(t.upstream)}: `) : null,
      h('strong', {}, `${TEXT[t.from] || t.from} → ${TEXT[t.to] || t.to}`), ' ',
      h('span', { class: 'tl-reason' }, t.reason), h('br'),
      h('span', { class: 'tl-detail' }, t.detail))));
}

// The state over the window as coloured segments; text alternative: the timeline.
function strip(times, states) {
  const NS = 'http://www.w3.org/2000/svg';
  const svg = document.createElementNS(NS, 'svg');
  svg.setAttribute('viewBox', '0 0 900 16');
  svg.setAttribute('preserveAspectRatio', 'none');
  svg.setAttribute('class', 'strip');
  svg.setAttribute('aria-hidden', 'true');
  const t1 = times.at(-1) || 0;
  const t0 = t1 - 900000;
  for (let i = 0; i < times.length; i++) {
    const s = states[i];
    if (s === null || s === undefined) continue;
    const r = document.createElementNS(NS, 'rect');
    const x = ((times[i] - 1000 - t0) / 900000) * 900;
    r.setAttribute('x', Math.max(0, x).toFixed(1));
    r.setAttribute('width', '1.2');
    r.setAttribute('y', '0');
    r.setAttribute('height', '16');
    r.setAttribute('class', `st-${STATES[s]}`);
    svg.append(r);
  }
  return svg;
}

function view(params, outlet) {
  const routeName = params.route || null;
  const upstream = params.upstream === undefined ? null : upOf(params.upstream);
  const crumbs = [h('li', {}, h('a', { href: '#/breakers' }, 'Breakers'))];
  let title = 'Circuit breakers';
  if (routeName) {
    crumbs.push(h('li', {}, upstream === null ? h('span', { 'aria-current': 'page' }, routeName)
      : h('a', { href: href('breakers', routeName) }, routeName)));
    title = `Breakers of ${routeName}`;
  }
  if (upstream !== null) {
    crumbs.push(h('li', {}, h('span', { 'aria-current': 'page' }, upLabel(upstream))));
    title = `Breaker: ${routeName} ${upLabel(upstream)}`;
  }
  const summary = h('p', { class: 'sub', 'aria-live': 'polite' }, 'Loading…');
  const grid = h('div', { class: 'tiles', id: 'tiles' });
  const stripBox = h('div');
  const tl = h('div', { id: 'timeline' });
  outlet.append(...[routeName ? h('nav', { class: 'crumbs', 'aria-label': 'Breadcrumb' }, h('ol', {}, crumbs)) : null,
    h('h1', {}, title), summary,
    routeName ? h('p', {}, h('a', { href: href('gateway', routeName) }, `Gateway charts of ${routeName}`)) : null,
    h('p', { class: 'legend-states' }, 'Circle: requests/s (larger is more). ',
      h('span', { class: 'badge state', 'data-state': 'closed' }, 'closed'), ' ',
      h('span', { class: 'badge state', 'data-state': 'half_open' }, 'half-open'), ' ',
      h('span', { class: 'badge state', 'data-state': 'open' }, 'open')),
    grid, stripBox, h('h2', {}, 'Transitions'), tl].filter(Boolean));

  let hist = null;
  let trans = new Map();
  let countdowns = [];

  function draw() {
    if (!hist) return;
    let entries = [...hist.keys.values()];
    if (routeName) entries = entries.filter((e) => e.route === routeName);
    if (upstream !== null) entries = entries.filter((e) => e.upstream === upstream);
    entries.sort((a, b) => a.route.localeCompare(b.route) || a.upstream.localeCompare(b.upstream));
    const n = { closed: 0, open: 0, half_open: 0, none: 0 };
    for (const e of entries) n[stateOf(e.series)]++;
    summary.textContent = entries.length
      ? `${entries.length} upstream${entries.length === 1 ? '' : 's'}: ${n.closed} closed, ${n.half_open} half-open, ` +
        `${n.open} open, ${n.none} without a breaker.`
      : (routeName ? 'No upstream of this route in the history yet (one shows after its first request).'
        : 'No upstream in the history yet: routes with traffic show here.');
    const t = tiles(entries, hist, trans, upstream !== null);
    countdowns = t.countdowns;
    replace(grid, t.els);
    if (upstream !== null && entries[0]) {
      replace(stripBox, h('h2', {}, 'State, last 15 minutes'), strip(hist.times, entries[0].series.state || []),
        h('p', { class: 'strip-axis', 'aria-hidden': 'true' }, h('span', {}, '15 min ago'), h('span', {}, 'now')));
    }
    const list = [];
    for (const [r, kept] of trans) {
      if (routeName && r !== routeName) continue;
      for (const x of kept.list) if (upstream === null || x.upstream === upstream) list.push({ ...x, route: r });
    }
    list.sort((a, b) => a.time_ms - b.time_ms);
    replace(tl, routeName ? timeline(list, upstream === null)
      : list.length ? h('ol', { class: 'timeline', reversed: true }, [...list].reverse().slice(0, 50).map((x) =>
        h('li', { 'data-to': x.to, 'data-reason': x.reason },
          h('time', { datetime: new Date(x.time_ms).toISOString() }, clockSec(x.time_ms)), ' ',
          h('a', { href: href('breakers', x.route, segOf(x.upstream)) }, `${x.route} ${upLabel(x.upstream)}`), ': ',
          h('strong', {}, `${TEXT[x.from] || x.from} → ${TEXT[x.to] || x.to}`), ' ',
          h('span', { class: 'tl-reason' }, x.reason), h('br'), h('span', { class: 'tl-detail' }, x.detail))))
        : h('p', { class: 'empty' }, 'No transition yet.'));
  }

  const extra = routeName ? `&route=${encodeURIComponent(routeName)}` : '';
  const stopH = pollHistory('upstreams', (st) => { hist = st; draw(); },
    (e) => replace(grid, h('p', { class: 'empty' }, e.status === 404
      ? 'weft keeps no history (history.enabled is false): the tiles need it.'
      : `Cannot read the history: ${e.message}`)), extra);
  const stopT = pollTransitions(routeName, (m) => { trans = m; draw(); }, () => {});
  // the countdowns tick between polls
  const ticker = setInterval(() => {
    const now = performance.now();
    for (const c of countdowns) c.el.textContent = countdownText(c.deadline - now, 'open');
  }, 250);
  // the header's "live" is the registry's stream: started here too, so that it says so
  const stopS = subscribe(() => {});
  return () => { stopH(); stopT(); stopS(); clearInterval(ticker); };
}

route('breakers', view);
route('breakers/:route', view);
route('breakers/:route/:upstream', view);
