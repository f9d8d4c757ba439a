// gateway.mjs - drives the dashboard's Gateway and Circuit breakers views in Debian's
// headless Chromium (playwright-core) and scans them with axe-core, as run.mjs does for
// the Services view. Started by tests/integration/test_ui_gateway.py against a real `weft
// serve` whose gateway routes CONFIG.route to a real examples/hello (the test keeps a
// steady trickle of requests going) and CONFIG.flaky to faulty.py (CONFIG.faulty: its
// URL, for its control endpoint):
//
//     node gateway.mjs CONFIG_JSON
//
// Gateway: the routes' table shows the route's requests/s from the history; the route's
// own URL (reached with the keyboard) draws its charts, their readout answers the arrow
// keys, the latency chart links to the route's traces, the route to its breakers.
// Breakers: faulty made to answer 503, requests through CONFIG.flaky trip its breaker: its
// tile shows open with the reason and a countdown that goes down; once it is due, faulty
// is healed and one request is the probe: the tile shows half-open, with that reason.
// Every view is scanned (light and dark) and photographed (laptop light, phone dark).
//
// Prints one JSON object (what it saw: the test asserts on it) and exits 0; a failing step
// prints the step and the error on stderr, saves a screenshot and exits 1. Every wait is
// bounded.
import { begin, run, shot as shotOf, survey as surveyOf } from './lib.mjs';

const S = begin('gateway.mjs', process.argv[2]);
const { cfg, base, WAIT, out, log } = S;

const shot = (page, name) => shotOf(S, page, name);
// axe in light and dark, screenshots at laptop and phone widths, and how much wider than a
// phone's screen the view is (out.NAME_overflow)
const survey = (page, name) => surveyOf(S, page, name, { overflow: true });

const tile = (route, up) => `.tile[data-route="${route}"][data-upstream="${up}"]`;

async function gatewayViews(page) {
  log('gateway');
  await page.goto(`${base}/ui/#/gateway`);
  await page.waitForFunction((r) => {
    const tr = document.querySelector(`#routes tr[data-route="${r}"]`);
    return tr && Number(tr.dataset.rps) > 0;
  }, cfg.route, { timeout: WAIT });
  out.routes = await page.$$eval('#routes tbody tr', (rows) => rows.map((r) => ({
    route: r.dataset.route, rps: Number(r.dataset.rps),
    cells: [...r.children].map((c) => c.textContent) })));
  out.nav = await page.$$eval('#nav a', (a) => a.map((x) => [x.textContent, x.getAttribute('href'),
    x.getAttribute('aria-current')]));
  await survey(page, 'gateway');

  log('gateway-route');
  await page.locator(`#routes tr[data-route="${cfg.route}"] a[data-key]`).focus();
  await page.keyboard.press('Enter');
  await page.waitForURL(`**/ui/#/gateway/${cfg.route}`, { timeout: WAIT });
  await page.waitForFunction(() => {
    const s = document.querySelector('main p.sub');
    return s && Number(s.dataset.rps) > 0;
  }, null, { timeout: WAIT });
  out.route_status = await page.textContent('main p.sub');
  out.route_h1 = await page.textContent('h1');
  out.charts = await page.$$eval('figure.chart', (f) => f.map((c) => ({
    title: c.querySelector('h3').textContent, label: c.querySelector('.chart-box').getAttribute('aria-label'),
    legend: [...c.querySelectorAll('.legend li')].map((l) => l.textContent),
    paths: [...c.querySelectorAll('path.line')].map((p) => p.getAttribute('d').length) })));
  out.traces_href = await page.getAttribute('a[data-traces]', 'href');
  // the exemplars of the route's latency buckets (/metrics, OpenMetrics), each a trace
  await page.waitForSelector('.exemplars a', { timeout: WAIT });
  out.exemplars = await page.$$eval('.exemplars a', (a) => a.map((x) => x.getAttribute('href')));
  out.breakers_links = await page.$$eval('main a[href^="#/breakers"]', (a) => a.map((x) => x.getAttribute('href')));
  // the readout: under the pointer (near the chart's right end: the newest samples)...
  const box = await page.locator('figure.chart .chart-box').first().boundingBox();
  await page.mouse.move(box.x + box.width - 12, box.y + box.height / 2);
  out.hover_readout = await page.textContent('figure.chart .readout');
  await page.mouse.move(0, 0);
  // ... and the arrow keys walk the samples
  await page.locator('figure.chart .chart-box').first().focus();
  await page.keyboard.press('ArrowLeft');
  out.readout = await page.textContent('figure.chart .readout');
  out.readout_focus = await page.evaluate(() => document.activeElement.className);
  // the chart keeps its focus, and the readout its sample, across the next polls' redraws
  await page.waitForTimeout(1500);
  out.readout_focus_later = await page.evaluate(() => document.activeElement.className);
  out.readout_later = await page.textContent('figure.chart .readout');
  await survey(page, 'gateway-route');
}

