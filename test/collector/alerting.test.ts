/**
 * Alerting end to end inside a real collector: deviations in over gRPC, notifications out over HTTP
 * to local servers that record what they received (PagerDuty, Alertmanager and webhook stand-ins),
 * life-cycle changes and exceptions through the HTTP API, the outbox across a restart.
 */
import test from 'ava';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { WebSocket } from 'ws';
import { matchesAlert, routeAlert, AlertingConfigSchema } from '../../collector/alerting/config.js';
import { loadCollectorConfig, type CollectorHandle } from '../../collector/main.js';
import { ConfigError } from '../../runtime/config.js';
import { withCollector, type TestCollectorOptions } from '../helpers/collector.js';
import { deviationOf, sendDeviations } from '../helpers/ingest.js';
import { loadSpec } from '../helpers/openapi.js';
import { startRecorder, type Received, type Recorder } from '../helpers/recorder.js';
import { eventually } from '../helpers/processes.js';

const ROUTING_KEY = 'e93facc04764012d7bfb002500d5d1a6';
const pdSpec = loadSpec('pagerduty-events-v2-openapi.json');
const pdSchema = pdSpec.at('#/paths/~1enqueue/post/requestBody/content/application~1json/schema');
const amSpec = loadSpec('alertmanager-v2-openapi.yaml');
const amSchema = (amSpec.at('#/paths/~1alerts/post/parameters') as { in: string; schema: unknown }[]).find((p) => p.in === 'body')!.schema;

const quick = { maxAttempts: 1 };

interface Setup {
  c: CollectorHandle;
  dir: string;
  url: string;
}

async function collector(t: import('ava').ExecutionContext, settings: Record<string, unknown>, options: TestCollectorOptions = {}): Promise<Setup> {
  const c = await withCollector(t, settings, options);
  return { c, dir: c.dir, url: c.url };
}

async function api(base: string, method: string, path: string, body?: unknown, headers: Record<string, string> = {}) {
  const res = await fetch(`${base}${path}`, {
    method,
    headers: body === undefined ? headers : { 'content-type': 'application/json', ...headers },
    body: body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body),
  });
  return { status: res.status, body: (await res.json()) as any };
}

const bodies = (r: Recorder, path?: string) => r.received.filter((x: Received) => path === undefined || x.path === path).map((x) => JSON.parse(x.body) as any);

test('severity, routes and owners decide who is told: a shell pages PagerDuty as critical, an in-cluster peer goes to the default receiver as low', async (t) => {
  const rec = await startRecorder(t, (r) => ({ status: r.path === '/pd' ? 202 : 200, body: r.path === '/pd' ? '{"status":"success","dedup_key":"x"}' : '' }));
  const { c, url } = await collector(t, {
    sinks: [
      { name: 'pd', type: 'pagerduty', routingKey: ROUTING_KEY, url: `${rec.url}/pd`, retry: quick },
      { name: 'hook', type: 'webhook', url: `${rec.url}/hook`, retry: quick },
      { name: 'am', type: 'alertmanager', url: rec.url, retry: quick },
    ],
    alerting: {
      routes: [
        { match: { severity: 'high' }, receivers: ['pd'], continue: true },
        { match: { namespace: ['shop'] }, receivers: ['hook'] },
      ],
      defaultReceivers: ['am'],
      owners: [{ match: { namespace: ['shop'] }, team: 'storefront' }],
    },
    publicUrl: 'https://driftwatch.example.com',
  });
  await sendDeviations(c.grpcPort, [deviationOf({ i: 1 }), deviationOf({ i: 2, namespace: 'billing', image: 'docker.io/acme/api', peer: 'cluster', port: 8080 })]);
  await c.alerting.drain();

  const alerts = (await api(url, 'GET', '/api/v1/alerts')).body.items as any[];
  const shell = alerts.find((a) => a.kind === 'exec');
  const peer = alerts.find((a) => a.kind === 'connect');
  t.like(shell, { severity: 'critical', rule: { id: 'shell-where-none' }, team: 'storefront', namespace: 'shop', receivers: ['pd', 'hook'] });
  t.like(peer, { severity: 'low', rule: { id: 'new-cluster-peer' }, team: '', receivers: ['am'] });

  const [pd] = bodies(rec, '/pd');
  t.deepEqual(pdSpec.validate(pdSchema, pd), []);
  t.like(pd, { routing_key: ROUTING_KEY, event_action: 'trigger', payload: { severity: 'critical' } });
  t.regex(pd.dedup_key, new RegExp(shell.id));
  t.is(bodies(rec, '/hook')[0].alert.id, shell.id);
  const [am] = bodies(rec, '/api/v2/alerts');
  t.deepEqual(amSpec.validate(amSchema, am), []);
  t.is(am[0].labels.severity, 'low');
  t.is(am[0].generatorURL, `https://driftwatch.example.com/api/v1/alerts/${peer.id}`);
  t.is(rec.received.length, 3, 'one notification per receiver, nothing else');

  const detail = (await api(url, 'GET', `/api/v1/alerts/${shell.id}`)).body;
  t.deepEqual(
    detail.deliveries.map((d: any) => [d.sink, d.action, d.state, d.attempts]).sort(),
    [['hook', 'trigger', 'delivered', 1], ['pd', 'trigger', 'delivered', 1]],
  );
  const metrics = await (await fetch(`${url}/metrics`)).text();
  t.regex(metrics, /driftwatch_collector_outbox_deliveries_total\{sink="pd",outcome="delivered"\} 1/);
  t.regex(metrics, /driftwatch_collector_outbox_pending 0/);
});

