// trace_ui.js - what the Traces, trace and Service map views share: links to a search, and
// a service's colour chip (the colour helps tell services apart; the text names them).
import { h } from './dom.js';
import { serviceColour } from './trace_model.js';
import { subscribe } from './registry.js';

export const PALETTE = 8; // service colours in traces.css: .svc-0 ... .svc-7

// '#/traces?service=...' from {param: value}, empty values left out.
export function searchHref(params) {
  const qs = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v) qs.set(k, v);
  const s = qs.toString();
  return '#/traces' + (s ? `?${s}` : '');
}

export function serviceChip(name, n) {
  return h('span', { class: `chip svc-${serviceColour(name, PALETTE)}` },
    h('span', { class: 'swatch', 'aria-hidden': 'true' }), n === undefined ? name : `${name} (${n})`);
}

// The header's state (live, reconnecting) is the registry's event stream, which starts
// with its first subscriber: these views take part so that a page opened on them says it
// truly; returns the unsubscriber.
export function keepLive() { return subscribe(() => {}); }
