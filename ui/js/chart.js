// chart.js - a small time-series line chart in hand-written SVG, for the history weft keeps
// (one sample a second, the last 15 minutes): axes with time ticks, one line per series
// (each with its own colour and dash, so that colour is not the only difference), a
// readout of the values at the pointer or at the sample chosen with the arrow keys, and a
// text alternative (the chart's label says each series' current and highest value).
//
//   const c = new Chart({title: 'Requests/s', unit: '/s', fmt: (v) => v.toFixed(1),
//                        series: [{key: 'rps', name: 'requests/s'}], yMin: 0, yMax: null});
//   outlet.append(c.el);
//   c.update(times, {rps: [...]});   // times: unix ms; each array aligned with times
//
// The element is kept across updates (so is the focus, and the sample chosen with the
// keyboard); an update only redraws the SVG's content. null values are gaps.

const NS = 'http://www.w3.org/2000/svg';
const H = 176;   // px; the width is the box's own (a ResizeObserver), so text is never stretched
const PAD = { l: 48, r: 8, t: 8, b: 22 };
const WINDOW_MS = 15 * 60 * 1000;

function s(tag, attrs, ...kids) {
  const el = document.createElementNS(NS, tag);
  for (const [k, v] of Object.entries(attrs || {})) if (v !== null && v !== undefined) el.setAttribute(k, String(v));
  for (const c of kids) el.append(c);
  return el;
}

// A "nice" step (1, 2 or 5 times a power of ten) giving about n ticks over span.
function niceStep(span, n) {
  const raw = span / n;
  const p = 10 ** Math.floor(Math.log10(raw));
  for (const m of [1, 2, 5, 10]) if (m * p >= raw) return m * p;
  return 10 * p;
}

function clock(ms) {
  const d = new Date(ms);
  return `${String(d.getHours()).padStart(2, '0')}:${String(d.getMinutes()).padStart(2, '0')}`;
}

function clockSec(ms) {
  return `${clock(ms)}:${String(new Date(ms).getSeconds()).padStart(2, '0')}`;
}

function lastValue(vals) {
  for (let i = vals.length - 1; i >= 0; i--) if (vals[i] !== null && vals[i] !== undefined) return vals[i];
  return null;
}

let nextId = 0;

export class Chart {
  constructor({ title, series, fmt, yMin = 0, yMax = null, link = null }) {
    this.title = title;
    this.series = series;
    this.fmt = fmt || ((v) => String(v));
    this.yMin = yMin;
    this.yMax = yMax;
    this.times = [];
    this.data = {};
    this.cursor = null; // index chosen with the keyboard or the pointer; null: none
    const id = `chart-${++nextId}`;
    this.w = 600;
    this.svg = s('svg', { class: 'chart-svg', height: H, 'aria-hidden': 'true' });
    this.readout = document.createElement('p');
    this.readout.className = 'readout';
    this.readout.id = `${id}-readout`;
    this.readout.setAttribute('aria-live', 'polite');
    this.box = document.createElement('div');
    this.box.className = 'chart-box';
    this.box.tabIndex = 0;
    this.box.setAttribute('role', 'img');
    this.box.dataset.key = id;
    this.box.append(this.svg);
    const head = document.createElement('div');
    head.className = 'chart-head';
    const h3 = document.createElement('h3');
    h3.textContent = title;
    head.append(h3);
    if (link) head.append(link);
    this.legend = document.createElement('ul');
    this.legend.className = 'legend';
    this.el = document.createElement('figure');
    this.el.className = 'chart';
    this.el.append(head, this.legend, this.box, this.readout);
    this.box.addEventListener('keydown', (e) => this.key(e));
    this.box.addEventListener('pointermove', (e) => this.point(e));
    this.box.addEventListener('pointerleave', () => { this.cursor = null; this.draw(); });
    this.box.addEventListener('blur', () => { this.cursor = null; this.draw(); });
    new ResizeObserver((entries) => {
      const w = Math.max(200, Math.round(entries[0].contentRect.width));
      if (w !== this.w) { this.w = w; this.draw(); }
    }).observe(this.box);
  }

  // times and data may be the same arrays as before, changed in place (history.js): the
  // sample chosen is kept by its time, so that the readout stays on it as samples arrive
  // (and says nothing new to a screen reader until a key moves it).
  update(times, data) {
    if (this.cursor !== null) {
      const i = times.indexOf(this.cursorT);
      this.cursor = i >= 0 ? i : (times.length ? 0 : null);
      if (this.cursor !== null) this.cursorT = times[this.cursor];
    }
    this.times = times;
    this.data = data;
    this.draw();
  }

  key(e) {
    const n = this.times.length;
    if (!n) return;
    const step = e.shiftKey ? 60 : 1;
    let c = this.cursor === null ? n - 1 : this.cursor;
    if (e.key === 'ArrowLeft') c = Math.max(0, c - step);
    else if (e.key === 'ArrowRight') c = Math.min(n - 1, c + step);
    else if (e.key === 'Home') c = 0;
    else if (e.key === 'End') c = n - 1;
    else return;
    e.preventDefault();
    this.cursor = c;
    this.cursorT = this.times[c];
    this.draw();
  }

