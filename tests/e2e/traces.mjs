// traces.mjs - drives the dashboard's Traces and Service map views in Debian's headless
// Chromium (playwright-core) and scans them with axe-core; started by
// tests/integration/test_ui_traces.py against a real `weft serve`:
//
//     node traces.mjs traces CONFIG_JSON
//
// CONFIG: url (the API port), search {service, operation}, real {id, spans} (a trace through
// the gateway and two hello instances), known {id} (a posted trace with a known critical
// path and a gateway span's events), big {id, spans} (10,000 spans).
// It searches from the form, opens the trace found, reads what the waterfall marks, opens a
// span's details with the keyboard, reads the service map and measures its drawing (labels
// clear of boxes and of each other, edges clear of boxes; a refresh moves nothing), then
// opens the big trace with a PerformanceObserver('longtask') running and scrolls, jumps
// and collapses it. It prints one
// JSON object (what it saw) and exits 0; a failed step prints it on stderr, saves a
// screenshot and exits 1. Every wait is bounded. Requests that leave the origin and the
// page's errors are recorded (the test requires none).
import { begin, run, shot as shotOf, survey as surveyOf } from './lib.mjs';

const [scenario, cfgText] = process.argv.slice(2);
const S = begin(`traces.mjs ${scenario}`, cfgText, { wait: 15000, out: { scenario } });
const { cfg, base, WAIT, out, log } = S;

const shot = (page, name) => shotOf(S, page, name);
// axe in light and dark; screenshots at laptop width (light) and phone width (dark).
const survey = (page, name) => surveyOf(S, page, name);

async function waterfall(page) {
  return page.$$eval('#waterfall .wf-row', (rows) => rows.map((r) => ({
    span: r.dataset.span, critical: r.dataset.critical === 'true', error: r.dataset.error === 'true',
    level: Number(r.getAttribute('aria-level')) })));
}

