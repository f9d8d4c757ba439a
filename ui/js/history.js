// history.js - the gateway's last 15 minutes as weft keeps them (GET /v1/weft/history,
// docs/gateway.md "History"), kept current in the page: the whole ring once, then every
// second only the samples taken since the last answer (`since` = its `now_ms`), appended
// to what the page holds and trimmed to the ring's length. One request at a time: the next
// poll is timed from the end of the last one, so a slow answer never piles requests up.
//
//   const stop = pollHistory('routes', (h) => draw(h), (err) => show(err));
//   h.times: unix ms; h.keys: Map 'route' or 'route\u0000upstream' -> {route, upstream,
//   series: {requests_per_s: [...], ...}} (every array aligned with h.times); h.raw: the
//   last answer (retry_budget...) with h.retry_budget merged the same way.
import { get } from './api.js';

const POLL_MS = 1000;

function keyOf(e) { return e.upstream === undefined ? e.route : `${e.route}\u0000${e.upstream}`; }

export function pollHistory(series, onData, onError, extra = '') {
  const st = { times: [], keys: new Map(), retry_budget: {}, max: 900, now_ms: 0, received: 0 };
  let timer = null;
  let stopped = false;

  function merge(ans) {
    st.max = ans.samples_max || st.max;
    const n = ans.times.length;
    const before = st.times.length;
    st.times.push(...ans.times);
    const seen = new Set();
    for (const e of ans[series] || []) {
      const k = keyOf(e);
      seen.add(k);
      let kept = st.keys.get(k);
      if (!kept) {
        kept = { route: e.route, upstream: e.upstream, series: {} };
        st.keys.set(k, kept);
      }
      for (const [name, vals] of Object.entries(e)) {
        if (!Array.isArray(vals)) continue;
        const arr = kept.series[name] || (kept.series[name] = new Array(before).fill(null));
        arr.push(...vals);
      }
    }
    for (const [k, kept] of st.keys) {
      if (seen.has(k)) continue;
      for (const arr of Object.values(kept.series)) for (let i = 0; i < n; i++) arr.push(null);
    }
    for (const [name, vals] of Object.entries(ans.retry_budget || {})) {
      if (!Array.isArray(vals)) continue;
      const arr = st.retry_budget[name] || (st.retry_budget[name] = new Array(before).fill(null));
      arr.push(...vals);
    }
    const over = st.times.length - st.max;
    if (over > 0) {
      st.times.splice(0, over);
      for (const kept of st.keys.values()) for (const arr of Object.values(kept.series)) arr.splice(0, over);
      for (const arr of Object.values(st.retry_budget)) arr.splice(0, over);
    }
    if (ans.now_ms) st.now_ms = ans.now_ms;
    st.received = performance.now();
    st.raw = ans;
  }

  async function tick() {
    timer = null;
    try {
      const since = st.now_ms ? `&since=${st.now_ms}` : '';
      const { data } = await get(`/v1/weft/history?series=${series}${since}${extra}`);
      if (stopped) return;
      merge(data);
      onData(st);
    } catch (e) {
      if (stopped) return;
      onError(e);
    }
    if (!stopped) timer = setTimeout(tick, POLL_MS);
  }
  tick();
  return () => {
    stopped = true;
    if (timer) clearTimeout(timer);
  };
}

// The last value of an array that is not null, or null.
export function last(vals) {
  if (!vals) return null;
  for (let i = vals.length - 1; i >= 0; i--) if (vals[i] !== null && vals[i] !== undefined) return vals[i];
  return null;
}

// The value of the last sample (null when that second had none: no request for a ratio
// or a quantile), for "now" numbers that must not show an old second as current.
export function now(vals) {
  if (!vals || !vals.length) return null;
  const v = vals[vals.length - 1];
  return v === undefined ? null : v;
}

// Formatting shared by the gateway and breakers views.
export function fmtRate(v) { return v >= 100 ? v.toFixed(0) : v >= 10 ? v.toFixed(1) : v.toFixed(2); }
export function fmtPct(v) { return `${(v * 100).toFixed(v > 0 && v < 0.1 ? 1 : 0)}%`; }
export function fmtMs(v) { return v >= 1000 ? `${(v / 1000).toFixed(v >= 10000 ? 0 : 1)} s` : `${v >= 10 ? v.toFixed(0) : v.toFixed(1)} ms`; }