  point(e) {
    const n = this.times.length;
    if (!n) return;
    const r = this.svg.getBoundingClientRect();
    const x = e.clientX - r.left;
    const t = this.t0 + ((x - PAD.l) / (this.w - PAD.l - PAD.r)) * WINDOW_MS;
    let best = 0;
    for (let i = 1; i < n; i++) if (Math.abs(this.times[i] - t) < Math.abs(this.times[best] - t)) best = i;
    this.cursor = best;
    this.cursorT = this.times[best];
    this.draw();
  }

  values(i) {
    return this.series.map((sr) => {
      const v = (this.data[sr.key] || [])[i];
      return `${sr.name} ${v === null || v === undefined ? 'no data' : this.fmt(v)}`;
    }).join(', ');
  }

  draw() {
    const { times, data } = this;
    const W = this.w;
    this.svg.setAttribute('viewBox', `0 0 ${W} ${H}`);
    this.svg.setAttribute('width', W);
    const n = times.length;
    const tEnd = n ? times[n - 1] : Date.now();
    this.t0 = tEnd - WINDOW_MS;
    let max = this.yMax ?? 0;
    if (this.yMax === null) {
      for (const sr of this.series) for (const v of data[sr.key] || []) if (v !== null && v > max) max = v;
      if (max <= this.yMin) max = this.yMin + 1;
    }
    const step = niceStep(max - this.yMin, 4);
    const top = this.yMax ?? Math.ceil(max / step) * step;
    const x = (t) => PAD.l + ((t - this.t0) / WINDOW_MS) * (W - PAD.l - PAD.r);
    const y = (v) => H - PAD.b - ((v - this.yMin) / (top - this.yMin)) * (H - PAD.t - PAD.b);
    const kids = [];
    for (let v = this.yMin; v <= top + step / 1e6; v += step) {
      kids.push(s('line', { x1: PAD.l, x2: W - PAD.r, y1: y(v), y2: y(v), class: 'grid' }));
      kids.push(s('text', { x: PAD.l - 4, y: y(v) + 4, class: 'tick', 'text-anchor': 'end' }, this.fmt(v)));
    }
    const tickMs = (W < 420 ? 5 : 3) * 60 * 1000;
    for (let t = Math.ceil(this.t0 / tickMs) * tickMs; t <= tEnd; t += tickMs) {
      kids.push(s('line', { x1: x(t), x2: x(t), y1: PAD.t, y2: H - PAD.b, class: 'grid' }));
      kids.push(s('text', { x: x(t), y: H - 6, class: 'tick', 'text-anchor': 'middle' }, clock(t)));
    }
    kids.push(s('line', { x1: PAD.l, x2: W - PAD.r, y1: H - PAD.b, y2: H - PAD.b, class: 'axis' }));
    this.series.forEach((sr, k) => {
      const vals = data[sr.key] || [];
      let d = '';
      let pen = false;
      for (let i = 0; i < n; i++) {
        const v = vals[i];
        if (v === null || v === undefined) { pen = false; continue; }
        d += `${pen ? 'L' : 'M'}${x(times[i]).toFixed(1)} ${y(Math.min(v, top)).toFixed(1)}`;
        pen = true;
      }
      kids.push(s('path', { d: d || 'M0 0', class: `line s${k + 1}`}));
    });
    if (this.cursor !== null && n) {
      const cx = x(times[this.cursor]);
      kids.push(s('line', { x1: cx, x2: cx, y1: PAD.t, y2: H - PAD.b, class: 'cursor' }));
    }
    this.svg.replaceChildren(...kids);

    // the text: legend with current values, the label, the readout
    this.legend.replaceChildren(...this.series.map((sr, k) => {
      const li = document.createElement('li');
      li.className = `s${k + 1}`;
      const v = lastValue(data[sr.key] || []);
      li.textContent = `${sr.name}: ${v === null ? '–' : this.fmt(v)}`;
      return li;
    }));
    const summary = this.series.map((sr) => {
      const vals = (data[sr.key] || []).filter((v) => v !== null && v !== undefined);
      const now = lastValue(data[sr.key] || []);
      return `${sr.name} now ${now === null ? 'no data' : this.fmt(now)}` +
        (vals.length ? `, highest ${this.fmt(Math.max(...vals))}` : '');
    }).join('; ');
    this.box.setAttribute('aria-label', `${this.title}, last 15 minutes: ${summary}. ` +
      'Arrow keys read each second.');
    if (this.cursor !== null && n) {
      this.readout.textContent = `${clockSec(times[this.cursor])}: ${this.values(this.cursor)}`;
    } else {
      this.readout.textContent = '';
    }
  }
}