async function traces(page) {
  log('search');
  await page.goto(`${base}/ui/#/traces`);
  await page.waitForSelector(`#tr-service option[value="${cfg.search.service}"]`, { state: 'attached' });
  await page.selectOption('#tr-service', cfg.search.service);
  await page.waitForSelector(`#tr-operation option[value="${cfg.search.operation}"]`, { state: 'attached' });
  await page.selectOption('#tr-operation', cfg.search.operation);
  await page.fill('#tr-limit', '50');
  await page.click('#tr-find');
  await page.waitForSelector(`#trace-results li[data-trace="${cfg.real.id}"]`);
  out.search_url = page.url();
  out.results = await page.$$eval('#trace-results > li', (li) => li.map((x) => x.dataset.trace));
  await survey(page, 'traces');

  log('search-links');
  // searches named by their URL (as another view links to one): tags, durations
  out.linked = {};
  for (const [name, qs] of Object.entries(cfg.linked || {})) {
    await page.goto(`${base}/ui/#/traces?${qs}`);
    await page.waitForSelector('#trace-results > li, main p.empty:not(:empty)');
    await page.waitForFunction(() => !/Searching/.test(document.querySelector('main .sub')?.textContent || ''));
    out.linked[name] = {
      traces: await page.$$eval('#trace-results > li', (li) => li.map((x) => [x.dataset.trace, Number(x.dataset.errors)])),
      tags_field: await page.inputValue('#tr-tags'),
      text: await page.textContent('main'),
    };
  }

  log('open-real');
  await page.goto(out.search_url);
  await page.waitForSelector(`#trace-results li[data-trace="${cfg.real.id}"]`);
  // reached with the keyboard: the result's link, Enter
  await page.locator(`#trace-results li[data-trace="${cfg.real.id}"] a.res-title`).focus();
  await page.keyboard.press('Enter');
  await page.waitForSelector('#waterfall .wf-row');
  const rows = await waterfall(page);
  out.real = {
    rows: rows.length, critical: rows.filter((r) => r.critical).map((r) => r.span),
    facts: await page.textContent('#trace-facts'),
    services: await page.$$eval('#trace-services a', (a) => a.map((x) => x.getAttribute('href'))),
    routes: await page.$$eval('#trace-routes a', (a) => a.map((x) => x.getAttribute('href'))),
  };
  await survey(page, 'trace');

  // opened on these views, the header still tells the registry stream's state
  await page.waitForSelector('#live[data-state="live"]');
  out.real.live = await page.textContent('#live');

  log('known');
  await page.goto(`${base}/ui/#/traces/${cfg.known.id}`);
  await page.waitForSelector('#waterfall .wf-row');
  let k = await waterfall(page);
  out.known = { rows: k.length, critical: k.filter((r) => r.critical).map((r) => r.span),
    errors: k.filter((r) => r.error).map((r) => r.span) };
  // keyboard: Tab into the tree lands on its first row (the root); Enter shows its details
  await page.locator('#wf-more').focus();
  await page.keyboard.press('Tab');
  out.known.focus = await page.evaluate(() => document.activeElement.dataset.span || document.activeElement.id);
  await page.keyboard.press('Enter');
  await page.waitForSelector('#span-events li');
  out.known.span_url = page.url();
  out.known.events = await page.$$eval('#span-events li', (li) => li.map((x) => x.dataset.event));
  out.known.event_text = await page.textContent('#span-events');
  out.known.decisions = Object.fromEntries(await page.$$eval('#span-detail table.kv', (tables) =>
    [...tables[0].querySelectorAll('tbody tr')].map((tr) =>
      [tr.querySelector('th').textContent, tr.querySelector('td').textContent])));
  out.known.route_link = await page.getAttribute('#span-facts a[href^="#/gateway/"]', 'href');
  await survey(page, 'trace-detail');
  // the tree from the keyboard: Down to A, Left closes it; Down to B, Left closes it
  await page.locator('#waterfall .wf-row[data-span="0000000000000001"]').focus();
  for (const key of ['ArrowDown', 'ArrowLeft', 'ArrowDown', 'ArrowLeft']) await page.keyboard.press(key);
  out.known.collapsed_rows = (await waterfall(page)).length;
  // a link with ?span= opens with that span's details
  await page.goto(`${base}/ui/#/traces/${cfg.known.id}?span=0000000000000005`);
  await page.reload();
  await page.waitForSelector('#span-title');
  out.known.deep_link_title = await page.textContent('#span-title');

  log('map');
  await page.goto(`${base}/ui/#/map`);
  await page.waitForSelector('#map-edges tbody tr');
  out.map = {
    edges: await page.$$eval('#map-edges tbody tr', (tr) => tr.map((x) => x.dataset.edge)),
    rows: Object.fromEntries(await page.$$eval('#map-edges tbody tr', (tr) => tr.map((x) =>
      [x.dataset.edge, [...x.children].map((c) => c.textContent)]))),
    nodes: await page.$$eval('svg.map g.node', (g) => g.map((x) => x.dataset.node)),
    svg_edges: await page.$$eval('svg.map path[data-edge]', (p) => p.map((x) => x.dataset.edge)),
    geometry: await mapGeometry(page),
  };
  await shot(page, 'map-geometry');
  // the refresh (every 10 s) with nothing new moves nothing and keeps the focus on a node
  await page.locator('svg.map g.node a').first().focus();
  const focused = await page.evaluate(() => document.activeElement.getAttribute('href'));
  await page.waitForResponse((r) => r.url().includes('/api/dependencies'), { timeout: 15000 });
  await page.waitForTimeout(500);
  const again = await mapGeometry(page);
  out.map.refresh = {
    rows_same: JSON.stringify(out.map.rows) === JSON.stringify(Object.fromEntries(await page.$$eval('#map-edges tbody tr',
      (tr) => tr.map((x) => [x.dataset.edge, [...x.children].map((c) => c.textContent)])))),
    same: JSON.stringify([again.nodes, again.labels]) === JSON.stringify([out.map.geometry.nodes, out.map.geometry.labels]),
    focus: [focused, await page.evaluate(() => document.activeElement.getAttribute('href'))],
  };
  await survey(page, 'map');

  log('big');
  // the long-task observer runs from the page's start (addInitScript); it is emptied just
  // before the big trace is asked for, so what it holds is that trace's opening and use
  await page.goto(`${base}/ui/#/traces`);
  await page.waitForSelector('h1');
  // first, that the observer works here: a task made 250 ms long on purpose is reported
  await page.evaluate(() => setTimeout(() => {
    const t = performance.now();
    while (performance.now() - t < 250);
  }, 0));
  await page.waitForTimeout(600);
  out.observer_saw = await page.evaluate(() => window.__long.slice());
  await page.evaluate(() => { window.__long.length = 0; });
  const t0 = Date.now();
  await page.evaluate((id) => { location.hash = `#/traces/${id}`; }, cfg.big.id);
  await page.waitForSelector('#waterfall .wf-row', { timeout: 60000 });
  const opened = Date.now() - t0;
  // use it: scroll through, jump to the end with the keyboard, collapse, expand
  await page.evaluate(() => new Promise((done) => {
    const tree = document.getElementById('waterfall');
    let n = 0;
    const tick = () => {
      tree.scrollTop += 4000;
      if (++n < 20) requestAnimationFrame(tick); else done();
    };
    requestAnimationFrame(tick);
  }));
  await page.locator('#waterfall .wf-row').first().focus();
  await page.keyboard.press('End');
  const endSpan = await page.evaluate(() => document.activeElement.dataset.span || '');
  await page.click('#wf-collapse');
  const collapsedRows = await page.$$eval('#waterfall .wf-row', (r) => r.length);
  await page.click('#wf-expand');
  await page.waitForTimeout(500); // let a long task, if any, be reported
  out.big = {
    opened_ms: opened, facts: await page.textContent('#trace-facts'),
    rows_in_dom: await page.$$eval('#waterfall .wf-row', (r) => r.length),
    end_span: endSpan, collapsed_rows: collapsedRows,
    long_tasks: await page.evaluate(() => window.__long.slice()),
  };
  await survey(page, 'big-trace');
}

