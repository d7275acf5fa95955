/**
 * Quarantine in a real Chromium against a real collector fed baseline deltas over gRPC by two
 * nodes: a reviewer sees which nodes taught each entry; an admin quarantines a node from the Nodes
 * page with a reason, and every role then sees its state (since when, by whom, why); the baseline's
 * page shows what is left, marks the entries a dropped node taught that stay, and the node as
 * quarantined wherever it is named; an admin releases it. Viewers and reviewers get no button.
 */
import anyTest, { type TestFn } from 'ava';
import type { Browser, Page } from 'playwright-core';
import type { CollectorHandle } from '../../collector/main.js';
import { entryId, type Entry } from '../../core/entry.js';
import { snapshotToWire } from '../../proto/index.js';
import { T0, deltaOf, statsOf } from '../helpers/baseline-delta.js';
import { TOKENS, launchBrowser, openPage, problemsOf, screenshot, signIn, startTestCollector } from '../helpers/browser.js';
import { converse } from '../helpers/ingest.js';

const test = anyTest as TestFn<{ browser: Browser; collector: CollectorHandle; stop: () => Promise<void> }>;

const KEY = 'docker.io/acme/shop';
const EVIL = 'node-evil';
const GOOD = 'node-good';
const proc = (exe: string): Entry => ({ type: 'process', exe, parent: 'sh', user: 'root', args: '' });
const shared = proc('/usr/bin/app');
const backdoor = proc('/tmp/backdoor');
const helper = proc('/usr/bin/helper');
const cron = proc('/usr/sbin/cron');

test.before(async (t) => {
  const [browser, c] = await Promise.all([launchBrowser(), startTestCollector()]);
  t.context = { browser, collector: c.collector, stop: c.stop };
  const evil = deltaOf(KEY, [
    statsOf(shared, EVIL, { firstSeen: T0 + 100, lastSeen: T0 + 900_000, count: 40, examples: ['app --evil'] }),
    statsOf(backdoor, EVIL, { firstSeen: T0 + 200, lastSeen: T0 + 200, count: 1 }),
    statsOf(helper, EVIL, { firstSeen: T0 + 300, lastSeen: T0 + 400, count: 2 }),
  ]);
  const good = deltaOf(KEY, [
    statsOf(shared, GOOD, { firstSeen: T0 + 60_000, lastSeen: T0 + 120_000, count: 7, examples: ['app --serve'] }),
    statsOf(cron, GOOD, { firstSeen: T0 + 10, lastSeen: T0 + 20, count: 4 }),
  ]);
  for (const [node, d] of [[EVIL, evil], [GOOD, good]] as const) {
    const r = await converse(c.collector.grpcPort, node, [{ batch: { batchId: 1, deviations: [], baselines: [snapshotToWire(d)] } }], 1);
    if (r.error) throw r.error;
  }
  // Security approved the helper before anyone knew: it stays after the quarantine.
  const approved = await c.collector.store.reviewBaseline(KEY, { action: 'approve', entryId: entryId(helper) }, 'rita', 'looked fine', Date.now());
  if (!approved.ok) throw new Error(approved.message);
});

test.after.always(async (t) => {
  await t.context.browser?.close();
  await t.context.stop?.();
});

const entryRow = (page: Page, entry: Entry) => page.locator(`tr[data-entry-id=${JSON.stringify(entryId(entry))}]`);
const nodeRow = (page: Page, node: string) => page.locator(`tr[data-node="${node}"]`);

async function openBaseline(page: Page, url: string): Promise<void> {
  await page.goto(`${url}/console/#/baselines/${encodeURIComponent(KEY)}`);
  await page.getByRole('heading', { level: 1, name: `Baseline ${KEY}` }).waitFor();
}

