// views/gateway.js - the Gateway view: per route, requests/s, error ratio and latency
// quantiles over the last 15 minutes (weft's own history, history.js), rate-limit
// rejections, retries and the retry budget; live, one incremental poll a second.
//
//   #/gateway            every route: its numbers now, its breaker, links
//   #/gateway/<route>    one route: its settings and its charts; the latency chart links
//                        to the traces of its slow requests (and to the exemplars' traces
//                        when /metrics has them), the route to its breakers
import { h, replace } from '../dom.js';
import { href, route } from '../router.js';
import { get } from '../api.js';
import { subscribe } from '../registry.js';
import { Chart } from '../chart.js';
import { pollHistory, now, fmtRate, fmtPct, fmtMs } from '../history.js';

export const nav = { label: 'Gateway', href: '#/gateway', segment: 'gateway' };

const STATE_TEXT = { closed: 'closed', open: 'open', half_open: 'half-open' };
const ROUTES_POLL_MS = 2000;

function routeLabel(name) { return name === '-' ? '- (no route matched)' : name; }

function dash(v, f) { return v === null || v === undefined ? '–' : f(v); }

// The admin API's route table (settings and breaker state), read every ROUTES_POLL_MS.
function pollRoutes(onData, onError) {
  let timer = null;
  let stopped = false;
  async function tick() {
    try {
      const { data } = await get('/v1/gateway/routes');
      if (!stopped) onData(data || []);
    } catch (e) {
      if (!stopped) onError(e);
    }
    if (!stopped) timer = setTimeout(tick, ROUTES_POLL_MS);
  }
  tick();
  return () => { stopped = true; if (timer) clearTimeout(timer); };
}

function breakerBadge(name, b) {
  if (!b) return h('span', { class: 'empty' }, 'none');
  const st = STATE_TEXT[b.state] || b.state;
  return h('a', { href: href('breakers', name), class: 'badge', 'data-breaker': b.state,
    'aria-label': `breaker ${st}: the breakers of ${name}` }, st);
}

function errorLine(el, e) {
  replace(el, h('p', { class: 'empty' }, e.status === 404
    ? 'weft keeps no history (history.enabled is false): the gateway\'s charts need it.'
    : `Cannot read the gateway's history: ${e.message}`));
}

// ---- #/gateway ----

function listView(params, outlet) {
  const summary = h('p', { class: 'sub', 'aria-live': 'polite' }, 'Loading…');
  const body = h('div');
  const budget = new Chart({ title: 'Retry budget (all routes)', fmt: (v) => v.toFixed(0),
    series: [{ key: 'retries_active', name: 'retries in flight' }, { key: 'limit', name: 'limit' }] });
  outlet.append(h('h1', {}, 'Gateway'), summary, body, budget.el);
  let routes = [];
  let hist = null;

  function draw() {
    if (!hist) return;
    const names = new Set([...hist.keys.keys()]);
    for (const r of routes) names.add(r.name);
    if (!names.size) {
      summary.textContent = 'No route: the gateway has no gateway.routes in its configuration.';
      replace(body);
      return;
    }
    let total = 0;
    const rows = [...names].sort((a, b) => (a === '-') - (b === '-') || a.localeCompare(b)).map((name) => {
      const sr = (hist.keys.get(name) || { series: {} }).series;
      const conf = routes.find((r) => r.name === name);
      const rps = now(sr.requests_per_s);
      total += rps || 0;
      return h('tr', { 'data-route': name, 'data-rps': rps ?? '' },
        h('th', { scope: 'row' }, name === '-' ? routeLabel(name)
          : h('a', { href: href('gateway', name), 'data-key': `route:${name}` }, name)),
        h('td', { class: 'num' }, dash(rps, fmtRate)),
        h('td', { class: 'num' }, dash(now(sr.error_ratio), fmtPct)),
        h('td', { class: 'num' }, dash(now(sr.p50_ms), fmtMs)),
        h('td', { class: 'num hide-narrow' }, dash(now(sr.p95_ms), fmtMs)),
        h('td', { class: 'num' }, dash(now(sr.p99_ms), fmtMs)),
        h('td', { class: 'num hide-narrow' }, dash(now(sr.rate_limited_per_s), fmtRate)),
        h('td', { class: 'num hide-narrow' }, dash(now(sr.retries_per_s), fmtRate)),
        h('td', {}, conf ? breakerBadge(name, conf.breaker) : h('span', { class: 'empty' }, '–')));
    });
    summary.textContent = `${names.size} route${names.size === 1 ? '' : 's'}, ` +
      `${fmtRate(total)} requests/s in the last second.`;
    replace(body, h('div', { class: 'scroll' }, h('table', { id: 'routes' },
      h('caption', { class: 'sr-only' }, 'Routes, their numbers in the last second'),
      h('thead', {}, h('tr', {},
        h('th', { scope: 'col' }, 'Route'), h('th', { scope: 'col', class: 'num' }, 'Requests/s'),
        h('th', { scope: 'col', class: 'num' }, 'Errors'), h('th', { scope: 'col', class: 'num' }, 'p50'),
        h('th', { scope: 'col', class: 'num hide-narrow' }, 'p95'), h('th', { scope: 'col', class: 'num' }, 'p99'),
        h('th', { scope: 'col', class: 'num hide-narrow' }, 'Rate-limited/s'),
        h('th', { scope: 'col', class: 'num hide-narrow' }, 'Retries/s'),
        h('th', { scope: 'col' }, 'Breaker'))),
      h('tbody', {}, rows))));
    budget.update(hist.times, hist.retry_budget);
  }

  const stopH = pollHistory('routes', (st) => { hist = st; draw(); }, (e) => errorLine(body, e));
  const stopR = pollRoutes((r) => { routes = r; draw(); }, () => {});
  const stopS = subscribe(() => {}); // the header's "live": the registry's stream
  return () => { stopH(); stopR(); stopS(); };
}

