// scale.mjs - the Services view with a large catalog, in Debian's headless Chromium through
// playwright-core: how long the first render takes and which tasks run long (Chromium's
// long tasks, over 50 ms, from a PerformanceObserver) while the list loads, while a filter
// changes hundreds of rows and back, and while a burst of check changes arrives. Started by
// tests/integration/test_ui_scale.py against a real `weft serve` holding CONFIG.n services
// (one instance each, one TTL check each, "service:ID"):
//
//     node scale.mjs CONFIG_JSON
//
// CONFIG: url, n, query (a filter matching CONFIG.matching services), burst (instance IDs
// whose checks are failed, then passed again, all at once through the agent API), focus
// (a service in the burst whose link has the focus meanwhile), last (the last service in
// the list's order), big ({name, n, burst}: a service of n instances registered at the
// end, whose view is opened and burst checks of which are failed), chromium, artifacts.
//
// It prints one JSON object (what it measured: the test asserts on it) and exits 0; a step
// that fails prints the step and the error on stderr, saves a screenshot, and exits 1.
// Every wait is bounded. Times are the page's own (performance.now(), from the start of the
// navigation), so a slower server (a sanitizer's build) lengthens the waits, not the tasks.
import { join } from 'node:path';
import { axeViolations, begin, run } from './lib.mjs';

const S = begin('scale.mjs', process.argv[2], { wait: 20000, out: { phases: {} } });
const { cfg, base, artifacts, WAIT, out, log } = S;
const SETTLE = 600; // ms without a change after a phase before its long tasks are read

// Runs in the page before its scripts: records each long task, and when the first row of
// the list is in the DOM and when the frame after it (its paint) has been drawn.
function instrument() {
  window.__long = [];
  new PerformanceObserver((l) => {
    for (const e of l.getEntries()) window.__long.push({ start: e.startTime, dur: e.duration });
  }).observe({ type: 'longtask', buffered: true });
  const mo = new MutationObserver(() => {
    if (window.__rowsAt || !document.querySelector('#services tbody tr[data-service]')) return;
    window.__rowsAt = performance.now();
    mo.disconnect();
    requestAnimationFrame(() => setTimeout(() => { window.__paintedAt = performance.now(); }));
  });
  mo.observe(document, { childList: true, subtree: true });
}

const now = (page) => page.evaluate(() => performance.now());
const rowCount = (page) => page.$eval('#services', (t) => Number(t.getAttribute('aria-rowcount')) - 1);

// The long tasks that started in [t0, t1] of the page's clock.
async function longTasks(page, t0, t1) {
  const all = await page.evaluate(() => window.__long);
  return all.filter((e) => e.start >= t0 && e.start <= t1).map((e) => Math.round(e.dur));
}

// Waits until fn() (in the page) is true, then SETTLE ms more; returns [ms it took, end].
async function phase(page, name, t0, fn, arg) {
  await page.waitForFunction(fn, arg, { timeout: WAIT, polling: 20 });
  const seen = await now(page);
  await page.waitForTimeout(SETTLE);
  const t1 = await now(page);
  out.phases[name] = { ms: Math.round(seen - t0), long_tasks: await longTasks(page, t0, t1) };
  return t1;
}

const summaryHas = (text) => document.querySelector('main .sub') &&
  document.querySelector('main .sub').textContent.includes(text);

async function setChecks(ids, verb) {
  const res = await Promise.all(ids.map((id) => fetch(
    `${base}/v1/agent/check/${verb}/${encodeURIComponent(`service:${id}`)}?note=${verb}`,
    { method: 'PUT' })));
  const bad = res.filter((r) => r.status !== 200).map((r) => r.status);
  if (bad.length) throw new Error(`check ${verb}: answers ${bad}`);
}

