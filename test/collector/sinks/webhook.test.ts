import test from 'ava';
import {
  WEBHOOK_HEADERS,
  WEBHOOK_PAYLOAD_VERSION,
  WebhookConfigSchema,
  buildWebhookPayload,
  createWebhookSink,
  deliveryId,
  verifyWebhookSignature,
  webhookSignature,
  type WebhookConfig,
} from '../../../collector/sinks/webhook.js';
import { T_FIRST, shellNotification } from '../../helpers/notification.js';
import { startRecorder } from '../../helpers/recorder.js';

const KEY = 'whsec-0123456789abcdef0123456789';

function config(url: string, extra: Record<string, unknown> = {}): WebhookConfig {
  return WebhookConfigSchema.parse({ type: 'webhook', name: 'soc', url, retry: { baseDelay: 5, maxDelay: 10 }, ...extra });
}

test('payload: versioned JSON with the whole alert, times as RFC 3339', (t) => {
  const p = buildWebhookPayload(shellNotification());
  t.is(p.version, WEBHOOK_PAYLOAD_VERSION);
  t.is(p.action, 'trigger');
  t.is(p.alert.id, '3f9a2c0d1e4b5a697887766554433221');
  t.is(p.alert.severity, 'critical');
  t.deepEqual(p.alert.rule, { id: 'shell-where-none', reason: 'a shell or interpreter ran in an image whose baseline never runs one' });
  t.is(p.alert.summary, '/usr/bin/dash -c id;uname -a (parent nginx, root)');
  t.is(p.alert.firstSeen, new Date(T_FIRST).toISOString());
  t.deepEqual(p.alert.entry, { type: 'process', exe: '/usr/bin/dash', parent: 'nginx', user: 'root', args: '-c id;uname -a' });
  t.is(p.alert.team, 'storefront');
});

test('payload: bounded whatever the alert holds', (t) => {
  const p = buildWebhookPayload(shellNotification({}, { example: 'x'.repeat(100_000), pods: Array.from({ length: 1000 }, (_, i) => `ns/p${i}`) }));
  t.true(p.alert.example.length <= 1024);
  t.is(p.alert.pods.length, 50);
  t.true(JSON.stringify(p).length < 20_000);
});

test('signature: verifiable, and refused when stale, tampered, or signed with another key', (t) => {
  const body = JSON.stringify({ a: 1 });
  const now = T_FIRST;
  const ts = Math.floor(now / 1000);
  const headers = { [WEBHOOK_HEADERS.timestamp]: String(ts), [WEBHOOK_HEADERS.signature]: webhookSignature(KEY, ts, body) };
  t.is(verifyWebhookSignature(body, headers, KEY, now), 'ok');
  t.is(verifyWebhookSignature(body, headers, KEY, now + 301_000), 'stale');
  t.is(verifyWebhookSignature(`${body} `, headers, KEY, now), 'mismatch');
  t.is(verifyWebhookSignature(body, headers, `${KEY}x`, now), 'mismatch');
  t.is(verifyWebhookSignature(body, { ...headers, [WEBHOOK_HEADERS.timestamp]: String(ts + 1) }, KEY, now), 'mismatch');
  t.is(verifyWebhookSignature(body, {}, KEY, now), 'missing');
  t.regex(webhookSignature(KEY, ts, body), /^v1=[0-9a-f]{64}$/);
});

test('over HTTP: the receiver verifies the signature over the raw body it got', async (t) => {
  const rec = await startRecorder(t, () => ({ status: 204 }));
  const now = () => T_FIRST;
  const sink = createWebhookSink(config(`${rec.url}/hooks/driftwatch`, { hmacKey: KEY, headers: { 'X-Api-Key': 'abc123' } }), { now });
  const n = shellNotification();
  await sink.send(n, AbortSignal.timeout(5000));
  t.is(rec.received.length, 1);
  const r = rec.received[0]!;
  t.is(r.path, '/hooks/driftwatch');
  t.is(r.headers['content-type'], 'application/json');
  t.is(r.headers['x-api-key'], 'abc123');
  t.is(r.headers[WEBHOOK_HEADERS.event], 'trigger');
  t.is(r.headers[WEBHOOK_HEADERS.delivery], deliveryId(n));
  t.is(verifyWebhookSignature(r.body, r.headers, KEY, T_FIRST), 'ok');
  t.is(verifyWebhookSignature(r.body, r.headers, 'another-key-of-16-chars', T_FIRST), 'mismatch');
  t.deepEqual(JSON.parse(r.body), JSON.parse(JSON.stringify(buildWebhookPayload(n))));
});