test.serial('taught by, quarantine from the Nodes page, its state for every role, what the baseline keeps and marks, release', async (t) => {
  const { browser, collector } = t.context;

  // A reviewer sees which nodes taught each entry.
  const reviewer = await openPage(t, browser);
  await signIn(reviewer, collector.url, TOKENS.reviewer.token);
  await openBaseline(reviewer, collector.url);
  // The heading comes before the entries' table: read its header once the entries are there (allInnerTexts does not wait).
  await entryRow(reviewer, shared).waitFor();
  t.true((await reviewer.locator('section[aria-labelledby="proc"] thead th').allInnerTexts()).includes('Taught by'));
  t.is(await entryRow(reviewer, shared).locator('td.taught-by').innerText(), `${EVIL}, ${GOOD}`);
  t.is(await entryRow(reviewer, backdoor).locator('td.taught-by').innerText(), EVIL);
  t.is(await entryRow(reviewer, shared).getAttribute('data-suspect'), null, 'nothing to mark yet');
  await screenshot(reviewer, 'baseline-taught-by');

  // The Nodes page: a reviewer sees states, gets no quarantine button.
  await reviewer.getByRole('link', { name: 'Nodes' }).click();
  await nodeRow(reviewer, EVIL).waitFor();
  t.is(await nodeRow(reviewer, EVIL).locator('td.node-state').innerText(), 'ok');
  t.is(await reviewer.getByRole('button', { name: /Quarantine/ }).count(), 0);

  // An admin quarantines node-evil with a reason.
  const admin = await openPage(t, browser);
  await signIn(admin, collector.url, TOKENS.admin.token);
  await admin.getByRole('link', { name: 'Nodes' }).click();
  await nodeRow(admin, EVIL).waitFor();
  await admin.getByRole('button', { name: `Quarantine ${EVIL}` }).click();
  await admin.getByRole('button', { name: 'Confirm quarantine' }).click();
  t.is(await nodeRow(admin, EVIL).getAttribute('data-state'), 'ok', 'no quarantine without a reason');
  await admin.getByLabel(`Why ${EVIL} is quarantined`).fill('found a <b>backdoor</b>, INC-42');
  await admin.getByRole('button', { name: 'Confirm quarantine' }).click();
  await admin.locator('#nodes-feedback', { hasText: `${EVIL} is quarantined: 1 entries only it taught removed from 1 baselines, 2 recomputed without its share.` }).waitFor();
  await nodeRow(admin, EVIL).and(admin.locator('[data-state="quarantined"]')).waitFor();
  t.is(await admin.locator('main tbody tr').first().getAttribute('data-node'), EVIL, 'quarantined nodes come first');
  const state = await nodeRow(admin, EVIL).locator('td.node-state').innerText();
  t.regex(state, /^quarantined\s+since \d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2} by adam\s+found a <b>backdoor<\/b>, INC-42$/);
  t.is(await admin.locator('main b').count(), 0, 'the reason is text');
  t.is(await admin.getByRole('button', { name: `Release ${EVIL}` }).count(), 1);
  t.is(await admin.getByRole('button', { name: `Quarantine ${GOOD}` }).count(), 1);
  await screenshot(admin, 'nodes-quarantined');

  // A viewer sees the same state, and no button.
  const viewer = await openPage(t, browser);
  await signIn(viewer, collector.url, TOKENS.viewer.token);
  await viewer.getByRole('link', { name: 'Nodes' }).click();
  await nodeRow(viewer, EVIL).waitFor();
  t.is(await nodeRow(viewer, EVIL).locator('td.node-state').innerText(), state);
  t.is(await viewer.getByRole('button', { name: /Quarantine|Release/ }).count(), 0);

  // The baseline: node-evil's share is out; what stays of it is marked, the node named as quarantined.
  await openBaseline(reviewer, collector.url);
  t.is(await entryRow(reviewer, backdoor).count(), 0, 'what only node-evil taught is gone');
  const sharedRow = entryRow(reviewer, shared);
  t.is(await sharedRow.locator('td.taught-by').innerText(), `${GOOD}\ndropped: ${EVIL} quarantined`);
  t.is(await sharedRow.getAttribute('data-suspect'), 'true');
  t.regex((await sharedRow.getAttribute('class')) ?? '', /\bsuspect\b/);
  t.is(await sharedRow.locator('td.num').innerText(), '7', "node-good's count alone");
  t.deepEqual(await sharedRow.locator('td.mono').nth(1).locator('div').allInnerTexts(), ['app --serve'], "node-good's example alone");
  const helperRow = entryRow(reviewer, helper);
  t.is(await helperRow.locator('td.taught-by').innerText(), `no node (security)\ndropped: ${EVIL} quarantined`);
  t.is(await helperRow.getAttribute('data-suspect'), 'true');
  t.is(await entryRow(reviewer, cron).getAttribute('data-suspect'), null);
  t.regex(await reviewer.locator('dl.facts').innerText(), /Suspect entries\s+2 taught by a quarantined node or kept after a node's share was dropped/);
  // The filter finds entries by node.
  await reviewer.getByLabel('Filter processes').fill(EVIL);
  await entryRow(reviewer, cron).waitFor({ state: 'detached' });
  t.is(await reviewer.locator('section[aria-labelledby="proc"] tbody tr').count(), 2);
  await screenshot(reviewer, 'baseline-quarantined-node');

  // The admin releases it: ok again; what was dropped stays dropped, still marked as dropped.
  admin.once('dialog', (d) => void d.accept());
  await admin.getByRole('button', { name: `Release ${EVIL}` }).click();
  await admin.locator('#nodes-feedback', { hasText: `${EVIL} is no longer quarantined.` }).waitFor();
  t.is(await nodeRow(admin, EVIL).getAttribute('data-state'), 'ok');
  await reviewer.reload();
  await reviewer.getByRole('heading', { level: 1, name: `Baseline ${KEY}` }).waitFor();
  t.is(await entryRow(reviewer, shared).locator('td.taught-by').innerText(), `${GOOD}\ndropped: ${EVIL}`);
  t.is(await entryRow(reviewer, backdoor).count(), 0);
  t.deepEqual([...problemsOf(reviewer), ...problemsOf(admin), ...problemsOf(viewer)], []);
});
