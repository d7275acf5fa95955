/**
 * Storm control shared by replicas (issue 20): N collectors on one PostgreSQL keep one notification
 * rate. The policy alone (what crosses the line when another replica's counts are known), then two
 * real stores on one PostgreSQL database, each with its own policy and the exchange running, through
 * the store's ingest as the collector calls it; then the collector's real ingest worker thread, whose
 * policy decides and shares, against another replica.
 */
import test from 'ava';
import pg from 'pg';
import pino from 'pino';
import { AlertingConfigSchema } from '../../collector/alerting/config.js';
import { createAlertPolicy, windowStart, type PolicyHooks } from '../../collector/alerting/policy.js';
import { startStormShare } from '../../collector/alerting/storm-share.js';
import { startIngestWorker } from '../../collector/ingest/writer.js';
import { openPostgresStore } from '../../collector/store/postgres/index.js';
import { createDeviationPreparer } from '../../collector/store/prepare.js';
import type { IngestResult } from '../../collector/store/store.js';
import { deviationOf } from '../helpers/ingest.js';
import { shellAlert } from '../helpers/notification.js';
import { usePostgres } from '../helpers/postgres.js';

const server = usePostgres(test);
const T = Date.UTC(2026, 10, 23, 12, 1, 0);
const quiet: PolicyHooks = { suppressed: () => undefined, storm: () => undefined };
const spec = (max: number) => ({ config: AlertingConfigSchema.parse({ storm: { perImage: { max, per: '5m' } } }), sinks: ['hook'], publicUrl: '' });
const alertOf = (i: number) => shellAlert({ fingerprint: `${i}`.padStart(64, '0'), receivers: ['hook'], suppressedBy: '' });

test('windows are aligned to their length, so every replica cuts the same ones', (t) => {
  t.is(windowStart(T, 300_000), Date.UTC(2026, 10, 23, 12, 0, 0));
  t.is(windowStart(Date.UTC(2026, 10, 23, 12, 5, 0), 300_000), Date.UTC(2026, 10, 23, 12, 5, 0));
});

test('a policy counts what other replicas admitted: together they notify the configured rate, and one summary names the window', (t) => {
  const a = createAlertPolicy(spec(5), quiet);
  const b = createAlertPolicy(spec(5), quiet);
  const sent = (entries: { state: string; alert: string; action: string }[]) => entries.filter((e) => e.state === 'pending' && e.action === 'trigger');
  let notified = 0;
  for (let i = 0; i < 3; i++) notified += sent(a.notify!(alertOf(i), T)).length;
  b.setPeerStorm(a.stormCounts(T));
  const fromB = [];
  for (let i = 3; i < 8; i++) fromB.push(...sent(b.notify!(alertOf(i), T)));
  const summaries = fromB.filter((e) => e.alert.startsWith('storm-'));
  t.is(notified + fromB.length - summaries.length, 5, 'three through a, two through b: the rate of one collector');
  t.is(summaries.length, 1);
  // a hears that b summarized this window: a's own crossing sends none.
  a.setPeerStorm(b.stormCounts(T));
  const later = sent(a.notify!(alertOf(9), T + 1000));
  t.deepEqual(later, [], 'over the rate, and the summary was sent by b');
  // Both would name the window's summary alike: same scope and window, same fingerprint.
  const c = createAlertPolicy(spec(1), quiet);
  c.notify!(alertOf(20), T);
  const own = c.notify!(alertOf(21), T + 5).find((e) => e.alert.startsWith('storm-'))!;
  t.is(own.alert, summaries[0]!.alert, 'the summary is named by scope and window, not by the alert that crossed');
  t.deepEqual(a.stormCounts(T + 300_000), [], 'a window that ended is not shared');
});

