import test from 'ava';
import {
  AlertmanagerConfigSchema,
  alertmanagerAlertsUrl,
  buildAlertmanagerPayload,
  createAlertmanagerSink,
  isValidLabelName,
  type AlertmanagerConfig,
} from '../../../collector/sinks/alertmanager.js';
import { DeliveryError } from '../../../collector/sinks/http.js';
import { T_FIRST, egressNotification, shellNotification } from '../../helpers/notification.js';
import { loadSpec } from '../../helpers/openapi.js';
import { startRecorder } from '../../helpers/recorder.js';

const spec = loadSpec('alertmanager-v2-openapi.yaml');
// The body parameter of POST /alerts, as the spec declares it (a $ref to definitions.postableAlerts).
const postSchema = (spec.at('#/paths/~1alerts/post/parameters') as { in: string; schema: unknown }[]).find((p) => p.in === 'body')!.schema;

/** The spec's schema, plus the Prometheus label-name rule the spec's labelSet does not state. */
function violations(body: unknown): string[] {
  const errors = spec.validate(postSchema, body);
  for (const alert of body as { labels?: Record<string, string> }[]) {
    for (const name of Object.keys(alert.labels ?? {})) if (!isValidLabelName(name)) errors.push(`invalid label name ${name}`);
  }
  return errors;
}

const json = (x: unknown) => JSON.parse(JSON.stringify(x)) as Record<string, unknown>[];
const base = { alertname: 'DriftwatchDeviation', labels: { cluster: 'prod-eu' }, firingTimeout: undefined };

function config(url: string, extra: Record<string, unknown> = {}): AlertmanagerConfig {
  return AlertmanagerConfigSchema.parse({ type: 'alertmanager', name: 'am', url, retry: { baseDelay: 5, maxDelay: 10 }, ...extra });
}

test('the spec checker catches what it should (it can fail)', (t) => {
  t.deepEqual(violations([{ labels: { a: 'b' } }]), []);
  t.true(violations([{ annotations: {} }]).some((e) => e.includes("must have required property 'labels'")));
  t.true(violations([{ labels: { a: 1 } }]).some((e) => e.includes('$.0.labels.a: must be string')));
  t.true(violations([{ labels: {}, startsAt: 'now' }]).some((e) => e.includes('date-time')));
  t.true(violations([{ labels: { 'bad-name': 'x' } }]).some((e) => e.includes('invalid label name')));
  t.true(violations([{ labels: { __reserved: 'x' } }]).some((e) => e.includes('invalid label name')));
  t.true(spec.validate(postSchema, { labels: {} }).some((e) => e.includes('must be array')));
});

test('firing alert: valid per the spec, identifying labels, context in annotations, no endsAt by default', (t) => {
  const body = json(buildAlertmanagerPayload(shellNotification(), base));
  t.deepEqual(violations(body), []);
  t.is(body.length, 1);
  const alert = body[0]!;
  t.deepEqual(alert.labels, {
    cluster: 'prod-eu',
    alertname: 'DriftwatchDeviation',
    severity: 'critical',
    rule: 'shell-where-none',
    kind: 'exec',
    image: 'docker.io/library/nginx',
    namespace: 'shop',
    team: 'storefront',
    alert_id: '3f9a2c0d1e4b5a697887766554433221',
  });
  const ann = alert.annotations as Record<string, string>;
  t.is(ann.summary, 'nginx: new process /usr/bin/dash -c id;uname -a (parent nginx, root)');
  t.is(ann.example, '/usr/bin/dash -c id;uname -a');
  t.is(ann.count, '3');
  t.is(ann.pods, 'shop/web-7d9f-abcde, shop/web-7d9f-fghij');
  t.is(alert.startsAt, new Date(T_FIRST).toISOString());
  t.false('endsAt' in alert);
  t.is(alert.generatorURL, 'https://driftwatch.example.com/api/v1/alerts/3f9a2c0d1e4b5a697887766554433221');
});

test('resolved alert carries endsAt at the resolve time; the same labels identify it', (t) => {
  const firing = json(buildAlertmanagerPayload(shellNotification(), base))[0]!;
  const at = T_FIRST + 3_600_000;
  const resolved = json(buildAlertmanagerPayload(shellNotification({ action: 'resolve', at, actor: 'alice' }), base));
  t.deepEqual(violations(resolved), []);
  t.is(resolved[0]!.endsAt, new Date(at).toISOString());
  t.deepEqual(resolved[0]!.labels, firing.labels);
  t.is((resolved[0]!.annotations as Record<string, string>).resolved_by, 'alice');
});

