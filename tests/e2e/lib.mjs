// lib.mjs - what the dashboard's browser scripts (run.mjs, gateway.mjs, traces.mjs,
// scale.mjs) share: their configuration and output, axe-core scans and screenshots, and the
// run itself (Debian's Chromium through playwright-core, a page whose requests outside its
// origin, errors and console errors are recorded, a failing step reported with a
// screenshot, the output printed as one JSON object).
import { readFileSync, mkdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const here = dirname(fileURLToPath(import.meta.url));

// A script's state: cfg (its JSON argument), base (the page's origin), artifacts (where
// screenshots go), WAIT (ms, every wait's bound), out (what it prints), log(step).
export function begin(name, cfgText, { wait = 10000, out = {} } = {}) {
  const cfg = JSON.parse(cfgText);
  const artifacts = cfg.artifacts || join(here, 'artifacts');
  mkdirSync(artifacts, { recursive: true });
  const s = {
    name, cfg, base: cfg.url, artifacts, WAIT: cfg.wait_ms || wait, step: 'start',
    out: { ...out, foreign: [], errors: [], http_errors: [], axe: {}, screenshots: [], steps: [] },
  };
  s.log = (step) => { s.step = step; s.out.steps.push(step); };
  return s;
}

let axeSource;

// axe-core's serious-or-any violations of the page as it is: [{id, impact, help, nodes}].
export async function axeViolations(page) {
  axeSource ??= readFileSync(join(here, 'node_modules', 'axe-core', 'axe.min.js'), 'utf8');
  await page.evaluate(axeSource);
  return page.evaluate(async () => {
    // eslint-disable-next-line no-undef
    const r = await axe.run(document, { resultTypes: ['violations'] });
    return r.violations.map((v) => ({ id: v.id, impact: v.impact, help: v.help,
      nodes: v.nodes.slice(0, 5).map((n) => n.target.join(' ')) }));
  });
}

export async function shot(s, page, name) {
  const path = join(s.artifacts, `${name}.png`);
  await page.screenshot({ path, fullPage: true });
  s.out.screenshots.push(path);
}

// The current view scanned in light and dark (out.axe[NAME-light|dark]) and photographed
// at laptop width (light) and phone width (dark); with overflow, out[NAME_overflow] is how
// much wider than a phone's screen the page is.
export async function survey(s, page, name, { overflow = false } = {}) {
  for (const scheme of ['light', 'dark']) {
    await page.emulateMedia({ colorScheme: scheme });
    s.out.axe[`${name}-${scheme}`] = await axeViolations(page);
  }
  await page.emulateMedia({ colorScheme: 'light' });
  await shot(s, page, `${name}-laptop`);
  await page.setViewportSize({ width: 390, height: 844 });
  await page.emulateMedia({ colorScheme: 'dark' });
  await shot(s, page, `${name}-phone-dark`);
  if (overflow) {
    s.out[`${name}_overflow`] = await page.evaluate(() => document.documentElement.scrollWidth -
      document.documentElement.clientWidth);
  }
  await page.setViewportSize({ width: 1280, height: 800 });
  await page.emulateMedia({ colorScheme: 'light' });
}

// Runs body(page) in a fresh Chromium page (initScript, if given, in every document first),
// then prints s.out and exits: 0, or 1 with the step and the error on stderr and a
// screenshot FAILED.png. Chromium logs every answer >= 400 to a fetch as a console error:
// those go to out.http_errors with the step (a test may expect some), other console errors
// to out.errors, unless httpErrorsApart is false.
export async function run(s, body, { initScript, failed = `${s.name}-failed`,
  httpErrorsApart = true } = {}) {
  const launchArgs = process.getuid && process.getuid() === 0 ? ['--no-sandbox'] : [];
  const browser = await chromium.launch({ executablePath: s.cfg.chromium || '/usr/bin/chromium',
    headless: true, args: launchArgs, timeout: 30000 });
  let code = 0;
  try {
    const context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
    if (initScript) await context.addInitScript(initScript);
    const page = await context.newPage();
    page.setDefaultTimeout(s.WAIT);
    page.on('request', (r) => {
      if (!r.url().startsWith(s.base + '/') && !r.url().startsWith('data:')) s.out.foreign.push(r.url());
    });
    page.on('pageerror', (e) => s.out.errors.push(`pageerror: ${e.message}`));
    page.on('console', (m) => {
      if (m.type() !== 'error') return;
      if (httpErrorsApart && m.text().startsWith('Failed to load resource'))
        s.out.http_errors.push({ step: s.step, text: m.text() });
      else s.out.errors.push(`console: ${m.text()}`);
    });
    const t = Date.now();
    await body(page);
    s.out.ms = Date.now() - t;
  } catch (e) {
    code = 1;
    process.stderr.write(`${s.name}: step ${s.step}: ${e.stack || e}\n`);
    try {
      const pages = browser.contexts().flatMap((c) => c.pages());
      if (pages[0]) await pages[0].screenshot({ path: join(s.artifacts, `${failed}.png`) });
    } catch { /* the browser is gone */ }
  } finally {
    await browser.close();
  }
  process.stdout.write(JSON.stringify(s.out) + '\n');
  process.exit(code);
}
