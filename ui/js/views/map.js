// views/map.js - the Service map: #/map?lookback=1h. The dependency graph the collector keeps
// at ingest (GET /api/dependencies, docs/tracing.md) over the chosen lookback, drawn as SVG
// with a layered layout made here (no library): each edge labelled with its calls, calls a
// second over the lookback, its error rate, and the state of the gateway's circuit breaker
// for the callee when a gateway route sends to a service of that name
// (GET /v1/gateway/upstreams; left out when there is no gateway). A table of the edges says
// the same in text.
//
// Layout: Sugiyama's layered drawing, made small (layout() says how): an edge that skips
// layers goes round the boxes between through lanes of its own, an edge between layers
// next to each other is a straight line, and each label is placed beside its edge on a
// background of the map's colour, clear of the boxes and of the other labels
// (placeLabels()). A refresh that reads the same edges redraws nothing.
import { h, replace } from '../dom.js';
import { route, setQuery } from '../router.js';
import { get } from '../api.js';
import { searchHref, keepLive } from '../trace_ui.js';

export const nav = { label: 'Service map', href: '#/map', segment: 'map' };

const LOOKBACKS = [['5m', 'last 5 minutes', 300e3], ['15m', 'last 15 minutes', 900e3],
  ['1h', 'last hour', 3600e3], ['6h', 'last 6 hours', 21600e3], ['24h', 'last 24 hours', 86400e3],
  ['168h', 'last 7 days', 604800e3]];
const SVG = 'http://www.w3.org/2000/svg';
const NODE_W = 140;
const NODE_H = 44;
const LANE_H = 12; // the room a long edge takes in a layer it crosses
const GAP_Y = 40; // between the boxes and lanes of a layer
const MIN_GAP_X = 150; // between layers; wider when the widest label needs it
const REFRESH_MS = 10000;
const PAD = 6; // an edge label's text to the edge of its background
const LABEL_H = 34; // two lines of 12 px
const CLEAR = 5; // a label's background to its own edge
const PORT = 12; // an edge that goes round: its ends off the box's middle
function s(tag, attrs, ...children) {
  const el = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs || {})) if (v !== undefined && v !== null) el.setAttribute(k, String(v));
  for (const c of children) if (c !== null && c !== undefined) el.append(c);
  return el;
}

