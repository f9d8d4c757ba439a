// views/traces.js - the Traces view: a search of the trace store (the Jaeger API on weft's own
// port, docs/tracing.md) by service, operation, tags, duration and time range, with each
// trace found as a summary; a trace opens as a waterfall (views/trace.js).
//
//   #/traces?service=&operation=&tags=&minDuration=&maxDuration=&start=&end=&lookback=&limit=&sort=
//
// The parameters are the Jaeger API's, so a link from elsewhere (a route's latency chart)
// can name a search: service (required by the API; without it the page asks for one),
// operation, tags as `key=value key2="a value"` (Jaeger UI's logfmt) or as the API's JSON
// object, minDuration and maxDuration as durations (100ms, 1.5s), start and end in µs since
// the epoch as the API takes them (a number under 10^14 is read as ms), or lookback (1h;
// default 1h) when start is not given, limit (default 20) and sort (recent, longest, spans).
import { h, replace, ago } from '../dom.js';
import { route } from '../router.js';
import { get } from '../api.js';
import { buildModel, fmtDuration } from '../trace_model.js';
import { searchHref, serviceChip, keepLive } from '../trace_ui.js';
import './trace.js';

export const nav = { label: 'Traces', href: '#/traces', segment: 'traces' };

const LOOKBACKS = [['15m', 'last 15 minutes'], ['1h', 'last hour'], ['6h', 'last 6 hours'],
  ['24h', 'last 24 hours'], ['168h', 'last 7 days']];
const SORTS = [['recent', 'most recent'], ['longest', 'longest first'], ['spans', 'most spans']];
const FIELDS = ['service', 'operation', 'tags', 'minDuration', 'maxDuration', 'start', 'end',
  'lookback', 'limit', 'sort'];

// Tags as typed: `k=v k2="a b"` or a JSON object -> the API's JSON text; throws with a
// message naming what is wrong.
export function tagsToJson(text) {
  const s = text.trim();
  if (!s) return '';
  if (s.startsWith('{')) {
    let o;
    try { o = JSON.parse(s); } catch (e) { throw new Error(`tags: not valid JSON (${e.message})`); }
    if (!o || typeof o !== 'object' || Array.isArray(o)) throw new Error('tags: a JSON object of key: value');
    const out = {};
    for (const [k, v] of Object.entries(o)) out[k] = String(v);
    return JSON.stringify(out);
  }
  const out = {};
  const re = /\s*([^\s=]+)=("((?:[^"\\]|\\.)*)"|(\S*))/y;
  let i = 0;
  while (i < s.length) {
    re.lastIndex = i;
    const m = re.exec(s);
    if (!m) throw new Error(`tags: expected key=value at "${s.slice(i, i + 20)}"`);
    out[m[1]] = m[3] !== undefined ? m[3].replace(/\\(.)/g, '$1') : m[4];
    i = re.lastIndex;
    while (i < s.length && /\s/.test(s[i])) i++;
  }
  return JSON.stringify(out);
}

// start/end from the URL: µs, or ms when under 10^14 (a JavaScript Date.now()).
function micros(v) {
  if (!/^\d+$/.test(v || '')) return null;
  const n = Number(v);
  return n < 1e14 ? n * 1000 : n;
}

