// Drives headless Chromium through the SMART app as a clinician would, from an EHR launch:
//
//   node app.mjs LAUNCH_URL OUT_DIR [view]
//
// LAUNCH_URL is the app's launch URL with the EHR's `iss` and `launch`; the EHR's
// authorization server signs the user in and grants at once (it has no person to click). In a
// 1024 × 768 window, it waits for the app, runs an assessment when there is none, reads what a
// person sees, takes screenshots (OUT_DIR/*.png), checks the page with axe-core, moves by
// keyboard to the Sign button and signs (with `view`: only looks). Prints one JSON object of
// what it saw; exits 1 on a
// failure, naming it. The browser is Debian's chromium (CHROMIUM to use another).
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';

import puppeteer from 'puppeteer-core';

const [launchUrl, outDir, mode = 'sign'] = process.argv.slice(2);
const require = createRequire(import.meta.url);
const axeSource = readFileSync(require.resolve('axe-core/axe.min.js'), 'utf8');

const seen = { consoleErrors: [], cspViolations: [] };
const browser = await puppeteer.launch({
  executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium',
  headless: true,
  args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage'],
});

async function text(page, selector) {
  return page.$eval(selector, (e) => e.textContent.trim()).catch(() => null);
}

async function visible(page, selector, timeout = 30000) {
  await page.waitForSelector(`${selector}:not([hidden])`, { timeout });
}

try {
  const page = await browser.newPage();
  await page.setViewport({ width: 1024, height: 768 });
  page.on('console', (message) => {
    const line = message.text();
    if (/Content Security Policy|Refused to/i.test(line)) seen.cspViolations.push(line);
    else if (message.type() === 'error' && !line.startsWith('Failed to load resource')) {
      seen.consoleErrors.push(line);
    }
  });
  page.on('pageerror', (error) => seen.consoleErrors.push(String(error)));
  // Requests answered with an error, as (status, path): the console reports them without
  // their address.
  seen.failedRequests = [];
  page.on('response', (response) => {
    if (response.status() >= 400) {
      seen.failedRequests.push(`${response.status()} ${new URL(response.url()).pathname}`);
    }
  });

  await page.goto(launchUrl, { waitUntil: 'networkidle0', timeout: 60000 });
  seen.landedOn = new URL(page.url()).pathname;
  await visible(page, '#actions');
  seen.statusAtStart = await text(page, '#status');
  // Keyboard: from the top of the page, the first Tab reaches the skip link.
  await page.keyboard.press('Tab');
  seen.firstTab = await page.evaluate(() => document.activeElement?.textContent?.trim());
  if (mode === 'view') {
    await visible(page, '#risk');
    seen.risk = await text(page, '#risk-summary');
    seen.reportState = await text(page, '#report-state');
    seen.patient = await text(page, '#patient-name');
    process.stdout.write(`${JSON.stringify(seen)}\n`);
    process.exit(0);
  }
  if (await page.$('#risk[hidden]')) {
    await page.click('#run');
    await visible(page, '#risk', 60000);
  }
  await page.waitForFunction(() => !document.getElementById('status').textContent.startsWith('Assessing'));
  seen.status = await text(page, '#status');
  seen.patient = await text(page, '#patient-name');
  seen.patientDetails = await text(page, '#patient-details');
  seen.user = await text(page, '#user');
  seen.aiNotice = await text(page, '.ai-notice');
  seen.risk = await text(page, '#risk-summary');
  seen.reportState = await text(page, '#report-state');
  seen.curveDrawn = Boolean(await page.$('#curve svg path.curve'));
  seen.horizonMarkers = (await page.$$('#curve svg circle.marker')).length;
  seen.featureRows = (await page.$$('#features tbody tr')).length;
  seen.featureBars = (await page.$$('#features-chart svg rect.bar')).length;
  seen.sourceLinks = (await page.$$('#features button.link')).length;
  seen.missing = await page.$$eval('#missing-list li', (items) => items.map((i) => i.textContent.trim()));
  seen.model = await page.$$eval('#model-facts dd', (items) => items.map((i) => i.textContent.trim()));
  seen.validationRows = (await page.$$('#validation tbody tr')).length;
  seen.historyRows = (await page.$$('#history tbody tr')).length;
  seen.trendTitle = await text(page, '#trend-chart svg title');
  seen.fitsWidth = await page.evaluate(() => document.documentElement.scrollWidth <= window.innerWidth);

  // A source opens in a dialog, read with the app's token.
  const source = await page.$('#features button.link');
  if (source) {
    await source.click();
    await page.waitForFunction(() => !document.getElementById('source-body').textContent.startsWith('Loading'));
    seen.sourceWhere = await text(page, '#source-where');
    seen.sourceOpened = (await text(page, '#source-body'))?.slice(0, 200);
    await page.keyboard.press('Escape');
  }

  await page.evaluate(() => window.scrollTo(0, 0));
  await page.screenshot({ path: join(outDir, 'risk-view.png') });
  await page.screenshot({ path: join(outDir, 'risk-view-full.png'), fullPage: true });

  // Accessibility (evaluated through the DevTools protocol: the page's CSP forbids injected
  // scripts, rightly).
  await page.evaluate(axeSource);
  const axe = await page.evaluate(async () => {
    const result = await window.axe.run(document, { resultTypes: ['violations'] });
    return result.violations.map((v) => ({ id: v.id, impact: v.impact, nodes: v.nodes.length, help: v.help }));
  });
  seen.axeViolations = axe;

  // Keyboard: Tabs go on to the Sign button.
  let tabs = 0;
  while (tabs < 120 && (await page.evaluate(() => document.activeElement?.id)) !== 'sign') {
    await page.keyboard.press('Tab');
    tabs += 1;
  }
  seen.tabsToSign = tabs;
  seen.signFocused = (await page.evaluate(() => document.activeElement?.id)) === 'sign';
  if (seen.signFocused) {
    await page.keyboard.press('Enter');
    await page.waitForFunction(() => /Signed|Not recorded/.test(document.getElementById('status').textContent), { timeout: 30000 });
    seen.afterSign = await text(page, '#status');
    seen.reportStateAfterSign = await text(page, '#report-state');
    seen.signDisabledAfter = await page.$eval('#sign', (b) => b.disabled);
    await page.evaluate(() => document.getElementById('actions').scrollIntoView());
    await page.screenshot({ path: join(outDir, 'signed.png') });
  }
  process.stdout.write(`${JSON.stringify(seen)}\n`);
} catch (error) {
  seen.failure = String(error);
  process.stdout.write(`${JSON.stringify(seen)}\n`);
  process.exitCode = 1;
} finally {
  await browser.close();
}