test('firingTimeout sets endsAt ahead for firing alerts', (t) => {
  const n = shellNotification();
  const body = json(buildAlertmanagerPayload(n, { ...base, firingTimeout: 600_000 }));
  t.is(body[0]!.endsAt, new Date(n.at + 600_000).toISOString());
});

test('labels stay bounded and valid on hostile input; counts and pods never become labels', (t) => {
  const n = egressNotification({ team: '', ruleId: 'x' }, );
  const hostile = { ...n, baselineKey: 'k'.repeat(5000), example: 'e\ud800'.repeat(2000), pods: Array.from({ length: 500 }, (_, i) => `ns/pod-${i}`) };
  const body = json(buildAlertmanagerPayload(hostile, { ...base, labels: { ok: 'v', 'bad-name': 'x' } as Record<string, string> }));
  t.deepEqual(violations(body), []);
  const labels = body[0]!.labels as Record<string, string>;
  t.false('team' in labels, 'empty values are left out');
  t.false('bad-name' in labels);
  t.true(Object.values(labels).every((v) => v.length <= 256));
  t.deepEqual(Object.keys(labels).sort(), ['alert_id', 'alertname', 'image', 'kind', 'namespace', 'ok', 'rule', 'severity']);
  const ann = body[0]!.annotations as Record<string, string>;
  t.true(Object.values(ann).every((v) => v.length <= 2048));
  t.false(/[\ud800-\udfff]/.test(ann.example!), 'lone surrogates replaced');
});

test('config: label names follow Prometheus rules and the error names the field', (t) => {
  const bad = AlertmanagerConfigSchema.safeParse({ type: 'alertmanager', name: 'am', url: 'http://am:9093', labels: { 'team-name': 'x' } });
  t.false(bad.success);
  t.deepEqual(bad.error?.issues[0]?.path, ['labels', 'team-name']);
  const both = AlertmanagerConfigSchema.safeParse({ type: 'alertmanager', name: 'am', url: 'http://am:9093', bearerToken: 't', basicAuth: { username: 'u', password: 'p' } });
  t.false(both.success);
  t.deepEqual(both.error?.issues[0]?.path, ['basicAuth']);
  t.is(alertmanagerAlertsUrl('http://am:9093'), 'http://am:9093/api/v2/alerts');
  t.is(alertmanagerAlertsUrl('http://gw/alertmanager/'), 'http://gw/alertmanager/api/v2/alerts');
});

test('over HTTP: Alertmanager receives valid v2 alerts at /api/v2/alerts, firing then resolved with endsAt', async (t) => {
  const rec = await startRecorder(t, () => ({ status: 200 }));
  const sink = createAlertmanagerSink(config(rec.url, { basicAuth: { username: 'driftwatch', password: 's3cret-pass' } }));
  const resolveAt = T_FIRST + 7_200_000;
  await sink.send(shellNotification(), AbortSignal.timeout(5000));
  await sink.send(shellNotification({ action: 'resolve', at: resolveAt }), AbortSignal.timeout(5000));
  t.is(rec.received.length, 2);
  for (const r of rec.received) {
    t.is(r.method, 'POST');
    t.is(r.path, '/api/v2/alerts');
    t.is(r.headers.authorization, `Basic ${Buffer.from('driftwatch:s3cret-pass').toString('base64')}`);
    t.deepEqual(violations(JSON.parse(r.body)), []);
  }
  const [firing, resolved] = rec.received.map((r) => (JSON.parse(r.body) as Record<string, unknown>[])[0]!);
  t.false('endsAt' in firing!);
  t.is(resolved!.endsAt, new Date(resolveAt).toISOString());
  t.deepEqual(resolved!.labels, firing!.labels);
});

