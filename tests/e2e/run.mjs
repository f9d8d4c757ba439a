// run.mjs - drives weft's dashboard (/ui/) in Debian's headless Chromium through
// playwright-core, and scans it with axe-core. Started by tests/integration/test_ui.py
// against a real `weft serve` with real examples/hello instances:
//
//     node run.mjs SCENARIO CONFIG_JSON
//
// SCENARIO "services": the Services view shows the registry's services, instances and
// checks; an instance killed with SIGKILL (CONFIG.kill.pid) turns critical on the page (the
// time it took is reported); maintenance on and off and deregister from the page; axe
// scans (light and dark) and screenshots (laptop and phone widths) of each view.
// SCENARIO "token": with acl.token set, a write from the page asks for the token in a form,
// a wrong one is refused with the API's message, the right one is kept for the tab; then
// weft is killed (CONFIG.weft_pid): the page says the stream is down and why a write failed.
//
// It prints one JSON object (what it saw: the test asserts on it) and exits 0; any step
// that fails prints the step and the error on stderr, saves a screenshot, and exits 1.
// Every wait is bounded. Requests that leave the page's origin are recorded (and must not
// happen), and so are the page's errors and console errors (a CSP violation is one).
import { axeViolations, begin, run, shot as shotOf, survey as surveyOf } from './lib.mjs';

const [scenario, cfgText] = process.argv.slice(2);
const S = begin(`run.mjs ${scenario}`, cfgText, { out: { scenario } });
const { cfg, base, WAIT, out, log } = S;

async function api(path, init) {
  const r = await fetch(base + path, init);
  return { status: r.status, body: await r.text() };
}

async function axeScan(page, name) {
  out.axe[name] = await axeViolations(page);
}

const shot = (page, name) => shotOf(S, page, name);
// Scans and photographs the current view in light and dark, at laptop and phone widths.
const survey = (page, name) => surveyOf(S, page, name);

const card = (id) => `article[data-instance="${id}"]`;

async function services(page) {
  const [a, b] = cfg.instances; // a: killed, then deregistered; b: maintenance on and off
  log('list');
  await page.goto(`${base}/ui/#/services`);
  await page.waitForSelector(`#services tr[data-service="${cfg.service}"]`, { timeout: WAIT });
  out.list = await page.$$eval('#services tbody tr', (rows) => rows.map((r) => ({
    service: r.dataset.service, health: r.dataset.health,
    instances: Number(r.querySelector('td.num').textContent),
    badges: [...r.querySelectorAll('.badge')].map((x) => x.textContent),
    tags: [...r.querySelectorAll('.tags li')].map((x) => x.textContent),
  })));
  await survey(page, 'services');

  log('filter');
  // The filter is part of the URL: a link to it opens the list filtered.
  await page.fill('#svc-filter', 'no-such-thing');
  await page.waitForSelector('text=No service matches the filter.', { timeout: WAIT });
  out.filter_url = page.url();
  await page.goto(`${base}/ui/#/services?q=${encodeURIComponent(cfg.service)}`);
  await page.reload();
  await page.waitForSelector(`#services tr[data-service="${cfg.service}"]`, { timeout: WAIT });
  out.filter_value = await page.inputValue('#svc-filter');

  log('keyboard');
  // The service's link is reached with the keyboard and opens the service's own URL.
  await page.locator(`#services tr[data-service="${cfg.service}"] a`).focus();
  await page.keyboard.press('Enter');
  await page.waitForURL(`**/ui/#/services/${encodeURIComponent(cfg.service)}`, { timeout: WAIT });
  out.keyboard_url = page.url();
  // the router moves the focus once the view is drawn, which may be after the URL changed
  await page.waitForFunction(() => document.activeElement && document.activeElement.tagName === 'H1',
    null, { timeout: WAIT }).catch(() => {});
  out.focus_after_nav = await page.evaluate(() => document.activeElement.tagName);

  log('service');
  await page.waitForSelector(`${card(a)}[data-health="passing"]`, { timeout: WAIT });
  await page.waitForSelector(`${card(b)}[data-health="passing"]`, { timeout: WAIT });
  out.cards = await page.$$eval('article[data-instance]', (cards) => cards.map((c) => ({
    id: c.dataset.instance, health: c.dataset.health,
    address: c.querySelector('.addr').textContent,
    meta: Object.fromEntries([...c.querySelectorAll('dl.meta dt')].map((dt) =>
      [dt.textContent, dt.nextElementSibling.textContent])),
    checks: [...c.querySelectorAll('li[data-check]')].map((k) => ({
      id: k.dataset.check, status: k.dataset.status,
      output: (k.querySelector('.output') || { textContent: '' }).textContent })),
  })));
  await survey(page, 'service');

  log('instance');
  await page.click(`${card(b)} h2 a`);
  await page.waitForURL(`**/ui/#/services/${encodeURIComponent(cfg.service)}/${encodeURIComponent(b)}`,
    { timeout: WAIT });
  await page.waitForSelector(`section[data-instance="${b}"] li[data-check]`, { timeout: WAIT });
  out.instance_history = await page.$$eval(`section[data-instance="${b}"] ol.history li`,
    (li) => li.map((x) => x.textContent));
  await survey(page, 'instance');

  log('kill');
  await page.goto(`${base}/ui/#/services/${encodeURIComponent(cfg.service)}`);
  await page.waitForSelector(`${card(a)}[data-health="passing"]`, { timeout: WAIT });
  const t0 = Date.now();
  process.kill(cfg.kill_pid, 'SIGKILL');
  await page.waitForSelector(`${card(a)}[data-health="critical"]`, { timeout: WAIT });
  out.critical_after_ms = Date.now() - t0;
  out.critical_output = await page.textContent(`${card(a)} li[data-check="service:${a}"] .output`);

  log('maintenance-on');
  await page.click(`${card(b)} [data-action="maintenance"]`);
  await page.waitForSelector(`${card(b)}[data-health="maintenance"]`, { timeout: WAIT });
  out.maint_on_api = await api(`/v1/agent/checks`);
  out.maint_notice = await page.textContent('#notice p');
  out.maint_button = await page.textContent(`${card(b)} [data-action="maintenance"]`);

  log('maintenance-off');
  await page.click(`${card(b)} [data-action="maintenance"]`);
  await page.waitForSelector(`${card(b)}[data-health="passing"]`, { timeout: WAIT });
  out.maint_off_api = await api(`/v1/agent/checks`);

  log('deregister');
  await page.click(`${card(a)} [data-action="deregister"]`);
  await page.click(`${card(a)} [data-action="confirm-deregister"]`);
  await page.waitForSelector(card(a), { state: 'detached', timeout: WAIT });
  out.dereg_api = await api(`/v1/agent/service/${encodeURIComponent(a)}`);
  out.cards_after = await page.$$eval('article[data-instance]', (c) => c.map((x) => x.dataset.instance));
  out.token_storage = await page.evaluate(() => [sessionStorage.length, localStorage.length]);
}

