// Opens the service's monitoring page in headless Chromium as the governance team would:
//
//   node monitoring.mjs URL OUT_DIR [BEARER_TOKEN]
//
// With a token, every request carries it (as a proxy that signs people in would add it). Reads
// what a person sees (headings, tables, the plots and their titles), checks the page with
// axe-core, takes a screenshot of the performance section (OUT_DIR/monitoring.png), and prints one JSON object of what it
// saw; exits 1 on a failure, naming it. The browser is Debian's chromium (CHROMIUM to use
// another).
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';

import puppeteer from 'puppeteer-core';

const [url, outDir, token] = process.argv.slice(2);
const require = createRequire(import.meta.url);
const axeSource = readFileSync(require.resolve('axe-core/axe.min.js'), 'utf8');

const seen = { consoleErrors: [], cspViolations: [], failedRequests: [] };
const browser = await puppeteer.launch({
  executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium',
  headless: true,
  args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage'],
});

try {
  const page = await browser.newPage();
  await page.setViewport({ width: 1280, height: 900 });
  if (token) await page.setExtraHTTPHeaders({ Authorization: `Bearer ${token}` });
  page.on('console', (message) => {
    const line = message.text();
    if (/Content Security Policy|Refused to/i.test(line)) seen.cspViolations.push(line);
    else if (message.type() === 'error') seen.consoleErrors.push(line);
  });
  page.on('pageerror', (error) => seen.consoleErrors.push(String(error)));
  page.on('response', (response) => {
    if (response.status() >= 400) {
      seen.failedRequests.push(`${response.status()} ${new URL(response.url()).pathname}`);
    }
  });
  const response = await page.goto(url, { waitUntil: 'networkidle0', timeout: 60000 });
  seen.status = response.status();
  seen.title = await page.title();
  seen.headings = await page.$$eval('h1, h2, h3', (hs) => hs.map((h) => h.textContent.trim()));
  seen.plots = await page.$$eval('svg', (svgs) =>
    svgs.map((svg) => {
      const box = svg.getBoundingClientRect();
      return {
        title: svg.querySelector('title')?.textContent ?? null,
        width: Math.round(box.width),
        height: Math.round(box.height),
        marks: svg.querySelectorAll('circle, rect, polyline').length,
      };
    }),
  );
  seen.tables = await page.$$eval('table', (tables) =>
    tables.map((t) => [...t.querySelectorAll('tr')].map((r) =>
      [...r.children].map((c) => c.textContent.trim()))),
  );
  // What the performance section shows first: the table and the calibration curve.
  await page.evaluate(() => {
    const heading = [...document.querySelectorAll('h2')].find((h) =>
      h.textContent.startsWith('Performance'));
    heading?.scrollIntoView();
  });
  await page.screenshot({ path: join(outDir, 'monitoring.png') });
  // axe runs as a script, which the page's policy refuses: it is given to the page by the
  // browser's own protocol instead (as an extension would), bypassing the policy.
  await page.setBypassCSP(true);
  await page.reload({ waitUntil: 'networkidle0' });
  await page.evaluate(axeSource);
  const axe = await page.evaluate(async () => {
    const result = await window.axe.run(document, { runOnly: ['wcag2a', 'wcag2aa'] });
    return result.violations.map((v) => `${v.id}: ${v.nodes.length}`);
  });
  seen.axeViolations = axe;
  console.log(JSON.stringify(seen));
} catch (error) {
  console.log(JSON.stringify({ ...seen, failure: String(error) }));
  process.exitCode = 1;
} finally {
  await browser.close();
}
