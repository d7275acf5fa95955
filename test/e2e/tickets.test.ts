/**
 * One ticket per image, end to end: a real collector (SQLite file, or PostgreSQL), real alerts made
 * by ingesting deviations over gRPC, resolved through the HTTP API, and a local tracker playing
 * GitHub, GitLab or Jira Cloud (test/helpers/trackers.ts), which checks every request and answer
 * against the publisher's schema. What is asserted is what a team would see in its tracker.
 */
import test, { type ExecutionContext } from 'ava';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { loadCollectorConfig, startCollector, type CollectorHandle } from '../../collector/main.js';
import { startTestCollector } from '../helpers/collector.js';
import { deviationOf, sendDeviations } from '../helpers/ingest.js';
import { usePostgres } from '../helpers/postgres.js';
import { eventually, getJson } from '../helpers/processes.js';
import { startTracker, type Tracker, type TrackerKind } from '../helpers/trackers.js';

const postgres = usePostgres(test);

const IMAGE = 'docker.io/acme/shop';
const TOKEN = 'tkn_0123456789abcdefSECRET';
const ASSIGNEE: Record<TrackerKind, string | number> = { github: 'octocat', gitlab: 42, jira: '5b10a2844c20165700ede21g' };

function tempDir(t: ExecutionContext): string {
  const dir = mkdtempSync(join(tmpdir(), 'dw-tickets-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** The sink config of `kind` pointing at `tracker`, its token in a file in `dir`. */
function sinkOf(kind: TrackerKind, tracker: Tracker, dir: string): Record<string, unknown> {
  const tokenFile = join(dir, `${kind}-token`);
  writeFileSync(tokenFile, `${TOKEN}\n`);
  const common = { name: 'tickets', type: kind, url: tracker.url, tokenFile, assignees: { storefront: ASSIGNEE[kind] }, retry: { maxAttempts: 3, baseDelay: '10ms', maxDelay: '100ms' } };
  if (kind === 'github') return { ...common, repository: 'acme/shop' };
  if (kind === 'gitlab') return { ...common, project: 'acme/shop' };
  return { ...common, email: 'driftwatch@acme.example', project: 'SEC' };
}

/** Collector settings: the ticket sink, the owner map, quick outbox retries. */
function settingsOf(sink: Record<string, unknown>): Record<string, unknown> {
  return { sinks: [sink], alerting: { owners: [{ match: { namespace: ['shop'] }, team: 'storefront' }], outbox: { baseDelay: '200ms', maxDelay: '1s' } } };
}

/** A collector on SQLite in `dir` (the same file across restarts) or on the PostgreSQL database at `dbUrlFile`. */
async function collectorOn(t: ExecutionContext, settings: Record<string, unknown>, where: { dir: string; dbUrlFile?: string }, logs: string[] = []): Promise<CollectorHandle> {
  let c: CollectorHandle;
  if (where.dbUrlFile === undefined) c = await startTestCollector(settings, { dir: where.dir, logs });
  else {
    const logger = pino({ level: 'info' }, { write: (line: string) => logs.push(line) });
    c = await startCollector(loadCollectorConfig({ dbUrlFile: where.dbUrlFile, grpcListen: '127.0.0.1:0', httpListen: '127.0.0.1:0', insecure: true, metricsInterval: '0s', ...settings }, {}), { logger });
  }
  // Stopped once, by the test (a restart) or when it ends.
  const stopOnce = c.stop.bind(c);
  let stopped: Promise<void> | undefined;
  const stop = () => (stopped ??= stopOnce());
  t.teardown(stop);
  return Object.assign(c, { stop });
}

let batch = 0;
/** A new alert of IMAGE: a process it never ran. */
async function alertFor(c: CollectorHandle, exe: string, image = IMAGE): Promise<string> {
  await sendDeviations(c.grpcPort, [deviationOf({ i: ++batch, exe, image })], 'node-1', batch);
  await c.alerting.drain();
  const items = (await getJson<{ items: { id: string; process?: { exe: string }; image: string }[] }>(`${c.url}/api/v1/alerts?limit=500`)).items;
  const a = items.find((x) => x.process?.exe === exe && x.image === image);
  if (!a) throw new Error(`no alert for ${exe}`);
  return a.id;
}

async function resolve(c: CollectorHandle, id: string): Promise<void> {
  const res = await fetch(`${c.url}/api/v1/alerts/${id}/resolve`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"comment":"patched the image"}' });
  if (res.status !== 200) throw new Error(`resolve: HTTP ${res.status} ${await res.text()}`);
  await c.alerting.drain();
}

const only = (tracker: Tracker) => {
  const all = [...tracker.issues.values()];
  if (all.length !== 1) throw new Error(`${all.length} issues, not one`);
  return all[0]!;
};

// Issue bodies and comments are compared as the tracker received them: Markdown for GitHub and GitLab, ADF JSON for Jira.
for (const [kind, store] of [['github', 'sqlite'], ['gitlab', 'sqlite'], ['jira', 'sqlite'], ['github', 'postgres']] as const) {
  test.serial(`${kind} on ${store}: the first alert opens the image's ticket, a second comments, resolving both closes it, a new alert reopens it`, async (t) => {
    const dir = tempDir(t);
    const tracker = await startTracker(t, kind);
    const logs: string[] = [];
    const where = store === 'sqlite' ? { dir } : { dir, dbUrlFile: join(dir, 'db-url') };
    if (where.dbUrlFile) writeFileSync(where.dbUrlFile, await postgres.database());
    const c = await collectorOn(t, settingsOf(sinkOf(kind, tracker, dir)), where, logs);

    const first = await alertFor(c, '/usr/bin/curl');
    const issue = only(tracker);
    t.true(issue.title.includes(IMAGE), 'the title names the image');
    t.regex(issue.body, /\/usr\/bin\/curl/, 'the body says what ran');
    t.regex(issue.body, /never ran in docker\.io\/acme\/shop/, 'and why it is an alert');
    t.regex(issue.body, /owner: storefront/, 'and the owner team from routing');
    t.true(issue.labels.includes('driftwatch'), 'the configured label');
    t.true(issue.labels.some((l) => /^severity:(critical|high|medium|low)$/.test(l)), `a severity label: ${issue.labels.join(',')}`);
    t.is(issue.assignee, ASSIGNEE[kind], 'assigned to the team\'s user');
    t.is(issue.state, 'open');

    const second = await alertFor(c, '/usr/bin/wget');
    t.is(tracker.issues.size, 1, 'a second alert of the image opens no second ticket');
    t.is(issue.comments.length, 1, 'it adds one comment');
    t.regex(issue.comments[0]!, /\/usr\/bin\/wget/);

    // Another deviation of an alert already open: grouped into that alert, no new comment.
    await sendDeviations(c.grpcPort, [deviationOf({ i: 500, exe: '/usr/bin/wget', image: IMAGE })], 'node-1', 500);
    await c.alerting.drain();
    t.is(issue.comments.length, 1, 'one comment per alert, not per deviation');

    await resolve(c, first);
    t.is(issue.state, 'open', 'one of its alerts is still open');
    await resolve(c, second);
    t.is(issue.state, 'closed', 'none of the image\'s alerts is open: closed');
    t.regex(issue.comments.at(-1)!, /No alert of this image is open any more/);

    await alertFor(c, '/usr/bin/nc');
    t.is(tracker.issues.size, 1, 'still one ticket for the image');
    t.is(issue.state, 'open', 'a new alert reopens it');
    t.regex(issue.comments.at(-1)!, /fires again[\s\S]*\/usr\/bin\/nc/);

    const auth = tracker.received[0]!.headers;
    if (kind === 'github') {
      t.is(auth.authorization, `Bearer ${TOKEN}`);
      t.is(auth['x-github-api-version'], '2022-11-28');
    } else if (kind === 'gitlab') t.is(auth['private-token'], TOKEN);
    else t.is(auth.authorization, `Basic ${Buffer.from(`driftwatch@acme.example:${TOKEN}`).toString('base64')}`);
    t.deepEqual(tracker.violations, [], 'every request and answer as the publisher\'s schema says');
    t.false(logs.join('\n').includes(TOKEN), 'the token is in no log line');
    const metrics = await (await fetch(`${c.url}/metrics`)).text();
    for (const [action, n] of [['opened', 1], ['commented', 2], ['closed', 1], ['reopened', 1]] as const) {
      t.regex(metrics, new RegExp(`^driftwatch_collector_ticket_actions_total\\{sink="tickets",type="${kind}",action="${action}"\\} ${n}$`, 'm'), action);
    }
  });
}

test('github: an alert of another image opens that image\'s own ticket; operational alerts open none', async (t) => {
  const dir = tempDir(t);
  const tracker = await startTracker(t, 'github');
  const c = await collectorOn(t, settingsOf(sinkOf('github', tracker, dir)), { dir });
  await alertFor(c, '/usr/bin/curl');
  await alertFor(c, '/usr/bin/curl', 'docker.io/acme/billing');
  t.deepEqual([...tracker.issues.values()].map((i) => i.title).sort(), ['Driftwatch: runtime drift in docker.io/acme/billing', 'Driftwatch: runtime drift in docker.io/acme/shop']);
  await c.alerting.nodeSilent('node-9', Date.now() - 600_000);
  await c.alerting.drain();
  t.is(tracker.issues.size, 2, 'a silent agent is no image: no ticket');
});

for (const store of ['sqlite', 'postgres'] as const) {
  test.serial(`${store}: a restarted collector finds the image's ticket and comments on it instead of opening a second`, async (t) => {
    const dir = tempDir(t);
    const tracker = await startTracker(t, 'github');
    const where = store === 'sqlite' ? { dir } : { dir, dbUrlFile: join(dir, 'db-url') };
    if (where.dbUrlFile) writeFileSync(where.dbUrlFile, await postgres.database());
    const settings = settingsOf(sinkOf('github', tracker, dir));
    const one = await collectorOn(t, settings, where);
    await alertFor(one, '/usr/bin/curl');
    const ref = only(tracker).ref;
    await one.stop();

    const two = await collectorOn(t, settings, where);
    await alertFor(two, '/usr/bin/wget');
    t.is(tracker.issues.size, 1, 'no second ticket after the restart');
    t.is(only(tracker).comments.length, 1, 'the new alert is a comment on the first ticket');
    t.like(await two.store.getImageTicket('tickets', IMAGE), { ref, state: 'open', openAlerts: 2, opened: 1 });
    t.deepEqual(tracker.violations, []);
  });
}

test('github: a 429 with Retry-After is retried after the wait it asks; a spent rate limit (403, x-ratelimit-reset) too', async (t) => {
  const dir = tempDir(t);
  const tracker = await startTracker(t, 'github');
  const c = await collectorOn(t, settingsOf(sinkOf('github', tracker, dir)), { dir });
  tracker.inject({ status: 429, headers: { 'retry-after': '1' }, body: '{"message":"API rate limit exceeded"}' });
  await alertFor(c, '/usr/bin/curl');
  t.is(tracker.received.length, 2, 'refused once, then taken');
  t.true(tracker.received[1]!.at - tracker.received[0]!.at >= 990, `waited ${Math.round(tracker.received[1]!.at - tracker.received[0]!.at)} ms of the 1 s asked`);
  t.is(tracker.issues.size, 1);

  const reset = Math.ceil(Date.now() / 1000) + 1;
  tracker.inject({ status: 403, headers: { 'x-ratelimit-remaining': '0', 'x-ratelimit-reset': String(reset) }, body: '{"message":"API rate limit exceeded for installation"}' });
  await alertFor(c, '/usr/bin/wget');
  const [refused, taken] = tracker.received.slice(-2);
  t.is(refused!.method, 'POST');
  t.true(taken!.at - refused!.at >= 900, `retried after the reset, ${Math.round(taken!.at - refused!.at)} ms later`);
  t.is(only(tracker).comments.length, 1, 'the comment arrived after the reset');
  t.deepEqual(tracker.violations, []);
});

for (const kind of ['github', 'jira'] as const) {
  test(`${kind}: a ticket deleted in the tracker is replaced by a new one that says so`, async (t) => {
    const dir = tempDir(t);
    const tracker = await startTracker(t, kind);
    const logs: string[] = [];
    const c = await collectorOn(t, settingsOf(sinkOf(kind, tracker, dir)), { dir }, logs);
    await alertFor(c, '/usr/bin/curl');
    const old = only(tracker);
    tracker.remove(old.ref);
    await alertFor(c, '/usr/bin/wget');
    const fresh = [...tracker.issues.values()].find((i) => !i.deleted)!;
    t.is(tracker.issues.size, 2, 'a new ticket');
    t.not(fresh.ref, old.ref);
    t.regex(fresh.body, /replaces .*which was deleted/);
    t.regex(fresh.body, /\/usr\/bin\/wget/);
    t.like(await c.store.getImageTicket('tickets', IMAGE), { ref: fresh.ref, state: 'open', opened: 2 });
    t.true(logs.some((l) => l.includes('ticket was deleted in the tracker')), 'and the collector says so');
    t.deepEqual(tracker.violations, []);
  });
}

test('github: a 500 is retried by the outbox; the ticket is opened once', async (t) => {
  const dir = tempDir(t);
  const tracker = await startTracker(t, 'github');
  const c = await collectorOn(t, settingsOf(sinkOf('github', tracker, dir)), { dir });
  tracker.inject({ status: 500, body: '{}' }, { status: 500, body: '{}' }, { status: 500, body: '{}' });
  await alertFor(c, '/usr/bin/curl');
  // Three quick attempts refused: the outbox takes the notification again after its backoff.
  await eventually(async () => {
    await c.alerting.drain();
    return tracker.issues.size > 0 ? true : undefined;
  }, 60_000, 'the outbox to deliver the retried notification');
  t.is(tracker.issues.size, 1);
  t.is(tracker.received.filter((r) => r.method === 'POST').length, 4, 'three refused, one taken');
  t.deepEqual(tracker.violations, []);
});

test('jira: a 429 with Retry-After is retried after the wait it asks', async (t) => {
  const dir = tempDir(t);
  const tracker = await startTracker(t, 'jira');
  const c = await collectorOn(t, settingsOf(sinkOf('jira', tracker, dir)), { dir });
  tracker.inject({ status: 429, headers: { 'retry-after': '1' }, body: '{"errorMessages":["Rate limit exceeded."],"errors":{}}' });
  await alertFor(c, '/usr/bin/curl');
  t.is(tracker.received.length, 2, 'refused once, then taken');
  t.true(tracker.received[1]!.at - tracker.received[0]!.at >= 990, `waited ${Math.round(tracker.received[1]!.at - tracker.received[0]!.at)} ms of the 1 s asked`);
  t.is(only(tracker).state, 'open');
  t.deepEqual(tracker.violations, []);
});

test('github: past maxNewTicketsPerHour, an alert of a new image opens no ticket: its delivery is skipped with the reason, counted and logged once; existing tickets still get comments', async (t) => {
  const dir = tempDir(t);
  const tracker = await startTracker(t, 'github');
  const logs: string[] = [];
  const c = await collectorOn(t, settingsOf({ ...sinkOf('github', tracker, dir), maxNewTicketsPerHour: 2 }), { dir }, logs);
  await alertFor(c, '/usr/bin/curl', 'docker.io/fake/one');
  await alertFor(c, '/usr/bin/curl', 'docker.io/fake/two');
  const held = await alertFor(c, '/usr/bin/curl', 'docker.io/fake/three');
  const heldToo = await alertFor(c, '/usr/bin/curl', 'docker.io/fake/four');
  t.deepEqual([...tracker.issues.values()].map((i) => i.title).sort(), ['Driftwatch: runtime drift in docker.io/fake/one', 'Driftwatch: runtime drift in docker.io/fake/two'], 'two tickets, no more');
  for (const id of [held, heldToo]) {
    const view = await getJson<{ deliveries: { sink: string; action: string; state: string; lastError: string | null }[] }>(`${c.url}/api/v1/alerts/${id}`);
    t.like(view.deliveries.find((d) => d.sink === 'tickets' && d.action === 'trigger'), { state: 'skipped' });
    t.regex(view.deliveries.find((d) => d.sink === 'tickets')!.lastError ?? '', /^ticket-limit: maxNewTicketsPerHour \(2\) reached/);
  }
  // An image that has its ticket: a new alert is a comment, not limited.
  await alertFor(c, '/usr/bin/wget', 'docker.io/fake/one');
  t.is(tracker.issues.size, 2);
  t.is([...tracker.issues.values()].find((i) => i.title.endsWith('fake/one'))!.comments.length, 1, 'the comment went through');
  const metrics = await (await fetch(`${c.url}/metrics`)).text();
  t.regex(metrics, /^driftwatch_collector_ticket_actions_total\{sink="tickets",type="github",action="held"\} 2$/m);
  t.regex(metrics, /^driftwatch_collector_outbox_deliveries_total\{sink="tickets",outcome="skipped"\} 2$/m);
  const heldLines = logs.filter((l) => l.includes('maxNewTicketsPerHour reached'));
  t.is(heldLines.length, 1, 'logged once in the hour, not per alert');
  t.like(JSON.parse(heldLines[0]!), { held: 1, maxNewTicketsPerHour: 2 });
  t.deepEqual(tracker.violations, []);
});

test('gitlab: a repository named to mention people (`x @security-leads @all`) opens a ticket whose title mentions nobody', async (t) => {
  const dir = tempDir(t);
  const tracker = await startTracker(t, 'gitlab');
  const c = await collectorOn(t, settingsOf(sinkOf('gitlab', tracker, dir)), { dir });
  await alertFor(c, '/usr/bin/curl', 'x @security-leads @all #1 ~urgent');
  const issue = only(tracker);
  t.is(issue.title, 'Driftwatch: runtime drift in x \uff20security-leads \uff20all \uff031 \u223curgent');
  t.false(/[@#~]/.test(issue.title), issue.title);
  t.deepEqual(tracker.violations, []);
});
