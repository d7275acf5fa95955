import test from 'ava';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { DeliveryError } from '../../../collector/sinks/http.js';
import {
  PAGERDUTY_EVENTS_URL,
  PagerDutyConfigSchema,
  buildPagerDutyPayload,
  createPagerDutySink,
  pagerDutyDedupKey,
  type PagerDutyConfig,
} from '../../../collector/sinks/pagerduty.js';
import type { Notification } from '../../../collector/sinks/sink.js';
import { egressNotification, shellNotification } from '../../helpers/notification.js';
import { loadSpec } from '../../helpers/openapi.js';
import { startRecorder } from '../../helpers/recorder.js';

const ROUTING_KEY = 'e93facc04764012d7bfb002500d5d1a6';
const spec = loadSpec('pagerduty-events-v2-openapi.json');
const enqueueSchema = spec.at('#/paths/~1enqueue/post/requestBody/content/application~1json/schema');

/** The spec's schema, plus what PagerDuty's docs state outside it (payload required to trigger, 1024/255 limits). */
function violations(body: unknown): string[] {
  const errors = spec.validate(enqueueSchema, body);
  const b = body as { event_action: string; dedup_key?: string; payload?: { summary: string } };
  if (b.event_action === 'trigger' && !b.payload) errors.push('trigger without payload');
  if (b.event_action !== 'trigger' && !b.dedup_key) errors.push('acknowledge/resolve without dedup_key');
  if (b.dedup_key !== undefined && b.dedup_key.length > 255) errors.push('dedup_key longer than 255');
  if (b.payload && b.payload.summary.length > 1024) errors.push('summary longer than 1024');
  return errors;
}

const json = (x: unknown) => JSON.parse(JSON.stringify(x)) as Record<string, unknown>;

function config(url: string, extra: Record<string, unknown> = {}): PagerDutyConfig {
  return PagerDutyConfigSchema.parse({ type: 'pagerduty', name: 'oncall', routingKey: ROUTING_KEY, url, retry: { baseDelay: 5, maxDelay: 20 }, ...extra });
}

test('the spec checker catches what it should (it can fail)', (t) => {
  t.deepEqual(violations({ routing_key: 'k', event_action: 'trigger', payload: { summary: 's', severity: 'critical', source: 'x' } }), []);
  t.true(violations({ routing_key: 'k', event_action: 'explode', dedup_key: 'd' }).some((e) => e.includes('$.event_action: must be equal to one of the allowed values')));
  t.true(violations({ routing_key: 'k', event_action: 'trigger', payload: { summary: 's', severity: 'high', source: 'x' } }).some((e) => e.includes('payload.severity')));
  t.true(violations({ event_action: 'resolve', dedup_key: 'd' }).some((e) => e.includes('routing_key')));
  t.true(violations({ routing_key: 'k', event_action: 'trigger', payload: { summary: 's', severity: 'info' } }).some((e) => e.includes('source')));
  t.true(violations({ routing_key: 'k', event_action: 'trigger', payload: { summary: 's', severity: 'info', source: 'x', timestamp: 'yesterday' } }).some((e) => e.includes('date-time')));
});

test('trigger payload: valid per the spec, with severity mapped and context in custom_details', (t) => {
  const body = json(buildPagerDutyPayload(shellNotification(), { routingKey: ROUTING_KEY, client: 'Driftwatch' }));
  t.deepEqual(violations(body), []);
  t.is(body.routing_key, ROUTING_KEY);
  t.is(body.event_action, 'trigger');
  t.is(body.dedup_key, 'driftwatch/3f9a2c0d1e4b5a697887766554433221');
  const payload = body.payload as Record<string, unknown>;
  t.is(payload.severity, 'critical');
  t.is(payload.source, 'docker.io/library/nginx');
  t.is(payload.class, 'shell-where-none');
  t.is(payload.group, 'shop');
  t.is(payload.timestamp, '2026-11-23T10:32:00.000Z');
  t.regex(payload.summary as string, /^\[critical\] nginx: new process \/usr\/bin\/dash -c id;uname -a/);
  const details = payload.custom_details as Record<string, unknown>;
  t.is(details.example, '/usr/bin/dash -c id;uname -a');
  t.is(details.count, 3);
  t.deepEqual(details.pods, ['shop/web-7d9f-abcde', 'shop/web-7d9f-fghij']);
  t.is(details.team, 'storefront');
  t.deepEqual(body.links, [{ href: 'https://driftwatch.example.com/api/v1/alerts/3f9a2c0d1e4b5a697887766554433221', text: 'Alert in Driftwatch' }]);
  t.is(body.client, 'Driftwatch');
});

test('severity mapping: critical, error, warning, info', (t) => {
  const sev = (s: Notification['severity']) => (buildPagerDutyPayload(shellNotification({ severity: s }), { routingKey: ROUTING_KEY, client: 'x' }) as { payload: { severity: string } }).payload.severity;
  t.deepEqual([sev('critical'), sev('high'), sev('medium'), sev('low')], ['critical', 'error', 'warning', 'info']);
});

