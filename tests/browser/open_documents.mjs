// Open served certificate documents in Debian's headless Chromium and report what
// they tried to do: dialogs, page errors, console output, and every request.
//
// Input (stdin, JSON): {"urls": [...], "unprotected": bool}
//   unprotected: also load each body again *without* the served headers (the
//   browser gets the same bytes, but no Content-Security-Policy), so the sanitiser
//   is judged on its own, not only behind the policy.
// Output (stdout, JSON): [{url, mode, status, headers, dialogs, errors, console, requests}]
import { launchChromium, readInput } from './chromium.mjs';

const input = await readInput();
const browser = await launchChromium();

async function visit(url, mode) {
  const context = await browser.newContext();
  const page = await context.newPage();
  const report = { url, mode, status: null, headers: {}, dialogs: [], errors: [], console: [], requests: [] };
  page.on('dialog', async (dialog) => { report.dialogs.push(dialog.message()); await dialog.dismiss(); });
  page.on('pageerror', (error) => report.errors.push(String(error)));
  page.on('console', (message) => report.console.push(message.text()));
  context.on('request', (request) => report.requests.push(request.url()));
  if (mode === 'unprotected') {
    const served = await fetch(url);
    const body = Buffer.from(await served.arrayBuffer());
    const contentType = served.headers.get('content-type') || 'application/octet-stream';
    await page.route(url, (route) => route.fulfill({ status: 200, body, contentType }));
  }
  try {
    const response = await page.goto(url, { waitUntil: 'load', timeout: 15000 });
    if (response) {
      report.status = response.status();
      report.headers = await response.allHeaders();
    }
    // Hover and click whatever can be clicked: handlers and script links run then.
    for (const link of await page.locator('a, text, image, rect').all()) {
      try {
        await link.hover({ force: true, timeout: 500 });
        await link.click({ force: true, timeout: 500, noWaitAfter: true });
      } catch (error) { /* not visible or gone: nothing to click */ }
    }
    await page.waitForTimeout(500);
  } catch (error) {
    report.errors.push(`navigation: ${error}`);
  }
  await context.close();
  return report;
}

const reports = [];
for (const url of input.urls) {
  reports.push(await visit(url, 'served'));
  if (input.unprotected) reports.push(await visit(url, 'unprotected'));
}
await browser.close();
process.stdout.write(JSON.stringify(reports));
