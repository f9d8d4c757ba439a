// dom.js - a tiny DOM helper: h() builds elements, and nothing here knows about views.
//
//   h('a', {href: '#/services', class: 'x', onclick: fn, 'aria-label': 'y'}, 'text', child)
//
// Attributes: `class`, `text` (textContent), `on<event>` (a listener), a boolean value sets
// or leaves out the attribute; anything else is set with setAttribute. Children: nodes,
// strings (as text, never as HTML: values from the API cannot inject markup), arrays of
// them; null, undefined and false are skipped.

export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k === 'class') el.className = v;
    else if (k === 'text') el.textContent = v;
    else if (k.startsWith('on') && typeof v === 'function') el.addEventListener(k.slice(2), v);
    else if (v === true) el.setAttribute(k, '');
    else el.setAttribute(k, String(v));
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const c of children) {
    if (c === null || c === undefined || c === false) continue;
    if (Array.isArray(c)) append(el, c);
    else el.append(c instanceof Node ? c : String(c));
  }
}

// Replaces el's children. The element that had the focus inside el, found again by its
// data-key, gets it back, so that a live update does not throw a keyboard user out.
export function replace(el, ...children) {
  const active = document.activeElement;
  const key = active && el.contains(active) ? active.getAttribute('data-key') : null;
  el.replaceChildren();
  append(el, children);
  if (key) {
    const again = el.querySelector(`[data-key="${CSS.escape(key)}"]`);
    if (again) again.focus();
  }
}

// "3 s ago", "5 min ago", ... from a time in ms since the epoch.
export function ago(ms) {
  const s = Math.max(0, Math.round((Date.now() - ms) / 1000));
  if (s < 60) return `${s} s ago`;
  if (s < 3600) return `${Math.floor(s / 60)} min ago`;
  if (s < 86400) return `${Math.floor(s / 3600)} h ago`;
  return `${Math.floor(s / 86400)} d ago`;
}
