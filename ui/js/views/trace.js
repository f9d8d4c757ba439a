// views/trace.js - one trace: #/traces/<id>[?span=<spanID>] (the span selected).
//
// The waterfall: one row per span in tree order, its bar on the trace's time axis, the tree
// collapsible, each service with a colour and its name in text; the critical path
// (trace_model.js) marked on its rows and its segments drawn on the bars. The rows are
// drawn virtually: only those in the scrolled box (and a few around) exist, so a trace of
// 10,000 spans costs what one of 40 does to draw and to scroll. Keyboard: the tree is one
// tab stop (role="tree"); Up and Down move, Right and Left open and close, Home and End,
// Enter shows the span's details (its URL).
import { h, replace } from '../dom.js';
import { route, setQuery } from '../router.js';
import { get } from '../api.js';
import { buildModel, criticalPath, fmtDuration } from '../trace_model.js';
import { PALETTE, searchHref, keepLive } from '../trace_ui.js';

const ROW = 28;      // px, one row (traces.css: .wf-row)
const OVERSCAN = 10; // rows drawn above and below what shows
const INDENT_MAX = 20;

// Gateway tags worth showing on their own (src/gateway/observe.c)
const GATEWAY_KEYS = ['weft.route', 'http.route', 'weft.decision', 'weft.ratelimit', 'weft.breaker',
  'weft.retries', 'weft.sampling', 'server.address', 'server.port', 'error.type', 'weft.request_id'];

function crumbs(id) {
  return h('nav', { class: 'crumbs', 'aria-label': 'Breadcrumb' },
    h('ol', {}, h('li', {}, h('a', { href: '#/traces' }, 'Traces')),
      h('li', {}, h('span', { 'aria-current': 'page' }, id))));
}

function value(v) {
  if (v === null || v === undefined) return '';
  return typeof v === 'object' ? JSON.stringify(v) : String(v);
}

function kvTable(rows, caption) {
  if (!rows.length) return h('p', { class: 'empty' }, `No ${caption.toLowerCase()}.`);
  return h('div', { class: 'scroll' }, h('table', { class: 'kv' },
    h('caption', { class: 'sr-only' }, caption),
    h('thead', {}, h('tr', {}, h('th', { scope: 'col' }, 'Key'), h('th', { scope: 'col' }, 'Value'))),
    h('tbody', {}, rows.map(([k, v]) => h('tr', {}, h('th', { scope: 'row' }, k),
      h('td', { class: 'mono' }, value(v)))))));
}

function traceView({ id }, outlet, query) {
  let alive = true;
  const unlive = keepLive();
  outlet.append(crumbs(id), h('h1', {}, `Trace ${id}`));
  const body = h('div', {}, h('p', { class: 'empty' }, 'Loading…'));
  outlet.append(body);
  let teardown = null;
  (async () => {
    let t;
    try {
      const { data } = await get(`/api/traces/${encodeURIComponent(id)}`);
      t = data && data.data && data.data[0];
      if (!t) throw new Error(`GET /api/traces/${id}: no trace in the answer`);
    } catch (e) {
      if (alive) replace(body, h('p', { class: 'empty' }, e.message));
      return;
    }
    // A big trace is parsed, modelled and drawn in separate tasks, so that none of them
    // holds the page for long (10,000 spans: each well under 100 ms here).
    await pause();
    if (!alive) return;
    const m = buildModel(t);
    await pause();
    if (!alive) return;
    const cp = criticalPath(m);
    await pause();
    if (!alive) return;
    teardown = draw(m, cp, outlet, body, query.get('span') || '');
  })();
  return () => {
    alive = false;
    unlive();
    if (teardown) teardown();
  };
}

const pause = () => new Promise((resolve) => setTimeout(resolve, 0));

