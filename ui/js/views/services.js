// views/services.js - the Services view: every service and instance the registry holds,
// each check with its status, output and recent transitions, tags and meta, live; and the
// writes a user of the Consul UI expects from there: maintenance on and off, deregister.
//
//   #/services                    every service: instances, health counts, tags
//   #/services?q=web&health=critical   the same, filtered (the filter is part of the URL)
//   #/services/<name>             its instances, each with its checks, tags, meta, actions
//   #/services/<name>/<id>        one instance, with each check's history of transitions
import { h, replace, ago } from '../dom.js';
import { href, route, setQuery } from '../router.js';
import { write } from '../api.js';
import { withToken, Cancelled } from '../auth.js';
import { notify } from '../notice.js';
import { subscribe, health, inMaintenance, refresh, worst } from '../registry.js';

export const nav = { label: 'Services', href: '#/services', segment: 'services' };

const HEALTHS = ['passing', 'warning', 'critical', 'maintenance'];

function plural(n, word) { return `${n} ${word}${n === 1 ? '' : 's'}`; }

function badge(status, extra) {
  return h('span', { class: 'badge', 'data-health': status }, extra ? `${extra} ${status}` : status);
}

function tagList(tags, label) {
  if (!tags.length) return h('span', { class: 'empty' }, 'none');
  return h('ul', { class: 'tags', 'aria-label': label }, tags.map((t) => h('li', {}, t)));
}

function metaList(meta) {
  const keys = Object.keys(meta).sort();
  if (!keys.length) return h('p', { class: 'empty' }, 'No meta.');
  return h('dl', { class: 'meta' }, keys.map((k) => [h('dt', {}, k), h('dd', {}, meta[k])]));
}

function status(root, st) {
  if (st.error && !st.loaded) {
    replace(root, h('p', { class: 'empty' }, `Cannot read the registry: ${st.error.message}`));
    return false;
  }
  if (!st.loaded) {
    replace(root, h('p', { class: 'empty' }, 'Loading…'));
    return false;
  }
  return true;
}

// ---- #/services ----

function counts(svc) {
  const n = { passing: 0, warning: 0, critical: 0, maintenance: 0 };
  for (const inst of svc.instances.values()) n[health(inst)]++;
  return n;
}

function serviceTags(svc) {
  const seen = new Set();
  for (const inst of svc.instances.values()) for (const t of inst.tags) seen.add(t);
  return [...seen];
}

// The list draws only the rows in view (and OVERSCAN more on each side), in rows of one
// fixed height (their cells clip rather than wrap; app.css), between two spacer rows that
// hold the place of the others: with 1,000 services, styling and laying out a thousand rows
// is what cost (a task near 300 ms at the first render and at each filter change), and the
// script that computes the filtered list takes a few milliseconds.
const OVERSCAN = 20;
const FIRST_WINDOW = 60; // rows drawn before the first row's height is known