test('acknowledge and resolve reach PagerDuty with the trigger\'s dedup key; impossible changes are refused with 409', async (t) => {
  const rec = await startRecorder(t, () => ({ status: 202, body: '{"status":"success"}' }));
  const { c, url } = await collector(t, { sinks: [{ name: 'pd', type: 'pagerduty', routingKey: ROUTING_KEY, url: rec.url, retry: quick }] });
  await sendDeviations(c.grpcPort, [deviationOf({ i: 1, exe: '/usr/bin/curl', args: 'http://evil.example' })]);
  const [alert] = (await api(url, 'GET', '/api/v1/alerts')).body.items;
  t.is(alert.severity, 'high');

  const acked = await api(url, 'POST', `/api/v1/alerts/${alert.id}/acknowledge`, { comment: 'looking' });
  t.is(acked.status, 200);
  t.like(acked.body, { state: 'acknowledged', stateChange: { by: 'anonymous', comment: 'looking' } });
  t.is((await api(url, 'POST', `/api/v1/alerts/${alert.id}/acknowledge`)).status, 409);
  t.is((await api(url, 'POST', `/api/v1/alerts/${alert.id}/resolve`)).body.state, 'resolved');
  const again = await api(url, 'POST', `/api/v1/alerts/${alert.id}/acknowledge`);
  t.is(again.status, 409);
  t.regex(again.body.error.message, /resolved; it cannot become acknowledged/);
  await c.alerting.drain();

  const sent = bodies(rec);
  t.deepEqual(sent.map((b) => b.event_action), ['trigger', 'acknowledge', 'resolve']);
  t.is(new Set(sent.map((b) => b.dedup_key)).size, 1);
  t.true(sent.every((b) => b.routing_key === ROUTING_KEY && pdSpec.validate(pdSchema, b).length === 0));

  const audit = (await api(url, 'GET', '/api/v1/audit')).body.items as any[];
  t.deepEqual(audit.map((e) => [e.action, e.target, e.before?.state, e.after?.state]).reverse(), [
    ['alert.acknowledge', alert.id, 'firing', 'acknowledged'],
    ['alert.resolve', alert.id, 'acknowledged', 'resolved'],
  ]);
  t.is(audit[1].after.stateComment, 'looking');
  t.is((await api(url, 'POST', '/api/v1/alerts/0123456789abcdef/resolve')).status, 404);
  t.is((await api(url, 'POST', `/api/v1/alerts/${alert.id}/explode`)).status, 404);
  t.is((await api(url, 'POST', `/api/v1/alerts/${alert.id}/accept`, '{"comment":')).status, 400);
  t.is((await api(url, 'POST', `/api/v1/alerts/${alert.id}/accept`, { comment: 'x', extra: 1 })).status, 400);
  t.is((await api(url, 'POST', `/api/v1/alerts/${alert.id}/accept`, 'comment=x', { 'content-type': 'text/plain' })).status, 415);
  t.is((await api(url, 'POST', `/api/v1/alerts/${alert.id}/accept`, { comment: 'x'.repeat(20_000) })).status, 413);
});

