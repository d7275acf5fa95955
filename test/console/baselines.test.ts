/**
 * Baseline review in a real Chromium against a real collector fed real baseline deltas over gRPC
 * (as agents send them): the list with states, time left and partial marks, filtered by state; a
 * reviewer locking a baseline, removing and approving entries, comparing two versions and exporting
 * the Baseline document and a NetworkPolicy as downloads; a viewer offered no change at all.
 */
import anyTest, { type TestFn } from 'ava';
import { readFile } from 'node:fs/promises';
import type { Browser, Page } from 'playwright-core';
import type { CollectorHandle } from '../../collector/main.js';
import type { BaselineSnapshot } from '../../core/baseline.js';
import { entryId, type Entry } from '../../core/entry.js';
import { snapshotToWire } from '../../proto/index.js';
import { T0, deltaOf, statsOf } from '../helpers/baseline-delta.js';
import { TOKENS, launchBrowser, openPage, problemsOf, screenshot, signIn, startTestCollector } from '../helpers/browser.js';
import { converse, deviationOf, sendDeviations } from '../helpers/ingest.js';

const test = anyTest as TestFn<{ browser: Browser; collector: CollectorHandle; stop: () => Promise<void> }>;

const NGINX = 'docker.io/library/nginx';
const REDIS = 'docker.io/library/redis';
const HOSTILE = '-c <img src=x onerror="window.__pwned=1"><script>window.__pwned=2</script>';
const nginx: Entry = { type: 'process', exe: '/usr/sbin/nginx', parent: 'containerd-shim', user: 'root', args: '-g daemon off;' };
const shell: Entry = { type: 'process', exe: '/bin/sh', parent: 'nginx', user: 'root', args: '-c id' };
const hostile: Entry = { type: 'process', exe: '/bin/busybox', parent: 'nginx', user: 'root', args: HOSTILE };
const dns: Entry = { type: 'network', direction: 'egress', protocol: 'udp', peer: 'cluster', port: 53 };
const api: Entry = { type: 'network', direction: 'egress', protocol: 'tcp', peer: '203.0.113.10', port: 443 };
const SHELL = '/bin/sh -c id (parent nginx, root)';

function delta(key: string, node: string, entries: Entry[], extra: Partial<BaselineSnapshot> = {}): BaselineSnapshot {
  return deltaOf(key, entries.map((entry, i) => statsOf(entry, node, { firstSeen: T0 + i, lastSeen: T0 + 1000 + i, count: 10 + i })), { namespaces: ['shop'], ...extra });
}

test.before(async (t) => {
  const [browser, c] = await Promise.all([launchBrowser(), startTestCollector()]);
  t.context = { browser, collector: c.collector, stop: c.stop };
  // nginx: enforcing, one entry a new image version brought during its grace period (flagged).
  const web = delta(NGINX, 'node-1', [nginx, shell, hostile, dns, api]);
  web.entries[4]!.addedBy = '1.27.0';
  // redis: still learning, 35 minutes of its window left by the wall clock, and partial.
  const now = Date.now();
  const cache = delta(REDIS, 'node-2', [{ type: 'process', exe: '/usr/local/bin/redis-server', parent: 'containerd-shim', user: 'user', args: '*:6379' }], {
    state: 'learning',
    windowStart: now - 25 * 60_000,
    learnUntil: now + 35 * 60_000 + 20_000,
    enforcingSince: 0,
    partial: true,
    namespaces: ['cache'],
  });
  const a = await converse(c.collector.grpcPort, 'node-1', [{ batch: { batchId: 1, deviations: [], baselines: [snapshotToWire(web)] } }], 1);
  const b = await converse(c.collector.grpcPort, 'node-2', [{ batch: { batchId: 1, deviations: [], baselines: [snapshotToWire(cache)] } }], 1);
  if (a.error || b.error) throw a.error ?? b.error;
  // An open alert of nginx: a deviation that no entry covers.
  await sendDeviations(c.collector.grpcPort, [deviationOf({ i: 1, exe: '/usr/bin/curl', args: 'http://203.0.113.99/x' })], 'node-1', 2);
});

test.after.always(async (t) => {
  await t.context.browser?.close();
  await t.context.stop?.();
});

