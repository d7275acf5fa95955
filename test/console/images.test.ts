/**
 * The Images page in a real Chromium against a real collector: repositories with their versions (the
 * running ones marked with their container count), the owning team from alerting.owners, open
 * alerts linking to the alert list, the baseline's state linking to the baseline, filters kept in the
 * address; an image name that carries markup is shown as text, never run.
 */
import anyTest, { type TestFn } from 'ava';
import type { Browser } from 'playwright-core';
import type { CollectorHandle } from '../../collector/main.js';
import type { RunningContainer } from '../../core/inventory.js';
import { TOKENS, launchBrowser, openPage, problemsOf, screenshot, signIn } from '../helpers/browser.js';
import { T0, deltaOf, statsOf } from '../helpers/baseline-delta.js';
import { startTestCollector, type TestCollector } from '../helpers/collector.js';
import { deviationOf } from '../helpers/ingest.js';
import { eventually } from '../helpers/processes.js';

const test = anyTest as TestFn<{ browser: Browser; collector: TestCollector }>;

const NGINX = 'docker.io/library/nginx';
const SHOP = 'ghcr.io/acme/shop';
const EVIL = 'ghcr.io/evil/<img src=x onerror=alert(1)>';
const digest = `sha256:${'a'.repeat(64)}`;
const container = (id: string, repository: string, tag: string, namespace: string): RunningContainer => ({ id, name: 'main', image: { repository, tag, digest }, imageId: '', namespace, pod: `${id}-pod`, workload: '' });

test.before(async (t) => {
  const tokens = `tokens:\n${Object.entries(TOKENS).map(([role, x]) => `  - name: ${x.name}\n    role: ${role}\n    token: "${x.token}"\n`).join('')}`;
  const [browser, collector] = await Promise.all([
    launchBrowser(),
    startTestCollector({ apiRateLimit: 1000, alerting: { owners: [{ match: { namespace: ['shop'] }, team: 'shop-team' }, { match: { image: ['docker.io/library/*'] }, team: 'platform' }] } }, { tokens }),
  ]);
  t.context = { browser, collector };
  const store: CollectorHandle['store'] = collector.store;
  await store.recordContainerReport('node-1', { source: 'cri', truncated: false, total: 4, containers: [container('a1', NGINX, '1.25', 'web'), container('a2', NGINX, '1.25', 'web'), container('a3', SHOP, 'v1', 'shop'), container('a4', EVIL, '1', 'shop')] }, Date.now());
  // An older nginx version ran once (seen in a deviation), and nginx has a baseline and an open alert.
  await store.recordImageSightings([{ repository: NGINX, tag: '1.24', digest: '', node: 'node-2', namespace: 'web', workload: '', pod: 'old', time: T0 }]);
  await store.ingest('node-1', [deviationOf({ i: 1, image: NGINX, exe: '/usr/bin/curl' })], [deltaOf(NGINX, [statsOf({ type: 'process', exe: '/usr/sbin/nginx', parent: 'sh', user: 'root', args: '' }, 'node-1', { firstSeen: T0, lastSeen: T0 + 10, count: 3 })], { state: 'enforcing' })], Date.now());
});

test.after.always(async (t) => {
  await t.context.browser?.close();
  await t.context.collector?.close();
});

test.serial('images with versions, owners, open alerts and baseline state; filters in the address; markup shown as text', async (t) => {
  const { browser, collector } = t.context;
  const page = await openPage(t, browser);
  await signIn(page, collector.url, TOKENS.viewer.token);
  await page.getByRole('link', { name: 'Images' }).click();
  await page.getByRole('heading', { level: 1, name: 'Images' }).waitFor();
  const row = (repository: string) => page.locator(`tr[data-repository=${JSON.stringify(repository)}]`);
  await row(NGINX).waitFor();
  t.deepEqual(await page.locator('tbody tr').evaluateAll((rows) => rows.map((r) => r.getAttribute('data-repository'))), [NGINX, 'ghcr.io/acme/shop', EVIL]);

  const nginx = row(NGINX);
  t.is(await nginx.locator('li[data-tag="1.25"]').innerText(), `1.25@${digest.slice(0, 19)} running ×2`);
  t.is(await nginx.locator('li[data-tag="1.24"]').innerText(), '1.24 not running');
  t.is(await nginx.locator('td.owner').innerText(), 'platform');
  t.is(await row(SHOP).locator('td.owner').innerText(), 'shop-team');
  t.is(await nginx.locator('td.open-alerts').innerText(), '1');
  t.is(await nginx.locator('td.open-alerts a').getAttribute('href'), `#/alerts?image=${encodeURIComponent(NGINX)}`);
  t.is(await nginx.locator('td.baseline-state').innerText(), 'enforcing');
  t.is(await nginx.locator('td.baseline-state a').getAttribute('href'), `#/baselines/${encodeURIComponent(NGINX)}`);
  t.is(await row(SHOP).locator('td.baseline-state').innerText(), 'none');
  t.is(await row(EVIL).locator('th code').innerText(), EVIL, 'the name is text');
  t.is(await page.locator('img').count(), 0, 'no element was made from it');
  await screenshot(page, 'images');

  // Filters: running now in namespace shop, kept in the address.
  await page.getByLabel('Namespace').fill('shop');
  await page.getByRole('button', { name: 'Filter' }).click();
  // Polled from here: a string predicate polled in the page is eval, which the console's CSP refuses.
  await eventually(async () => ((await page.locator('tbody tr').count()) === 2 ? true : undefined), 20_000, 'two rows after filtering');
  t.regex(page.url(), /#\/images\?namespace=shop/);
  await page.getByLabel('Namespace').fill('Not A Namespace');
  await page.getByRole('button', { name: 'Filter' }).click();
  await page.getByText(/namespace must be a namespace name/).waitFor();
  t.deepEqual(problemsOf(page), []);
});