test('acknowledge and resolve: routing key, action and the same dedup_key only; valid per the spec', (t) => {
  const trigger = json(buildPagerDutyPayload(shellNotification(), { routingKey: ROUTING_KEY, client: 'x' }));
  for (const action of ['acknowledge', 'resolve'] as const) {
    const body = json(buildPagerDutyPayload(shellNotification({ action }), { routingKey: ROUTING_KEY, client: 'x' }));
    t.deepEqual(violations(body), []);
    t.deepEqual(body, { routing_key: ROUTING_KEY, event_action: action, dedup_key: trigger.dedup_key });
  }
});

test('hostile sizes: summary stays within 1024, dedup_key within 255, no URL link from a non-http url', (t) => {
  const n = shellNotification({ ruleReason: 'r'.repeat(5000), url: 'javascript:alert(1)' }, { entry: { type: 'process', exe: '/x'.repeat(3000), parent: 'p', user: 'root', args: '' }, fingerprint: 'f'.repeat(400) });
  const body = json(buildPagerDutyPayload(n, { routingKey: ROUTING_KEY, client: 'x' }));
  t.deepEqual(violations(body), []);
  t.true((body.payload as { summary: string }).summary.length <= 1024);
  t.true((body.payload as { summary: string }).summary.endsWith('…'));
  t.true((body.dedup_key as string).length <= 255);
  t.is(body.links, undefined);
  t.is(pagerDutyDedupKey('f'.repeat(400)), pagerDutyDedupKey('f'.repeat(400)));
  t.not(pagerDutyDedupKey('f'.repeat(400)), pagerDutyDedupKey('f'.repeat(401)));
});

test('egress alerts validate too', (t) => {
  const body = json(buildPagerDutyPayload(egressNotification(), { routingKey: ROUTING_KEY, client: 'x' }));
  t.deepEqual(violations(body), []);
  t.regex((body.payload as { summary: string }).summary, /^\[high\] nginx: new connection egress tcp 203\.0\.113\.50:80/);
  t.is((body.payload as { severity: string }).severity, 'error');
});

test('config: the default URL is the Events API v2 endpoint; a bad routing key names the field', (t) => {
  t.is(PagerDutyConfigSchema.parse({ type: 'pagerduty', name: 'p', routingKey: ROUTING_KEY }).url, PAGERDUTY_EVENTS_URL);
  t.is(PAGERDUTY_EVENTS_URL, 'https://events.pagerduty.com/v2/enqueue');
  const r = PagerDutyConfigSchema.safeParse({ type: 'pagerduty', name: 'p', routingKey: 'has spaces in it' });
  t.false(r.success);
  t.deepEqual(r.error?.issues[0]?.path, ['routingKey']);
});

const accepted = (dedup: string) => ({ status: 202, body: JSON.stringify({ status: 'success', message: 'Event processed', dedup_key: dedup }) });

test('over HTTP: trigger → acknowledge → resolve, one routing key and one dedup_key', async (t) => {
  const rec = await startRecorder(t, (r) => accepted((JSON.parse(r.body) as { dedup_key: string }).dedup_key));
  const sink = createPagerDutySink(config(`${rec.url}/v2/enqueue`));
  for (const action of ['trigger', 'acknowledge', 'resolve'] as const) await sink.send(shellNotification({ action }), AbortSignal.timeout(5000));
  t.is(rec.received.length, 3);
  const bodies = rec.received.map((r) => JSON.parse(r.body) as Record<string, unknown>);
  t.deepEqual(bodies.map((b) => b.event_action), ['trigger', 'acknowledge', 'resolve']);
  t.deepEqual(new Set(bodies.map((b) => b.dedup_key)).size, 1);
  t.true(bodies.every((b) => b.routing_key === ROUTING_KEY));
  for (const b of bodies) t.deepEqual(violations(b), []);
  t.true(rec.received.every((r) => r.method === 'POST' && r.path === '/v2/enqueue' && r.headers['content-type'] === 'application/json'));
});

test('over HTTP: a 503 is retried, then the event is accepted', async (t) => {
  const rec = await startRecorder(t, (_r, i) => (i === 0 ? { status: 503, body: '{"status":"unavailable"}' } : accepted('x')));
  const retries: number[] = [];
  const sink = createPagerDutySink(config(`${rec.url}/v2/enqueue`), { onRetry: (_e, attempt) => retries.push(attempt) });
  await sink.send(shellNotification(), AbortSignal.timeout(5000));
  t.is(rec.received.length, 2);
  t.is(rec.received[0]!.body, rec.received[1]!.body);
  t.deepEqual(retries, [1]);
});

