// views/map.js - the Service map: #/map?lookback=1h. The dependency graph the collector keeps
// at ingest (GET /api/dependencies, docs/tracing.md) over the chosen lookback, drawn as SVG
// with a layered layout made here (no library): each edge labelled with its calls, calls a
// second over the lookback, its error rate, and the state of the gateway's circuit breaker
// for the callee when a gateway route sends to a service of that name
// (GET /v1/gateway/upstreams; left out when there is no gateway). A table of the edges says
// the same in text.
//
// Layout: layers by longest path from the callers nobody calls (a cycle is broken at the
// edge that closes it, found by depth-first search); in each layer nodes are ordered by the
// mean position of their neighbours in the layer before, then after (a few sweeps, the
// barycentre heuristic), which keeps crossings few for graphs of the size a platform has.
import { h, replace } from '../dom.js';
import { route, setQuery } from '../router.js';
import { get } from '../api.js';
import { searchHref, keepLive } from '../trace_ui.js';

export const nav = { label: 'Service map', href: '#/map', segment: 'map' };

const LOOKBACKS = [['5m', 'last 5 minutes', 300e3], ['15m', 'last 15 minutes', 900e3],
  ['1h', 'last hour', 3600e3], ['6h', 'last 6 hours', 21600e3], ['24h', 'last 24 hours', 86400e3],
  ['168h', 'last 7 days', 604800e3]];
const SVG = 'http://www.w3.org/2000/svg';
const NODE_W = 150;
const NODE_H = 44;
const GAP_X = 210; // between layers (room for the edge labels)
const GAP_Y = 36;
const REFRESH_MS = 10000;
const LABEL_W = 140; // an edge's label, two lines (px, about)
const LABEL_H = 36;

function s(tag, attrs, ...children) {
  const el = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs || {})) if (v !== undefined && v !== null) el.setAttribute(k, String(v));
  for (const c of children) if (c !== null && c !== undefined) el.append(c);
  return el;
}

// Layers and order for nodes (names) and edges ([from, to]). Returns Map name -> {layer, pos}.
export function layout(names, edges) {
  const out = new Map(names.map((n) => [n, []]));
  for (const [a, b] of edges) if (a !== b) out.get(a).push(b);
  // drop the edges that close a cycle (iterative DFS; state 1 on the stack, 2 done)
  const state = new Map();
  const dag = new Map(names.map((n) => [n, []]));
  for (const root of names) {
    if (state.get(root)) continue;
    const stack = [[root, 0]];
    state.set(root, 1);
    while (stack.length) {
      const top = stack[stack.length - 1];
      const next = out.get(top[0])[top[1]++];
      if (next === undefined) { state.set(top[0], 2); stack.pop(); continue; }
      const st = state.get(next);
      if (st === 1) continue; // back edge: left out of the layering
      dag.get(top[0]).push(next);
      if (!st) { state.set(next, 1); stack.push([next, 0]); }
    }
  }
  // longest path layering, in topological order (Kahn)
  const indeg = new Map(names.map((n) => [n, 0]));
  for (const vs of dag.values()) for (const v of vs) indeg.set(v, indeg.get(v) + 1);
  const layer = new Map(names.map((n) => [n, 0]));
  const queue = names.filter((n) => indeg.get(n) === 0);
  for (let qi = 0; qi < queue.length; qi++) {
    const u = queue[qi];
    for (const v of dag.get(u)) {
      layer.set(v, Math.max(layer.get(v), layer.get(u) + 1));
      indeg.set(v, indeg.get(v) - 1);
      if (indeg.get(v) === 0) queue.push(v);
    }
  }
  const layers = [];
  for (const n of names) (layers[layer.get(n)] ||= []).push(n);
  for (let i = 0; i < layers.length; i++) layers[i] ||= [];
  const pos = new Map();
  const place = () => layers.forEach((l) => l.forEach((n, i) => pos.set(n, i)));
  place();
  const preds = new Map(names.map((n) => [n, []]));
  const succs = new Map(names.map((n) => [n, []]));
  for (const [a, b] of edges) if (a !== b) { succs.get(a).push(b); preds.get(b).push(a); }
  const bary = (n, nb) => {
    const v = nb.get(n).filter((x) => pos.has(x));
    return v.length ? v.reduce((t, x) => t + pos.get(x), 0) / v.length : pos.get(n);
  };
  for (let sweep = 0; sweep < 4; sweep++) {
    const down = sweep % 2 === 0;
    const order = down ? layers.slice(1) : layers.slice(0, -1).reverse();
    for (const l of order) {
      const key = new Map(l.map((n) => [n, bary(n, down ? preds : succs)]));
      l.sort((a, b) => key.get(a) - key.get(b) || a.localeCompare(b));
      l.forEach((n, i) => pos.set(n, i));
    }
  }
  const res = new Map();
  layers.forEach((l, li) => l.forEach((n, i) => res.set(n, { layer: li, pos: i, of: l.length })));
  return { nodes: res, layers: layers.length, widest: Math.max(1, ...layers.map((l) => l.length)) };
}

