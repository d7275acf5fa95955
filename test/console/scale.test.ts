/**
 * The console with volume, in a real Chromium: 10,000 alerts (real gRPC deviations) are shown a
 * page at a time, paged and filtered by the server; and the baselines a real agent process learned
 * from the recorded demo stream are listed and opened with the review offered.
 */
import anyTest, { type TestFn } from 'ava';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Browser } from 'playwright-core';
import type { CollectorHandle } from '../../collector/main.js';
import { TOKENS, launchBrowser, openPage, problemsOf, screenshot, signIn, startTestCollector } from '../helpers/browser.js';
import { deviationOf, sendDeviations } from '../helpers/ingest.js';
import { spawnCli } from '../helpers/processes.js';

const test = anyTest as TestFn<{ browser: Browser; collector: CollectorHandle; stop: () => Promise<void> }>;
const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../../..');
const ALERTS = 10_000;
const PAGE_SIZE = 50;

test.before(async (t) => {
  const [browser, c] = await Promise.all([launchBrowser(), startTestCollector()]);
  t.context = { browser, collector: c.collector, stop: c.stop };
  // 10,000 distinct alerts (one entry each) over 10 namespaces, in batches of 2,000 as an agent sends them.
  for (let b = 0; b < ALERTS / 2000; b++) {
    const batch = Array.from({ length: 2000 }, (_, j) => {
      const i = b * 2000 + j;
      return deviationOf({ i, args: `-c job-${i}`, namespace: `ns-${i % 10}` });
    });
    await sendDeviations(c.collector.grpcPort, batch, 'node-1', b + 1);
  }
});

test.after.always(async (t) => {
  await t.context.browser?.close();
  await t.context.stop?.();
});

test.serial('10,000 alerts: one page of 50 rows at a time, paged and filtered by the server', async (t) => {
  const { browser, collector } = t.context;
  t.is((await collector.store.listAlerts({ limit: 1000 })).items.length, 1000);
  const page = await openPage(t, browser);
  await signIn(page, collector.url, TOKENS.viewer.token);
  const rows = page.locator('tbody tr');
  await page.locator('#page-info', { hasText: 'Page 1' }).waitFor();
  t.is(await rows.count(), PAGE_SIZE);
  t.regex(await rows.first().innerText(), new RegExp(`job-${ALERTS - 1}\\b`), 'newest first');
  t.is(await page.locator('main tr').count(), PAGE_SIZE + 1, 'only one page is in the DOM');
  await screenshot(page, 'alerts-10000');

  await page.getByRole('button', { name: 'Older →' }).click();
  await page.locator('#page-info', { hasText: 'Page 2' }).waitFor();
  t.is(await rows.count(), PAGE_SIZE);
  t.regex(await rows.first().innerText(), new RegExp(`job-${ALERTS - 1 - PAGE_SIZE}\\b`));
  await page.getByRole('button', { name: '← Newer' }).click();
  await page.locator('#page-info', { hasText: 'Page 1' }).waitFor();
  t.regex(await rows.first().innerText(), new RegExp(`job-${ALERTS - 1}\\b`));

  // A filter is in the URL (shareable) and applied by the API.
  await page.getByLabel('Namespace').fill('ns-7');
  await page.getByRole('button', { name: 'Apply filters' }).click();
  await page.waitForURL(/#\/alerts\?namespace=ns-7$/);
  await page.locator('tbody tr').first().filter({ hasText: 'ns-7' }).waitFor();
  t.is(await rows.count(), PAGE_SIZE);
  const namespaces = await page.locator('tbody tr td:nth-child(5)').allInnerTexts();
  t.deepEqual([...new Set(namespaces)], ['ns-7']);
  t.regex(await rows.first().innerText(), /job-9997\b/);
  await page.getByLabel('State').selectOption('acknowledged');
  await page.getByRole('button', { name: 'Apply filters' }).click();
  await page.locator('#no-alerts').waitFor();
  t.is(await rows.count(), 0);
  t.deepEqual(problemsOf(page), []);
});

test.serial('baselines learned by a real agent are listed and shown', async (t) => {
  const { browser, collector } = t.context;
  const state = mkdtempSync(join(tmpdir(), 'dw-console-agent-'));
  t.teardown(() => rmSync(state, { recursive: true, force: true }));
  const agent = spawnCli(t, ['agent', '--source', `replay:${join(ROOT, 'fixtures/falco/demo.jsonl')}`, '--collector', `127.0.0.1:${collector.grpcPort}`, '--node', 'demo-node-1', '--state-dir', state, '--learning-window', '1h', '--http-listen', '127.0.0.1:0', '--exit-when-done']);
  t.is(await agent.exited, 0, agent.stderr);
  const keys = (await collector.store.listBaselines()).map((b) => b.key);
  t.true(keys.includes('docker.io/library/nginx'), keys.join(', '));

  const page = await openPage(t, browser);
  await signIn(page, collector.url, TOKENS.reviewer.token);
  await page.getByRole('link', { name: 'Baselines' }).click();
  const nginx = page.locator('tr[data-key="docker.io/library/nginx"]');
  await nginx.waitFor();
  t.regex(await nginx.innerText(), /enforcing/);
  t.is(await page.locator('main tbody tr').count(), keys.length);
  await screenshot(page, 'baselines');
  await page.getByLabel('Filter by key').fill('nginx');
  t.is(await page.locator('main tbody tr').count(), keys.filter((k) => k.includes('nginx')).length);

  await nginx.getByRole('link', { name: 'docker.io/library/nginx', exact: true }).click();
  await page.getByRole('heading', { level: 1, name: 'Baseline docker.io/library/nginx' }).waitFor();
  const stored = (await collector.store.getBaseline('docker.io/library/nginx'))!;
  const processes = stored.entries.filter((e) => e.entry.type === 'process').length;
  const network = stored.entries.filter((e) => e.entry.type === 'network').length;
  await page.getByRole('heading', { name: `Processes (${processes})` }).waitFor();
  await page.getByRole('heading', { name: `Network (${network})` }).waitFor();
  t.is(await page.locator('section[aria-labelledby="proc"] tbody tr').count(), Math.min(processes, 100));
  t.true((await page.locator('section[aria-labelledby="proc"] tbody').innerText()).includes('demo-node-1'));
  // A reviewer is offered the review: the baseline's changes and a Review column per entry.
  t.is(await page.locator('#baseline-actions button').count(), 3);
  t.is(await page.getByRole('columnheader', { name: 'Review' }).count(), stored.entries.some((e) => e.entry.type === 'network') ? 2 : 1);
  await screenshot(page, 'baseline');
  t.deepEqual(problemsOf(page), []);
});