// Layout, Sugiyama's method made small. names: the services; edges: [caller, callee] pairs.
// (1) Cycles are broken at the edge that closes them (depth-first search), (2) each service
// gets a layer, its longest path from the services nobody calls, (3) an edge between layers
// more than one apart gets a lane (a dummy node) in each layer it crosses, so that it is
// drawn around the boxes there and never through one, and an edge that closed a cycle is
// laid out as if reversed, (4) each layer is ordered by the mean position of its
// neighbours in the layer before, then after (barycentre sweeps; the order with the fewest
// crossings is kept), (5) each item gets its height in the layer, as near its neighbours'
// as the order allows (least squares, pool-adjacent-violators), the services first and the
// lanes in the room left between them; a service follows its services neighbours only, so
// a chain of services stays on one line and the long edges go around it.
// Returns {layers, nodes: Map name -> {layer, y}, routes: per edge {self, rev, lanes:
// [{layer, y}]}}, y the centre, the topmost item's top at 0. Deterministic: the same input
// gives the same drawing, so a refresh with nothing new moves nothing.
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
  // longest path layering, in topological order (Kahn). An edge of the DAG goes to a later
  // layer; an edge left out goes to an earlier one (its callee is its caller's ancestor).
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
  // the items of the layers: services, then lanes; pred/succ link them layer to layer
  const byName = new Map(names.map((n) => [n, { node: n, layer: layer.get(n), h: NODE_H, pred: [], succ: [] }]));
  const items = [...byName.values()];
  const routes = edges.map(([a, b]) => {
    if (a === b) return { self: true, rev: false, lanes: [] };
    const rev = layer.get(a) > layer.get(b);
    const [u, v] = rev ? [b, a] : [a, b];
    let prev = byName.get(u);
    const lanes = [];
    for (let l = layer.get(u) + 1; l < layer.get(v); l++) {
      const lane = { node: null, layer: l, h: LANE_H, pred: [prev], succ: [] };
      prev.succ.push(lane);
      items.push(lane);
      lanes.push(lane);
      prev = lane;
    }
    prev.succ.push(byName.get(v));
    byName.get(v).pred.push(prev);
    return { self: false, rev, lanes };
  });
  const nl = Math.max(0, ...layer.values()) + 1;
  let layers = Array.from({ length: nl }, () => []);
  for (const it of items) layers[it.layer].push(it);
  const index = () => layers.forEach((l) => l.forEach((it, i) => { it.pos = i; }));
  index();
  // crossings between each two layers: pairs of segments whose ends are in opposite orders
  // (quadratic, so counted only while the graph is of a platform's size)
  const segs = items.reduce((n, it) => n + it.succ.length, 0);
  const crossings = () => {
    let c = 0;
    for (let li = 0; li + 1 < nl; li++) {
      const sg = [];
      for (const it of layers[li]) for (const v of it.succ) sg.push([it.pos, v.pos]);
      for (let i = 0; i < sg.length; i++) {
        for (let j = i + 1; j < sg.length; j++) if ((sg[i][0] - sg[j][0]) * (sg[i][1] - sg[j][1]) < 0) c++;
      }
    }
    return c;
  };
  let best = layers.map((l) => l.slice());
  let bestC = segs <= 3000 ? crossings() : 0;
  for (let sweep = 0; sweep < 8; sweep++) {
    const down = sweep % 2 === 0;
    for (let k = 1; k < nl; k++) {
      const l = layers[down ? k : nl - 1 - k];
      const key = new Map(l.map((it) => {
        const nb = down ? it.pred : it.succ;
        return [it, nb.length ? nb.reduce((t, x) => t + x.pos, 0) / nb.length : it.pos];
      }));
      l.sort((a, b) => key.get(a) - key.get(b)); // stable: ties keep their order
      l.forEach((it, i) => { it.pos = i; });
    }
    if (segs > 3000) { best = layers.map((l) => l.slice()); continue; }
    const c = crossings();
    if (c < bestC) { bestC = c; best = layers.map((l) => l.slice()); }
    if (!bestC) break;
  }
  layers = best;
  index();
  // heights: packed, then sweeps down and up moving each item toward its neighbours
  const sep = (a, b) => a.h / 2 + GAP_Y + b.h / 2;
  for (const l of layers) l.forEach((it, i) => { it.y = i ? l[i - 1].y + sep(l[i - 1], it) : 0; });
  for (let sweep = 0; sweep < 4; sweep++) {
    const down = sweep % 2 === 0;
    for (let k = 1; k < nl; k++) {
      const l = layers[down ? k : nl - 1 - k];
      const want = (it) => {
        let nb = down ? it.pred : it.succ;
        if (it.node && nb.some((x) => x.node)) nb = nb.filter((x) => x.node);
        return nb.length ? nb.reduce((t, x) => t + x.y, 0) / nb.length : it.y;
      };
      const svc = l.filter((it) => it.node);
      const gaps = svc.slice(1).map((it, i) => {
        let g = 0;
        for (let p = svc[i].pos; p < it.pos; p++) g += sep(l[p], l[p + 1]);
        return g;
      });
      fit(svc.map(want), gaps).forEach((y, i) => { svc[i].y = y; });
      // each run of lanes between two services (or past the first or last) in the room left
      for (let i = 0; i < l.length;) {
        if (l[i].node) { i++; continue; }
        let j = i;
        while (j < l.length && !l[j].node) j++;
        const run = l.slice(i, j);
        const rg = run.slice(1).map((it, q) => sep(run[q], it));
        const span = rg.reduce((t, g) => t + g, 0);
        const lo = i > 0 ? l[i - 1].y + sep(l[i - 1], run[0]) : -Infinity;
        const hi = j < l.length ? l[j].y - sep(run[run.length - 1], l[j]) - span : Infinity;
        let off = 0;
        fit(run.map(want), rg).forEach((y, q) => {
          if (q) off += rg[q - 1];
          run[q].y = Math.min(Math.max(y - off, lo), hi) + off;
        });
        i = j;
      }
    }
  }
  const top = Math.min(...items.map((it) => it.y - it.h / 2));
  for (const it of items) it.y = Math.round(it.y - top);
  const nodes = new Map(names.map((n) => [n, { layer: layer.get(n), y: byName.get(n).y }]));
  return { layers: nl, nodes, routes: routes.map((r) => ({ self: r.self, rev: r.rev,
    lanes: r.lanes.map((x) => ({ layer: x.layer, y: x.y })) })) };
}