const row = (page: Page, entry: Entry, status = '') => page.locator(`tr[data-entry-id=${JSON.stringify(entryId(entry))}]${status === '' ? '' : `[data-status="${status}"]`}`);

test.serial('the list shows state, time left, partial and open alerts, and filters by state', async (t) => {
  const { browser, collector } = t.context;
  const page = await openPage(t, browser);
  await signIn(page, collector.url, TOKENS.viewer.token);
  await page.getByRole('link', { name: 'Baselines' }).click();
  const web = page.locator(`tr[data-key="${NGINX}"]`);
  const cache = page.locator(`tr[data-key="${REDIS}"]`);
  await web.waitFor();
  t.regex(await web.locator('td.b-state').innerText(), /^enforcing$/);
  // Key, state, version, processes, network, open alerts, namespaces, nodes.
  t.deepEqual((await web.locator('td').allInnerTexts()).slice(2), ['0', '3', '2', '1', 'shop', '1']);
  t.is(await web.getByRole('link', { name: `1 open alerts of ${NGINX}` }).getAttribute('href'), `#/alerts?image=${encodeURIComponent(NGINX)}`, 'open alerts link to them');
  t.regex(await cache.locator('td.b-state').innerText(), /^learning, 3[56] min left$/);
  t.regex(await cache.locator('td').first().innerText(), /partial/);
  t.notRegex(await web.locator('td').first().innerText(), /partial/);
  await screenshot(page, 'baselines-list');

  await page.getByLabel('State').focus();
  await page.getByLabel('State').selectOption('learning');
  await web.waitFor({ state: 'detached' });
  t.is(await page.locator('main tbody tr').count(), 1);
  t.is(await cache.count(), 1);
  t.regex(page.url(), /#\/baselines\?state=learning$/, 'the filter is in the address');
  t.is(await page.evaluate('document.activeElement && document.activeElement.id'), 'b-state', 'the focus stays on the filter');
  await page.getByLabel('State').selectOption('locked');
  await page.locator('#no-baselines').waitFor();
  t.deepEqual(problemsOf(page), []);
});

test.serial('a reviewer locks a baseline, removes and approves entries, and diffs two versions', async (t) => {
  const { browser, collector } = t.context;
  const page = await openPage(t, browser);
  await signIn(page, collector.url, TOKENS.reviewer.token);
  await page.goto(`${collector.url}/console/#/baselines/${encodeURIComponent(NGINX)}`);
  await page.getByRole('heading', { level: 1, name: `Baseline ${NGINX}` }).waitFor();
  await page.locator('#versions').getByText('Never changed by a reviewer').waitFor();

  // Hostile data stays text.
  t.true((await row(page, hostile).innerText()).includes('<script>window.__pwned=2</script>'));
  t.is(await page.locator('main img, main script').count(), 0);
  t.is(await page.evaluate('window.__pwned'), undefined);
  // The flagged entry is highlighted with the version that brought it.
  t.is(await row(page, api).getAttribute('class'), 'flagged');
  t.regex(await row(page, api).locator('td.status').innerText(), /flagged\s+new in version 1\.27\.0 — review/);
  await page.getByRole('heading', { name: 'Network (2) — 1 to review' }).waitFor();
  // What the state allows: lock and relearn, not unlock (with the reason said).
  const lock = page.getByRole('button', { name: 'Lock', exact: true });
  const unlock = page.getByRole('button', { name: 'Unlock', exact: true });
  t.true(await lock.isEnabled());
  t.true(await unlock.isDisabled());
  t.regex(await page.locator('#why-unlock').innerText(), /Unlock: not possible, it is not locked/);
  t.is(await page.locator('#why-lock').count(), 0);

  // Lock, with a reason: state shown, the version history says who and why.
  await page.getByLabel('Reason', { exact: true }).fill('reviewed with the web team, SEC-7');
  await lock.click();
  await page.locator('#baseline-feedback', { hasText: 'Baseline locked: now locked, version 1.' }).waitFor();
  await page.locator('tr[data-version="1"]').waitFor();
  t.deepEqual((await page.locator('tr[data-version="1"] td').allInnerTexts()).filter((_, i) => i !== 1), ['1', 'rita', 'lock', 'reviewed with the web team, SEC-7', 'locked', '5', '0']);
  t.regex(await page.locator('section[aria-label="Summary"]').innerText(), /State\s+locked/);
  t.true(await page.getByRole('button', { name: 'Lock', exact: true }).isDisabled(), 'a locked baseline cannot be locked again');
  t.true(await page.getByRole('button', { name: 'Unlock', exact: true }).isEnabled());
  t.regex(await page.locator('#why-lock').innerText(), /it is locked already/);
  t.is(await page.getByLabel('Reason', { exact: true }).inputValue(), '', 'the reason field is fresh for the next change');
  t.is((await collector.store.getBaseline(NGINX))?.state, 'locked');

  // Remove /bin/sh from the keyboard: the button opens a reason field, Enter confirms.
  await row(page, shell).getByRole('button', { name: `Remove ${SHELL}` }).click();
  t.is(await page.evaluate('document.activeElement && document.activeElement.getAttribute("name")'), 'reason', 'the reason field has the focus');
  await page.keyboard.type('learned during an incident');
  await page.keyboard.press('Enter');
  await row(page, shell, 'removed').waitFor();
  t.regex(await row(page, shell).locator('td.status').innerText(), /removed\s+learned during an incident/);
  t.true(await row(page, shell).getByRole('button', { name: /^Remove / }).isDisabled());
  t.true(await row(page, shell).getByRole('button', { name: /^Approve / }).isDisabled(), 'a removed entry is added again, not approved');
  t.is(await page.evaluate('document.activeElement && document.activeElement.className'), 'status', 'the focus stays on the row');

  // Approve the flagged entry (Escape closes the form once first).
  await row(page, api).getByRole('button', { name: /^Approve / }).click();
  await page.keyboard.press('Escape');
  await row(page, api).getByRole('button', { name: /^Approve / }).click();
  await row(page, api).getByLabel(/Reason for approving/).fill('the new version calls its API');
  await row(page, api).getByRole('button', { name: 'Confirm approve' }).click();
  await row(page, api, 'approved').waitFor();
  await page.getByRole('heading', { name: 'Network (2)', exact: true }).waitFor();
  const stored = (await collector.store.getBaseline(NGINX))!;
  t.is(stored.entries.find((e) => e.id === entryId(shell))?.status, 'removed');
  t.is(stored.entries.find((e) => e.id === entryId(api))?.status, 'approved');
  await page.locator('tr[data-version="3"]').waitFor();
  t.deepEqual(await page.locator('#versions tbody tr td:nth-child(4)').allInnerTexts(), ['approve', 'remove', 'lock']);
  await screenshot(page, 'baseline-review');

  // The diff between versions 1 and 2 lists the removed entry, and nothing else.
  await page.getByLabel('From version').selectOption('1');
  await page.getByLabel('To version').selectOption('2');
  await page.getByRole('button', { name: 'Show differences' }).click();
  await page.locator('#diff-result', { hasText: 'From version 1 to version 2' }).waitFor();
  t.deepEqual(await page.locator('section[aria-labelledby="diff-removed"] li').allInnerTexts(), [SHELL]);
  t.is(await page.locator('section[aria-labelledby="diff-added"] li').count(), 0);
  await page.getByRole('heading', { name: 'Removed (1)' }).waitFor();
  // From empty to now: everything active, the hostile entry as text.
  await page.getByLabel('From version').selectOption('0');
  await page.getByLabel('To version').selectOption('current');
  await page.getByRole('button', { name: 'Show differences' }).click();
  await page.locator('#diff-result', { hasText: 'From version 0 to now' }).waitFor();
  t.is(await page.locator('section[aria-labelledby="diff-added"] li').count(), 4);
  t.true((await page.locator('#diff-result').innerText()).includes('<img src=x onerror='));
  await page.locator('#versions').scrollIntoViewIfNeeded();
  await screenshot(page, 'baseline-diff');

  // The learning baseline cannot be relearned; says why.
  await page.goto(`${collector.url}/console/#/baselines/${encodeURIComponent(REDIS)}`);
  await page.getByRole('heading', { level: 1, name: `Baseline ${REDIS}` }).waitFor();
  t.true(await page.getByRole('button', { name: 'Relearn' }).isDisabled());
  t.regex(await page.locator('#why-relearn').innerText(), /Relearn: not possible, it is learning already/);
  t.deepEqual(problemsOf(page), []);
});

test.serial('exports download the Baseline document and a NetworkPolicy', async (t) => {
  const { browser, collector } = t.context;
  const page = await openPage(t, browser);
  await signIn(page, collector.url, TOKENS.reviewer.token);
  await page.goto(`${collector.url}/console/#/baselines/${encodeURIComponent(NGINX)}`);
  await page.getByRole('heading', { name: 'Export' }).waitFor();

  const [yaml] = await Promise.all([page.waitForEvent('download'), page.getByRole('button', { name: 'Export YAML' }).click()]);
  t.regex(yaml.suggestedFilename(), /^docker-io-library-nginx-[0-9a-f]{8}\.yaml$/);
  const doc = await readFile((await yaml.path())!, 'utf8');
  t.regex(doc, /^(#[^\n]*\n)*apiVersion: driftwatch\.dev\/v1alpha1\nkind: Baseline\n/, 'the Baseline document');
  t.true(doc.includes(`key: ${NGINX}`));
  t.regex(doc, /state: locked/);
  t.regex(doc, /removed:\n(.*\n)*\s+- exe: \/bin\/sh/, 'the removed entry stays removed');
  await page.getByText(`Saved ${yaml.suggestedFilename()}.`).waitFor();

  // A NetworkPolicy needs the pods' labels: asked for, then given.
  await page.getByRole('button', { name: 'Export NetworkPolicy' }).click();
  await page.getByRole('alert').filter({ hasText: 'give their labels' }).waitFor();
  t.is(await page.evaluate('document.activeElement && document.activeElement.id'), 'np-selector');
  await page.getByLabel('Pod labels for the NetworkPolicy').fill('app=web');
  const [policy] = await Promise.all([page.waitForEvent('download'), page.keyboard.press('Enter')]);
  t.regex(policy.suggestedFilename(), /^docker-io-library-nginx-[0-9a-f]{8}-networkpolicy\.yaml$/);
  const np = await readFile((await policy.path())!, 'utf8');
  t.regex(np, /kind: NetworkPolicy/);
  t.regex(np, /podSelector:\n\s+matchLabels:\n\s+app: web/);
  t.regex(np, /203\.0\.113\.10\/32/, 'the approved public peer');
  // A selector the API refuses says why.
  await page.getByLabel('Pod labels for the NetworkPolicy').fill('app=we b!');
  await page.getByRole('button', { name: 'Export NetworkPolicy' }).click();
  await page.getByRole('alert').filter({ hasText: 'is not label=value' }).waitFor();

  const [falco] = await Promise.all([page.waitForEvent('download'), page.getByRole('button', { name: 'Export Falco rules' }).click()]);
  t.regex(falco.suggestedFilename(), /-falco\.yaml$/);
  t.regex(await readFile((await falco.path())!, 'utf8'), /- rule: /);
  await screenshot(page, 'baseline-export');
  t.deepEqual(problemsOf(page), [], 'no CSP refusal for the blob download');
});

test.serial('a viewer sees statuses and can export, but is offered no change', async (t) => {
  const { browser, collector } = t.context;
  const page = await openPage(t, browser);
  await signIn(page, collector.url, TOKENS.viewer.token);
  await page.goto(`${collector.url}/console/#/baselines/${encodeURIComponent(NGINX)}`);
  await page.getByRole('heading', { name: 'Versions', exact: true }).waitFor();
  await page.locator('tr[data-version="1"]').waitFor();
  t.regex(await row(page, shell).locator('td.status').innerText(), /removed/);
  for (const name of [/^Lock$/, /^Unlock$/, /^Relearn$/, /^Approve/, /^Remove/]) t.is(await page.getByRole('button', { name }).count(), 0, String(name));
  t.is(await page.locator('#baseline-actions').count(), 0);
  t.is(await page.getByRole('columnheader', { name: 'Review' }).count(), 0);
  t.is(await page.getByLabel('Reason', { exact: true }).count(), 0);
  t.is(await page.getByRole('button', { name: 'Export YAML' }).count(), 1, 'export is a read');
  t.is(await page.getByRole('button', { name: 'Show differences' }).count(), 1);
  await screenshot(page, 'baseline-viewer');
  t.deepEqual(problemsOf(page), []);
});
