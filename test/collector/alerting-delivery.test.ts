/**
 * What reaches on-call, edge by edge, inside a real collector with local recording receivers: one
 * rejected alert does not stop the Alertmanager re-sends of the others; storm control decides for
 * re-sends too; storm summaries close where they opened (when the storm ends, or through the API);
 * the acknowledge comment travels and re-sends carry it; settings that cannot work are refused.
 */
import test from 'ava';
import { loadCollectorConfig } from '../../collector/main.js';
import { ConfigError } from '../../runtime/config.js';
import { withCollector } from '../helpers/collector.js';
import { deviationOf, sendDeviations } from '../helpers/ingest.js';
import { startRecorder, type Recorder } from '../helpers/recorder.js';

const ROUTING_KEY = 'e93facc04764012d7bfb002500d5d1a6';
const quick = { maxAttempts: 1 };

async function api(base: string, method: string, path: string, body?: unknown) {
  const res = await fetch(`${base}${path}`, { method, headers: body === undefined ? {} : { 'content-type': 'application/json' }, body: body === undefined ? undefined : JSON.stringify(body) });
  return { status: res.status, body: (await res.json()) as any };
}

const bodies = (r: Recorder, path: string) => r.received.filter((x) => x.path === path).map((x) => JSON.parse(x.body) as any);
const amAlerts = (r: Recorder) => bodies(r, '/api/v2/alerts').map((b) => b[0]);

async function metric(base: string, line: RegExp): Promise<number | undefined> {
  const text = await (await fetch(`${base}/metrics`)).text();
  const m = new RegExp(`^${line.source} ([0-9.e+-]+)$`, 'm').exec(text);
  return m ? Number(m[1]) : undefined;
}

test('Alertmanager re-sends: one rejected alert is that alert\'s alone; it is retried with backoff and shown in its deliveries', async (t) => {
  let clock = Date.UTC(2026, 10, 23, 12, 0, 0);
  let poisoned = '';
  // The receiver refuses one alert, as Alertmanager refuses one whose times it does not accept.
  const rec = await startRecorder(t, (r) => (poisoned !== '' && r.body.includes(poisoned) ? { status: 400, body: 'start time must be before end time' } : { status: 200 }));
  const c = await withCollector(t, { sinks: [{ name: 'am', type: 'alertmanager', url: rec.url, retry: quick }] }, { now: () => clock });
  await sendDeviations(c.grpcPort, [1, 2, 3, 4].map((i) => deviationOf({ i, exe: `/usr/bin/tool-${i}` })));
  await c.alerting.drain();
  t.is(amAlerts(rec).length, 4);
  const alerts = (await api(c.url, 'GET', '/api/v1/alerts')).body.items as any[];
  // The newest goes first each round: the case where stopping at the first failure stopped them all.
  poisoned = alerts[0].id;

  clock += 60_000;
  rec.received.length = 0;
  t.is(await c.alerting.resendToAlertmanager(), 3, 'the three others are re-sent');
  // Tried first and refused, then the others, each on its own.
  t.deepEqual(amAlerts(rec).map((a) => a.labels.alert_id), alerts.map((a) => a.id));
  t.is(await metric(c.url, /driftwatch_collector_alertmanager_resends_total\{sink="am",outcome="rejected"\}/), 1);
  const d = (await api(c.url, 'GET', `/api/v1/alerts/${poisoned}`)).body.deliveries as any[];
  t.like(d[0], { sink: 'am', state: 'failed' });
  t.regex(d[0].lastError, /^re-send 1× failed: rejected/);

  // Right after, it waits for its backoff; the others go on.
  clock += 1000;
  rec.received.length = 0;
  t.is(await c.alerting.resendToAlertmanager(), 3);
  t.false(rec.received.some((r) => r.body.includes(poisoned)));
  t.is(await metric(c.url, /driftwatch_collector_alertmanager_resend_held_alerts\{sink="am",reason="backoff"\}/), 1);

  // Past its backoff it is tried again, and once accepted it is re-sent like the others.
  poisoned = `${poisoned}-fixed`; // no body contains it now
  clock += 3_600_000;
  rec.received.length = 0;
  t.is(await c.alerting.resendToAlertmanager(), 4);
});

