/**
 * The console in a real Chromium against a real collector fed real gRPC deviations: sign in, an
 * alert appearing live, acknowledging it (state and audit entry shown), an exception created from
 * an alert and revoked, hostile text shown as text, and roles that are offered only what they may
 * do. One browser for the file; each test has its own browser context (its own sessionStorage).
 */
import anyTest, { type TestFn } from 'ava';
import type { Browser } from 'playwright-core';
import type { CollectorHandle } from '../../collector/main.js';
import { TOKENS, launchBrowser, openPage, problemsOf, screenshot, signIn, startTestCollector } from '../helpers/browser.js';
import { deviationOf, sendDeviations } from '../helpers/ingest.js';

const test = anyTest as TestFn<{ browser: Browser; collector: CollectorHandle; stop: () => Promise<void> }>;

test.before(async (t) => {
  const [browser, c] = await Promise.all([launchBrowser(), startTestCollector()]);
  t.context = { browser, collector: c.collector, stop: c.stop };
});

test.after.always(async (t) => {
  await t.context.browser?.close();
  await t.context.stop?.();
});

let batch = 0;
const send = (c: CollectorHandle, ...specs: Parameters<typeof deviationOf>[0][]) => sendDeviations(c.grpcPort, specs.map((s) => deviationOf(s)), 'node-1', ++batch);

test.serial('a reviewer signs in, sees an alert appear live, acknowledges it, and finds it in the audit log', async (t) => {
  const { browser, collector } = t.context;
  const page = await openPage(t, browser);
  await signIn(page, collector.url, TOKENS.reviewer.token);
  t.is(new URL(page.url()).pathname, '/console/');
  await page.locator('#no-alerts').waitFor();
  await page.locator('#live-status[data-state="live"]').waitFor();
  await page.evaluate('window.__sameDocument = true');

  await send(collector, { i: 1, exe: '/usr/bin/dash', args: '-c id', namespace: 'shop' });
  const row = page.locator('tbody tr');
  await row.first().waitFor();
  t.is(await row.count(), 1);
  t.regex(await row.first().innerText(), /\/usr\/bin\/dash/);
  t.regex(await row.first().innerText(), /firing/);
  t.regex(await row.first().innerText(), /shop/);
  t.is(await page.evaluate('window.__sameDocument'), true, 'the alert arrived without a reload');
  await screenshot(page, 'alerts');

  await row.first().getByRole('link').click();
  await page.getByRole('heading', { level: 1, name: /\/usr\/bin\/dash/ }).waitFor();
  t.is(await page.getByRole('button', { name: 'Acknowledge' }).isEnabled(), true);
  await page.getByLabel(/Comment/).fill('looking into it');
  await page.getByRole('button', { name: 'Acknowledge' }).click();
  await page.locator('#alert-state', { hasText: 'acknowledged by rita' }).waitFor();
  t.regex(await page.locator('#alert-state').innerText(), /looking into it/);
  t.is(await page.getByRole('button', { name: 'Acknowledge' }).isDisabled(), true, 'an acknowledged alert cannot be acknowledged again');
  t.is(await page.getByRole('button', { name: 'Resolve' }).isEnabled(), true);
  await page.locator('#where-title').waitFor();
  await screenshot(page, 'alert');

  const id = (await collector.store.listAlerts({ limit: 1 })).items[0]!.fingerprint;
  t.is((await collector.store.getAlert(id))?.state, 'acknowledged');

  await page.getByRole('link', { name: 'Audit' }).click();
  const entry = page.locator('tbody tr', { hasText: 'alert.acknowledge' });
  await entry.waitFor();
  const text = await entry.innerText();
  t.regex(text, /rita/);
  t.regex(text, /reviewer/);
  t.true(text.includes(id));
  t.regex(text, /firing → acknowledged/);
  await screenshot(page, 'audit');

  // Back on the list, the alert shows its new state; a state change elsewhere arrives live.
  await page.getByRole('link', { name: 'Alerts' }).click();
  await page.locator(`tr[data-alert-id="${id}"]`, { hasText: 'acknowledged' }).waitFor();
  const r = await fetch(`${collector.url}/api/v1/alerts/${id}/resolve`, { method: 'POST', headers: { authorization: `Bearer ${TOKENS.responder.token}`, 'content-type': 'application/json' }, body: '{"comment":"fixed"}' });
  t.is(r.status, 200);
  await page.locator(`tr[data-alert-id="${id}"]`, { hasText: 'resolved' }).waitFor();
  t.deepEqual(problemsOf(page), []);
});