async function scale(page) {
  log('load');
  await page.addInitScript(instrument);
  await page.goto(`${base}/ui/#/services`);
  await page.waitForFunction(() => window.__paintedAt, null, { timeout: WAIT, polling: 20 });
  const t = await page.evaluate(() => {
    // the first answers of the two reads: the page's own time starts when both are in
    const api = performance.getEntriesByType('resource')
      .filter((e) => /\/v1\/(agent\/services|health\/state\/any)$/.test(e.name));
    return { rows: window.__rowsAt, painted: window.__paintedAt,
      api: Math.max(...api.slice(0, 2).map((e) => e.responseEnd)) };
  });
  out.first_rows_ms = Math.round(t.rows);
  out.first_render_ms = Math.round(t.painted);
  out.first_render_page_ms = Math.round(t.painted - t.api);
  const loaded = await phase(page, 'load', 0, summaryHas, `${cfg.n} services`);
  out.rowcount = await rowCount(page);
  out.rows_in_dom = await page.$$eval('#services tbody tr[data-service]', (r) => r.length);
  await page.screenshot({ path: join(artifacts, 'scale-services.png') });

  log('filter');
  let t0 = await now(page);
  await page.fill('#svc-filter', cfg.query);
  let t1 = await phase(page, 'filter', t0, (n) => document.querySelector('#services')
    && document.querySelector('#services').getAttribute('aria-rowcount') === String(n + 1), cfg.matching);
  out.filter_rowcount = await rowCount(page);
  out.filter_url = page.url();
  out.filter_services = await page.$$eval('#services tbody tr[data-service]',
    (r) => r.map((x) => x.dataset.service));
  t0 = t1;
  await page.fill('#svc-filter', '');
  t1 = await phase(page, 'unfilter', t0, (n) => document.querySelector('#services')
    .getAttribute('aria-rowcount') === String(n + 1), cfg.n);

  log('scroll');
  // the end of the list: its last row drawn in its place, the rows around it only
  t0 = t1;
  await page.evaluate(() => window.scrollTo(0, document.documentElement.scrollHeight));
  t1 = await phase(page, 'scroll', t0, (name) => !!document.querySelector(
    `#services tr[data-service="${CSS.escape(name)}"]`), cfg.last);
  out.last_row = await page.$eval(`#services tr[data-service="${cfg.last}"]`, (tr) => ({
    rowindex: Number(tr.getAttribute('aria-rowindex')),
    visible: tr.getBoundingClientRect().bottom <= window.innerHeight + 1 && tr.getBoundingClientRect().top >= 0,
  }));
  out.rows_in_dom_scrolled = await page.$$eval('#services tbody tr[data-service]', (r) => r.length);

  log('axe');
  // in the middle of the list, both spacers drawn: axe-core finds no serious violation
  await page.evaluate(() => window.scrollTo(0, document.documentElement.scrollHeight / 2));
  await page.waitForFunction(() => document.querySelectorAll('#services tr.spacer').length === 2,
    null, { timeout: WAIT });
  out.axe = await axeViolations(page);
  await page.evaluate(() => window.scrollTo(0, 0));
  await page.waitForSelector('#services tbody tr[aria-rowindex="2"]', { timeout: WAIT });

  log('keyboard');
  // Tab goes from link to link through rows that were not drawn when it started
  await page.locator('#services tbody tr[data-service] a').first().focus();
  const focused = () => page.evaluate(() => {
    const a = document.activeElement;
    const tr = a && a.closest('tr[data-service]');
    return tr ? { tag: a.tagName, service: tr.dataset.service,
      rowindex: Number(tr.getAttribute('aria-rowindex')) } : { tag: a && a.tagName };
  });
  for (let i = 0; i < cfg.tabs; i++) await page.keyboard.press('Tab');
  out.tabbed_to = await focused();
  // and back with Shift+Tab, after scrolling far away (the focused row drawn alone)
  await page.evaluate(() => window.scrollBy(0, 10000));
  await page.waitForTimeout(100);
  for (let i = 0; i < cfg.tabs / 2; i++) await page.keyboard.press('Shift+Tab');
  out.shift_tabbed_to = await focused();

  log('burst');
  await page.evaluate(() => window.scrollTo(0, 0));
  await page.waitForSelector(`#services tr[data-service="${cfg.focus}"]`, { timeout: WAIT });
  await page.locator(`#services tr[data-service="${cfg.focus}"] a`).focus();
  t0 = await now(page);
  await setChecks(cfg.burst, 'fail');
  t1 = await phase(page, 'burst_fail', t0, summaryHas, `${cfg.burst.length} critical`);
  out.focus_after_burst = await page.evaluate(() => {
    const a = document.activeElement;
    const tr = a && a.closest('tr[data-service]');
    return { tag: a && a.tagName, service: tr && tr.dataset.service, health: tr && tr.dataset.health };
  });
  t0 = t1;
  await setChecks(cfg.burst, 'pass');
  await phase(page, 'burst_pass', t0, summaryHas, `${cfg.n} passing`);
  out.loaded_at_ms = Math.round(loaded);

  log('instances');
  // one service with CONFIG.big.n instances: its view, and a burst of check changes in it
  const big = cfg.big;
  const ids = Array.from({ length: big.n }, (_, i) => `${big.name}-${String(i).padStart(4, '0')}`);
  for (let i = 0; i < ids.length; i += 50) {
    const res = await Promise.all(ids.slice(i, i + 50).map((id, j) => fetch(
      `${base}/v1/agent/service/register`, { method: 'PUT', body: JSON.stringify({ ID: id,
        Name: big.name, Port: 20000 + i + j, Address: '127.0.0.1', Tags: ['big'],
        Meta: { version: '1.0.0' }, Check: { TTL: '10m', Status: 'passing' } }) })));
    const bad = res.filter((r) => r.status !== 200).map((r) => r.status);
    if (bad.length) throw new Error(`register: answers ${bad}`);
  }
  await page.waitForFunction(summaryHas, `${cfg.n + 1} services`, { timeout: WAIT, polling: 20 });
  t0 = await now(page);
  await page.evaluate((n) => { location.hash = `#/services/${n}`; }, big.name);
  t1 = await phase(page, 'instances', t0, (n) => document.querySelectorAll('article[data-instance]').length === n,
    big.n);
  out.instances_first_card = await page.$eval('article[data-instance]', (a) => a.dataset.instance);
  const focusId = ids[10]; // in the burst
  await page.locator(`article[data-instance="${focusId}"] [data-action="maintenance"]`).focus();
  const burstIds = ids.filter((_, i) => i % Math.round(big.n / big.burst) === 0);
  t0 = t1;
  await setChecks(burstIds, 'fail');
  await phase(page, 'instances_burst', t0, (n) => document.querySelectorAll(
    'article[data-instance][data-health="critical"]').length === n, burstIds.length);
  out.instances_focus = await page.evaluate(() => {
    const a = document.activeElement;
    const card = a && a.closest('article[data-instance]');
    return { action: a && a.dataset.action, instance: card && card.dataset.instance,
      health: card && card.dataset.health };
  });
  out.instances_burst = burstIds.length;
  out.instances_focus_id = focusId;
}

await run(S, scale, { failed: 'scale-failed', httpErrorsApart: false });