test('postgres, two replicas with the exchange running: new alerts through both notify the configured rate once', async (t) => {
  const url = await server.database();
  const stores = [await openPostgresStore(url), await openPostgresStore(url)];
  t.teardown(() => Promise.all(stores.map((s) => s.close())));
  const policies = [createAlertPolicy(spec(6), quiet), createAlertPolicy(spec(6), quiet)];
  const shares = stores.map((store, i) => startStormShare({ store, policy: policies[i]!, owner: `replica-${i}`, logger: { warn: () => undefined }, now: () => T, everyMs: 60_000 }));
  t.teardown(() => Promise.all(shares.map((s) => s.stop())));
  // Four new alerts through replica 0, then both exchange, then eight more through replica 1.
  for (let i = 0; i < 4; i++) await stores[0]!.ingest('node-1', [deviationOf({ i, exe: `/tmp/a-${i}` })], [], T, policies[0]);
  for (const s of shares) await s.exchange();
  for (const s of shares) await s.exchange();
  for (let i = 10; i < 18; i++) await stores[1]!.ingest('node-2', [deviationOf({ i, node: 'node-2', exe: `/tmp/b-${i}` })], [], T, policies[1]);
  const db = new pg.Client({ connectionString: url });
  await db.connect();
  t.teardown(() => db.end());
  const { rows } = await db.query<{ kind: string; state: string; n: string }>(
    `SELECT CASE WHEN alert LIKE 'storm-%' THEN 'summary' ELSE 'alert' END AS kind, state, count(*) AS n FROM outbox WHERE action = 'trigger' GROUP BY 1, 2 ORDER BY 1, 2`,
  );
  t.deepEqual(
    rows.map((r) => [r.kind, r.state, Number(r.n)]),
    [
      ['alert', 'pending', 6],
      ['alert', 'skipped', 6],
      ['summary', 'pending', 1],
    ],
    'six notified (four and two), six held back, one summary',
  );
  t.is(Number((await db.query(`SELECT count(*) AS n FROM alerts`)).rows[0].n), 12, 'every alert stored');
});

test('postgres, the ingest worker thread decides and shares: its counts reach the other replica, and theirs hold its notifications', async (t) => {
  const url = await server.database();
  const store = await openPostgresStore(url);
  t.teardown(() => store.close());
  // The worker's clock is the wall clock: start where the hour-long window does not end under the test.
  const hourly = { config: AlertingConfigSchema.parse({ storm: { perImage: { max: 6, per: '1h' } } }), sinks: ['hook'], publicUrl: '' };
  const left = windowStart(Date.now(), 3_600_000) + 3_600_000 - Date.now();
  if (left < 60_000) await new Promise((r) => setTimeout(r, left + 100));
  const held: string[] = [];
  const writer = await startIngestWorker(
    { db: url, spec: hourly, storm: { owner: 'replica-worker', everyMs: 600_000 } },
    { hooks: { suppressed: (reason, n = 1) => void held.push(`${reason}×${n}`), storm: () => undefined }, logger: pino({ level: 'silent' }) },
  );
  t.teardown(() => writer.close());
  const other = createAlertPolicy(hourly, quiet);
  const share = startStormShare({ store, policy: other, owner: 'replica-other', logger: { warn: () => undefined }, now: Date.now, everyMs: 600_000 });
  t.teardown(() => share.stop());
  const prepare = createDeviationPreparer();
  const through = (i: number) => writer.commit([{ node: 'node-1', deviations: [prepare(deviationOf({ i, exe: `/tmp/w-${i}` }), false)], deltas: [] }], Date.now());

  // Four new alerts through the worker: notified, and its counts go to the store when it shares.
  for (let i = 0; i < 4; i++) {
    const [r] = await through(i);
    t.false(r instanceof Error);
    t.deepEqual((r as IngestResult).notifications.map((n) => n.state), ['pending']);
  }
  await writer.shareStorms!();
  await share.exchange();
  // The other replica counts them: two more of its own reach the rate of six, the rest are held.
  const states: string[] = [];
  for (let i = 10; i < 14; i++) states.push(...(await store.ingest('node-2', [deviationOf({ i, node: 'node-2', exe: `/tmp/o-${i}` })], [], Date.now(), other)).notifications.map((n) => `${n.alert.startsWith('storm-') ? 'summary' : 'alert'} ${n.action}: ${n.state}`));
  t.deepEqual(states, ['alert trigger: pending', 'alert trigger: pending', 'alert trigger: skipped', 'summary trigger: pending', 'summary resolve: pending', 'alert trigger: skipped']);
  // The worker hears of them: its next new alert is held too, and no second summary is sent.
  await share.exchange();
  await writer.shareStorms!();
  const [r] = await through(20);
  t.deepEqual((r as IngestResult).notifications.map((n) => n.state), ['skipped']);
  t.deepEqual(held, ['storm×1'], 'the worker reports what it held back to the main thread (the metric)');
});