async function token(page) {
  const id = cfg.instances[0];
  log('open');
  await page.goto(`${base}/ui/#/services/${encodeURIComponent(cfg.service)}/${encodeURIComponent(id)}`);
  await page.waitForSelector(`section[data-instance="${id}"][data-health="passing"]`, { timeout: WAIT });

  log('ask');
  await page.click('[data-action="maintenance"]');
  await page.waitForSelector('#token-dialog[open]', { timeout: WAIT });
  out.dialog_focus = await page.evaluate(() => document.activeElement.id);
  await axeScan(page, 'token-dialog');
  await shot(page, 'token-dialog');
  await page.keyboard.type('not-the-token');
  await page.keyboard.press('Enter');

  log('refused');
  await page.waitForSelector('#token-dialog[open] .err', { timeout: WAIT });
  out.refused_text = await page.textContent('#token-dialog .err');
  out.after_refused_api = await api(`/v1/agent/checks`);
  await page.fill('#token-input', cfg.token);
  await page.click('#token-dialog button[type="submit"]');

  log('accepted');
  await page.waitForSelector(`section[data-instance="${id}"][data-health="maintenance"]`, { timeout: WAIT });
  out.dialog_gone = (await page.$('#token-dialog')) === null;
  out.session = await page.evaluate(() => sessionStorage.getItem('weft.token'));
  out.local = await page.evaluate(() => localStorage.length);

  log('again');
  // The kept token serves the next write without asking.
  await page.click('[data-action="maintenance"]');
  await page.waitForSelector(`section[data-instance="${id}"][data-health="passing"]`, { timeout: WAIT });
  out.asked_again = (await page.$('#token-dialog')) !== null;

  log('deregister');
  await page.click('[data-action="deregister"]');
  await page.click('[data-action="confirm-deregister"]');
  await page.waitForSelector(`section[data-instance="${id}"]`, { state: 'detached', timeout: WAIT });
  out.dereg_api = await api(`/v1/agent/service/${encodeURIComponent(id)}`);
  out.gone_text = await page.textContent('main');

  log('cancel');
  // A write cancelled at the form changes nothing and says nothing.
  await page.evaluate(() => sessionStorage.clear());
  const other = cfg.instances[1];
  await page.goto(`${base}/ui/#/services/${encodeURIComponent(cfg.service)}/${encodeURIComponent(other)}`);
  await page.waitForSelector(`section[data-instance="${other}"]`, { timeout: WAIT });
  await page.click('[data-action="maintenance"]');
  await page.waitForSelector('#token-dialog[open]', { timeout: WAIT });
  await page.keyboard.press('Escape');
  await page.waitForSelector('#token-dialog', { state: 'detached', timeout: WAIT });
  out.cancel_api = await api(`/v1/agent/checks`);
  out.cancel_notice_hidden = await page.$eval('#notice', (n) => n.hidden);

  log('weft-gone');
  // weft killed: the header says the stream is down, and a write says why it failed.
  process.kill(cfg.weft_pid, 'SIGKILL');
  await page.waitForSelector('#live[data-state="down"]', { timeout: WAIT });
  out.live_text = await page.textContent('#live');
  await page.click('[data-action="maintenance"]');
  await page.waitForSelector('#notice:not([hidden]) p', { timeout: WAIT });
  out.gone_notice = await page.textContent('#notice p');
  out.gone_notice_kind = await page.$eval('#notice', (n) => n.dataset.kind);
}

await run(S, async (page) => {
  if (scenario === 'services') await services(page);
  else if (scenario === 'token') await token(page);
  else throw new Error(`unknown scenario ${scenario}`);
}, { failed: `${scenario}-failed` });