test('outbox: a notification for a sink that is down waits through a collector restart and is delivered once when the sink is back', async (t) => {
  let up = false;
  const rec = await startRecorder(t, () => (up ? { status: 200 } : { status: 503 }));
  const dir = mkdtempSync(join(tmpdir(), 'dw-outbox-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const settings = {
    sinks: [{ name: 'hook', type: 'webhook', url: rec.url, retry: quick }],
    alerting: { outbox: { baseDelay: '50ms', maxDelay: '200ms' } },
  };
  const first = await collector(t, settings, { dir });
  await sendDeviations(first.c.grpcPort, [deviationOf({ i: 1 })]);
  const [alert] = (await api(first.url, 'GET', '/api/v1/alerts')).body.items;
  const failing = await eventually(async () => {
    const d = (await api(first.url, 'GET', `/api/v1/alerts/${alert.id}`)).body.deliveries[0];
    return d?.attempts >= 2 ? d : undefined;
  });
  t.like(failing, { sink: 'hook', state: 'pending' });
  t.regex(failing.lastError, /^unavailable: /);
  await first.c.stop();

  up = true;
  const second = await collector(t, settings, { dir });
  const delivered = await eventually(async () => {
    const d = (await api(second.url, 'GET', `/api/v1/alerts/${alert.id}`)).body.deliveries[0];
    return d?.state === 'delivered' ? d : undefined;
  });
  t.true(delivered.attempts >= 3);
  await second.c.alerting.drain();
  const ok = rec.received.filter((_r, i) => i >= rec.received.length - 1);
  t.is(JSON.parse(ok[0]!.body).alert.id, alert.id);
  t.is(rec.received.filter((r) => r.headers['x-driftwatch-delivery']).length, rec.received.length);
  t.is(new Set(rec.received.map((r) => r.headers['x-driftwatch-delivery'])).size, 1, 'every attempt is the same delivery');
});

test('exceptions: covered deviations are stored and shown as suppressed but not notified; the owner is told before expiry; then it alerts again', async (t) => {
  let clock = Date.UTC(2026, 10, 23, 12, 0, 0);
  const rec = await startRecorder(t);
  const { c, url } = await collector(
    t,
    { sinks: [{ name: 'hook', type: 'webhook', url: rec.url, retry: quick }], alerting: { owners: [{ match: { namespace: ['shop'] }, team: 'storefront', receivers: ['hook'] }] } },
    { now: () => clock },
  );
  const created = await api(url, 'POST', '/api/v1/exceptions', { key: 'docker.io/library/nginx', entry: '/bin/sh -c *', reason: 'legacy health check runs sh', owner: 'storefront', expiresIn: '10d' });
  t.is(created.status, 201);
  t.like(created.body, { status: 'active', owner: 'storefront', createdBy: 'anonymous', match: { key: 'docker.io/library/nginx', entry: '/bin/sh -c *', namespace: null } });

  await sendDeviations(c.grpcPort, [deviationOf({ i: 1 })]);
  await c.alerting.drain();
  const [alert] = (await api(url, 'GET', '/api/v1/alerts')).body.items;
  t.is(alert.suppressedBy, created.body.id);
  t.is(await c.store.countDeviations(), 1, 'stored');
  t.is(rec.received.length, 0, 'not notified');

  clock += 4 * 86_400_000; // 6 days left: inside the 7-day reminder window
  t.is(await c.alerting.remindExpiringExceptions(), 1);
  t.is(await c.alerting.remindExpiringExceptions(), 0, 'told once');
  await c.alerting.drain();
  const reminder = bodies(rec)[0];
  t.like(reminder, { version: 'driftwatch.notice/v1', kind: 'exception-expiring', team: 'storefront', title: `Exception ${created.body.id} expires 2026-12-03T12:00:00.000Z` });
  t.true(reminder.lines.includes('reason: legacy health check runs sh'));
  t.is(rec.received[0]!.headers['x-driftwatch-event'], 'notice');

  clock += 7 * 86_400_000; // expired
  t.is((await api(url, 'GET', `/api/v1/exceptions/${created.body.id}`)).body.status, 'expired');
  t.is(await c.alerting.remindExpiringExceptions(), 0);
  await sendDeviations(c.grpcPort, [deviationOf({ i: 2 })]);
  await c.alerting.drain();
  const after = (await api(url, 'GET', `/api/v1/alerts/${alert.id}`)).body;
  t.is(after.suppressedBy, null);
  t.is(after.count, 2);
  t.deepEqual(bodies(rec).map((b) => b.action ?? b.kind), ['exception-expiring', 'trigger']);
  t.is(bodies(rec)[1].alert.id, alert.id, 'the alert itself fires once the exception no longer covers it');

  // The team's digest lists what is open for it.
  t.is(await c.alerting.sendDigests(), 1);
  await c.alerting.drain();
  const digest = bodies(rec)[2];
  t.like(digest, { kind: 'digest', team: 'storefront', title: 'Driftwatch daily digest for storefront: 1 open alert, 0 new' });
  t.regex(digest.lines[0], /^\[CRITICAL\] docker\.io\/library\/nginx: \/bin\/sh -c id \(parent nginx, root\) — 2×/);

  const revoked = await api(url, 'DELETE', `/api/v1/exceptions/${created.body.id}`);
  t.like(revoked.body, { status: 'revoked', revokedBy: 'anonymous' });
  t.is((await api(url, 'DELETE', `/api/v1/exceptions/${created.body.id}`)).status, 409);
  t.deepEqual((await api(url, 'GET', '/api/v1/exceptions?status=active')).body.items, []);

  // From an alert: exactly its key and entry, glob characters taken literally.
  const fromAlert = await api(url, 'POST', '/api/v1/exceptions', { alert: alert.id, namespace: 'shop', reason: 'ok', owner: 'storefront', expiresAt: new Date(clock + 86_400_000).toISOString() });
  t.is(fromAlert.status, 201);
  t.deepEqual(fromAlert.body.match, { key: 'docker.io/library/nginx', entry: '/bin/sh -c id (parent nginx, root)', namespace: 'shop' });
  const bad = async (body: unknown) => (await api(url, 'POST', '/api/v1/exceptions', body)).body.error?.message as string;
  t.regex(await bad({ reason: 'r', owner: 'o', expiresIn: '1d' }), /give what it matches/);
  t.regex(await bad({ key: 'x', reason: 'r', owner: 'o' }), /exactly one of expiresAt and expiresIn/);
  t.regex(await bad({ key: 'x', reason: 'r', owner: 'o', expiresIn: '2000d' }), /at most 366 days/);
  t.regex(await bad({ key: 'x', reason: 'r', owner: 'o', expiresAt: '2020-01-01T00:00:00Z' }), /in the future/);
  t.regex(await bad({ key: 'x', reason: 'line\nbreak', owner: 'o', expiresIn: '1d' }), /reason/);
});

test('storm control: past the per-image rate, alerts are stored but not notified, and one summary says so', async (t) => {
  const rec = await startRecorder(t);
  // A clock inside one window: windows are aligned (12:00–12:05), and the wall clock may cross into the next mid-test.
  const clock = Date.UTC(2026, 10, 23, 12, 1, 0);
  const { c, url } = await collector(t, { sinks: [{ name: 'hook', type: 'webhook', url: rec.url, retry: quick }], alerting: { storm: { perImage: { max: 3, per: '5m' } } } }, { now: () => clock });
  const storm = Array.from({ length: 10 }, (_x, i) => deviationOf({ i, exe: `/tmp/payload-${i}` }));
  await sendDeviations(c.grpcPort, [...storm, deviationOf({ i: 20, image: 'docker.io/acme/other' })]);
  await c.alerting.drain();
  const all = (await api(url, 'GET', '/api/v1/alerts?limit=100')).body.items as any[];
  t.is(all.length, 11, 'every alert is stored');
  const sent = bodies(rec);
  const triggers = sent.filter((b) => b.alert.rule.id !== 'storm-control');
  const summaries = sent.filter((b) => b.alert.rule.id === 'storm-control');
  t.is(triggers.filter((b) => b.alert.image === 'docker.io/library/nginx').length, 3);
  t.is(triggers.filter((b) => b.alert.image === 'docker.io/acme/other').length, 1, 'another image is not held back');
  t.is(summaries.length, 1);
  t.regex(summaries[0].alert.summary, /storm control: too many new alerts for docker\.io\/library\/nginx/);
  const held = all.filter((a) => !triggers.some((b) => b.alert.id === a.id));
  t.is(held.length, 7);
  const d = (await api(url, 'GET', `/api/v1/alerts/${held[0].id}`)).body.deliveries;
  t.like(d[0], { state: 'skipped' });
  t.regex(d[0].lastError, /^storm: /);
});

test('accepting an alert teaches the cluster-wide baseline (its deviations are dropped); a resolved alert fires again when its behaviour returns', async (t) => {
  const rec = await startRecorder(t);
  const { c, url } = await collector(t, { sinks: [{ name: 'hook', type: 'webhook', url: rec.url, retry: quick }] });
  await sendDeviations(c.grpcPort, [deviationOf({ i: 1 }), deviationOf({ i: 2, exe: '/usr/bin/wget', args: '-q x' })]);
  const alerts = (await api(url, 'GET', '/api/v1/alerts')).body.items as any[];
  const shell = alerts.find((a) => a.process.exe === '/bin/sh');
  const wget = alerts.find((a) => a.process.exe === '/usr/bin/wget');
  t.is((await api(url, 'POST', `/api/v1/alerts/${shell.id}/accept`, { comment: 'entrypoint script' })).body.state, 'accepted');
  t.is((await api(url, 'POST', `/api/v1/alerts/${wget.id}/resolve`)).body.state, 'resolved');

  const ack = await sendDeviations(c.grpcPort, [deviationOf({ i: 3 }), deviationOf({ i: 4, exe: '/usr/bin/wget', args: '-q x' })], 'node-1', 2);
  t.like(ack, { stored: 1, duplicates: 0 });
  t.is((await api(url, 'GET', `/api/v1/alerts/${shell.id}`)).body.count, 1, 'the accepted entry no longer counts');
  const back = (await api(url, 'GET', `/api/v1/alerts/${wget.id}`)).body;
  t.like(back, { state: 'firing', count: 2, stateChange: { by: '' } });
  await c.alerting.drain();
  t.deepEqual(
    bodies(rec).map((b) => [b.alert.entry.exe, b.action]),
    [['/bin/sh', 'trigger'], ['/usr/bin/wget', 'trigger'], ['/bin/sh', 'resolve'], ['/usr/bin/wget', 'resolve'], ['/usr/bin/wget', 'trigger']],
  );
  t.regex(await (await fetch(`${url}/metrics`)).text(), /driftwatch_collector_deviations_total\{outcome="known"\} 1/);
});

test('config: a route to a sink that does not exist stops startup naming the field', (t) => {
  const err = t.throws(() => loadCollectorConfig({ db: 'x.db', insecure: true, sinks: [{ name: 'hook', type: 'webhook', url: 'http://127.0.0.1:1/' }], alerting: { routes: [{ receivers: ['pager'] }] } }, {}), { instanceOf: ConfigError });
  t.is(err?.key, 'alerting.routes.0.receivers.0');
  t.regex(err!.message, /no sink is named pager; configured: hook/);
  const cron = t.throws(() => loadCollectorConfig({ db: 'x.db', insecure: true, alerting: { retentionSchedule: 'every day' } }, {}), { instanceOf: ConfigError });
  t.is(cron?.key, 'alerting.retentionSchedule');
});

test('routing: first matching route wins unless it continues; labels must all match; severity is a minimum', (t) => {
  const config = AlertingConfigSchema.parse({
    routes: [
      { match: { labels: { team: 'pay', tier: 'web' } }, receivers: ['pay'], continue: true },
      { match: { severity: 'high' }, receivers: ['pd'] },
      { match: { image: ['docker.io/acme/*'] }, receivers: ['acme'] },
    ],
  });
  const a = (over: Partial<Parameters<typeof matchesAlert>[1]>) => ({ baselineKey: 'docker.io/library/nginx', namespace: 'shop', labels: {}, severity: 'medium' as const, ...over });
  t.deepEqual(routeAlert(config, ['default'], a({})), ['default']);
  t.deepEqual(routeAlert(config, ['default'], a({ severity: 'critical' })), ['pd']);
  t.deepEqual(routeAlert(config, ['default'], a({ labels: { team: 'pay', tier: 'web' }, severity: 'high' })), ['pay', 'pd']);
  t.deepEqual(routeAlert(config, ['default'], a({ labels: { team: 'pay' }, severity: 'low' })), ['default']);
  t.deepEqual(routeAlert(config, ['default'], a({ baselineKey: 'docker.io/acme/api', severity: 'high' })), ['pd']);
  t.deepEqual(routeAlert(config, ['default'], a({ baselineKey: 'docker.io/acme/api', severity: 'low' })), ['acme']);
  t.false(matchesAlert({ severity: 'high' }, a({ severity: 'medium' })));
});

test('live feed: a deviation ingested over gRPC appears on /api/v1/stream as a new alert with its severity, then its state change', async (t) => {
  const { c, url } = await collector(t, {});
  const ws = new WebSocket(`${url.replace('http', 'ws')}/api/v1/stream?severity=high`);
  const frames: any[] = [];
  ws.on('message', (data) => frames.push(JSON.parse(String(data))));
  await new Promise((resolve, reject) => ws.once('open', resolve).once('error', reject));
  t.teardown(() => ws.close());
  await eventually(() => (frames.length > 0 ? true : undefined));
  await sendDeviations(c.grpcPort, [deviationOf({ i: 1 }), deviationOf({ i: 2, peer: 'cluster', port: 5432 })]);
  const created = await eventually(() => frames.find((f) => f.type === 'alert.created'));
  t.like(created.alert, { severity: 'critical', kind: 'exec', state: 'firing' });
  await api(url, 'POST', `/api/v1/alerts/${created.alert.id}/acknowledge`);
  const changed = await eventually(() => frames.find((f) => f.type === 'alert.state'));
  t.like(changed.alert, { id: created.alert.id, state: 'acknowledged' });
  t.false(frames.some((f) => f.alert?.severity === 'low'), 'the low in-cluster peer is filtered out');
});

test('Alertmanager: open alerts are re-sent each round, resolved ones with endsAt for a while, then no more', async (t) => {
  let clock = Date.UTC(2026, 10, 23, 12, 0, 0);
  const rec = await startRecorder(t);
  const { c, url } = await collector(t, { sinks: [{ name: 'am', type: 'alertmanager', url: rec.url, retry: quick }], alerting: { alertmanagerResolvedFor: '15m' } }, { now: () => clock });
  await sendDeviations(c.grpcPort, [deviationOf({ i: 1 }), deviationOf({ i: 2, exe: '/usr/bin/wget', args: '-q x' })]);
  await c.alerting.drain();
  t.is(rec.received.length, 2, 'one trigger each');
  const alerts = (await api(url, 'GET', '/api/v1/alerts')).body.items as any[];
  const wget = alerts.find((a) => a.process.exe === '/usr/bin/wget');
  await api(url, 'POST', `/api/v1/alerts/${wget.id}/resolve`);
  await c.alerting.drain();

  clock += 60_000;
  t.is(await c.alerting.resendToAlertmanager(), 2, 'the firing one and the just-resolved one');
  const round = bodies(rec).slice(-2).map((b) => b[0]);
  t.true(round.every((a) => amSpec.validate(amSchema, [a]).length === 0));
  const resolved = round.find((a) => a.labels.alert_id === wget.id);
  const firing = round.find((a) => a.labels.alert_id !== wget.id);
  t.truthy(resolved.endsAt, 'resolved: endsAt set');
  t.true(Date.parse(resolved.endsAt) <= clock);
  t.falsy(firing.endsAt, 'firing: no endsAt (no firingTimeout configured)');

  clock += 16 * 60_000;
  t.is(await c.alerting.resendToAlertmanager(), 1, 'past alertmanagerResolvedFor the resolved one is not sent again');
  t.is(bodies(rec).at(-1)[0].labels.alert_id, firing.labels.alert_id);
});

test('retention: old deviations and long-closed alerts are deleted; open alerts keep their summary', async (t) => {
  let clock = Date.UTC(2026, 10, 23, 12, 0, 0);
  const { c, url } = await collector(t, { alerting: { deviationRetention: '7d', alertRetention: '30d' } }, { now: () => clock });
  await sendDeviations(c.grpcPort, [deviationOf({ i: 1 }), deviationOf({ i: 2, exe: '/usr/bin/wget', args: '-q x' })]);
  const alerts = (await api(url, 'GET', '/api/v1/alerts')).body.items as any[];
  const wget = alerts.find((a) => a.process.exe === '/usr/bin/wget');
  await api(url, 'POST', `/api/v1/alerts/${wget.id}/resolve`);
  clock += 8 * 86_400_000;
  t.like(await c.alerting.prune(), { deviations: 2, alerts: 0 });
  t.is(await c.store.countDeviations(), 0);
  t.is((await api(url, 'GET', '/api/v1/alerts')).body.items.length, 2, 'alerts keep their summary after their deviations go');
  clock += 30 * 86_400_000;
  t.like(await c.alerting.prune(), { deviations: 0, alerts: 1 });
  const left = (await api(url, 'GET', '/api/v1/alerts')).body.items as any[];
  t.deepEqual(left.map((a) => a.state), ['firing'], 'the open alert stays, however old');
});