test('storm control decides for re-sends: held alerts are never posted to Alertmanager, and the held gauge says how many', async (t) => {
  let clock = Date.UTC(2026, 10, 23, 12, 0, 0);
  const rec = await startRecorder(t);
  const c = await withCollector(t, { sinks: [{ name: 'am', type: 'alertmanager', url: rec.url, retry: quick }], alerting: { storm: { perImage: { max: 2, per: '5m' } } } }, { now: () => clock });
  await sendDeviations(c.grpcPort, Array.from({ length: 9 }, (_x, i) => deviationOf({ i, exe: `/tmp/payload-${i}` })));
  await c.alerting.drain();
  const first = amAlerts(rec);
  const triggers = first.filter((a) => a.labels.alertname === 'DriftwatchDeviation');
  t.is(triggers.length, 2);
  t.is(first.filter((a) => a.labels.alertname === 'DriftwatchStormControl').length, 1, 'one summary, with its own alertname');
  t.is(await metric(c.url, /driftwatch_collector_alerts_not_notified_total\{reason="storm"\}/), 7);

  clock += 60_000;
  rec.received.length = 0;
  t.is(await c.alerting.resendToAlertmanager(), 2, 'only what was notified is re-sent');
  t.deepEqual(amAlerts(rec).map((a) => a.labels.alert_id).sort(), triggers.map((a) => a.labels.alert_id).sort());
  t.is(await metric(c.url, /driftwatch_collector_alertmanager_resend_held_alerts\{sink="am",reason="storm"\}/), 7);
});

test('storm summaries close where they opened: PagerDuty gets the resolve when the storm window ends; the text reads as a summary', async (t) => {
  let clock = Date.UTC(2026, 10, 23, 12, 0, 0);
  const rec = await startRecorder(t, () => ({ status: 202, body: '{"status":"success"}' }));
  const c = await withCollector(t, { sinks: [{ name: 'pd', type: 'pagerduty', routingKey: ROUTING_KEY, url: `${rec.url}/pd`, retry: quick }], alerting: { storm: { perImage: { max: 1, per: '5m' } } } }, { now: () => clock });
  await sendDeviations(c.grpcPort, Array.from({ length: 4 }, (_x, i) => deviationOf({ i, exe: `/tmp/payload-${i}` })));
  await c.alerting.drain();
  const sent = bodies(rec, '/pd');
  const summary = sent.find((b) => b.payload?.class === 'storm');
  t.truthy(summary, 'a summary incident is opened');
  t.regex(summary.payload.summary, /^\[critical\] Driftwatch storm control: new alerts for docker\.io\/library\/nginx are not notified until 2026-11-23T12:05:00\.000Z/);
  t.notRegex(summary.payload.summary, /new process storm control/);
  t.false(sent.some((b) => b.event_action === 'resolve'), 'not resolved while the storm lasts');

  clock += 5 * 60_000 + 1000;
  await c.alerting.drain();
  const resolves = bodies(rec, '/pd').filter((b) => b.event_action === 'resolve');
  t.is(resolves.length, 1);
  t.is(resolves[0].dedup_key, summary.dedup_key);
});

