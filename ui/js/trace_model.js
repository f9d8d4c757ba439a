// trace_model.js - one trace as the Jaeger API gives it (/api/traces/ID's data[0]) made into
// what the waterfall draws: spans in tree order with depth, their service, errors, the
// gateway routes they crossed, and the critical path. No DOM here.

// Tags [{key, type, value}] as a Map key -> value (the last one wins, as Jaeger's UI shows).
function tagMap(tags) {
  const m = new Map();
  for (const t of tags || []) m.set(t.key, t.value);
  return m;
}

function isError(tags) {
  const e = tags.get('error');
  return e === true || e === 'true' || tags.get('otel.status_code') === 'ERROR';
}

// The model of trace t. spans[i]: {id, parent (index or -1), children (indexes, by start),
// service, op, start, dur, end (µs), tags (Map), rawTags, logs, process, error, depth}.
// order: span indexes in tree order (depth first, children by start time); a span whose
// parent is not in the trace is a root of its own.
export function buildModel(t) {
  const procs = t.processes || {};
  const raw = t.spans || [];
  const byId = new Map();
  const spans = raw.map((s, i) => {
    const tags = tagMap(s.tags);
    const p = procs[s.processID] || { serviceName: '', tags: [] };
    const start = Number(s.startTime) || 0;
    const dur = Math.max(0, Number(s.duration) || 0);
    byId.set(s.spanID, i);
    return { id: s.spanID, parentId: '', parent: -1, children: [], service: p.serviceName || '(none)',
      op: s.operationName || '', start, dur, end: start + dur, tags, rawTags: s.tags || [],
      logs: s.logs || [], process: p, error: isError(tags), depth: 0, kind: tags.get('span.kind') || '',
      refs: s.references || [] };
  });
  const roots = [];
  spans.forEach((s, i) => {
    const ref = s.refs.find((r) => r.refType === 'CHILD_OF');
    s.parentId = ref ? ref.spanID : '';
    const p = ref ? byId.get(ref.spanID) : undefined;
    if (p !== undefined && p !== i) {
      s.parent = p;
      spans[p].children.push(i);
    } else {
      roots.push(i);
    }
  });
  const byStart = (a, b) => spans[a].start - spans[b].start || a - b;
  for (const s of spans) s.children.sort(byStart);
  roots.sort(byStart);
  // Depth first without recursion (a trace may be a chain thousands deep); a reference
  // cycle (bad data) cannot loop: a span is placed once.
  const order = [];
  const placed = new Uint8Array(spans.length);
  const stack = [];
  for (let r = roots.length - 1; r >= 0; r--) stack.push([roots[r], 0]);
  while (stack.length) {
    const [i, d] = stack.pop();
    if (placed[i]) continue;
    placed[i] = 1;
    spans[i].depth = d;
    order.push(i);
    const ch = spans[i].children;
    for (let k = ch.length - 1; k >= 0; k--) stack.push([ch[k], d + 1]);
  }
  spans.forEach((s, i) => { if (!placed[i]) { s.depth = 0; order.push(i); } });

  let start = Infinity;
  let end = -Infinity;
  const services = new Map(); // name -> {spans, errors}
  const routes = new Set();
  let errors = 0;
  for (const s of spans) {
    start = Math.min(start, s.start);
    end = Math.max(end, s.end);
    const v = services.get(s.service) || { spans: 0, errors: 0 };
    v.spans++;
    if (s.error) { v.errors++; errors++; }
    services.set(s.service, v);
    // the gateway's span names the route it matched (src/gateway/observe.c)
    const r = s.tags.get('weft.route');
    if (typeof r === 'string' && r) routes.add(r);
  }
  if (!spans.length) { start = 0; end = 0; }
  const root = roots.length ? spans[roots[0]] : null;
  return { id: t.traceID, spans, roots, order, start, end, duration: end - start, services,
    routes: [...routes].sort(), errors, root };
}

// The critical path: the chain of spans that determines when the trace ends. From the end
// of a root, walk back in time: at each point t the span's child that ends last at or before
// t (a child ending after t counts up to t) is what the span waited for, so that child is
// on the path over [its start, t]; the walk goes into that child, then continues in the
// parent from the child's start; time where no child runs is the span's own. Returns a
// Map span index -> [[from, to], ...] (µs), the segments of each span on the path.
//
// Per span its children are sorted once by end, latest first, and scanned once (t only
// decreases), so the whole walk is O(n log n); an explicit stack, no recursion.
export function criticalPath(model) {
  const { spans } = model;
  const path = new Map();
  const add = (i, from, to) => {
    if (to <= from) return;
    let segs = path.get(i);
    if (!segs) path.set(i, segs = []);
    segs.push([from, to]);
  };
  const kids = (i) => spans[i].children.slice().sort((a, b) => spans[b].end - spans[a].end || b - a);
  // the root that ends last decides the trace's end
  let root = -1;
  for (const r of model.roots) if (root < 0 || spans[r].end > spans[root].end) root = r;
  if (root < 0) return path;
  // frame: span index, t (the point walked back to), its children by end, the next to look at
  const stack = [{ i: root, t: spans[root].end, ch: kids(root), k: 0 }];
  while (stack.length) {
    const f = stack[stack.length - 1];
    const s = spans[f.i];
    let next = -1;
    while (f.k < f.ch.length) {
      const c = f.ch[f.k++];
      if (spans[c].start < f.t) { next = c; break; }
    }
    if (next < 0) {
      add(f.i, s.start, f.t);
      stack.pop();
      continue;
    }
    const c = spans[next];
    const cEnd = Math.min(c.end, f.t);
    add(f.i, cEnd, f.t);
    f.t = c.start;
    stack.push({ i: next, t: cEnd, ch: kids(next), k: 0 });
  }
  for (const segs of path.values()) segs.sort((a, b) => a[0] - b[0]);
  return path;
}

// "1.23 s", "45.6 ms", "789 µs" from microseconds.
export function fmtDuration(us) {
  if (us >= 1e6) return `${(us / 1e6).toFixed(us >= 1e7 ? 1 : 2)} s`;
  if (us >= 1e3) return `${(us / 1e3).toFixed(us >= 1e5 ? 0 : us >= 1e4 ? 1 : 2)} ms`;
  return `${Math.round(us)} µs`;
}

// A stable colour index per service name (the text label says the name; the colour only
// helps to tell rows apart).
export function serviceColour(name, n) {
  let x = 0;
  for (let i = 0; i < name.length; i++) x = (x * 31 + name.charCodeAt(i)) >>> 0;
  return x % n;
}