// ---- #/gateway/<route> ----

function settings(conf) {
  if (!conf) return null;
  const m = conf.match || {};
  const where = m.path_prefix ? `path prefix ${m.path_prefix}` : m.path ? `path ${m.path}` : JSON.stringify(m);
  const up = conf.service ? `service ${conf.service}`
    : conf.upstream ? (conf.upstream.targets || []).map((t) => t.address).join(', ') : '–';
  const rl = conf.rate_limit;
  const rt = conf.retry;
  const rows = [['Match', where], ['Upstream', up], ['Timeout', conf.timeout || '–'],
    ['Rate limit', rl ? `${rl.algorithm === 'sliding_window' ? `${rl.limit} per ${rl.window}`
      : `${rl.rate}, burst ${rl.burst}`}, key ${rl.key}${rl.shadow ? ' (shadow)' : ''}; ` +
      `rejected ${rl.rejected ?? 0}${rl.shadow ? `, would have rejected ${rl.shadow_rejected ?? 0}` : ''}` : 'none'],
    ['Retry', rt ? `${rt.attempts} more ${rt.attempts === 1 ? 'try' : 'tries'} on ${(rt.on || []).join(', ')}` : 'none']];
  return h('dl', { class: 'meta' }, rows.map(([k, v]) => [h('dt', {}, k), h('dd', {}, String(v))]));
}

// Exemplars: the newest trace id of each latency bucket of the route, from /metrics in
// OpenMetrics text (docs/tracing.md "Exemplars"); slowest bucket first.
async function exemplars(name) {
  const res = await fetch('/metrics', { headers: { Accept: 'application/openmetrics-text; version=1.0.0' },
    cache: 'no-store' });
  if (!res.ok) return [];
  const text = await res.text();
  const want = `weft_gateway_request_duration_seconds_bucket{route="${name.replace(/["\\]/g, '\\$&')}",`;
  const out = [];
  for (const line of text.split('\n')) {
    if (!line.startsWith(want)) continue;
    const m = /# \{[^}]*trace_id="([0-9a-f]{32})"[^}]*\} ([0-9.e+-]+)/.exec(line);
    if (m) out.push({ trace: m[1], ms: Number(m[2]) * 1000 });
  }
  const seen = new Set();
  return out.sort((a, b) => b.ms - a.ms).filter((x) => !seen.has(x.trace) && seen.add(x.trace)).slice(0, 5);
}

function tracesLink(name, p95) {
  const q = new URLSearchParams({ service: 'weft', tags: `weft.route=${name}` });
  if (p95) q.set('minDuration', p95 >= 1 ? `${Math.floor(p95)}ms` : `${Math.floor(p95 * 1000)}us`);
  return `#/traces?${q.toString()}`;
}