test('a storm summary can be acknowledged and resolved through the API, with the comment; a second resolve is refused', async (t) => {
  const clock = Date.UTC(2026, 10, 23, 12, 0, 0);
  const rec = await startRecorder(t, (r) => ({ status: r.path === '/pd' ? 202 : 200, body: r.path === '/pd' ? '{"status":"success"}' : '' }));
  const c = await withCollector(
    t,
    { sinks: [{ name: 'pd', type: 'pagerduty', routingKey: ROUTING_KEY, url: `${rec.url}/pd`, retry: quick }, { name: 'hook', type: 'webhook', url: `${rec.url}/hook`, retry: quick }], alerting: { storm: { perImage: { max: 1, per: '5m' } } } },
    { now: () => clock },
  );
  await sendDeviations(c.grpcPort, Array.from({ length: 3 }, (_x, i) => deviationOf({ i, exe: `/tmp/payload-${i}` })));
  await c.alerting.drain();
  const summary = bodies(rec, '/hook').find((b) => b.alert.category === 'storm');
  t.truthy(summary);
  const ack = await api(c.url, 'POST', `/api/v1/alerts/${summary.alert.id}/acknowledge`, { comment: 'a deploy gone wrong, on it' });
  t.is(ack.status, 200);
  t.is(ack.body.state, 'acknowledged');
  const res = await api(c.url, 'POST', `/api/v1/alerts/${summary.alert.id}/resolve`, { comment: 'rolled back' });
  t.is(res.status, 200);
  t.is(res.body.state, 'resolved');
  await c.alerting.drain();
  const pd = bodies(rec, '/pd').filter((b) => b.dedup_key === bodies(rec, '/pd').find((x) => x.payload?.class === 'storm').dedup_key);
  t.deepEqual(pd.map((b) => b.event_action), ['trigger', 'acknowledge', 'resolve']);
  const hook = bodies(rec, '/hook').filter((b) => b.alert.id === summary.alert.id);
  t.like(hook.at(-1), { action: 'resolve', alert: { comment: 'rolled back', state: 'resolved' } });
  t.is((await api(c.url, 'POST', `/api/v1/alerts/${summary.alert.id}/resolve`, { comment: 'again' })).status, 409);
  t.is((await api(c.url, 'POST', '/api/v1/alerts/storm-0000000000000000-1/resolve', { comment: '' })).status, 404);
});

test('the acknowledge comment travels to the sinks, and Alertmanager re-sends carry the same annotations as the acknowledge post', async (t) => {
  let clock = Date.UTC(2026, 10, 23, 12, 0, 0);
  const rec = await startRecorder(t);
  const c = await withCollector(t, { sinks: [{ name: 'am', type: 'alertmanager', url: `${rec.url}`, retry: quick }, { name: 'hook', type: 'webhook', url: `${rec.url}/hook`, retry: quick }] }, { now: () => clock });
  await sendDeviations(c.grpcPort, [deviationOf({ i: 1 })]);
  await c.alerting.drain();
  const id = (await api(c.url, 'GET', '/api/v1/alerts')).body.items[0].id as string;
  clock += 1000;
  t.is((await api(c.url, 'POST', `/api/v1/alerts/${id}/acknowledge`, { comment: 'known: the nightly backup shells out' })).status, 200);
  await c.alerting.drain();
  t.like(bodies(rec, '/hook').at(-1), { action: 'acknowledge', alert: { comment: 'known: the nightly backup shells out', state: 'acknowledged' } });
  const ackPost = amAlerts(rec).at(-1);
  t.like(ackPost.annotations, { acknowledged_by: 'anonymous', comment: 'known: the nightly backup shells out' });

  for (let round = 0; round < 2; round++) {
    clock += 60_000;
    t.is(await c.alerting.resendToAlertmanager(), 1);
    const resend = amAlerts(rec).at(-1);
    t.deepEqual(resend.labels, ackPost.labels);
    const { last_seen: _a, ...annotations } = resend.annotations;
    const { last_seen: _b, ...expected } = ackPost.annotations;
    t.deepEqual(annotations, expected);
  }
});

test('config: settings that cannot work stop startup, naming both settings', (t) => {
  const base = { db: 'x.db', insecure: true };
  const zero = t.throws(() => loadCollectorConfig({ ...base, alerting: { alertmanagerResend: '0s' } }, {}), { instanceOf: ConfigError });
  t.is(zero?.key, 'alerting.alertmanagerResend');
  t.regex(zero!.message, /at least 10s/);
  const flap = t.throws(() => loadCollectorConfig({ ...base, sinks: [{ name: 'am', type: 'alertmanager', url: 'http://127.0.0.1:9093', firingTimeout: '2m' }], alerting: { alertmanagerResend: '1m' } }, {}), { instanceOf: ConfigError });
  t.is(flap?.key, 'sinks.0.firingTimeout');
  t.regex(flap!.message, /alerting\.alertmanagerResend \(60s\)/);
  t.notThrows(() => loadCollectorConfig({ ...base, sinks: [{ name: 'am', type: 'alertmanager', url: 'http://127.0.0.1:9093', firingTimeout: '5m' }], alerting: { alertmanagerResend: '1m' } }, {}));
});