function listView(params, outlet, query) {
  const filter = { q: query.get('q') || '', health: query.get('health') || '' };
  const summary = h('p', { class: 'sub', 'aria-live': 'polite' });
  const body = h('div');
  let last = null;
  const onFilter = () => {
    filter.q = qInput.value.trim();
    filter.health = hSelect.value;
    const qs = new URLSearchParams();
    if (filter.q) qs.set('q', filter.q);
    if (filter.health) qs.set('health', filter.health);
    setQuery(qs);
    if (last) draw(last);
  };
  const qInput = h('input', { id: 'svc-filter', type: 'search', value: filter.q,
    placeholder: 'name or tag', oninput: onFilter, autocomplete: 'off' });
  const hSelect = h('select', { id: 'svc-health', onchange: onFilter },
    h('option', { value: '' }, 'any'),
    HEALTHS.map((s) => h('option', { value: s, selected: s === filter.health }, s)));
  outlet.append(h('h1', {}, 'Services'), summary,
    h('div', { class: 'toolbar' },
      h('label', { for: 'svc-filter' }, 'Filter', qInput),
      h('label', { for: 'svc-health' }, 'Instances that are', hSelect)),
    body);

  // Rows are kept by service and built again only when what they show changed: a check's
  // change redraws one row, and scrolling back finds its rows built.
  const kept = new Map(); // service name -> {sig, tr}
  const tbody = h('tbody');
  const before = h('tr', { class: 'spacer', 'aria-hidden': 'true' }, h('td', { colspan: 4 }));
  const after = h('tr', { class: 'spacer', 'aria-hidden': 'true' }, h('td', { colspan: 4 }));
  const tableEl = h('table', { id: 'services', 'aria-rowcount': 1 },
    h('caption', { class: 'sr-only' }, 'Services'),
    h('colgroup', {}, h('col', { class: 'c-name' }), h('col', { class: 'c-num' }),
      h('col', { class: 'c-health' }), h('col', { class: 'c-tags hide-narrow' })),
    h('thead', {}, h('tr', { 'aria-rowindex': 1 },
      h('th', { scope: 'col' }, 'Service'), h('th', { scope: 'col', class: 'num' }, 'Instances'),
      h('th', { scope: 'col' }, 'Health'), h('th', { scope: 'col', class: 'hide-narrow' }, 'Tags'))),
    tbody);
  const table = h('div', { class: 'scroll' }, tableEl);
  let rows = [];      // the filtered list: {svc, n, tags, hl}, in the registry's order
  let rowH = 0;       // a row's height in px, measured once drawn (0: not yet)
  let focusName = null; // the service whose link has the focus: its row stays drawn

  function row(r) {
    const { svc, n, tags, hl } = r;
    const sig = JSON.stringify([svc.instances.size, n, tags]);
    const k = kept.get(svc.name);
    if (k && k.sig === sig) return k.tr;
    const tr = h('tr', { 'data-service': svc.name, 'data-health': hl },
      h('th', { scope: 'row' }, h('a', { href: href('services', svc.name), title: svc.name,
        'data-key': `svc:${svc.name}` }, svc.name)),
      h('td', { class: 'num' }, svc.instances.size),
      h('td', {}, h('div', { class: 'counts' },
        HEALTHS.filter((x) => n[x]).map((x) => badge(x, n[x])))),
      h('td', { class: 'hide-narrow', title: tags.join(', ') }, tagList(tags, `tags of ${svc.name}`)));
    kept.set(svc.name, { sig, tr });
    // the focused row's new version takes the focus over (its link is the same link)
    if (k && k.tr.contains(document.activeElement)) {
      k.tr.replaceWith(tr);
      tr.querySelector('a').focus({ preventScroll: true });
    }
    return tr;
  }

  // Draws rows [from, to) of the list, those in view and OVERSCAN more on each side, between
  // the spacers. The focused row stays drawn: next to the window its rows are drawn up to
  // it (so that Tab and Shift+Tab find the next link), far from it (scrolled away) it is
  // drawn alone at the window's edge, taking one row's place from the spacer there. Rows
  // already in place stay in place (a row moved in the DOM would lose the focus).
  let drawing = false;
  function windowRows() {
    if (!rows.length || body.firstChild !== table || drawing) return;
    drawing = true;
    try {
      drawWindow();
    } finally {
      drawing = false;
    }
    if (remeasure) {
      remeasure = false;
      windowRows(); // now that rows have a height: the rows in view
    }
  }
  let remeasure = false;
  function drawWindow() {
    let from = 0;
    let to = Math.min(rows.length, FIRST_WINDOW);
    if (rowH) {
      const top = tbody.getBoundingClientRect().top; // row 0's top (the spacer's)
      from = Math.min(rows.length, Math.max(0, Math.floor(-top / rowH) - OVERSCAN));
      to = Math.min(rows.length, Math.max(from, Math.ceil((window.innerHeight - top) / rowH) + OVERSCAN));
      // a list made shorter (a filter) while scrolled far down: its last rows, until the
      // browser scrolls back within the shorter page
      const screen = Math.ceil(window.innerHeight / rowH) + OVERSCAN;
      if (to - from < screen) {
        from = Math.max(0, Math.min(from, rows.length - screen));
        to = Math.min(rows.length, from + screen);
      }
    }
    const fi = focusName === null ? -1 : rows.findIndex((r) => r.svc.name === focusName);
    if (fi >= 0 && fi >= from - OVERSCAN && fi < to + OVERSCAN) {
      from = Math.max(0, Math.min(from, fi - 5));
      to = Math.min(rows.length, Math.max(to, fi + 6));
    }
    const alone = fi >= 0 && (fi < from || fi >= to);
    const want = [];
    if (alone && fi < from) want.push([fi, row(rows[fi])]);
    for (let i = from; i < to; i++) want.push([i, row(rows[i])]);
    if (alone && fi >= to) want.push([fi, row(rows[fi])]);
    const wanted = new Set(want.map(([, tr]) => tr));
    for (const tr of [...tbody.children]) if (tr !== before && tr !== after && !wanted.has(tr)) tr.remove();
    let cur = before.parentNode === tbody ? before.nextSibling : tbody.firstChild;
    for (const [i, tr] of want) {
      tr.setAttribute('aria-rowindex', i + 2); // the header row is 1
      if (cur === tr) cur = cur.nextSibling;
      else tbody.insertBefore(tr, cur);
    }
    if (!rowH) {
      rowH = want[want.length - 1][1].getBoundingClientRect().height;
      remeasure = rowH > 0;
      return;
    }
    const gapBefore = from - (alone && fi < from ? 1 : 0);
    const gapAfter = rows.length - to - (alone && fi >= to ? 1 : 0);
    // a spacer is there only when it holds the place of rows (a list that fits has none)
    before.firstChild.style.height = `${gapBefore * rowH}px`;
    after.firstChild.style.height = `${gapAfter * rowH}px`;
    if (gapBefore > 0 && before.parentNode !== tbody) tbody.prepend(before);
    if (gapBefore <= 0) before.remove();
    if (gapAfter > 0 && after.parentNode !== tbody) tbody.append(after);
    if (gapAfter <= 0) after.remove();
  }

  function draw(st) {
    last = st;
    if (!status(body, st)) return;
    let ninst = 0;
    const total = { passing: 0, warning: 0, critical: 0, maintenance: 0 };
    rows = [];
    const q = filter.q.toLowerCase();
    for (const svc of st.services.values()) {
      const n = counts(svc);
      const tags = serviceTags(svc);
      ninst += svc.instances.size;
      for (const k of HEALTHS) total[k] += n[k];
      if (q && !svc.name.toLowerCase().includes(q) && !tags.some((t) => t.toLowerCase().includes(q)))
        continue;
      if (filter.health && !n[filter.health]) continue;
      let hl = 'passing';
      for (const k of HEALTHS) if (n[k]) hl = worst(hl, k);
      rows.push({ svc, n, tags, hl });
    }
    for (const name of kept.keys()) if (!st.services.has(name)) kept.delete(name);
    summary.textContent = `${plural(st.services.size, 'service')}, ${plural(ninst, 'instance')}: ` +
      HEALTHS.map((k) => `${total[k]} ${k}`).join(', ') + '.';
    if (!st.services.size) {
      replace(body, h('p', { class: 'empty' }, 'No service is registered. Services register with ' +
        'PUT /v1/agent/service/register, `weft register FILE`, or the SDK (--registry).'));
      return;
    }
    if (!rows.length) {
      replace(body, h('p', { class: 'empty' }, 'No service matches the filter.'));
      return;
    }
    if (body.firstChild !== table) replace(body, table);
    tableEl.setAttribute('aria-rowcount', rows.length + 1);
    windowRows();
  }

  // Scrolling, resizing and the focus moving along the rows (Tab scrolls the focused link
  // into view) draw the rows that come into view, at most once a frame.
  let queued = false;
  const onView = () => {
    if (queued) return;
    queued = true;
    requestAnimationFrame(() => {
      queued = false;
      windowRows();
    });
  };
  const onResize = () => { // a new width may give the rows a new height
    const tr = tbody.querySelector('tr[data-service]');
    if (tr) rowH = tr.getBoundingClientRect().height || rowH;
    onView();
  };
  const onFocus = () => {
    const tr = document.activeElement && document.activeElement.closest &&
      document.activeElement.closest('#services tr[data-service]');
    focusName = tr ? tr.dataset.service : null;
    if (tr) windowRows(); // at once (unless drawing): the next Tab must find the next row drawn
  };
  // Tab from a focused row scrolled far away (drawn alone): back to its place first, so
  // that the next link is its neighbour's
  const onKey = (e) => {
    if (e.key !== 'Tab' || focusName === null || !rowH) return;
    const fi = rows.findIndex((r) => r.svc.name === focusName);
    if (fi < 0) return;
    const y = tbody.getBoundingClientRect().top + fi * rowH;
    if (y >= 0 && y < window.innerHeight) return;
    window.scrollBy(0, y - window.innerHeight / 2);
    windowRows();
  };
  window.addEventListener('scroll', onView, { passive: true });
  tbody.addEventListener('keydown', onKey);
  window.addEventListener('resize', onResize);
  tbody.addEventListener('focusin', onFocus);
  tbody.addEventListener('focusout', () => setTimeout(onFocus));
  const unsubscribe = subscribe(draw);
  return () => {
    unsubscribe();
    window.removeEventListener('scroll', onView);
    window.removeEventListener('resize', onResize);
  };
}