function pct(x) { return `${(x * 100).toFixed(x > 0 && x < 0.1 ? 1 : 0)}%`; }
function rate(calls, ms) {
  const r = calls / (ms / 1000);
  if (r >= 10) return `${r.toFixed(0)}/s`;
  if (r >= 0.1) return `${r.toFixed(2)}/s`;
  return r * 60 >= 0.1 ? `${(r * 60).toFixed(1)}/min` : '<0.1/min';
}

// The worst breaker state among the gateway routes that send to service (null: none).
const RANK = { closed: 0, half_open: 1, open: 2 };
function breakers(upstreams) {
  const list = Array.isArray(upstreams) ? upstreams
    : (upstreams && (upstreams.routes || upstreams.upstreams)) || [];
  const by = new Map();
  for (const r of list) {
    const st = r && r.breaker && r.breaker.state;
    if (!r || !r.service || !st) continue;
    const cur = by.get(r.service);
    if (!cur || (RANK[st] ?? 0) > (RANK[cur.state] ?? 0)) by.set(r.service, { state: st, route: r.route });
  }
  return by;
}

function mapView(params, outlet, query) {
  const lb = LOOKBACKS.find((l) => l[0] === query.get('lookback')) || LOOKBACKS[2];
  let alive = true;
  let timer = 0;
  const unlive = keepLive();
  const sel = h('select', { id: 'map-lookback', onchange: () => {
    const qs = new URLSearchParams();
    if (sel.value !== '1h') qs.set('lookback', sel.value);
    setQuery(qs);
    cur = LOOKBACKS.find((l) => l[0] === sel.value);
    load();
  } }, LOOKBACKS.map(([v, l]) => h('option', { value: v, selected: v === lb[0] }, l)));
  let cur = lb;
  const sub = h('p', { class: 'sub', 'aria-live': 'polite' });
  const body = h('div');
  outlet.append(h('h1', {}, 'Service map'),
    h('div', { class: 'toolbar' }, h('label', { for: 'map-lookback' }, 'Calls over the', sel)),
    sub, body);

  async function load() {
    clearTimeout(timer);
    const span = cur[2];
    let links;
    try {
      const { data } = await get(`/api/dependencies?endTs=${Date.now()}&lookback=${span}`);
      links = (data && data.data) || [];
    } catch (e) {
      if (alive) { sub.textContent = ''; replace(body, h('p', { class: 'empty' }, e.message)); }
      return;
    }
    let br = new Map();
    try { br = breakers((await get('/v1/gateway/upstreams')).data); } catch { /* no gateway */ }
    if (!alive) return;
    drawMap(links, br, span);
    timer = setTimeout(load, REFRESH_MS);
  }

  function drawMap(links, br, span) {
    const names = [...new Set(links.flatMap((l) => [l.parent, l.child]))].sort();
    const calls = links.reduce((n, l) => n + (l.callCount || 0), 0);
    sub.textContent = `${names.length} service${names.length === 1 ? '' : 's'}, ${links.length} ` +
      `edge${links.length === 1 ? '' : 's'}, ${calls} call${calls === 1 ? '' : 's'} over the ${cur[1]}; ` +
      'read again every 10 s.';
    if (!links.length) {
      replace(body, h('p', { class: 'empty' }, 'No calls between services in this time. ' +
        'The collector links a client span to its server child in another service (docs/tracing.md).'));
      return;
    }
    const L = layout(names, links.map((l) => [l.parent, l.child]));
    const W = L.layers * NODE_W + (L.layers - 1) * GAP_X + 40;
    const H = L.widest * NODE_H + (L.widest - 1) * GAP_Y + 60;
    const at = (n) => {
      const p = L.nodes.get(n);
      const colH = p.of * NODE_H + (p.of - 1) * GAP_Y;
      return { x: 20 + p.layer * (NODE_W + GAP_X), y: 20 + (H - 40 - colH) / 2 + p.pos * (NODE_H + GAP_Y) };
    };
    const svg = s('svg', { viewBox: `0 0 ${W} ${H}`, width: W, height: H, class: 'map',
      role: 'group', 'aria-label': 'Service dependency graph (the table below lists its edges)' },
    s('defs', {}, s('marker', { id: 'arrow', viewBox: '0 0 10 10', refX: 9, refY: 5, markerWidth: 7,
      markerHeight: 7, orient: 'auto-start-reverse' }, s('path', { d: 'M0,0 L10,5 L0,10 z', class: 'arrowhead' }))));
    const edgeG = s('g', { 'aria-hidden': 'true' });
    const labelG = s('g', { 'aria-hidden': 'true' });
    const placed = [];
    for (const l of links) {
      const a = at(l.parent);
      const b = at(l.child);
      const err = l.errorCount || 0;
      const ratio = l.callCount ? err / l.callCount : 0;
      const brk = br.get(l.child);
      const cls = `edge${ratio >= 0.05 ? ' bad' : ''}${brk && brk.state !== 'closed' ? ' broken' : ''}`;
      let d;
      let lx;
      let ly;
      if (l.parent === l.child) {
        d = `M${a.x + NODE_W - 30},${a.y} c 20,-40 50,-40 30,0`;
        lx = a.x + NODE_W; ly = a.y - 30;
      } else {
        const back = L.nodes.get(l.child).layer <= L.nodes.get(l.parent).layer;
        const x1 = back ? a.x : a.x + NODE_W;
        const x2 = back ? b.x + NODE_W : b.x;
        const y1 = a.y + NODE_H / 2 + (back ? 8 : 0);
        const y2 = b.y + NODE_H / 2 + (back ? 8 : 0);
        const cx = back ? Math.min(x1, x2) - 60 : (x1 + x2) / 2;
        d = `M${x1},${y1} C${cx},${y1} ${cx},${y2} ${x2},${y2}`;
        // the label at 70% of the curve, nearer the callee: edges that fan out of one
        // caller have parted there, so their labels do not overlap
        const t = 0.7;
        const f = 3 * (1 - t) * t * t + t * t * t;
        const g = 3 * (1 - t) * (1 - t) * t;
        lx = back ? cx : (1 - t) ** 3 * x1 + g * cx + 3 * (1 - t) * t * t * cx + t ** 3 * x2;
        ly = y1 + (y2 - y1) * f - 6;
      }
      edgeG.append(s('path', { d, class: cls, 'marker-end': 'url(#arrow)',
        'data-edge': `${l.parent}->${l.child}` }));
      const t1 = `${l.callCount} call${l.callCount === 1 ? '' : 's'} · ${rate(l.callCount, span)}`;
      const t2 = `${pct(ratio)} errors${brk ? ` · breaker ${brk.state.replace('_', '-')}` : ''}`;
      // moved down past the labels placed already that it would overlap (edges into one
      // callee meet there); kept inside the drawing
      for (let moved = true, n = 0; moved && n < 50; n++) {
        moved = false;
        for (const p of placed) {
          if (Math.abs(p.x - lx) < LABEL_W && Math.abs(p.y - ly) < LABEL_H) { ly = p.y + LABEL_H; moved = true; }
        }
      }
      ly = Math.min(ly, H - 12);
      placed.push({ x: lx, y: ly });
      labelG.append(s('text', { x: lx, y: ly - 7, class: 'elabel', 'text-anchor': 'middle' }, t1),
        s('text', { x: lx, y: ly + 9, class: `elabel${ratio >= 0.05 || (brk && brk.state !== 'closed') ? ' bad' : ''}`,
          'text-anchor': 'middle' }, t2));
    }
    const nodeG = s('g');
    for (const n of names) {
      const p = at(n);
      nodeG.append(s('g', { class: 'node', 'data-node': n },
        s('rect', { x: p.x, y: p.y, width: NODE_W, height: NODE_H, rx: 6 }),
        s('a', { href: `#/services/${encodeURIComponent(n)}`, 'aria-label': `service ${n}` },
          s('text', { x: p.x + 10, y: p.y + 18, class: 'nname' }, n.length > 18 ? `${n.slice(0, 17)}…` : n)),
        s('a', { href: searchHref({ service: n }), 'aria-label': `traces of ${n}` },
          s('text', { x: p.x + 10, y: p.y + 36, class: 'nlink' }, 'traces →'))));
    }
    svg.append(edgeG, nodeG, labelG);
    const rows = links.slice().sort((x, y) => x.parent.localeCompare(y.parent) || x.child.localeCompare(y.child));
    const table = h('table', { id: 'map-edges' },
      h('caption', {}, `Calls between services over the ${cur[1]}`),
      h('thead', {}, h('tr', {}, ['Caller', 'Callee', 'Calls', 'Rate', 'Errors', 'Error rate', 'Breaker']
        .map((c, i) => h('th', { scope: 'col', class: i >= 2 && i <= 5 ? 'num' : undefined }, c)))),
      h('tbody', {}, rows.map((l) => {
        const err = l.errorCount || 0;
        const brk = br.get(l.child);
        return h('tr', { 'data-edge': `${l.parent}->${l.child}` },
          h('th', { scope: 'row' }, h('a', { href: `#/services/${encodeURIComponent(l.parent)}` }, l.parent)),
          h('td', {}, h('a', { href: `#/services/${encodeURIComponent(l.child)}` }, l.child)),
          h('td', { class: 'num' }, l.callCount), h('td', { class: 'num' }, rate(l.callCount, span)),
          h('td', { class: 'num' }, err), h('td', { class: 'num' }, pct(l.callCount ? err / l.callCount : 0)),
          h('td', {}, brk ? h('a', { href: `#/gateway/${encodeURIComponent(brk.route)}` },
            `${brk.state.replace('_', '-')} (${brk.route})`) : '—'));
      })));
    replace(body, h('div', { class: 'map-box' }, svg), h('div', { class: 'scroll' }, table));
  }

  load();
  return () => { alive = false; clearTimeout(timer); unlive(); };
}

route('map', mapView);
