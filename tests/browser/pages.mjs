// Open certflow's HTML pages (verification, access code, learner) in Debian's
// headless Chromium, as a person would, and report what they saw.
//
// Input (stdin, JSON): {"pages": [{url, width?, height?, fill?: {selector: text},
//   submit?: selector, axe?: bool, screenshot?: path, fullPage?: bool}]}
// Output (stdout, JSON): one report per page: {url, finalUrl, status, title, lang,
//   dir, h1, text, links: [{text, href}], marked: [{text, lang, dir}],
//   scrollWidth, clientWidth, errors, axe: [{id, impact, help, nodes}] | null}
//
// The page is loaded with its own Content-Security-Policy (no scripts run). axe-core
// needs a script, so the accessibility scan alone runs in a second context with
// bypassCSP: the same document, the policy not enforced for axe's injected script.
import { launchChromium, readInput } from './chromium.mjs';
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);
const AXE = require.resolve('axe-core/axe.min.js');

const input = await readInput();
const browser = await launchChromium();

function viewport(item) {
  return { width: item.width || 1280, height: item.height || 900 };
}

async function visit(item) {
  const context = await browser.newContext({ viewport: viewport(item), extraHTTPHeaders: { Accept: 'text/html' } });
  const page = await context.newPage();
  const report = { url: item.url, errors: [], axe: null };
  page.on('pageerror', (error) => report.errors.push(String(error)));
  try {
    const response = await page.goto(item.url, { waitUntil: 'load', timeout: 15000 });
    report.status = response ? response.status() : null;
    if (item.fill) {
      for (const [selector, text] of Object.entries(item.fill)) await page.fill(selector, text);
      await Promise.all([page.waitForLoadState('load'), page.click(item.submit || 'button[type=submit]')]);
      await page.waitForLoadState('load');
    }
    Object.assign(report, await page.evaluate(() => ({
      finalUrl: location.href,
      title: document.title,
      lang: document.documentElement.lang,
      dir: document.documentElement.dir,
      h1: [...document.querySelectorAll('h1')].map((h) => h.innerText),
      text: document.body.innerText,
      links: [...document.querySelectorAll('a')].map((a) => ({ text: a.innerText, href: a.href })),
      marked: [...document.querySelectorAll('[lang],[dir]')].map((e) => (
        { text: e.innerText, lang: e.getAttribute('lang'), dir: e.getAttribute('dir') })),
      scrollWidth: document.documentElement.scrollWidth,
      clientWidth: document.documentElement.clientWidth,
    })));
    if (item.screenshot) await page.screenshot({ path: item.screenshot, fullPage: item.fullPage !== false });
  } catch (error) {
    report.errors.push(`navigation: ${error}`);
  }
  await context.close();
  if (item.axe) report.axe = await scan(item);
  return report;
}

async function scan(item) {
  const context = await browser.newContext({ viewport: viewport(item), bypassCSP: true,
    extraHTTPHeaders: { Accept: 'text/html' } });
  const page = await context.newPage();
  try {
    await page.goto(item.url, { waitUntil: 'load', timeout: 15000 });
    await page.addScriptTag({ path: AXE });
    const result = await page.evaluate(() => window.axe.run(document, {
      runOnly: { type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa', 'best-practice'] },
    }));
    return result.violations.map((v) => ({ id: v.id, impact: v.impact, help: v.help,
      nodes: v.nodes.map((n) => n.html).slice(0, 5) }));
  } finally {
    await context.close();
  }
}

const reports = [];
for (const item of input.pages) reports.push(await visit(item));
await browser.close();
process.stdout.write(JSON.stringify(reports));