test('over HTTP: a retry is re-signed with a fresh timestamp and keeps its delivery id', async (t) => {
  const rec = await startRecorder(t, (_r, i) => ({ status: i === 0 ? 502 : 200 }));
  let clock = T_FIRST;
  const sink = createWebhookSink(config(rec.url, { hmacKey: KEY }), { now: () => (clock += 400_000) });
  await sink.send(shellNotification(), AbortSignal.timeout(5000));
  t.is(rec.received.length, 2);
  const [a, b] = rec.received;
  t.not(a!.headers[WEBHOOK_HEADERS.timestamp], b!.headers[WEBHOOK_HEADERS.timestamp]);
  t.is(a!.headers[WEBHOOK_HEADERS.delivery], b!.headers[WEBHOOK_HEADERS.delivery]);
  t.is(verifyWebhookSignature(b!.body, b!.headers, KEY, Number(b!.headers[WEBHOOK_HEADERS.timestamp]) * 1000), 'ok');
});

test('over HTTP: without a key there is no signature header', async (t) => {
  const rec = await startRecorder(t);
  await createWebhookSink(config(rec.url)).send(shellNotification(), AbortSignal.timeout(5000));
  t.false(WEBHOOK_HEADERS.signature in rec.received[0]!.headers);
  t.true(WEBHOOK_HEADERS.timestamp in rec.received[0]!.headers);
});

test('config: reserved headers, short keys and URLs with credentials are refused by field', (t) => {
  const path = (doc: Record<string, unknown>) => WebhookConfigSchema.safeParse({ type: 'webhook', name: 'w', url: 'https://h.example/x', ...doc }).error?.issues[0]?.path;
  t.deepEqual(path({ headers: { 'X-Driftwatch-Signature': 'forged' } }), ['headers', 'X-Driftwatch-Signature']);
  t.deepEqual(path({ headers: { 'Content-Type': 'text/plain' } }), ['headers', 'Content-Type']);
  t.deepEqual(path({ headers: { 'X-A': 'line\r\nbreak' } }), ['headers', 'X-A']);
  t.deepEqual(path({ hmacKey: 'short' }), ['hmacKey']);
  t.deepEqual(path({ url: 'https://user:pw@h.example/x' }), ['url']);
  t.deepEqual(path({ url: 'ftp://h.example/x' }), ['url']);
  t.is(path({}), undefined);
});

test('payload: text fields show bidi and invisible characters escaped; the entry stays the data it was; state, category and comment are given', (t) => {
  const p = buildWebhookPayload(
    shellNotification({ action: 'acknowledge', actor: 'bob\u200b', comment: 'ok\u202e' }, { example: 'cat x\u202egnp.exe', entry: { type: 'process', exe: '/tmp/x\u202egnp.exe', parent: 'sh', user: 'root', args: '' } }),
  );
  t.is(p.alert.example, 'cat x\\u202egnp.exe');
  t.is(p.alert.summary, '/tmp/x\\u202egnp.exe (parent sh, root)');
  t.is(p.alert.actor, 'bob\\u200b');
  t.is(p.alert.comment, 'ok\\u202e');
  t.is(p.alert.state, 'acknowledged');
  t.is(p.alert.category, 'deviation');
  t.is(p.alert.entry?.type === 'process' ? p.alert.entry.exe : '', '/tmp/x\u202egnp.exe', 'the structured entry is data for programs');
});