async function breakerViews(page) {
  log('trip');
  const set = (body) => fetch(`${cfg.faulty}/_fault`, { method: 'POST', body: JSON.stringify(body),
    headers: { 'Content-Type': 'application/json' } });
  await set({ mode: 'status', status: 503, count: 100000 });
  const codes = [];
  for (let i = 0; i < cfg.trip_requests; i++) codes.push((await fetch(`${cfg.gw}/${cfg.flaky}/x`)).status);
  out.trip_codes = codes;

  log('breakers-open');
  await page.goto(`${base}/ui/#/breakers`);
  await page.waitForSelector(`${tile(cfg.flaky, '')}[data-state="open"]`, { timeout: WAIT });
  const t = tile(cfg.flaky, '');
  out.open_state = await page.textContent(`${t} .badge.state`);
  out.open_reason = await page.textContent(`${t} .reason`);
  out.countdown1 = await page.textContent(`${t} .countdown`);
  await page.waitForTimeout(1300);
  out.countdown2 = await page.textContent(`${t} .countdown`);
  out.tiles = await page.$$eval('.tile', (ts) => ts.map((x) => ({ route: x.dataset.route,
    upstream: x.dataset.upstream, state: x.dataset.state,
    r: Number(x.querySelector('circle').getAttribute('r')),
    links: [...x.querySelectorAll('a')].map((a) => a.getAttribute('href')) })));
  out.open_timeline = await page.$$eval('#timeline li', (li) => li.map((x) => x.textContent));
  await survey(page, 'breakers');

  log('breaker');
  await page.click(`${t} h3 a`);
  await page.waitForURL(`**/ui/#/breakers/${cfg.flaky}/route`, { timeout: WAIT });
  await page.waitForSelector(`${t}[data-state="open"]`, { timeout: WAIT });
  out.breaker_h1 = await page.textContent('h1');
  out.breaker_strip = await page.$$eval('svg.strip rect.st-open', (r) => r.length);
  out.breaker_gateway_link = await page.getAttribute(`main > p a[href^="#/gateway"]`, 'href');
  await survey(page, 'breaker');

  log('half-open');
  await page.waitForFunction((sel) => {
    const c = document.querySelector(sel);
    return c && c.textContent === 'half-open at the next request';
  }, `${t} .countdown`, { timeout: cfg.open_for_ms + WAIT });
  await set({ mode: 'off' });
  out.probe_code = (await fetch(`${cfg.gw}/${cfg.flaky}/x`)).status;
  const t0 = Date.now();
  await page.waitForSelector(`${t}[data-state="half_open"]`, { timeout: WAIT });
  out.half_open_after_ms = Date.now() - t0;
  out.half_state = await page.textContent(`${t} .badge.state`);
  out.half_reason = await page.textContent(`${t} .reason`);
  await page.waitForSelector('#timeline li[data-to="half_open"]', { timeout: WAIT });
  out.half_timeline = await page.$$eval('#timeline li', (li) => li.map((x) => ({ to: x.dataset.to,
    reason: x.dataset.reason, text: x.textContent })));
  await shot(page, 'breaker-half-open');
}

await run(S, async (page) => {
  await gatewayViews(page);
  await breakerViews(page);
}, { failed: 'gateway-failed' });
