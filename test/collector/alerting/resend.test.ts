/**
 * The Alertmanager re-send on its own, over a real SQLite store, a real Alertmanager sink posting to
 * a local recording server, and a clock the test moves: a receiver that fails once between successes
 * fails that alert alone (it backs off); a receiver that is down stops the round and blames no
 * alert; silent nodes are re-sent to the default receivers with the open alerts until they are back.
 */
import test from 'ava';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { Registry } from 'prom-client';
import { createAlertingMetrics } from '../../../collector/alerting/metrics.js';
import { createNodeSilence } from '../../../collector/alerting/node-silence.js';
import { createResend } from '../../../collector/alerting/resend.js';
import { createSinks, parseSinksConfig } from '../../../collector/sinks/index.js';
import { asAsync } from '../../../collector/store/async.js';
import { openSqliteStore } from '../../../collector/store/sqlite/index.js';
import type { AlertPolicy } from '../../../collector/alerting/alert.js';
import { deviationOf } from '../../helpers/ingest.js';
import { startRecorder, type Received, type Reply } from '../../helpers/recorder.js';

const T0 = Date.UTC(2026, 11, 1, 12, 0, 0);

/** Every alert goes to the `am` sink and is notified there (a pending trigger in the outbox). */
const policy: AlertPolicy = {
  decide: () => ({ severity: 'high', ruleId: 'test', ruleReason: 'test', team: '', receivers: ['am'] }),
  exceptionFor: () => '',
  notify: (alert) => [{ alert: alert.fingerprint, sink: 'am', action: 'trigger', body: '{}', state: 'pending', lastError: '' }],
};

async function setup(t: import('ava').ExecutionContext, reply: (r: Received) => Reply) {
  const dir = mkdtempSync(join(tmpdir(), 'dw-resend-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const rec = await startRecorder(t, reply);
  const store = openSqliteStore(join(dir, 'c.db'));
  t.teardown(() => store.close());
  const clock = { t: T0 };
  const registry = new Registry();
  const sinks = createSinks(parseSinksConfig({ sinks: [{ name: 'am', type: 'alertmanager', url: rec.url, retry: { maxAttempts: 1 } }, { name: 'hook', type: 'webhook', url: `${rec.url}/hook` }] }));
  const abort = new AbortController();
  t.teardown(() => abort.abort());
  // The jobs use the store as every consumer does, asynchronously; the test writes and reads it directly.
  const slices = asAsync(store);
  const metrics = createAlertingMetrics(registry, slices);
  const logger = pino({ level: 'silent' });
  const silence = createNodeSilence({ store: slices, outbox: { enqueue: async (items) => store.enqueue(items, clock.t) }, receivers: ['am'], publicUrl: '', metrics, logger, now: () => clock.t });
  const resend = createResend({
    store: slices,
    sinks,
    config: { alertmanagerResolvedFor: 900_000 },
    defaults: ['am'],
    silentNodes: silence.firing,
    backoff: (failures) => 10_000 * failures,
    signal: abort.signal,
    publicUrl: '',
    metrics,
    logger,
    now: () => clock.t,
  });
  store.ingest('node-1', [1, 2, 3, 4].map((i) => deviationOf({ i, exe: `/usr/bin/tool-${i}` })), [], T0 - 60_000, policy);
  const ids = store.listAlerts({ limit: 10 }).items.map((a) => a.fingerprint);
  const metric = async (name: string) => registry.getSingleMetricAsString(name);
  return { rec, store, clock, resend, silence, ids, metric };
}

/** The alert ids posted to Alertmanager, in order. */
const posted = (received: Received[]) => received.filter((r) => r.path === '/api/v2/alerts').map((r) => JSON.parse(r.body)[0].labels.alert_id as string);

test('one failure between successes is that alert\'s: it backs off, the others are re-sent', async (t) => {
  let failing = '';
  const { rec, clock, resend, ids, metric } = await setup(t, (r) => (failing !== '' && r.body.includes(failing) ? { status: 503 } : { status: 200 }));
  failing = ids[1]!;
  t.is(await resend(), 3);
  t.deepEqual(posted(rec.received), ids);
  t.regex(await metric('driftwatch_collector_alertmanager_resends_total'), /outcome="rejected"} 1$/m);

  rec.received.length = 0;
  failing = '';
  clock.t += 1000;
  t.is(await resend(), 3, 'it waits its backoff');
  t.false(posted(rec.received).includes(ids[1]!));
  t.regex(await metric('driftwatch_collector_alertmanager_resend_held_alerts'), /reason="backoff"} 1$/m);
  clock.t += 10_000;
  t.is(await resend(), 4);
});

test('a receiver that is down stops the round after two failures in a row; when it is back, the next round re-sends every open alert', async (t) => {
  let up = false;
  const { rec, store, clock, resend, ids, metric } = await setup(t, () => (up ? { status: 200 } : { status: 503 }));
  t.is(await resend(), 0);
  t.deepEqual(posted(rec.received), ids.slice(0, 2), 'the rest waits for the next round');
  t.regex(await metric('driftwatch_collector_alertmanager_resends_total'), /outcome="unavailable"} 1$/m);
  t.notRegex(await metric('driftwatch_collector_alertmanager_resends_total'), /outcome="rejected"/, 'no alert is blamed');
  t.false(store.deliveriesOf(ids[0]!).some((d) => d.state === 'failed'));

  up = true;
  rec.received.length = 0;
  clock.t += 1000;
  t.is(await resend(), 4, 'none waits a backoff');
  t.deepEqual(posted(rec.received), ids);
});

test('a silent node is re-sent to the default receivers with the open alerts until it is back', async (t) => {
  const { rec, clock, resend, silence, ids } = await setup(t, () => ({ status: 200 }));
  await silence.nodeSilent('node-9', T0 - 600_000);
  clock.t += 60_000;
  t.is(await resend(), 5);
  const [node] = rec.received.filter((r) => r.body.includes('agent-silent/node-9')).map((r) => JSON.parse(r.body)[0]);
  t.like(node, { labels: { node: 'node-9' } });
  t.deepEqual(posted(rec.received).slice(0, 4), ids);

  await silence.nodeBack('node-9', clock.t);
  rec.received.length = 0;
  t.is(await resend(), 4);
  t.false(rec.received.some((r) => r.body.includes('node-9')));
});

test('a receiver that fails on the last alert of a round, with no success after it, blames nobody: the next round tries it again at once', async (t) => {
  let failing = '';
  const { rec, store, clock, resend, ids, metric } = await setup(t, (r) => (failing !== '' && r.body.includes(failing) ? { status: 503 } : { status: 200 }));
  failing = ids[3]!;
  t.is(await resend(), 3);
  t.notRegex(await metric('driftwatch_collector_alertmanager_resends_total'), /outcome="rejected"/, 'no alert is blamed');
  t.regex(await metric('driftwatch_collector_alertmanager_resends_total'), /outcome="unavailable"} 1$/m);
  t.false(store.deliveriesOf(ids[3]!).some((d) => d.state === 'failed'));

  failing = '';
  rec.received.length = 0;
  clock.t += 1000;
  t.is(await resend(), 4, 'no backoff held the last one');
  t.deepEqual(posted(rec.received), ids);
});