// Positions for items in a fixed order, each at least gaps[i] below the one before, as near
// want as can be in the least-squares sense: with z[i] = y[i] minus the gaps above it the
// constraint is z non-decreasing, which pool-adjacent-violators solves exactly.
function fit(want, gaps) {
  const off = [0];
  for (const g of gaps) off.push(off[off.length - 1] + g);
  const blocks = [];
  want.forEach((w, i) => {
    blocks.push({ sum: w - off[i], n: 1 });
    while (blocks.length > 1) {
      const b = blocks[blocks.length - 1];
      const a = blocks[blocks.length - 2];
      if (a.sum / a.n <= b.sum / b.n) break;
      a.sum += b.sum;
      a.n += b.n;
      blocks.pop();
    }
  });
  const y = [];
  for (const b of blocks) for (let k = 0; k < b.n; k++) y.push(b.sum / b.n + off[y.length]);
  return y;
}

// An edge's drawing from its pieces (lines, and cubic curves as [p0, c1, c2, p1]): the
// path's d, and the path as line segments [x0, y0, x1, y1] (a curve cut in 16, within a
// pixel of it) to place labels against.
function shape(pieces) {
  let d = `M${pieces[0][0][0]},${pieces[0][0][1]}`;
  const segs = [];
  for (const q of pieces) {
    const [p0, p1] = [q[0], q[q.length - 1]];
    if (q.length === 2) {
      d += ` L${p1[0]},${p1[1]}`;
      segs.push([p0[0], p0[1], p1[0], p1[1]]);
      continue;
    }
    const [c1, c2] = [q[1], q[2]];
    d += ` C${c1[0]},${c1[1]} ${c2[0]},${c2[1]} ${p1[0]},${p1[1]}`;
    let prev = p0;
    for (let i = 1; i <= 16; i++) {
      const t = i / 16;
      const [a, b, c, e] = [(1 - t) ** 3, 3 * (1 - t) ** 2 * t, 3 * (1 - t) * t * t, t ** 3];
      const p = [a * p0[0] + b * c1[0] + c * c2[0] + e * p1[0], a * p0[1] + b * c1[1] + c * c2[1] + e * p1[1]];
      segs.push([prev[0], prev[1], p[0], p[1]]);
      prev = p;
    }
  }
  return { d, segs, anchors: [], box: extent(segs) };
}

function extent(segs) {
  let [x0, y0, x1, y1] = [Infinity, Infinity, -Infinity, -Infinity];
  for (const g of segs) {
    x0 = Math.min(x0, g[0], g[2]); x1 = Math.max(x1, g[0], g[2]);
    y0 = Math.min(y0, g[1], g[3]); y1 = Math.max(y1, g[1], g[3]);
  }
  return { x: x0, y: y0, w: x1 - x0, h: y1 - y0 };
}

// Whether segment g meets rect r grown by m px (Liang-Barsky clipping).
function meets(g, r, m) {
  const [x0, y0] = [g[0], g[1]];
  const [dx, dy] = [g[2] - x0, g[3] - y0];
  let [t0, t1] = [0, 1];
  for (const [p, q] of [[-dx, x0 - (r.x - m)], [dx, r.x + r.w + m - x0], [-dy, y0 - (r.y - m)], [dy, r.y + r.h + m - y0]]) {
    if (p === 0) { if (q < 0) return false; continue; }
    const t = q / p;
    if (p < 0) t0 = Math.max(t0, t); else t1 = Math.min(t1, t);
    if (t0 > t1) return false;
  }
  return true;
}

// The least and greatest of coordinate k (1: y, 0: x) of the path where the other one is
// between lo and hi; null where the path is not.
function spanOf(segs, k, lo, hi) {
  const o = 1 - k;
  let [a, b] = [Infinity, -Infinity];
  for (const g of segs) {
    const [u0, u1, v0, v1] = [g[o], g[o + 2], g[k], g[k + 2]];
    const [ua, ub] = [Math.max(lo, Math.min(u0, u1)), Math.min(hi, Math.max(u0, u1))];
    if (ua > ub) continue;
    if (u1 === u0) { a = Math.min(a, v0, v1); b = Math.max(b, v0, v1); continue; }
    for (const u of [ua, ub]) {
      const v = v0 + (v1 - v0) * (u - u0) / (u1 - u0);
      a = Math.min(a, v);
      b = Math.max(b, v);
    }
  }
  return a <= b ? [a, b] : null;
}