// The service map's drawing, measured in the page: each node's box and each edge label's
// box (getBBox, the SVG's own units), each edge's path sampled every 2 px
// (getPointAtLength). problems lists what should never be: a label over a node's box or
// over another label, a path inside a node's box (1 px in from its border), a path under
// its own label; covered: the paths under another edge's label (hidden there by the
// label's background, so that its text never runs over a line). For each edge: the columns of its two ends
// (the nodes' x, in order), and how far its path strays from the straight line between its
// ends. label_bg: the labels' background fills, map_bg the map's.
async function mapGeometry(page) {
  return page.evaluate(() => {
    const svg = document.querySelector('svg.map');
    const box = (el) => { const b = el.getBBox(); return { x: b.x, y: b.y, w: b.width, h: b.height }; };
    const nodes = Object.fromEntries([...svg.querySelectorAll('g.node')].map((g) => [g.dataset.node, box(g.querySelector('rect'))]));
    const labels = Object.fromEntries([...svg.querySelectorAll('g.elabel-g')].map((g) => [g.dataset.edge, box(g)]));
    const hit = (a, b) => a.x < b.x + b.w && b.x < a.x + a.w && a.y < b.y + b.h && b.y < a.y + a.h;
    const inside = (p, b, m) => p.x > b.x + m && p.x < b.x + b.w - m && p.y > b.y + m && p.y < b.y + b.h - m;
    const problems = [];
    const covered = []; // an edge under another's label: hidden there by its background
    for (const [e, l] of Object.entries(labels)) {
      for (const [n, b] of Object.entries(nodes)) if (hit(l, b)) problems.push(`label ${e} over node ${n}`);
      for (const [e2, l2] of Object.entries(labels)) if (e < e2 && hit(l, l2)) problems.push(`label ${e} over label ${e2}`);
    }
    const columns = [...new Set(Object.values(nodes).map((b) => Math.round(b.x)))].sort((a, b) => a - b);
    const edges = {};
    for (const path of svg.querySelectorAll('path[data-edge]')) {
      const e = path.dataset.edge;
      const [from, to] = e.split('->');
      const len = path.getTotalLength();
      const pts = [];
      for (let d = 0; d <= len; d += 2) pts.push(path.getPointAtLength(d));
      pts.push(path.getPointAtLength(len));
      for (const [n, b] of Object.entries(nodes)) {
        const q = pts.find((p) => inside(p, b, 1));
        if (q) problems.push(`edge ${e} through node ${n} at ${q.x.toFixed(1)},${q.y.toFixed(1)}`);
      }
      for (const [e2, l] of Object.entries(labels)) {
        if (!pts.some((p) => inside(p, l, 0))) continue;
        if (e2 === e) problems.push(`edge ${e} under its own label`);
        else covered.push(`${e} under ${e2}`);
      }
      const [a, z] = [pts[0], pts[pts.length - 1]];
      const chord = Math.hypot(z.x - a.x, z.y - a.y) || 1;
      const stray = Math.max(...pts.map((p) => Math.abs((z.x - a.x) * (a.y - p.y) - (a.x - p.x) * (z.y - a.y)) / chord));
      edges[e] = { columns: [from, to].map((n) => columns.indexOf(Math.round(nodes[n].x))), stray, samples: pts.length };
    }
    return { nodes, labels, edges, problems, covered,
      label_bg: [...new Set([...svg.querySelectorAll('g.elabel-g > rect')].map((r) => getComputedStyle(r).fill))],
      map_bg: getComputedStyle(document.querySelector('.map-box')).backgroundColor };
  });
}

await run(S, async (page) => {
  if (scenario === 'traces') await traces(page);
  else throw new Error(`unknown scenario ${scenario}`);
}, {
  failed: `${scenario}-failed`,
  initScript: () => {
    window.__long = [];
    try {
      new PerformanceObserver((l) => {
        for (const e of l.getEntries()) window.__long.push(Math.round(e.duration));
      }).observe({ type: 'longtask' });
    } catch { /* no longtask support: the list stays empty, and the test says so */ }
  },
});