// ---- actions ----

// Runs a write for instance id with the token when needed; says what happened.
async function act(button, what, method, path) {
  button.disabled = true;
  try {
    await withToken(() => write(method, path));
    notify(what, 'info');
    await refresh();
  } catch (e) {
    if (!(e instanceof Cancelled)) notify(e.message);
  } finally {
    button.disabled = false;
  }
}

function actions(inst, confirming, redraw) {
  const id = inst.id;
  const enc = encodeURIComponent(id);
  const maint = inMaintenance(inst);
  const toggle = h('button', { type: 'button', 'data-key': `maint:${id}`, 'data-action': 'maintenance',
    onclick: (e) => act(e.currentTarget, `${id}: maintenance ${maint ? 'off' : 'on'}`, 'PUT',
      `/v1/agent/service/maintenance/${enc}?enable=${maint ? 'false' : 'true'}` +
      (maint ? '' : `&reason=${encodeURIComponent('set from the dashboard')}`)) },
  maint ? 'End maintenance' : 'Start maintenance');
  if (!confirming.has(id)) {
    return h('div', { class: 'actions' }, toggle,
      h('button', { type: 'button', class: 'danger', 'data-key': `dereg:${id}`, 'data-action': 'deregister',
        onclick: () => { confirming.add(id); redraw(`confirm:${id}`); } }, 'Deregister…'));
  }
  return h('div', { class: 'actions', role: 'group', 'aria-label': `Deregister ${id}?` },
    h('span', {}, `Deregister ${id}?`),
    h('button', { type: 'button', class: 'danger', 'data-key': `confirm:${id}`, 'data-action': 'confirm-deregister',
      onclick: (e) => {
        confirming.delete(id);
        act(e.currentTarget, `${id}: deregistered`, 'PUT', `/v1/agent/service/deregister/${enc}`);
      } }, 'Deregister'),
    h('button', { type: 'button', 'data-key': `cancel:${id}`,
      onclick: () => { confirming.delete(id); redraw(`dereg:${id}`); } }, 'Cancel'));
}

