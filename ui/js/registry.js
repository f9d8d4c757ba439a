// registry.js - the registry's catalog as the page knows it, kept live for every view that
// subscribes.
//
// The state comes from the Consul-compatible reads, /v1/agent/services (instances, tags,
// meta) and /v1/health/state/any (every check with its status, output and History), read
// together and again (5 times at most) until both answer with the same X-Consul-Index, as
// `weft services` does. It is kept current by the event stream /v1/weft/events: a `health`
// event (a check's status changed) is applied in place, a `deregister` removes the
// instance, and the other changes (register, check, check-deregister, maintenance-on/off)
// read the state again, at most one read at a time. Events that arrive during a read wait
// for it and are applied when their index is past the read's. The stream's `hello`, first
// and after every reconnection (the browser reconnects by itself), reads everything again,
// so a gap in the stream cannot leave the page wrong.
import { events, get } from './api.js';

const RANK = { passing: 0, warning: 1, critical: 2, maintenance: 3 };
const HISTORY = 8; // the registry keeps a check's last 8 transitions

const state = { services: new Map(), byId: new Map(), nodeChecks: new Map(), index: 0,
  loaded: false, error: null };
const subs = new Set();
const liveSubs = new Set();
let stream = null;
let loading = false;
let again = false;
let pending = [];
let drawQueued = false;
let live = 'connecting';

export function worst(a, b) { return RANK[b] > RANK[a] ? b : a; }

function isMaint(c) { return c.type === 'maintenance' || c.id.startsWith('_service_maintenance:'); }

// An instance's health: maintenance when it is in maintenance, else the worst of its
// checks and the node's (Consul's rule).
export function health(inst) {
  let hl = 'passing';
  for (const c of inst.checks.values()) {
    if (isMaint(c)) return 'maintenance';
    hl = worst(hl, c.status);
  }
  for (const c of state.nodeChecks.values()) hl = worst(hl, c.status);
  return hl;
}

export function inMaintenance(inst) {
  for (const c of inst.checks.values()) if (isMaint(c)) return c;
  return null;
}

function changed() {
  if (drawQueued) return;
  drawQueued = true;
  requestAnimationFrame(() => {
    drawQueued = false;
    for (const fn of subs) fn(state);
  });
}

function setLive(s) {
  live = s;
  for (const fn of liveSubs) fn(s);
}

function check(c) {
  return { id: c.CheckID, name: c.Name, status: c.Status, output: c.Output, type: c.Type,
    notes: c.Notes, interval: c.Interval || '', ttl: c.TTL || '',
    history: Array.isArray(c.History) ? c.History.slice(-HISTORY) : [] };
}

function build(svcs, checks) {
  const services = new Map();
  const byId = new Map();
  for (const s of Object.values(svcs.data || {})) {
    let svc = services.get(s.Service);
    if (!svc) services.set(s.Service, (svc = { name: s.Service, instances: new Map() }));
    const inst = { id: s.ID, service: s.Service, address: s.Address, port: s.Port,
      tags: s.Tags || [], meta: s.Meta || {}, checks: new Map() };
    svc.instances.set(s.ID, inst);
    byId.set(s.ID, inst);
  }
  const nodeChecks = new Map();
  for (const c of checks.data || []) {
    if (!c.ServiceID) nodeChecks.set(c.CheckID, check(c));
    else {
      const inst = byId.get(c.ServiceID);
      if (inst) inst.checks.set(c.CheckID, check(c));
    }
  }
  const sorted = new Map([...services.entries()].sort((a, b) => (a[0] < b[0] ? -1 : 1)));
  for (const svc of sorted.values())
    svc.instances = new Map([...svc.instances.entries()].sort((a, b) => (a[0] < b[0] ? -1 : 1)));
  Object.assign(state, { services: sorted, byId, nodeChecks, loaded: true, error: null,
    index: Math.max(svcs.index, checks.index) });
}

async function reload() {
  if (loading) {
    again = true;
    return;
  }
  loading = true;
  try {
    for (let i = 0; i < 5; i++) {
      const [svcs, checks] = await Promise.all([get('/v1/agent/services'),
        get('/v1/health/state/any')]);
      if (svcs.index === checks.index || i === 4) {
        build(svcs, checks);
        break;
      }
    }
  } catch (e) {
    state.error = e;
  }
  loading = false;
  const queued = pending;
  pending = [];
  for (const [type, d] of queued) if (!(d.Index <= state.index)) apply(type, d);
  changed();
  if (again) {
    again = false;
    reload();
  }
}

function apply(type, d) {
  if (loading) {
    pending.push([type, d]);
    return;
  }
  if (type === 'health' && d.CheckID) {
    const owner = d.ServiceID ? state.byId.get(d.ServiceID) : null;
    const c = owner ? owner.checks.get(d.CheckID) : !d.ServiceID ? state.nodeChecks.get(d.CheckID) : null;
    if (!c) return reload();
    c.status = d.To === 'maintenance' ? 'critical' : d.To;
    c.output = d.Output;
    c.history.push({ At: d.At, From: d.From, To: d.To });
    if (c.history.length > HISTORY) c.history.shift();
    state.index = Math.max(state.index, d.Index);
    return changed();
  }
  if (type === 'deregister' && d.ServiceID) {
    const inst = state.byId.get(d.ServiceID);
    if (inst) {
      state.byId.delete(d.ServiceID);
      const svc = state.services.get(inst.service);
      if (svc) {
        svc.instances.delete(d.ServiceID);
        if (svc.instances.size === 0) state.services.delete(inst.service);
      }
    }
    state.index = Math.max(state.index, d.Index);
    return changed();
  }
  return reload();
}

function ensureStarted() {
  if (stream) return;
  const on = (type) => (d) => apply(type, d);
  stream = events('/v1/weft/events', {
    hello: () => reload(),
    register: on('register'),
    deregister: on('deregister'),
    health: on('health'),
    check: on('check'),
    'check-deregister': on('check-deregister'),
    'maintenance-on': on('maintenance-on'),
    'maintenance-off': on('maintenance-off'),
  }, setLive);
  reload(); // at once; the stream's hello reads again, closing the gap before it opened
}

// fn(state) now and after every change (at most once a frame). Returns the unsubscriber.
// The stream stays open once started: going from view to view keeps the state.
export function subscribe(fn) {
  subs.add(fn);
  ensureStarted();
  fn(state);
  return () => subs.delete(fn);
}

// fn('connecting' | 'live' | 'down') now and on every change of the stream's state.
export function onLive(fn) {
  liveSubs.add(fn);
  fn(live);
  return () => liveSubs.delete(fn);
}

// After a write the page changed: read again at once rather than wait for the event.
export function refresh() { return reload(); }