test('over HTTP: a 400 from Alertmanager is not retried; a 500 is', async (t) => {
  const rec400 = await startRecorder(t, () => ({ status: 400, body: '"bad alert"' }));
  const err = await t.throwsAsync(createAlertmanagerSink(config(rec400.url)).send(shellNotification(), AbortSignal.timeout(5000)), { instanceOf: DeliveryError });
  t.is(err?.code, 'rejected');
  t.is(rec400.received.length, 1);
  const rec500 = await startRecorder(t, (_r, i) => ({ status: i < 2 ? 500 : 200 }));
  await createAlertmanagerSink(config(rec500.url)).send(shellNotification(), AbortSignal.timeout(5000));
  t.is(rec500.received.length, 3);
});

test('alertnames say what kind of alert it is: deviations, silent agents and storm summaries are routed apart', (t) => {
  const deviation = json(buildAlertmanagerPayload(shellNotification(), base))[0]!;
  const agent = json(buildAlertmanagerPayload({ ...shellNotification(), kind: 'agent', ruleId: 'agent-silent', category: 'agent-silent', nodes: ['node-7'] }, base))[0]!;
  const storm = json(buildAlertmanagerPayload({ ...shellNotification(), ruleId: 'storm-control', category: 'storm' }, base))[0]!;
  const name = (a: Record<string, unknown>) => (a.labels as Record<string, string>).alertname;
  t.is(name(deviation), 'DriftwatchDeviation');
  t.is(name(agent), 'DriftwatchAgentSilent');
  t.is(name(storm), 'DriftwatchStormControl');
  t.is((agent.labels as Record<string, string>).node, 'node-7');
  // Notifications stored before `category` existed are told by their rule.
  t.is(name(json(buildAlertmanagerPayload({ ...shellNotification(), ruleId: 'agent-silent', category: undefined }, base))[0]!), 'DriftwatchAgentSilent');
});

test('times are sane whatever the event said: an event dated two hours ahead starts at the receive time, and resolves after it starts', (t) => {
  const received = T_FIRST + 500;
  const future = T_FIRST + 2 * 3_600_000;
  const poisoned = shellNotification({ at: received + 1000 }, { firstSeen: future, lastSeen: future, createdAt: received });
  const firing = json(buildAlertmanagerPayload(poisoned, { ...base, firingTimeout: 600_000 }))[0]!;
  t.deepEqual(violations([firing]), []);
  t.is(firing.startsAt, new Date(received).toISOString());
  t.true(Date.parse(firing.endsAt as string) > Date.parse(firing.startsAt as string));
  // A re-send a minute later starts at the same time (Alertmanager keeps one alert).
  const again = json(buildAlertmanagerPayload({ ...poisoned, at: received + 61_000 }, { ...base, firingTimeout: 600_000 }))[0]!;
  t.is(again.startsAt, firing.startsAt);
  // Resolved at once (before the event's own time): endsAt still after startsAt.
  const resolved = json(buildAlertmanagerPayload({ ...poisoned, action: 'resolve', at: received }, base))[0]!;
  t.true(Date.parse(resolved.endsAt as string) > Date.parse(resolved.startsAt as string));
});

test('an acknowledged alert carries who acknowledged it and their comment in the first post and in every re-send', (t) => {
  const acked = { state: 'acknowledged' as const, stateBy: 'alice', stateAt: T_FIRST + 200_000, stateComment: 'looking, it is the backup job' };
  const first = json(buildAlertmanagerPayload(shellNotification({ action: 'acknowledge', actor: 'alice', comment: 'looking, it is the backup job' }, acked), base))[0]!;
  // A re-send is built from the stored alert alone (no actor given): the same labels and annotations.
  const resend = json(buildAlertmanagerPayload(shellNotification({ at: T_FIRST + 900_000 }, acked), base))[0]!;
  t.deepEqual(resend.labels, first.labels);
  t.deepEqual(resend.annotations, first.annotations);
  t.is((resend.annotations as Record<string, string>).acknowledged_by, 'alice');
  t.is((resend.annotations as Record<string, string>).comment, 'looking, it is the backup job');
});

test('bidi and invisible characters are shown escaped in labels and annotations', (t) => {
  const body = json(buildAlertmanagerPayload(shellNotification({}, { example: 'cat invoice\u202egnp.exe\u200b', baselineKey: 'docker.io/acme/a\u200bpp' }), base))[0]!;
  t.is((body.annotations as Record<string, string>).example, 'cat invoice\\u202egnp.exe\\u200b');
  t.is((body.labels as Record<string, string>).image, 'docker.io/acme/a\\u200bpp');
  t.deepEqual(violations([body]), []);
});