function checkItem(c, withHistory) {
  return h('li', { 'data-check': c.id, 'data-status': c.status },
    h('div', { class: 'check-head' }, badge(c.type === 'maintenance' ? 'maintenance' : c.status),
      h('strong', {}, c.name || c.id), h('code', {}, c.id),
      c.type ? h('span', { class: 'kind' }, [c.type, c.interval && `every ${c.interval}`,
        c.ttl && `TTL ${c.ttl}`].filter(Boolean).join(', ')) : null),
    c.notes ? h('p', { class: 'output' }, c.notes) : null,
    c.output ? h('p', { class: 'output' }, c.output) : null,
    withHistory && c.history.length
      ? h('ol', { class: 'history', reversed: true, 'aria-label': `transitions of ${c.id}, newest first` },
        [...c.history].reverse().map((t) => h('li', {},
          `${t.From} → ${t.To}, `, h('time', { datetime: new Date(t.At).toISOString(),
            title: new Date(t.At).toLocaleString() }, ago(t.At)))))
      : null);
}

function instanceCard(inst, st, confirming, redraw) {
  const hl = health(inst);
  const titleId = `inst-${inst.id}`;
  return h('article', { class: 'card', 'data-instance': inst.id, 'data-health': hl, 'aria-labelledby': titleId },
    h('header', {},
      h('h2', { id: titleId }, h('a', { href: href('services', inst.service, inst.id),
        'data-key': `inst:${inst.id}` }, inst.id)),
      badge(hl)),
    h('p', { class: 'addr mono' }, `${inst.address || '(node address)'}:${inst.port}`),
    inst.tags.length ? tagList(inst.tags, `tags of ${inst.id}`) : null,
    Object.keys(inst.meta).length ? metaList(inst.meta) : null,
    h('ul', { class: 'checks', 'aria-label': `checks of ${inst.id}` },
      [...inst.checks.values()].map((c) => checkItem(c, false)),
      [...st.nodeChecks.values()].map((c) => checkItem(c, false))),
    actions(inst, confirming, redraw));
}

function crumbs(...items) {
  return h('nav', { class: 'crumbs', 'aria-label': 'Breadcrumb' },
    h('ol', {}, items.map(([label, link]) => h('li', {}, link ? h('a', { href: link }, label)
      : h('span', { 'aria-current': 'page' }, label)))));
}

// ---- #/services/<name> ----

// A service may have hundreds of instances: its cards are kept by instance and built again
// only when what they show changed, and they are built and placed in slices of at most
// SLICE_MS, yielding to the browser between slices (the first slice, the cards at the top,
// shows at once), so that no task runs long; the cards out of view are not laid out
// (content-visibility in app.css).
const SLICE_MS = 25;