test('over HTTP: a network error (connection refused) is retried until the attempts run out', async (t) => {
  // A port that was just free: listen, note it, close.
  const probe = createServer();
  await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', resolve));
  const port = (probe.address() as AddressInfo).port;
  await new Promise((resolve) => probe.close(resolve));
  const sink = createPagerDutySink(config(`http://127.0.0.1:${port}/v2/enqueue`, { retry: { maxAttempts: 3, baseDelay: 1, maxDelay: 2 } }));
  const err = await t.throwsAsync(sink.send(shellNotification(), AbortSignal.timeout(5000)), { instanceOf: DeliveryError });
  t.is(err?.code, 'unavailable');
  t.is(err?.attempts, 3);
  t.notRegex(err!.message, /127\.0\.0\.1|enqueue|e93facc0/);
});

test('over HTTP: a 400 is never retried: exactly one request, a rejected error', async (t) => {
  const rec = await startRecorder(t, () => ({ status: 400, body: JSON.stringify({ status: 'invalid event', message: 'Event object is invalid', errors: [`'routing_key' ${ROUTING_KEY} is invalid`] }) }));
  const sink = createPagerDutySink(config(`${rec.url}/v2/enqueue`));
  const err = await t.throwsAsync(sink.send(shellNotification(), AbortSignal.timeout(5000)), { instanceOf: DeliveryError });
  t.is(rec.received.length, 1);
  t.is(err?.code, 'rejected');
  t.is(err?.status, 400);
  t.is(err?.attempts, 1);
  t.regex(err!.message, /Event object is invalid/);
  // The response echoed the routing key: it must not reach the error (and so the logs).
  t.false(err!.message.includes(ROUTING_KEY));
});

test('over HTTP: a 429 waits for Retry-After before the next attempt', async (t) => {
  const rec = await startRecorder(t, (_r, i) => (i === 0 ? { status: 429, headers: { 'retry-after': '1' } } : accepted('x')));
  const sink = createPagerDutySink(config(`${rec.url}/v2/enqueue`, { retry: { baseDelay: 1, maxDelay: 5 } }));
  await sink.send(shellNotification(), AbortSignal.timeout(5000));
  t.is(rec.received.length, 2);
  const gap = rec.received[1]!.at - rec.received[0]!.at;
  t.true(gap >= 950, `second attempt after ${gap} ms`);
});

test('over HTTP: a Retry-After longer than allowed ends the retries with the wait for the outbox', async (t) => {
  const rec = await startRecorder(t, () => ({ status: 429, headers: { 'retry-after': '120' } }));
  const sink = createPagerDutySink(config(`${rec.url}/v2/enqueue`, { retry: { maxRetryAfter: '1m' } }));
  const err = await t.throwsAsync(sink.send(shellNotification(), AbortSignal.timeout(5000)), { instanceOf: DeliveryError });
  t.is(rec.received.length, 1);
  t.is(err?.code, 'throttled');
  t.is(err?.retryAfterMs, 120_000);
});

test('over HTTP: aborting stops the retries', async (t) => {
  const ac = new AbortController();
  // Abort while the first attempt is being answered (not after a fixed delay, which a busy machine outruns):
  // the sink must then give up instead of going on to its next attempt.
  const rec = await startRecorder(t, () => {
    ac.abort();
    return { status: 503 };
  });
  const sink = createPagerDutySink(config(`${rec.url}/v2/enqueue`, { retry: { maxAttempts: 20, baseDelay: 200, maxDelay: 200 } }));
  const err = await t.throwsAsync(sink.send(shellNotification(), ac.signal), { instanceOf: DeliveryError });
  t.is(err?.code, 'aborted');
  t.is(rec.received.length, 1);
});

test('text a person reads is shown with bidi and invisible characters escaped; the timestamp never passes the receive time', (t) => {
  const future = Date.UTC(2026, 10, 23, 12, 30);
  const n = shellNotification({ at: Date.UTC(2026, 10, 23, 10, 32) }, { example: 'cat invoice\u202egnp.exe\u200b', lastSeen: future, firstSeen: future });
  const body = json(buildPagerDutyPayload(n, config(PAGERDUTY_EVENTS_URL)));
  t.deepEqual(violations(body), []);
  const payload = body.payload as { summary: string; timestamp: string; custom_details: Record<string, unknown> };
  t.is(payload.custom_details.example, 'cat invoice\\u202egnp.exe\\u200b');
  t.false(/[\u202e\u200b]/.test(JSON.stringify(body)));
  t.true(Date.parse(payload.timestamp) <= n.at);
});

test('storm summaries and silent agents have their own class, so PagerDuty can route them apart', (t) => {
  const storm = json(buildPagerDutyPayload({ ...shellNotification(), ruleId: 'storm-control', category: 'storm', title: 'Driftwatch storm control: …' }, config(PAGERDUTY_EVENTS_URL)));
  t.deepEqual(violations(storm), []);
  t.is((storm.payload as { class: string }).class, 'storm');
  t.is((storm.payload as { summary: string }).summary, '[critical] Driftwatch storm control: … (a shell or interpreter ran in an image whose baseline never runs one)');
});