// A <input type="datetime-local"> value from µs, and back.
function localInput(us) {
  if (us === null) return '';
  const d = new Date(us / 1000);
  const p = (x) => String(x).padStart(2, '0');
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())}T${p(d.getHours())}:${p(d.getMinutes())}`;
}
function fromLocal(v) {
  if (!v) return '';
  const t = new Date(v).getTime();
  return Number.isFinite(t) ? String(t * 1000) : '';
}

function field(id, label, control) {
  control.id = id;
  return h('label', { for: id }, label, control);
}

function searchView(params, outlet, query) {
  const q = Object.fromEntries(FIELDS.map((k) => [k, query.get(k) || '']));
  let alive = true;
  const unlive = keepLive();
  const svcSel = h('select', { name: 'service', required: true },
    h('option', { value: '' }, 'choose…'));
  const opSel = h('select', { name: 'operation' }, h('option', { value: '' }, 'all'));
  const tagsIn = h('input', { type: 'text', value: q.tags, placeholder: 'http.route=/cart user.id=42',
    autocomplete: 'off', spellcheck: 'false' });
  const minIn = h('input', { type: 'text', value: q.minDuration, placeholder: '100ms', size: 8 });
  const maxIn = h('input', { type: 'text', value: q.maxDuration, placeholder: '2s', size: 8 });
  const lookSel = h('select', {}, LOOKBACKS.map(([v, l]) =>
    h('option', { value: v, selected: v === (q.lookback || '1h') }, l)),
  h('option', { value: 'custom', selected: !!q.start }, 'from… to…'));
  const fromIn = h('input', { type: 'datetime-local', value: localInput(micros(q.start)) });
  const toIn = h('input', { type: 'datetime-local', value: localInput(micros(q.end)) });
  const limitIn = h('input', { type: 'number', min: 1, max: 1000, value: q.limit || '20' });
  const sortSel = h('select', {}, SORTS.map(([v, l]) =>
    h('option', { value: v, selected: v === (q.sort || 'recent') }, l)));
  const range = h('div', { class: 'range', hidden: lookSel.value !== 'custom' },
    field('tr-from', 'From', fromIn), field('tr-to', 'To', toIn));
  lookSel.addEventListener('change', () => { range.hidden = lookSel.value !== 'custom'; });
  const formErr = h('p', { class: 'form-err', role: 'alert', hidden: true });

  const form = h('form', { class: 'toolbar search', 'aria-label': 'Search traces',
    onsubmit: (e) => {
      e.preventDefault();
      formErr.hidden = true;
      try { tagsToJson(tagsIn.value); } catch (err) {
        formErr.textContent = err.message;
        formErr.hidden = false;
        tagsIn.focus();
        return;
      }
      const custom = lookSel.value === 'custom';
      location.hash = searchHref({ service: svcSel.value, operation: opSel.value,
        tags: tagsIn.value.trim(), minDuration: minIn.value.trim(), maxDuration: maxIn.value.trim(),
        lookback: custom ? '' : lookSel.value, start: custom ? fromLocal(fromIn.value) : '',
        end: custom ? fromLocal(toIn.value) : '', limit: limitIn.value === '20' ? '' : limitIn.value,
        sort: sortSel.value === 'recent' ? '' : sortSel.value });
    } },
  field('tr-service', 'Service', svcSel), field('tr-operation', 'Operation', opSel),
  field('tr-tags', 'Tags', tagsIn), field('tr-min', 'Min duration', minIn),
  field('tr-max', 'Max duration', maxIn), field('tr-lookback', 'Time', lookSel), range,
  field('tr-limit', 'Limit', limitIn), field('tr-sort', 'Sort', sortSel),
  h('button', { type: 'submit', class: 'primary', id: 'tr-find' }, 'Find traces'));

  const sub = h('p', { class: 'sub', 'aria-live': 'polite' });
  const body = h('div');
  outlet.append(h('h1', {}, 'Traces'), form, formErr, sub, body);

  async function loadOps(service, want) {
    replace(opSel, h('option', { value: '' }, 'all'));
    if (!service) return;
    try {
      const { data } = await get(`/api/services/${encodeURIComponent(service)}/operations`);
      if (!alive) return;
      const ops = ((data && data.data) || []).map((o) => (typeof o === 'string' ? o : o.name)).sort();
      if (want && !ops.includes(want)) ops.unshift(want);
      opSel.append(...ops.map((o) => h('option', { value: o, selected: o === want }, o)));
    } catch { /* the search below says what is wrong */ }
  }
  svcSel.addEventListener('change', () => loadOps(svcSel.value, ''));

  (async () => {
    try {
      const { data } = await get('/api/services');
      if (!alive) return;
      const names = ((data && data.data) || []).slice().sort();
      if (q.service && !names.includes(q.service)) names.unshift(q.service);
      svcSel.append(...names.map((s) => h('option', { value: s, selected: s === q.service }, s)));
      if (!names.length) sub.textContent = 'No service has sent a span yet.';
    } catch (e) {
      sub.textContent = `Cannot read the services: ${e.message}`;
    }
    loadOps(q.service, q.operation);
  })();

  if (!q.service) {
    sub.textContent = 'Choose a service to search its traces.';
    return () => { alive = false; unlive(); };
  }
  let tagsJson = '';
  try { tagsJson = tagsToJson(q.tags); } catch (e) {
    sub.textContent = e.message;
    return () => { alive = false; unlive(); };
  }
  const api = new URLSearchParams({ service: q.service });
  if (q.operation) api.set('operation', q.operation);
  if (tagsJson) api.set('tags', tagsJson);
  if (q.minDuration) api.set('minDuration', q.minDuration);
  if (q.maxDuration) api.set('maxDuration', q.maxDuration);
  const start = micros(q.start);
  const end = micros(q.end);
  if (start !== null) api.set('start', String(start));
  else api.set('lookback', q.lookback || '1h');
  if (end !== null) api.set('end', String(end));
  api.set('limit', q.limit || '20');
  sub.textContent = 'Searching…';
  (async () => {
    let traces;
    try {
      const { data } = await get(`/api/traces?${api}`);
      traces = (data && data.data) || [];
    } catch (e) {
      if (alive) { sub.textContent = ''; replace(body, h('p', { class: 'empty' }, e.message)); }
      return;
    }
    if (!alive) return;
    const models = traces.map(buildModel);
    const sort = q.sort || 'recent';
    if (sort === 'longest') models.sort((a, b) => b.duration - a.duration);
    else if (sort === 'spans') models.sort((a, b) => b.spans.length - a.spans.length);
    else models.sort((a, b) => b.start - a.start);
    sub.textContent = `${models.length} trace${models.length === 1 ? '' : 's'} found.`;
    if (!models.length) {
      replace(body, h('p', { class: 'empty' }, 'No trace matches the search.'));
      return;
    }
    const longest = Math.max(1, ...models.map((m) => m.duration));
    replace(body, h('ol', { id: 'trace-results', class: 'results' }, models.map((m) => summary(m, longest))));
  })();
  return () => { alive = false; unlive(); };
}

function summary(m, longest) {
  const r = m.root;
  const title = r ? `${r.service}: ${r.op}` : m.id;
  const started = m.start / 1000;
  const bar = h('span', { class: 'dbar', 'aria-hidden': 'true' });
  bar.style.width = `${Math.max(0.5, (m.duration / longest) * 100)}%`;
  return h('li', { 'data-trace': m.id, 'data-spans': m.spans.length, 'data-errors': m.errors },
    h('div', { class: 'res-head' },
      h('a', { href: `#/traces/${encodeURIComponent(m.id)}`, class: 'res-title' }, title),
      m.errors ? h('span', { class: 'badge', 'data-health': 'critical' },
        `${m.errors} error${m.errors === 1 ? '' : 's'}`) : null,
      h('span', { class: 'res-dur' }, fmtDuration(m.duration))),
    h('div', { class: 'dtrack' }, bar),
    h('div', { class: 'res-meta' },
      h('span', {}, `${m.spans.length} span${m.spans.length === 1 ? '' : 's'}`),
      h('ul', { class: 'chips', 'aria-label': 'services crossed' },
        [...m.services].map(([s, v]) => h('li', {}, serviceChip(s, v.spans)))),
      h('time', { datetime: new Date(started).toISOString(), title: new Date(started).toLocaleString() },
        `${new Date(started).toLocaleString()} (${ago(started)})`),
      h('code', { class: 'tid' }, m.id)));
}

route('traces', searchView);