function serviceView({ name }, outlet) {
  const sub = h('p', { class: 'sub' });
  const body = h('div');
  const cards = h('div', { class: 'cards' });
  const confirming = new Set();
  const kept = new Map(); // instance ID -> {sig, el}
  let last = null;
  let todo = [];       // the instances in their order, cards placed up to `placed`
  let placed = 0;
  let timer = null;
  let focusKey = null; // a control to focus once its card is placed
  const redraw = (key) => {
    focusKey = key;
    draw(last);
  };
  outlet.append(crumbs(['Services', '#/services'], [name]), h('h1', {}, name), sub, body);

  function card(inst, st) {
    const sig = JSON.stringify([health(inst), inst.address, inst.port, inst.tags, inst.meta,
      confirming.has(inst.id), [...inst.checks.values(), ...st.nodeChecks.values()]
        .map((c) => [c.id, c.status, c.output, c.notes, c.type, c.name])]);
    const k = kept.get(inst.id);
    if (k && k.sig === sig) return k.el;
    const el = instanceCard(inst, st, confirming, redraw);
    kept.set(inst.id, { sig, el });
    // a card that had the focus gives it to the same control in its new version
    const active = document.activeElement;
    if (k && k.el.contains(active) && active.dataset.key && !focusKey) focusKey = active.dataset.key;
    if (k && k.el.parentNode === cards) k.el.replaceWith(el);
    return el;
  }

  function slice() {
    timer = null;
    const st = last;
    const t0 = performance.now();
    while (placed < todo.length && performance.now() - t0 < SLICE_MS) {
      const el = card(todo[placed], st);
      const at = cards.children[placed];
      if (at !== el) cards.insertBefore(el, at || null);
      placed++;
    }
    if (focusKey) {
      const el = cards.querySelector(`[data-key="${CSS.escape(focusKey)}"]`);
      if (el) {
        el.focus();
        focusKey = null;
      }
    }
    if (placed < todo.length) {
      timer = setTimeout(slice, 0);
      return;
    }
    while (cards.children.length > placed) cards.lastChild.remove();
    focusKey = null; // its card is gone
  }

  function draw(st) {
    last = st;
    if (timer) clearTimeout(timer);
    timer = null;
    if (!status(body, st)) return;
    const svc = st.services.get(name);
    if (!svc) {
      sub.textContent = '';
      kept.clear();
      replace(body, h('p', { class: 'empty' }, `No instance of ${name} is registered.`));
      return;
    }
    const n = counts(svc);
    sub.textContent = `${plural(svc.instances.size, 'instance')}: ` +
      HEALTHS.map((k) => `${n[k]} ${k}`).join(', ') + '.';
    // the cards of instances gone go at once; the others are placed again from the top
    for (const [id, k] of kept) {
      if (svc.instances.has(id)) continue;
      k.el.remove();
      kept.delete(id);
    }
    if (body.firstChild !== cards) replace(body, cards);
    todo = [...svc.instances.values()];
    placed = 0;
    slice();
  }
  const unsubscribe = subscribe(draw);
  return () => {
    unsubscribe();
    if (timer) clearTimeout(timer);
  };
}

// ---- #/services/<name>/<id> ----

function instanceView({ name, id }, outlet) {
  const body = h('div');
  const confirming = new Set();
  let last = null;
  const redraw = (focusKey) => {
    draw(last);
    const el = focusKey && body.querySelector(`[data-key="${CSS.escape(focusKey)}"]`);
    if (el) el.focus();
  };
  outlet.append(crumbs(['Services', '#/services'], [name, href('services', name)], [id]),
    h('h1', {}, id), body);
  function draw(st) {
    last = st;
    if (!status(body, st)) return;
    const inst = st.byId.get(id);
    if (!inst || inst.service !== name) {
      replace(body, h('p', { class: 'empty' }, `${id} is not registered (any more). `,
        h('a', { href: href('services', name) }, `Back to ${name}`)));
      return;
    }
    const hl = health(inst);
    replace(body, h('section', { class: 'card', 'data-instance': inst.id, 'data-health': hl,
      'aria-label': `instance ${inst.id}` },
      h('header', {}, h('p', { class: 'addr mono' }, `${inst.address || '(node address)'}:${inst.port}`),
        badge(hl)),
      h('h2', {}, 'Tags'), tagList(inst.tags, `tags of ${inst.id}`),
      h('h2', {}, 'Meta'), metaList(inst.meta),
      h('h2', {}, 'Checks'),
      h('ul', { class: 'checks' }, [...inst.checks.values()].map((c) => checkItem(c, true)),
        [...st.nodeChecks.values()].map((c) => checkItem(c, true))),
      actions(inst, confirming, redraw)));
  }
  return subscribe(draw);
}

route('services', listView);
route('services/:name', serviceView);
route('services/:name/:id', instanceView);