test.serial('an exception is created from an alert, listed, and revoked; hostile text stays text', async (t) => {
  const { browser, collector } = t.context;
  const hostile = '-c <img src=x onerror="window.__pwned=1"><script>window.__pwned=2</script>';
  await send(collector, { i: 2, exe: '/tmp/x', args: hostile, namespace: 'payments' });
  const page = await openPage(t, browser);
  await signIn(page, collector.url, TOKENS.reviewer.token);
  const row = page.locator('tbody tr', { hasText: '/tmp/x' });
  await row.waitFor();
  t.true((await row.innerText()).includes('<img src=x onerror='), 'the markup is shown as text');
  await row.getByRole('link').click();
  await page.getByRole('heading', { name: 'Create an exception' }).waitFor();
  t.true((await page.locator('main').innerText()).includes('<script>window.__pwned=2</script>'));
  t.is(await page.locator('main img, main script').count(), 0);
  t.is(await page.evaluate('window.__pwned'), undefined);

  await page.getByLabel('Reason').fill('pentest window, ticket SEC-42');
  t.is(await page.getByLabel('Owner').inputValue(), 'rita');
  await page.getByLabel('Owner').fill('team-payments');
  await page.getByLabel('Expires in').selectOption('7d');
  await page.getByLabel(/Only in namespace payments/).check();
  await page.getByRole('button', { name: 'Create exception' }).click();
  await page.getByText(/Exception ex-[0-9a-f]+ created/).waitFor();
  await page.getByRole('link', { name: 'See the exceptions.' }).click();

  const ex = page.locator('tbody tr', { hasText: 'pentest window, ticket SEC-42' });
  await ex.waitFor();
  const text = await ex.innerText();
  t.regex(text, /active/);
  t.regex(text, /team-payments/);
  t.regex(text, /by rita/);
  t.regex(text, /namespace payments/);
  t.true(text.includes('<img src=x'), 'the entry it matches, as text');
  await screenshot(page, 'exceptions');
  const stored = await collector.store.listExceptions();
  t.is(stored.length, 1);
  t.is(stored[0]!.namespace, 'payments');
  // 7 days from now, give or take the test's own duration.
  t.true(Math.abs(stored[0]!.expiresAt - stored[0]!.createdAt - 7 * 86_400_000) < 1000);

  page.once('dialog', (d) => void d.accept());
  await ex.getByRole('button', { name: /Revoke/ }).click();
  await page.getByText(/revoked\./).waitFor();
  await page.getByText('No exceptions here.').waitFor();
  await page.getByRole('link', { name: 'Revoked' }).click();
  await page.locator('tbody tr', { hasText: 'revoked by rita' }).waitFor();
  t.is((await collector.store.listExceptions())[0]!.revokedBy, 'rita');
  t.deepEqual(problemsOf(page), []);
});