// The pieces of a non-loop edge: from the caller's side to the callee's, through its lanes.
// Between two layers next to each other the edge is a straight line; an edge through lanes
// curves (horizontal at both ends) from a side to a lane, runs through the lane, and so on.
// Every piece lies in a gap between layers or in a lane, never over a box.
function edgeRoute(r, a, b, colX, nudge) { // nudge: moves both ends down (px)
  const [u, v] = r.rev ? [b, a] : [a, b]; // laid out from the earlier layer
  // an edge that goes round leaves and enters a box off its middle, on the side it goes
  // to, so its arrow is not drawn over the arrow of a straight edge into the same box
  const side = (n, ln) => (ln ? Math.sign(ln.y - n.y) * PORT : 0);
  const chain = [[colX(u.layer) + NODE_W, u.y + nudge + side(u, r.lanes[0])]];
  for (const ln of r.lanes) chain.push([colX(ln.layer), ln.y], [colX(ln.layer) + NODE_W, ln.y]);
  chain.push([colX(v.layer), v.y + nudge + side(v, r.lanes[r.lanes.length - 1])]);
  const pieces = [];
  for (let i = 0; i + 1 < chain.length; i++) {
    const [p, q] = [chain[i], chain[i + 1]];
    if (i % 2 || !r.lanes.length || p[1] === q[1]) pieces.push([p, q]);
    else {
      const mx = (p[0] + q[0]) / 2;
      pieces.push([p, [mx, p[1]], [mx, q[1]], q]);
    }
  }
  if (r.rev) pieces.reverse().forEach((q) => q.reverse());
  const g = shape(pieces);
  // the middles of its runs through lanes, the middle run first: a label reads best there
  const runs = r.lanes.map((ln) => [colX(ln.layer) + NODE_W / 2, ln.y]);
  const mid = (runs.length - 1) / 2;
  g.anchors = runs.map((p, i) => [p, i]).sort((x, y) => Math.abs(x[1] - mid) - Math.abs(y[1] - mid) || x[1] - y[1])
    .map((x) => x[0]);
  return g;
}

const overlap = (r, q, m) => r.x < q.x + q.w + m && q.x < r.x + r.w + m && r.y < q.y + q.h + m && q.y < r.y + r.h + m;