function routeView(params, outlet) {
  const name = params.route;
  const conf = h('div');
  const traces = h('a', { href: tracesLink(name, null), class: 'chart-link', 'data-traces': '' },
    'Traces of slow requests');
  const ex = h('div', { class: 'exemplars' });
  const charts = {
    rps: new Chart({ title: 'Requests/s', fmt: fmtRate, series: [{ key: 'requests_per_s', name: 'requests/s' }] }),
    err: new Chart({ title: 'Error ratio (5xx)', fmt: fmtPct, yMax: 1,
      series: [{ key: 'error_ratio', name: '5xx share' }] }),
    lat: new Chart({ title: 'Latency', fmt: fmtMs, link: traces,
      series: [{ key: 'p50_ms', name: 'p50' }, { key: 'p95_ms', name: 'p95' }, { key: 'p99_ms', name: 'p99' }] }),
    pol: new Chart({ title: 'Rate limit and retries', fmt: fmtRate, series: [
      { key: 'rate_limited_per_s', name: 'rate-limited/s' }, { key: 'retries_per_s', name: 'retries/s' },
      { key: 'retry_budget_exhausted_per_s', name: 'retries refused by the budget/s' }] }),
    budget: new Chart({ title: 'Retry budget (all routes)', fmt: (v) => v.toFixed(0),
      series: [{ key: 'retries_active', name: 'retries in flight' }, { key: 'limit', name: 'limit' }] }),
  };
  const status = h('p', { class: 'sub', 'aria-live': 'polite' }, 'Loading…');
  charts.lat.el.append(ex);
  outlet.append(
    h('nav', { class: 'crumbs', 'aria-label': 'Breadcrumb' }, h('ol', {},
      h('li', {}, h('a', { href: '#/gateway' }, 'Gateway')), h('li', {}, h('span', { 'aria-current': 'page' }, name)))),
    h('h1', {}, `Route ${routeLabel(name)}`), status, conf,
    h('div', { class: 'charts', id: 'route-charts', 'data-route': name },
      charts.rps.el, charts.err.el, charts.lat.el, charts.pol.el, charts.budget.el));

  let hist = null;
  function draw() {
    const kept = hist.keys.get(name);
    if (!kept) {
      status.textContent = 'No sample of this route yet (a route shows once the history has seen it).';
      return;
    }
    const sr = kept.series;
    const rps = now(sr.requests_per_s);
    status.textContent = `Now ${dash(rps, fmtRate)} requests/s, ${dash(now(sr.error_ratio), fmtPct)} errors, ` +
      `p99 ${dash(now(sr.p99_ms), fmtMs)}.`;
    status.dataset.rps = rps ?? '';
    charts.rps.update(hist.times, sr);
    charts.err.update(hist.times, sr);
    charts.lat.update(hist.times, sr);
    charts.pol.update(hist.times, sr);
    charts.budget.update(hist.times, hist.retry_budget);
    const p95 = now(sr.p95_ms);
    traces.href = tracesLink(name, p95);
    traces.textContent = p95 ? `Traces slower than ${fmtMs(p95)} (p95)` : 'Traces of this route';
  }
  const stopH = pollHistory('routes', (st) => { hist = st; draw(); }, (e) => errorLine(status, e),
    `&route=${encodeURIComponent(name)}`);
  const stopR = pollRoutes((rs) => {
    const c = rs.find((r) => r.name === name);
    replace(conf, c ? h('div', { class: 'route-conf' }, settings(c),
      h('p', {}, 'Breaker: ', breakerBadge(name, c.breaker), ' ',
        h('a', { href: href('breakers', name) }, `The breakers of ${name}`)))
      : h('p', { class: 'empty' }, name === '-' ? 'Requests that matched no route (answered 404).'
        : 'This route is not in the gateway\'s table now.'));
  }, () => {});
  let exTimer = null;
  let stopped = false;
  async function exTick() {
    try {
      const list = await exemplars(name);
      if (stopped) return;
      replace(ex, list.length ? [h('h4', {}, 'Exemplar traces'), h('ul', { class: 'tags' },
        list.map((x) => h('li', {}, h('a', { href: href('traces', x.trace) }, `${fmtMs(x.ms)} ${x.trace.slice(0, 8)}…`))))]
        : []);
    } catch { /* /metrics unreadable: no exemplars shown */ }
    if (!stopped) exTimer = setTimeout(exTick, 5000);
  }
  exTick();
  const stopS = subscribe(() => {});
  return () => { stopped = true; stopH(); stopR(); stopS(); if (exTimer) clearTimeout(exTimer); };
}

route('gateway', listView);
route('gateway/:route', routeView);
