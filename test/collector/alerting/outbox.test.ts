/**
 * The outbox worker on its own, over a real SQLite store, real webhook sinks posting to a local
 * recording server, and a clock the test moves: an acknowledge or resolve never overtakes its
 * trigger; a retry waits its backoff or the receiver's Retry-After; a refused notification fails at
 * once, one still failing after `giveUpAfter` fails for good; at shutdown the delivery in flight is
 * aborted and stays pending, and the next start delivers it.
 */
import test from 'ava';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import pino from 'pino';
import { Registry } from 'prom-client';
import { AlertingConfigSchema } from '../../../collector/alerting/config.js';
import { createAlertingMetrics } from '../../../collector/alerting/metrics.js';
import { createOutbox, type Outbox } from '../../../collector/alerting/outbox.js';
import { createSinks, parseSinksConfig, type NotificationAction } from '../../../collector/sinks/index.js';
import { asAsync } from '../../../collector/store/async.js';
import { openSqliteStore } from '../../../collector/store/sqlite/index.js';
import { shellNotification } from '../../helpers/notification.js';
import { eventually } from '../../helpers/processes.js';
import { startRecorder, type Reply } from '../../helpers/recorder.js';

const T0 = Date.UTC(2026, 11, 1, 12, 0, 0);
const FP = shellNotification().fingerprint;

/** An outbox for one webhook sink at a recorder answering `reply`; `clock.t` is its time. */
async function setup(t: import('ava').ExecutionContext, reply: () => Reply, dir = mkdtempSync(join(tmpdir(), 'dw-outbox-')), url?: string) {
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const rec = await startRecorder(t, reply);
  const store = openSqliteStore(join(dir, 'c.db'));
  const clock = { t: T0 };
  const registry = new Registry();
  const config = AlertingConfigSchema.parse({ outbox: { baseDelay: '1s', maxDelay: '1s', giveUpAfter: '1m' } }).outbox;
  const sinks = createSinks(parseSinksConfig({ sinks: [{ name: 'hook', type: 'webhook', url: url ?? `${rec.url}/hook`, retry: { maxAttempts: 1 } }] }));
  const abort = new AbortController();
  // random() = 1: the backoff is its ceiling, 1s.
  // The outbox uses the store as every consumer does, asynchronously; the test reads it directly.
  const outbox = createOutbox({ store: asAsync(store), sinks, config, signal: abort.signal, metrics: createAlertingMetrics(registry, asAsync(store)), logger: pino({ level: 'silent' }), now: () => clock.t, random: () => 1, owner: 'test-replica' });
  const stop = async () => {
    abort.abort();
    await outbox.finished;
    store.close();
  };
  let stopped = false;
  t.teardown(async () => {
    if (!stopped) await stop();
  });
  return {
    rec,
    store,
    clock,
    outbox,
    registry,
    stop: async () => {
      stopped = true;
      await stop();
    },
  };
}

function enqueue(outbox: Outbox, action: NotificationAction, at: number): Promise<void> {
  return outbox.enqueue([{ alert: FP, sink: 'hook', action, body: JSON.stringify(shellNotification({ action, at })), state: 'pending', lastError: '' }]);
}

const deliveries = (store: { deliveriesOf(fp: string): { action: string; state: string; attempts: number; nextAt: number; lastError: string }[] }) => store.deliveriesOf(FP);

test('a resolve waits while its trigger is being retried; the receiver gets the trigger first, then the resolve', async (t) => {
  let up = false;
  const { rec, store, clock, outbox, registry } = await setup(t, () => (up ? { status: 200 } : { status: 503 }));
  await enqueue(outbox, 'trigger', T0);
  await outbox.drain();
  t.like(deliveries(store)[0], { action: 'trigger', state: 'pending', attempts: 1, nextAt: T0 + 1000 });
  t.regex(deliveries(store)[0]!.lastError, /^unavailable: HTTP 503/);

  await enqueue(outbox, 'resolve', T0);
  await outbox.drain();
  t.like(deliveries(store)[0], { action: 'resolve', state: 'pending', attempts: 0, nextAt: T0 + 2000, lastError: 'waiting: its trigger is not delivered yet' });
  t.is(rec.received.length, 1, 'the resolve was not posted');

  up = true;
  clock.t = T0 + 1000;
  await outbox.drain();
  clock.t = T0 + 2000;
  await outbox.drain();
  t.deepEqual(rec.received.map((r) => JSON.parse(r.body).action), ['trigger', 'trigger', 'resolve']);
  t.deepEqual(deliveries(store).map((d) => d.state), ['delivered', 'delivered']);
  const outcomes = await registry.getSingleMetricAsString('driftwatch_collector_outbox_deliveries_total');
  t.regex(outcomes, /sink="hook",outcome="retry"} 1$/m);
  t.regex(outcomes, /sink="hook",outcome="delivered"} 2$/m);
});

test('a retry waits the receiver\'s Retry-After when longer than the backoff; a refusal fails at once; past giveUpAfter it fails for good', async (t) => {
  let reply: Reply = { status: 429, headers: { 'retry-after': '120' } };
  const { store, clock, outbox, registry } = await setup(t, () => reply);
  await enqueue(outbox, 'trigger', T0);
  await outbox.drain();
  t.like(deliveries(store)[0], { state: 'pending', attempts: 1, nextAt: T0 + 120_000 });

  reply = { status: 503 };
  clock.t = T0 + 59_999;
  await outbox.drain();
  t.like(deliveries(store)[0], { state: 'pending', attempts: 1 }, 'not due yet');
  clock.t = T0 + 120_000;
  await outbox.drain();
  t.like(deliveries(store)[0], { state: 'failed', attempts: 2 }, 'retryable, but older than giveUpAfter (1m)');

  reply = { status: 400 };
  await enqueue(outbox, 'acknowledge', clock.t);
  await outbox.drain();
  t.like(deliveries(store)[0], { action: 'acknowledge', state: 'failed', attempts: 1 });
  t.regex(deliveries(store)[0]!.lastError, /^rejected: HTTP 400/);
  t.regex(await registry.getSingleMetricAsString('driftwatch_collector_outbox_deliveries_total'), /sink="hook",outcome="failed"} 2$/m);
});

test('at shutdown the delivery in flight is aborted and stays pending, uncounted; the next start delivers it', async (t) => {
  // A receiver that takes the request and never answers.
  let posted = 0;
  const silent = createServer(() => posted++);
  await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
  t.teardown(() => {
    silent.closeAllConnections();
    silent.close();
  });
  const dir = mkdtempSync(join(tmpdir(), 'dw-outbox-'));
  const first = await setup(t, () => ({ status: 200 }), dir, `http://127.0.0.1:${(silent.address() as AddressInfo).port}/hook`);
  await enqueue(first.outbox, 'trigger', T0);
  await eventually(async () => (posted === 1 ? true : undefined), 20_000, 'the post to reach the receiver');
  await first.stop();
  const reopened = openSqliteStore(join(dir, 'c.db'));
  t.like(deliveries(reopened), [{ state: 'pending', attempts: 0 }]);
  reopened.close();
  t.notRegex(await first.registry.getSingleMetricAsString('driftwatch_collector_outbox_deliveries_total'), /outcome=/);

  const second = await setup(t, () => ({ status: 200 }), dir);
  await second.outbox.drain();
  t.is(second.rec.received.length, 1);
  t.like(deliveries(second.store), [{ state: 'delivered', attempts: 1 }]);
});