// Places each edge's label (sizes[i]: {w, h}) beside its edge, in order: on the middle of a
// lane's run, then at the middle of the edge and on either side of it (65%, 35%, 80%, 20%
// of its length), above or below it (beside it for a loop). A place is taken when it is
// clear of every box (4 px), of the labels placed already (3 px) and of its own edge (so the
// text never covers it); of those, the first that no other edge crosses. With none clear,
// the first place is nudged down and up a step at a time, then down until it is clear
// (below everything, at worst). Returns the rects, each with crossed: how many other
// edges pass under it (1 for a place found by nudging).
function placeLabels(geo, sizes, boxes) {
  // the edges' segments in cells of 64 px, so that what crosses a place is found quickly
  const cells = new Map();
  const key = (cx, cy) => cx * 65536 + cy;
  geo.forEach((e, j) => e.segs.forEach((g) => {
    for (let cx = Math.floor(Math.min(g[0], g[2]) / 64); cx <= Math.floor(Math.max(g[0], g[2]) / 64); cx++) {
      for (let cy = Math.floor(Math.min(g[1], g[3]) / 64); cy <= Math.floor(Math.max(g[1], g[3]) / 64); cy++) {
        if (!cells.has(key(cx, cy))) cells.set(key(cx, cy), []);
        cells.get(key(cx, cy)).push([g, j]);
      }
    }
  }));
  const near = (r, m) => { // the edges that come within m px of r
    const found = new Set();
    for (let cx = Math.floor((r.x - m) / 64); cx <= Math.floor((r.x + r.w + m) / 64); cx++) {
      for (let cy = Math.floor((r.y - m) / 64); cy <= Math.floor((r.y + r.h + m) / 64); cy++) {
        for (const [g, j] of cells.get(key(cx, cy)) || []) if (!found.has(j) && meets(g, r, m)) found.add(j);
      }
    }
    return found;
  };
  const placed = [];
  return geo.map((e, i) => {
    const { w, h } = sizes[i];
    const clear = (r) => !boxes.some((b) => overlap(r, b, 4)) && !placed.some((q) => overlap(r, q, 3)) &&
      !near(r, CLEAR - 1).has(i);
    const crossed = (r) => { const f = near(r, 2); f.delete(i); return f.size; };
    const at = ([ax, ay], side) => {
      if (side === 'above' || side === 'below') {
        const x = ax - w / 2;
        const [lo, hi] = spanOf(e.segs, 1, x - CLEAR, x + w + CLEAR) || [ay, ay];
        return { x, y: side === 'above' ? Math.min(ay, lo) - CLEAR - h : Math.max(ay, hi) + CLEAR, w, h };
      }
      const y = ay - h / 2;
      const [lo, hi] = spanOf(e.segs, 0, y - CLEAR, y + h + CLEAR) || [ax, ax];
      return { x: side === 'right' ? Math.max(ax, hi) + CLEAR : Math.min(ax, lo) - CLEAR - w, y, w, h };
    };
    const lens = e.segs.map((g) => Math.hypot(g[2] - g[0], g[3] - g[1]));
    const total = lens.reduce((t, l) => t + l, 0);
    const along = (f) => { // the point at f of the path's length
      let left = f * total;
      for (let k = 0; k < lens.length; k++) {
        if (left <= lens[k] || k === lens.length - 1) {
          const [g, t] = [e.segs[k], lens[k] ? Math.min(1, left / lens[k]) : 0];
          return [g[0] + (g[2] - g[0]) * t, g[1] + (g[3] - g[1]) * t];
        }
        left -= lens[k];
      }
      return [e.segs[0][0], e.segs[0][1]];
    };
    const cands = [];
    for (const a of e.anchors) cands.push(at(a, 'above'), at(a, 'below'));
    for (const f of [0.5, 0.65, 0.35, 0.8, 0.2]) cands.push(at(along(f), 'above'), at(along(f), 'below'));
    cands.push(at(along(0.5), 'right'), at(along(0.5), 'left'));
    let best = null;
    let bestN = Infinity;
    for (const r of cands) {
      if (!clear(r)) continue;
      const n = crossed(r);
      if (n < bestN) { best = r; bestN = n; }
      if (!n) break;
    }
    if (!best) {
      const r0 = cands[0];
      for (let k = 1; k <= 16 && !best; k++) {
        for (const dy of [6 * k, -6 * k]) {
          const r = { ...r0, y: r0.y + dy };
          if (clear(r)) { best = r; break; }
        }
      }
      // below every box, label and segment of the edge it is clear: the loop ends there
      let bottom = e.box.y + e.box.h;
      for (const b of [...boxes, ...placed]) bottom = Math.max(bottom, b.y + b.h);
      for (const r = { ...r0 }; !best; r.y += 6) if (clear(r) || r.y > bottom + 8) best = r;
    }
    const r = { x: Math.round(best.x), y: Math.round(best.y), w, h };
    placed.push(r);
    return { ...r, crossed: Number.isFinite(bestN) ? bestN : 1 };
  });
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
    if (!r || !r.service) continue;
    // the route's own breaker and its instances' (a route with `scope: instance` has only those)
    const states = [r.breaker, ...(Array.isArray(r.instances) ? r.instances.map((i) => i && i.breaker) : [])]
      .map((b) => b && b.state).filter(Boolean);
    for (const st of states) {
      const cur = by.get(r.service);
      if (!cur || (RANK[st] ?? 0) > (RANK[cur.state] ?? 0)) by.set(r.service, { state: st, route: r.route });
    }
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
      if (alive) { sub.textContent = ''; drawn = ''; replace(body, h('p', { class: 'empty' }, e.message)); }
      return;
    }
    let br = new Map();
    try { br = breakers((await get('/v1/gateway/upstreams')).data); } catch { /* no gateway */ }
    if (!alive) return;
    drawMap(links, br, span);
    timer = setTimeout(load, REFRESH_MS);
  }

  // what the drawing was made from: a refresh that reads the same draws nothing (the focus,
  // the scroll and every position stay as they are)
  let drawn = '';

  function drawMap(links, br, span) {
    links = links.slice().sort((x, y) => x.parent.localeCompare(y.parent) || x.child.localeCompare(y.child));
    const key = JSON.stringify([cur[0], links, [...br]]);
    if (key === drawn) return;
    drawn = key;
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
    const svg = s('svg', { class: 'map', role: 'group',
      'aria-label': 'Service dependency graph (the table below lists its edges)' },
    s('defs', {}, s('marker', { id: 'arrow', viewBox: '0 0 10 10', refX: 9, refY: 5, markerWidth: 7,
      markerHeight: 7, orient: 'auto-start-reverse' }, s('path', { d: 'M0,0 L10,5 L0,10 z', class: 'arrowhead' }))));
    const edgeG = s('g', { 'aria-hidden': 'true' });
    const labelG = s('g', { 'aria-hidden': 'true' });
    const nodeG = s('g');
    // the elements first, placed once they are in the page and their text can be measured
    const nodeEls = names.map((n) => {
      const name = s('text', { class: 'nname' }, n);
      const rect = s('rect', { width: NODE_W, height: NODE_H, rx: 6 });
      const trc = s('text', { class: 'nlink' }, 'traces →');
      nodeG.append(s('g', { class: 'node', 'data-node': n }, rect,
        s('a', { href: `#/services/${encodeURIComponent(n)}`, 'aria-label': `service ${n}`, 'data-key': `map-svc:${n}` }, name),
        s('a', { href: searchHref({ service: n }), 'aria-label': `traces of ${n}`, 'data-key': `map-traces:${n}` }, trc)));
      return { rect, name, trc };
    });
    const labels = links.map((l) => {
      const err = l.errorCount || 0;
      const ratio = l.callCount ? err / l.callCount : 0;
      const brk = br.get(l.child);
      const bad = ratio >= 0.05;
      const broken = brk && brk.state !== 'closed';
      const t1 = s('text', { class: 'elabel', 'text-anchor': 'middle' },
        `${l.callCount} call${l.callCount === 1 ? '' : 's'} · ${rate(l.callCount, span)}`);
      const t2 = s('text', { class: `elabel${bad || broken ? ' bad' : ''}`, 'text-anchor': 'middle' },
        `${pct(ratio)} errors${brk ? ` · breaker ${brk.state.replace('_', '-')}` : ''}`);
      const bg = s('rect', { class: 'elabel-bg', rx: 3 });
      labelG.append(s('g', { class: 'elabel-g', 'data-edge': `${l.parent}->${l.child}` }, bg, t1, t2));
      return { bg, t1, t2, cls: `edge${bad ? ' bad' : ''}${broken ? ' broken' : ''}` };
    });
    svg.append(edgeG, nodeG, labelG);
    const box = h('div', { class: 'map-box' }, svg);
    const old = body.querySelector('.map-box');
    const scroll = old ? [old.scrollLeft, old.scrollTop] : [0, 0];
    const table = h('table', { id: 'map-edges' },
      h('caption', {}, `Calls between services over the ${cur[1]}`),
      h('thead', {}, h('tr', {}, ['Caller', 'Callee', 'Calls', 'Rate', 'Errors', 'Error rate', 'Breaker']
        .map((c, i) => h('th', { scope: 'col', class: i >= 2 && i <= 5 ? 'num' : undefined }, c)))),
      h('tbody', {}, links.map((l) => {
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
    replace(body, box, h('div', { class: 'scroll' }, table));

    // measured (an estimate when the page is not rendered): a name longer than its box is
    // cut, with the whole of it in the link's label; the layers are as far apart as the
    // widest label needs, so a label fits beside an edge between two boxes
    const width = (t) => t.getComputedTextLength() || t.textContent.length * 7.5;
    for (const { name } of nodeEls) {
      const full = name.textContent;
      for (let n = full.length - 1; n > 1 && width(name) > NODE_W - 20; n--) name.textContent = `${full.slice(0, n)}…`;
    }
    const sizes = labels.map(({ t1, t2 }) => ({ w: Math.ceil(Math.max(width(t1), width(t2))) + 2 * PAD, h: LABEL_H }));
    const L = layout(names, links.map((l) => [l.parent, l.child]));
    const pairs = new Set(links.map((l) => `${l.parent}\n${l.child}`));
    // the drawing with the gaps between layers as given: the edges' shapes, the boxes, the labels
    const draft = (gaps) => {
      const colX = (layer) => { let x = 0; for (let i = 0; i < layer; i++) x += NODE_W + gaps[i]; return x; };
      const pos = (n) => ({ ...L.nodes.get(n), x: colX(L.nodes.get(n).layer), top: L.nodes.get(n).y - NODE_H / 2 });
      const geo = links.map((l, i) => {
        const r = L.routes[i];
        const a = pos(l.parent);
        if (r.self) { // a loop over the box's top right corner, back into it
          const x = a.x + NODE_W - 44;
          return shape([[[x, a.top], [x - 4, a.top - 30], [x + 34, a.top - 30], [x + 30, a.top]]]);
        }
        // an edge whose reverse is drawn too: each a few px off the middle, so both show
        const nudge = pairs.has(`${l.child}\n${l.parent}`) ? (r.rev ? 5 : -5) : 0;
        return edgeRoute(r, a, pos(l.child), colX, nudge);
      });
      const boxes = names.map((n) => { const p = pos(n); return { x: p.x, y: p.top, w: NODE_W, h: NODE_H }; });
      return { colX, geo, boxes, rects: placeLabels(geo, sizes, boxes) };
    };
    // a gap where a label could find no place that no other edge crosses (edges fanning out
    // of one box, or into one) is made wider, up to three times: its edges part sooner
    const gaps = Array.from({ length: Math.max(0, L.layers - 1) },
      () => Math.max(MIN_GAP_X, ...sizes.map((z) => z.w + 20)));
    let d = draft(gaps);
    for (let round = 0; round < 3; round++) {
      const wider = new Set();
      d.rects.forEach((r) => {
        if (!r.crossed) return;
        const mid = r.x + r.w / 2;
        for (let i = 0; i < gaps.length; i++) if (mid > d.colX(i) && mid < d.colX(i + 1) + NODE_W) wider.add(i);
      });
      if (!wider.size) break;
      for (const i of wider) gaps[i] = Math.round(gaps[i] * 1.3);
      d = draft(gaps);
    }
    const { geo, boxes, rects } = d;
    geo.forEach((g, i) => edgeG.append(s('path', { d: g.d, class: labels[i].cls, 'marker-end': 'url(#arrow)',
      'data-edge': `${links[i].parent}->${links[i].child}` })));
    boxes.forEach((b, i) => {
      const { rect, name, trc } = nodeEls[i];
      rect.setAttribute('x', b.x);
      rect.setAttribute('y', b.y);
      name.setAttribute('x', b.x + 10);
      name.setAttribute('y', b.y + 18);
      trc.setAttribute('x', b.x + 10);
      trc.setAttribute('y', b.y + 36);
    });
    rects.forEach((r, i) => {
      const { bg, t1, t2 } = labels[i];
      for (const [k, v] of [['x', r.x], ['y', r.y], ['width', r.w], ['height', r.h]]) bg.setAttribute(k, v);
      for (const [t, dy] of [[t1, 14], [t2, 29]]) {
        t.setAttribute('x', r.x + r.w / 2);
        t.setAttribute('y', r.y + dy);
      }
    });
    // the drawing's extent: boxes, labels, edges, and a margin
    let [x0, y0, x1, y1] = [Infinity, Infinity, -Infinity, -Infinity];
    const grow = (x, y) => { x0 = Math.min(x0, x); y0 = Math.min(y0, y); x1 = Math.max(x1, x); y1 = Math.max(y1, y); };
    for (const b of [...boxes, ...rects]) { grow(b.x, b.y); grow(b.x + b.w, b.y + b.h); }
    for (const g of geo) { grow(g.box.x, g.box.y); grow(g.box.x + g.box.w, g.box.y + g.box.h); }
    [x0, y0] = [Math.floor(x0) - 16, Math.floor(y0) - 16];
    const [W, H] = [Math.ceil(x1) + 16 - x0, Math.ceil(y1) + 16 - y0];
    svg.setAttribute('viewBox', `${x0} ${y0} ${W} ${H}`);
    svg.setAttribute('width', W);
    svg.setAttribute('height', H);
    [box.scrollLeft, box.scrollTop] = scroll;
  }

  load();
  return () => { alive = false; clearTimeout(timer); unlive(); };
}

route('map', mapView);