function draw(m, cp, outlet, body, wantSpan) {
  const { spans } = m;
  const total = Math.max(1, m.duration);
  const svcIndex = new Map([...m.services.keys()].map((s, i) => [s, i % PALETTE]));
  // the same colour as the chips use elsewhere would need the hash; in one trace, the
  // order of first appearance gives distinct colours to the first eight services
  const colour = (s) => `svc-${svcIndex.get(s)}`;
  const h1 = outlet.querySelector('h1');
  if (m.root) h1.textContent = `${m.root.service}: ${m.root.op}`;
  let cpOwn = 0;
  for (const segs of cp.values()) for (const [a, b] of segs) cpOwn += b - a;

  // ---- the summary ----
  const started = m.start / 1000;
  const summaryEl = h('div', { class: 'trace-sum' },
    h('p', { class: 'sub', id: 'trace-facts' },
      `${spans.length} span${spans.length === 1 ? '' : 's'}, `,
      m.errors ? h('span', { class: 'badge', 'data-health': 'critical' },
        `${m.errors} error${m.errors === 1 ? '' : 's'}`) : '0 errors',
      `, ${fmtDuration(m.duration)}, started ${new Date(started).toLocaleString()}. `,
      h('code', { class: 'tid' }, m.id)),
    h('dl', { class: 'meta crossed' },
      h('dt', {}, 'Services'),
      h('dd', {}, h('ul', { class: 'chips', id: 'trace-services' }, [...m.services].map(([s, v]) =>
        h('li', {}, h('a', { href: `#/services/${encodeURIComponent(s)}`, class: `chip ${colour(s)}` },
          h('span', { class: 'swatch', 'aria-hidden': 'true' }),
          `${s} (${v.spans}${v.errors ? `, ${v.errors} failed` : ''})`))))),
      m.routes.length ? [h('dt', {}, 'Gateway routes'),
        h('dd', {}, h('ul', { class: 'chips', id: 'trace-routes' }, m.routes.map((r) =>
          h('li', {}, h('a', { href: `#/gateway/${encodeURIComponent(r)}` }, r)))))] : null,
      h('dt', {}, 'Critical path'),
      h('dd', { id: 'trace-cp' }, `${cp.size} span${cp.size === 1 ? '' : 's'}, ${fmtDuration(cpOwn)} ` +
        '(rows marked ◆; its stretches darker on the bars)')));

  // ---- the waterfall ----
  const collapsed = new Set();
  let vis = [];   // span indexes shown, in order
  let act = 0;    // the row that has the tree's focus (index into vis)
  let selected = -1;
  const byId = new Map(spans.map((s, i) => [s.id, i]));
  function computeVisible() {
    vis = [];
    let skip = -1;
    for (const i of m.order) {
      const d = spans[i].depth;
      if (skip >= 0 && d > skip) continue;
      skip = -1;
      vis.push(i);
      if (collapsed.has(i) && spans[i].children.length) skip = d;
    }
    spacer.style.height = `${vis.length * ROW}px`;
  }

  const ticks = h('div', { class: 'wf-axis', 'aria-hidden': 'true' },
    [0, 0.25, 0.5, 0.75, 1].map((f) => {
      const s = h('span', {}, fmtDuration(f * m.duration));
      s.style.left = `${f * 100}%`;
      if (f === 1) s.classList.add('last');
      return s;
    }));
  const spacer = h('div', { class: 'wf-spacer', role: 'none' });
  const tree = h('div', { class: 'wf-rows', role: 'tree', tabindex: '-1', id: 'waterfall',
    'aria-label': `Spans of the trace, ${spans.length} in all; Up and Down move, Right and Left open and close, Enter shows the details`,
    'aria-describedby': 'trace-cp' }, spacer);
  const box = h('div', { class: 'wf' },
    h('div', { class: 'wf-head' }, h('span', { class: 'wf-name' }, 'Service: operation'),
      h('span', { class: 'wf-time' }, ticks)),
    tree);
  const detail = h('section', { class: 'card span-detail', id: 'span-detail', 'aria-live': 'polite',
    'aria-label': 'Span details' }, h('p', { class: 'empty' }, 'Choose a span (Enter or a click) to see its tags, process and events.'));
  const tools = h('div', { class: 'toolbar' },
    h('button', { type: 'button', id: 'wf-collapse', onclick: () => {
      for (const i of m.order) if (spans[i].children.length && spans[i].depth >= 1) collapsed.add(i);
      refresh();
    } }, 'Collapse below the top'),
    h('button', { type: 'button', id: 'wf-expand', onclick: () => { collapsed.clear(); refresh(); } },
      'Expand all'),
    h('a', { id: 'wf-more', href: searchHref({ service: m.root ? m.root.service : '' }) },
      `More traces of ${m.root ? m.root.service : 'this service'}`));
  replace(body, summaryEl, tools, box, detail);

  function rowEl(vi) {
    const i = vis[vi];
    const s = spans[i];
    const onPath = cp.get(i);
    const hasKids = s.children.length > 0;
    const open = hasKids && !collapsed.has(i);
    const name = h('span', { class: 'wf-name' },
      h('span', { class: 'twisty', 'aria-hidden': 'true', 'data-toggle': '1' }, hasKids ? (open ? '▾' : '▸') : ''),
      h('span', { class: `svc-label ${colour(s.service)}` }, h('span', { class: 'swatch', 'aria-hidden': 'true' }), s.service),
      ' ', h('span', { class: 'op' }, s.op),
      s.error ? h('span', { class: 'err-mark' }, 'error') : null,
      onPath ? h('span', { class: 'cp-mark', title: 'on the critical path' }, '◆',
        h('span', { class: 'sr-only' }, ' on the critical path')) : null);
    name.style.paddingLeft = `${0.2 + Math.min(s.depth, INDENT_MAX) * 0.9}rem`;
    const bar = h('span', { class: `bar ${colour(s.service)}` });
    bar.style.left = `${((s.start - m.start) / total) * 100}%`;
    bar.style.width = `${Math.max(0.15, (s.dur / total) * 100)}%`;
    if (onPath && s.dur > 0) {
      for (const [a, b] of onPath) {
        const seg = h('span', { class: 'cp-seg' });
        seg.style.left = `${((a - s.start) / s.dur) * 100}%`;
        seg.style.width = `${((b - a) / s.dur) * 100}%`;
        bar.append(seg);
      }
    }
    const lab = h('span', { class: 'dur' }, fmtDuration(s.dur));
    const frac = (s.start - m.start + s.dur) / total;
    if (frac > 0.8) { lab.classList.add('left'); lab.style.right = `${(1 - (s.start - m.start) / total) * 100}%`; }
    else lab.style.left = `${frac * 100}%`;
    const row = h('div', { class: 'wf-row', role: 'treeitem', 'aria-level': Math.min(s.depth + 1, 1000),
      'aria-expanded': hasKids ? String(open) : undefined, 'aria-selected': String(i === selected),
      'aria-setsize': vis.length, 'aria-posinset': vi + 1,
      tabindex: vi === act ? '0' : '-1', 'data-span': s.id, 'data-vi': vi,
      'data-critical': onPath ? 'true' : undefined, 'data-error': s.error ? 'true' : undefined },
    name, h('span', { class: 'wf-time' }, bar, lab));
    row.style.top = `${vi * ROW}px`;
    return row;
  }

  let frame = 0;
  function render() {
    frame = 0;
    const hadFocus = tree.contains(document.activeElement);
    const top = tree.scrollTop;
    const first = Math.max(0, Math.floor(top / ROW) - OVERSCAN);
    const last = Math.min(vis.length, Math.ceil((top + tree.clientHeight) / ROW) + OVERSCAN);
    const rows = [];
    for (let vi = first; vi < last; vi++) rows.push(rowEl(vi));
    spacer.replaceChildren(...rows);
    // the tree stays one tab stop even when its active row is scrolled away
    tree.tabIndex = act >= first && act < last ? -1 : 0;
    if (hadFocus) {
      const el = spacer.querySelector(`[data-vi="${act}"]`);
      (el || tree).focus({ preventScroll: true });
    }
  }
  const schedule = () => { if (!frame) frame = requestAnimationFrame(render); };
  tree.addEventListener('scroll', schedule, { passive: true });
  window.addEventListener('resize', schedule);

  // After the rows changed (collapse, expand): the box's height changed, so scrollTop is
  // clamped here rather than later by the browser, and the active row is kept in view.
  function refresh() {
    computeVisible();
    act = Math.min(act, Math.max(0, vis.length - 1));
    const max = Math.max(0, vis.length * ROW - tree.clientHeight);
    let top = Math.min(tree.scrollTop, max);
    if (act * ROW < top || act * ROW + ROW > top + tree.clientHeight) top = Math.min(max, Math.max(0, act * ROW - tree.clientHeight / 2));
    tree.scrollTop = top;
    render();
  }

  function moveTo(vi) {
    act = Math.max(0, Math.min(vis.length - 1, vi));
    const y = act * ROW;
    if (y < tree.scrollTop) tree.scrollTop = y;
    else if (y + ROW > tree.scrollTop + tree.clientHeight) tree.scrollTop = y + ROW - tree.clientHeight;
    render();
    const el = spacer.querySelector(`[data-vi="${act}"]`);
    if (el) el.focus({ preventScroll: true });
  }

  function toggle(i, open) {
    if (!spans[i].children.length) return;
    if (open === undefined) open = collapsed.has(i);
    if (open) collapsed.delete(i); else collapsed.add(i);
    const keep = vis[act];
    computeVisible();
    const at = vis.indexOf(keep);
    act = at >= 0 ? at : Math.min(act, vis.length - 1);
    refresh();
  }

  function select(i, focus) {
    selected = i;
    const qs = new URLSearchParams();
    qs.set('span', spans[i].id);
    setQuery(qs);
    showDetail(i);
    render();
    if (focus) detail.querySelector('h2').focus();
  }

  tree.addEventListener('focus', (e) => {
    if (e.target !== tree) return;
    const first = Math.floor(tree.scrollTop / ROW);
    moveTo(act >= first && act * ROW < tree.scrollTop + tree.clientHeight ? act : first);
  });
  tree.addEventListener('click', (e) => {
    const row = e.target.closest('.wf-row');
    if (!row) return;
    const vi = Number(row.dataset.vi);
    act = vi;
    if (e.target.closest('[data-toggle]')) toggle(vis[vi]);
    else select(vis[vi], false);
  });
  tree.addEventListener('keydown', (e) => {
    const i = vis[act];
    const s = spans[i];
    let handled = true;
    switch (e.key) {
    case 'ArrowDown': moveTo(act + 1); break;
    case 'ArrowUp': moveTo(act - 1); break;
    case 'Home': moveTo(0); break;
    case 'End': moveTo(vis.length - 1); break;
    case 'PageDown': moveTo(act + Math.floor(tree.clientHeight / ROW)); break;
    case 'PageUp': moveTo(act - Math.floor(tree.clientHeight / ROW)); break;
    case 'ArrowRight':
      if (s.children.length && collapsed.has(i)) toggle(i, true);
      else if (s.children.length) moveTo(act + 1);
      break;
    case 'ArrowLeft':
      if (s.children.length && !collapsed.has(i)) toggle(i, false);
      else if (s.parent >= 0) { const p = vis.indexOf(s.parent); if (p >= 0) moveTo(p); }
      break;
    case 'Enter': case ' ': select(i, true); break;
    default: handled = false;
    }
    if (handled) e.preventDefault();
  });

  function showDetail(i) {
    const s = spans[i];
    const onPath = cp.get(i);
    const gw = GATEWAY_KEYS.filter((k) => s.tags.has(k)).map((k) => [k, s.tags.get(k)]);
    const route = s.tags.get('weft.route');
    const parent = s.parent >= 0 ? spans[s.parent] : null;
    const cpTime = onPath ? onPath.reduce((n, [a, b]) => n + b - a, 0) : 0;
    replace(detail,
      h('h2', { tabindex: '-1', id: 'span-title' }, `${s.service}: ${s.op}`),
      h('dl', { class: 'meta', id: 'span-facts' },
        h('dt', {}, 'Service'), h('dd', {}, h('a', { href: `#/services/${encodeURIComponent(s.service)}` }, s.service),
          ' · ', h('a', { href: searchHref({ service: s.service, operation: s.op }) }, 'traces of this operation')),
        h('dt', {}, 'Span'), h('dd', { class: 'mono' }, s.id),
        h('dt', {}, 'Parent'), h('dd', {}, parent ? h('a', { href: `#/traces/${encodeURIComponent(m.id)}?span=${parent.id}`,
          onclick: (e) => { e.preventDefault(); select(s.parent, true); } }, `${parent.service}: ${parent.op}`)
          : (s.parentId ? `${s.parentId} (not in the trace)` : 'none: a root')),
        s.kind ? [h('dt', {}, 'Kind'), h('dd', {}, s.kind)] : null,
        h('dt', {}, 'Start'), h('dd', {}, `+${fmtDuration(s.start - m.start)}`),
        h('dt', {}, 'Duration'), h('dd', {}, fmtDuration(s.dur)),
        h('dt', {}, 'Status'), h('dd', {}, s.error ? h('span', { class: 'badge', 'data-health': 'critical' }, 'error') : 'ok'),
        h('dt', {}, 'Critical path'), h('dd', {}, onPath ? `yes, ${fmtDuration(cpTime)} of it` : 'no'),
        route ? [h('dt', {}, 'Gateway route'), h('dd', {}, h('a', { href: `#/gateway/${encodeURIComponent(route)}` }, route))] : null),
      gw.length ? [h('h3', {}, 'Gateway decisions'), kvTable(gw, 'Gateway decisions')] : null,
      h('h3', {}, `Tags (${s.rawTags.length})`),
      kvTable(s.rawTags.map((g) => [g.key, g.value]), 'Tags'),
      h('h3', {}, `Events (${s.logs.length})`),
      s.logs.length ? h('ol', { class: 'events', id: 'span-events' }, s.logs.map((l) => {
        const f = l.fields || [];
        const ev = f.find((x) => x.key === 'event');
        return h('li', { 'data-event': ev ? ev.value : '' },
          h('strong', {}, ev ? value(ev.value) : '(log)'), ` at +${fmtDuration((l.timestamp || 0) - m.start)}`,
          f.filter((x) => x.key !== 'event').length
            ? h('dl', { class: 'meta' }, f.filter((x) => x.key !== 'event').map((x) =>
              [h('dt', {}, x.key), h('dd', { class: 'mono' }, value(x.value))])) : null);
      })) : h('p', { class: 'empty' }, 'No events.'),
      h('h3', {}, `Process: ${s.process.serviceName || '(none)'}`),
      kvTable((s.process.tags || []).map((g) => [g.key, g.value]), 'Process tags'));
  }

  computeVisible();
  const want = byId.get(wantSpan);
  render();
  if (want !== undefined) {
    // open the way to it, and scroll it into the box
    for (let p = spans[want].parent; p >= 0; p = spans[p].parent) collapsed.delete(p);
    computeVisible();
    act = Math.max(0, vis.indexOf(want));
    tree.scrollTop = Math.max(0, act * ROW - tree.clientHeight / 2);
    selected = want;
    showDetail(want);
    render();
  }
  return () => {
    window.removeEventListener('resize', schedule);
    if (frame) cancelAnimationFrame(frame);
  };
}

route('traces/:id', traceView);