test.serial('a viewer is offered no action, a responder only acknowledge and resolve', async (t) => {
  const { browser, collector } = t.context;
  await send(collector, { i: 3, peer: '203.0.113.50', port: 4444, namespace: 'shop' });
  // An active exception, so that the exceptions page has something a reviewer could revoke.
  const made = await fetch(`${collector.url}/api/v1/exceptions`, {
    method: 'POST',
    headers: { authorization: `Bearer ${TOKENS.reviewer.token}`, 'content-type': 'application/json' },
    body: JSON.stringify({ key: 'docker.io/library/redis', reason: 'known job', owner: 'ops', expiresIn: '30d' }),
  });
  t.is(made.status, 201);

  const page = await openPage(t, browser);
  await signIn(page, collector.url, TOKENS.viewer.token);
  t.regex(await page.locator('#who').innerText(), /vera · viewer/);
  t.deepEqual(await page.getByRole('navigation', { name: 'Main' }).getByRole('link').allInnerTexts(), ['Alerts', 'Baselines', 'Exceptions', 'Images', 'Nodes']);
  const row = page.locator('tbody tr', { hasText: '203.0.113.50' });
  await row.waitFor();
  await row.getByRole('link').click();
  await page.locator('#where-title').waitFor();
  await screenshot(page, 'alert-viewer');
  for (const name of ['Acknowledge', 'Resolve', 'Accept into baseline', 'Create exception']) t.is(await page.getByRole('button', { name }).count(), 0, name);
  t.is(await page.getByRole('heading', { name: 'Create an exception' }).count(), 0);

  await page.getByRole('link', { name: 'Exceptions' }).click();
  await page.locator('tbody tr', { hasText: 'known job' }).waitFor();
  t.is(await page.getByRole('button', { name: /Revoke/ }).count(), 0);

  await page.getByRole('link', { name: 'Nodes' }).click();
  await page.getByRole('heading', { name: 'Nodes' }).waitFor();
  await page.locator('main table, main .notice, main .panel').first().waitFor();
  await screenshot(page, 'nodes');

  // Signing out forgets the token: a reload asks for one again.
  await page.getByRole('button', { name: 'Sign out' }).click();
  await page.reload();
  await page.getByLabel('API token').waitFor();
  await screenshot(page, 'sign-in');

  const responder = await openPage(t, browser);
  await signIn(responder, collector.url, TOKENS.responder.token);
  await responder.locator('tbody tr', { hasText: '203.0.113.50' }).getByRole('link').click();
  await responder.getByRole('button', { name: 'Acknowledge' }).waitFor();
  t.is(await responder.getByRole('button', { name: 'Resolve' }).count(), 1);
  t.is(await responder.getByRole('button', { name: 'Accept into baseline' }).count(), 0);
  t.is(await responder.getByRole('heading', { name: 'Create an exception' }).count(), 0);
  t.deepEqual(await responder.getByRole('navigation', { name: 'Main' }).getByRole('link').allInnerTexts(), ['Alerts', 'Baselines', 'Exceptions', 'Images', 'Nodes']);
  t.deepEqual([...problemsOf(page), ...problemsOf(responder)], []);
});

test.serial('a wrong token is refused at sign-in; signing in works from the keyboard alone', async (t) => {
  const { browser, collector } = t.context;
  const page = await openPage(t, browser);
  await page.goto(`${collector.url}/`);
  await page.getByLabel('API token').waitFor();
  t.is(await page.evaluate('document.activeElement && document.activeElement.id'), 'token', 'the token field has the focus');
  await page.keyboard.type('not-a-token-anyone-has-0123');
  await page.keyboard.press('Enter');
  await page.getByRole('alert').filter({ hasText: 'That token is not valid.' }).waitFor();
  t.is(await page.getByRole('button', { name: 'Sign out' }).count(), 0);
  t.is(await page.evaluate('sessionStorage.length'), 0);
  await page.getByLabel('API token').fill('');
  await page.keyboard.type(TOKENS.responder.token);
  await page.keyboard.press('Enter');
  await page.getByRole('button', { name: 'Sign out' }).waitFor();
  t.is(await page.evaluate('document.activeElement && document.activeElement.id'), 'main', 'after sign-in the focus is on the content');
  // The session outlives a reload (sessionStorage); the first Tab reaches the skip link, which
  // moves the focus to the page's content.
  await page.reload();
  await page.getByRole('button', { name: 'Sign out' }).waitFor();
  await page.keyboard.press('Tab');
  t.is(await page.evaluate('document.activeElement && document.activeElement.textContent'), 'Skip to content');
  await page.keyboard.press('Enter');
  t.is(await page.evaluate('document.activeElement && document.activeElement.id'), 'main');
});

test.serial('nodes page lists agents with silent ones highlighted', async (t) => {
  const { browser } = t.context;
  // A collector of its own: the tests above spent this address's budget of failed sign-ins on purpose.
  const own = await startTestCollector();
  t.teardown(() => own.stop());
  const collector = own.collector;
  const probe = await fetch(`${collector.url}/api/v1/nodes`, { headers: { authorization: `Bearer ${TOKENS.viewer.token}` } });
  t.is(probe.status, 200);
  await send(collector, { i: 4, node: 'node-1' });
  const page = await openPage(t, browser);
  await signIn(page, collector.url, TOKENS.viewer.token);
  await page.getByRole('link', { name: 'Nodes' }).click();
  const row = page.locator('tr[data-node="node-1"]');
  await row.waitFor();
  t.regex(await row.innerText(), /node-1/);
  // The test's agent stream closed after its batch: version shown, not connected, last contact set.
  t.regex(await row.innerText(), /^node-1\tok\ttest\t.*\bno\b.*\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}/s);
  await screenshot(page, 'nodes');
});

