/**
 * The websocket live feed (/api/v1/stream) with a real collector (ephemeral ports, fresh SQLite
 * file) and real `ws` clients over loopback; alert changes are published on the collector's feed
 * the way alerting does.
 */
import test from 'ava';
import { createServer, type IncomingHttpHeaders } from 'node:http';
import type { AddressInfo } from 'node:net';
import pino from 'pino';
import { Registry } from 'prom-client';
import { WebSocket } from 'ws';
import { withCollector } from '../helpers/collector.js';
import { shellAlert } from '../helpers/notification.js';
import { alertView } from '../../collector/http/views.js';
import { createAlertFeed, type FeedEvent, type FeedEventType } from '../../collector/http/feed.js';
import type { CollectorHandle } from '../../collector/main.js';
import type { Alert } from '../../collector/alerting/alert.js';
import { attachStream, matchesFilter, parseStreamFilter, StreamFilterError, type Severity, type StreamLimits } from '../../collector/http/stream.js';
import type { EventKind } from '../../core/event.js';
import { VERSION } from '../../runtime/version.js';

const silent = pino({ level: 'silent' });

function streamUrl(c: { url: string }, query = ''): string {
  return `${c.url.replace(/^http/, 'ws')}/api/v1/stream${query}`;
}

interface AlertSpec {
  id: string;
  image?: string;
  namespace?: string;
  severity?: Severity;
  kind?: EventKind;
  explanation?: string;
}

/** An alert as the API shows it, plus `severity` when given (alerting adds it). */
function alertOf(s: AlertSpec): FeedEvent['alert'] {
  const image = s.image ?? 'docker.io/library/nginx';
  const a: Alert = shellAlert({
    fingerprint: s.id,
    baselineKey: image,
    image,
    kind: s.kind ?? 'exec',
    entry: { type: 'process', exe: '/bin/sh', parent: 'nginx', user: 'root', args: '-c id' },
    explanation: s.explanation ?? '/bin/sh never ran in this image while it was learned',
    nearest: [],
    firstSeen: Date.UTC(2026, 10, 23, 10, 0, 0),
    lastSeen: Date.UTC(2026, 10, 23, 10, 0, 5),
    count: 1,
    nodes: ['node-1'],
    pods: [`${s.namespace ?? 'shop'}/web-0`],
    namespace: s.namespace ?? 'shop',
    lastDeviationId: `dev-${s.id}`,
    example: 'sh -c id',
    createdAt: Date.UTC(2026, 10, 23, 10, 0, 6),
  });
  const { severity: _severity, ...json } = alertView(a);
  // Without a spec'd severity the alert carries none, as an older collector's would.
  return (s.severity === undefined ? json : { ...json, severity: s.severity }) as FeedEvent['alert'];
}

function event(s: AlertSpec, type: FeedEventType = 'alert.created'): FeedEvent {
  return { type, at: Date.UTC(2026, 10, 23, 10, 0, 7, 250), alert: alertOf(s) };
}

type Frame = Record<string, any>;

/** A connected client that records every frame. */
interface Peer {
  ws: WebSocket;
  frames: Frame[];
  /** Resolve with the first frame (seen or future) matching `pred`. */
  waitFor(pred: (f: Frame) => boolean, timeoutMs?: number): Promise<Frame>;
  closed: Promise<{ code: number; reason: string }>;
}

function connect(url: string, options: ConstructorParameters<typeof WebSocket>[2] = {}): Promise<Peer> {
  const ws = new WebSocket(url, options);
  const frames: Frame[] = [];
  const waiters: { pred: (f: Frame) => boolean; resolve: (f: Frame) => void }[] = [];
  ws.on('message', (data, isBinary) => {
    if (isBinary) throw new Error('binary frame');
    const f = JSON.parse(String(data)) as Frame;
    frames.push(f);
    for (const w of [...waiters]) {
      if (w.pred(f)) {
        waiters.splice(waiters.indexOf(w), 1);
        w.resolve(f);
      }
    }
  });
  const closed = new Promise<{ code: number; reason: string }>((resolve) => ws.on('close', (code, reason) => resolve({ code, reason: String(reason) })));
  const peer: Peer = {
    ws,
    frames,
    closed,
    waitFor(pred, timeoutMs = 10_000) {
      const seen = frames.find(pred);
      if (seen) return Promise.resolve(seen);
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`no matching frame in ${timeoutMs} ms; got ${frames.length} frames`)), timeoutMs);
        waiters.push({ pred, resolve: (f) => (clearTimeout(timer), resolve(f)) });
      });
    },
  };
  return new Promise((resolve, reject) => {
    ws.once('open', () => resolve(peer));
    ws.once('error', reject);
    ws.once('unexpected-response', (_req, res) => reject(new Error(`upgrade refused with ${res.statusCode}`)));
  });
}

/** Try to upgrade; expect the server to refuse. */
function refused(url: string, headers: Record<string, string> = {}): Promise<{ status: number; headers: IncomingHttpHeaders; body: any }> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, { headers });
    ws.on('open', () => {
      ws.terminate();
      reject(new Error('the upgrade was accepted'));
    });
    ws.on('error', reject);
    ws.on('unexpected-response', (_req, res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: JSON.parse(body) }));
    });
  });
}

async function metricsText(c: CollectorHandle): Promise<string> {
  return (await fetch(`${c.url}/metrics`)).text();
}

function metricValue(text: string, series: string): number {
  const line = text.split('\n').find((l) => l.startsWith(`${series} `));
  return line === undefined ? 0 : Number(line.slice(series.length + 1));
}

async function until(check: () => Promise<boolean>, timeoutMs: number, what: string): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

const isAlert = (id: string) => (f: Frame) => f.type?.startsWith('alert.') && f.alert?.id === id;
const alertIds = (p: Peer) => p.frames.filter((f) => f.type.startsWith('alert.')).map((f) => f.alert.id as string);

// --- filters, pure -----------------------------------------------------------------------------

test('filters: repeatable and comma lists, one severity minimum, bad values refused with the reason', (t) => {
  const f = parseStreamFilter('severity=high&namespace=shop,payments&namespace=shop&kind=exec&type=alert.created,alert.state');
  t.is(f.severity, 'high');
  t.deepEqual(f.namespace, ['shop', 'payments']);
  t.deepEqual(f.kind, ['exec']);
  t.deepEqual(f.type, ['alert.created', 'alert.state']);
  t.deepEqual(parseStreamFilter(''), { severity: null, namespace: [], image: [], state: [], kind: [], type: [] });
  const bad: [string, RegExp][] = [
    ['severity=urgent', /severity "urgent" is not one of: critical, high, medium, low/],
    ['severity=high&severity=low', /one value/],
    ['sevrity=high', /unknown query parameter "sevrity"/],
    ['namespace=Shop_1', /not a Kubernetes namespace name/],
    ['namespace=shop,,x', /empty value/],
    ['image=nginx%20latest', /not an image repository/],
    ['state=open', /state "open" is not one of/],
    ['kind=exec&kind=fork', /kind "fork"/],
    ['type=alert.deleted', /type "alert.deleted"/],
    [`namespace=${Array.from({ length: 65 }, (_, i) => `ns${i}`).join(',')}`, /at most 64 values/],
    [`image=${'a'.repeat(9000)}`, /longer than 8192/],
  ];
  for (const [query, message] of bad) {
    const err = t.throws(() => parseStreamFilter(query), { instanceOf: StreamFilterError }, query);
    t.regex(err?.message ?? '', message, query);
  }
});

test('filters: severity is a minimum, an alert without severity passes only unfiltered, namespace from any pod', (t) => {
  const cases: [string, AlertSpec, boolean][] = [
    ['severity=high', { id: 'a', severity: 'critical' }, true],
    ['severity=high', { id: 'a', severity: 'high' }, true],
    ['severity=high', { id: 'a', severity: 'medium' }, false],
    ['severity=low', { id: 'a', severity: 'low' }, true],
    ['severity=low', { id: 'a' }, false],
    ['', { id: 'a' }, true],
    ['namespace=shop', { id: 'a', namespace: 'shop' }, true],
    ['namespace=payments,shop', { id: 'a', namespace: 'shop' }, true],
    ['namespace=payments', { id: 'a', namespace: 'shop' }, false],
    ['image=docker.io/library/nginx', { id: 'a' }, true],
    ['image=docker.io/library/redis', { id: 'a' }, false],
    ['kind=connect', { id: 'a', kind: 'exec' }, false],
    ['state=firing', { id: 'a' }, true],
    ['state=resolved', { id: 'a' }, false],
    ['type=alert.state', { id: 'a' }, false],
    ['severity=critical&namespace=shop&image=docker.io/library/nginx', { id: 'a', severity: 'critical' }, true],
  ];
  for (const [query, spec, expected] of cases) t.is(matchesFilter(parseStreamFilter(query), event(spec)), expected, `${query} ${JSON.stringify(spec)}`);
  // An alert seen in pods of two namespaces matches either.
  const both = event({ id: 'b', namespace: 'shop' });
  both.alert.pods = ['shop/web-0', 'payments/api-1'];
  t.true(matchesFilter(parseStreamFilter('namespace=payments'), both));
});

// --- a real collector ----------------------------------------------------------------------------

test('hello first, then each client gets only the alerts its filters ask for, as RFC 3339 JSON text frames', async (t) => {
  const c = await withCollector(t);
  const all = await connect(streamUrl(c));
  const high = await connect(streamUrl(c, '?severity=high'));
  const shop = await connect(streamUrl(c, '?namespace=shop'));
  const redis = await connect(streamUrl(c, '?image=docker.io/library/redis&type=alert.created'));
  for (const p of [all, high, shop, redis]) await p.waitFor((f) => f.type === 'hello');

  t.deepEqual(high.frames[0], {
    type: 'hello',
    at: high.frames[0]!.at,
    version: VERSION,
    filters: { severity: 'high', namespace: [], image: [], state: [], kind: [], type: [] },
    limits: { queueMessages: 1000, queueBytes: 4 << 20, heartbeatSeconds: 30 },
  });
  t.regex(high.frames[0]!.at, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
  t.deepEqual(redis.frames[0]!.filters.image, ['docker.io/library/redis']);

  const published = [
    event({ id: 'crit-shop-nginx', severity: 'critical' }),
    event({ id: 'low-shop-nginx', severity: 'low' }),
    event({ id: 'high-pay-redis', severity: 'high', namespace: 'payments', image: 'docker.io/library/redis' }),
    event({ id: 'none-pay-redis', namespace: 'payments', image: 'docker.io/library/redis' }),
    event({ id: 'high-pay-redis', severity: 'high', namespace: 'payments', image: 'docker.io/library/redis' }, 'alert.updated'),
    event({ id: 'medium-shop-redis', severity: 'medium', image: 'docker.io/library/redis' }),
    // Passes every filter above: the end marker.
    event({ id: 'end', severity: 'critical', image: 'docker.io/library/redis' }),
  ];
  for (const e of published) c.feed.publish(e);
  for (const p of [all, high, shop, redis]) await p.waitFor(isAlert('end'));

  t.deepEqual(alertIds(all), ['crit-shop-nginx', 'low-shop-nginx', 'high-pay-redis', 'none-pay-redis', 'high-pay-redis', 'medium-shop-redis', 'end']);
  t.deepEqual(alertIds(high), ['crit-shop-nginx', 'high-pay-redis', 'high-pay-redis', 'end']);
  t.deepEqual(alertIds(shop), ['crit-shop-nginx', 'low-shop-nginx', 'medium-shop-redis', 'end']);
  t.deepEqual(alertIds(redis), ['high-pay-redis', 'none-pay-redis', 'medium-shop-redis', 'end']);

  // The frame is the event as published, with `at` as RFC 3339, and nothing else.
  t.deepEqual(all.frames[1], { type: 'alert.created', at: '2026-11-23T10:00:07.250Z', alert: JSON.parse(JSON.stringify(published[0]!.alert)) });
  t.is(all.frames[5]!.type, 'alert.updated');

  const m = await metricsText(c);
  t.is(metricValue(m, 'driftwatch_collector_stream_clients'), 4);
  t.is(metricValue(m, 'driftwatch_collector_stream_messages_sent_total'), 7 + 4 + 4 + 4);
  for (const p of [all, high, shop, redis]) p.ws.close();
  await Promise.all([all, high, shop, redis].map((p) => p.closed));
  await until(async () => metricValue(await metricsText(c), 'driftwatch_collector_stream_clients') === 0, 5_000, 'clients gauge back to 0');
  t.pass();
});

test('a bad filter is refused with 400 and a JSON reason before upgrading; another path with 404', async (t) => {
  const c = await withCollector(t);
  const bad = await refused(streamUrl(c, '?severity=urgent'));
  t.is(bad.status, 400);
  t.is(bad.headers['content-type'], 'application/json; charset=utf-8');
  t.deepEqual(bad.body, { error: { code: 'invalid_parameter', message: 'severity "urgent" is not one of: critical, high, medium, low' } });
  const unknown = await refused(streamUrl(c, '?namespce=shop'));
  t.is(unknown.status, 400);
  t.is(unknown.body.error.code, 'unknown_parameter');

  for (const path of ['/api/v1/streams', '/api/v1/stream/x', '/', '/api/v1/alerts']) {
    const wrong = await refused(`${c.url.replace(/^http/, 'ws')}${path}`);
    t.is(wrong.status, 404, path);
    t.is(wrong.body.error.code, 'not_found', path);
  }
  const m = await metricsText(c);
  t.is(metricValue(m, 'driftwatch_collector_stream_rejected_total{status="400"}'), 2);
  t.is(metricValue(m, 'driftwatch_collector_stream_rejected_total{status="404"}'), 4);
  t.is(metricValue(m, 'driftwatch_collector_stream_clients'), 0);
  // The plain HTTP API on the same server is unaffected.
  t.is((await fetch(`${c.url}/api/v1/alerts`)).status, 200);
});

test('at streamMaxClients a new client is refused with 503; a slot frees when a client leaves', async (t) => {
  const c = await withCollector(t, { streamMaxClients: 2 });
  const a = await connect(streamUrl(c));
  await connect(streamUrl(c));
  const full = await refused(streamUrl(c));
  t.is(full.status, 503);
  t.is(full.body.error.code, 'too_many_clients');
  t.is(full.headers['retry-after'], '30');
  a.ws.close();
  await a.closed;
  await until(async () => metricValue(await metricsText(c), 'driftwatch_collector_stream_clients') === 1, 5_000, 'a slot to free');
  const again = await connect(streamUrl(c));
  await again.waitFor((f) => f.type === 'hello');
  t.is(metricValue(await metricsText(c), 'driftwatch_collector_stream_rejected_total{status="503"}'), 1);
});

test('Origin: none (CLI) and same-origin pass, a foreign origin gets 403 unless configured', async (t) => {
  const c = await withCollector(t, { streamAllowedOrigins: ['https://console.example.com'] });
  await connect(streamUrl(c));
  await connect(streamUrl(c), { origin: c.url });
  await connect(streamUrl(c), { origin: 'https://Console.Example.com:443' });
  for (const origin of ['https://evil.example', 'null', 'http://console.example.com', `${c.url}.evil.example`]) {
    const r = await refused(streamUrl(c), { origin });
    t.is(r.status, 403, origin);
    t.is(r.body.error.code, 'forbidden_origin', origin);
  }
});

test('a client that cannot keep up gets its newest messages after a dropped marker; the others get everything', async (t) => {
  const c = await withCollector(t, { streamQueue: 5 });
  const fast = await connect(streamUrl(c));
  const slow = await connect(streamUrl(c));
  await slow.waitFor((f) => f.type === 'hello');
  slow.ws.pause(); // stops reading its socket: the kernel buffers, then the collector's, fill up
  const padding = 'x'.repeat(32 << 10);
  let n = 0;
  // Publish until the collector has dropped something for the slow client (bounded at 64 MiB), a
  // queue's worth at a time, letting the fast client read each round: on a loaded machine, a burst
  // larger than its queue would overflow the fast client too (this process publishes and reads).
  while (metricValue(await metricsText(c), 'driftwatch_collector_stream_messages_dropped_total') === 0) {
    if (n >= 2_000) return t.fail('nothing was dropped after 64 MiB');
    for (let i = 0; i < 5; i++, n++) c.feed.publish(event({ id: `a${n}`, explanation: padding }));
    await fast.waitFor(isAlert(`a${n - 1}`), 30_000);
  }
  for (let i = 0; i < 5; i++, n++) c.feed.publish(event({ id: `a${n}`, explanation: padding }));
  await fast.waitFor(isAlert(`a${n - 1}`), 30_000);
  t.deepEqual(alertIds(fast), Array.from({ length: n }, (_, i) => `a${i}`), 'the fast client got every message, in order');

  const dropped = metricValue(await metricsText(c), 'driftwatch_collector_stream_messages_dropped_total');
  slow.ws.resume();
  await slow.waitFor(isAlert(`a${n - 1}`), 30_000);
  const markers = slow.frames.filter((f) => f.type === 'dropped');
  t.is(markers.length, 1, 'one dropped marker');
  t.is(markers[0]!.count, dropped);
  // Order: a prefix, the marker exactly where the gap is, then the newest five (streamQueue).
  const at = slow.frames.indexOf(markers[0]!);
  const before = slow.frames.slice(1, at).map((f) => f.alert.id);
  const after = slow.frames.slice(at + 1).map((f) => f.alert.id);
  t.deepEqual(before, Array.from({ length: before.length }, (_, i) => `a${i}`));
  t.deepEqual(after, Array.from({ length: 5 }, (_, i) => `a${n - 5 + i}`));
  t.is(before.length + dropped + after.length, n);
  // It is caught up: the next message arrives normally, without another marker.
  c.feed.publish(event({ id: 'later' }));
  await slow.waitFor(isAlert('later'));
  t.is(slow.frames.filter((f) => f.type === 'dropped').length, 1);
  t.is(metricValue(await metricsText(c), 'driftwatch_collector_stream_clients'), 2);
});

test('a client behind for longer than streamSlowTimeout is closed with 1008 and counted; the others keep receiving', async (t) => {
  const c = await withCollector(t, { streamQueue: 5, streamSlowTimeout: '1s' });
  const fast = await connect(streamUrl(c));
  const slow = await connect(streamUrl(c));
  await slow.waitFor((f) => f.type === 'hello');
  slow.ws.pause();
  const padding = 'x'.repeat(32 << 10);
  let n = 0;
  while (metricValue(await metricsText(c), 'driftwatch_collector_stream_messages_dropped_total') === 0) {
    if (n >= 2_000) return t.fail('nothing was dropped after 64 MiB');
    for (let i = 0; i < 5; i++, n++) c.feed.publish(event({ id: `a${n}`, explanation: padding }));
    await fast.waitFor(isAlert(`a${n - 1}`), 30_000);
  }
  await until(async () => metricValue(await metricsText(c), 'driftwatch_collector_stream_clients_closed_total{reason="slow"}') === 1, 5_000, 'the slow close');
  slow.ws.resume();
  const closed = await slow.closed;
  t.is(closed.code, 1008);
  t.is(closed.reason, 'too slow: behind for too long');
  c.feed.publish(event({ id: 'after' }));
  await fast.waitFor(isAlert('after'), 30_000);
  t.is(fast.ws.readyState, WebSocket.OPEN);
  t.is(metricValue(await metricsText(c), 'driftwatch_collector_stream_clients'), 1);
});

test('a peer that stops answering pings is terminated after one missed pong; a live one stays', async (t) => {
  const c = await withCollector(t, { streamHeartbeat: '1s' });
  const dead = await connect(streamUrl(c), { autoPong: false });
  const live = await connect(streamUrl(c));
  const closed = await dead.closed;
  t.is(closed.code, 1006, 'terminated, no close handshake');
  t.is(metricValue(await metricsText(c), 'driftwatch_collector_stream_clients_closed_total{reason="no_pong"}'), 1);
  t.is(live.ws.readyState, WebSocket.OPEN);
  c.feed.publish(event({ id: 'still-here' }));
  await live.waitFor(isAlert('still-here'));
  t.pass();
});

test('a client flooding the feed with messages or pings is closed with 1008 and counted', async (t) => {
  const c = await withCollector(t);
  const chatty = await connect(streamUrl(c));
  for (let i = 0; i < 200; i++) chatty.ws.send('{}');
  t.deepEqual(await chatty.closed, { code: 1008, reason: 'this feed takes no messages' });
  const pinger = await connect(streamUrl(c));
  const pongs: number[] = [];
  pinger.ws.on('pong', () => pongs.push(1));
  for (let i = 0; i < 200; i++) pinger.ws.ping();
  t.is((await pinger.closed).code, 1008);
  t.true(pongs.length >= 1 && pongs.length <= 100, `a client's pings are answered, up to the budget (${pongs.length})`);
  t.is(metricValue(await metricsText(c), 'driftwatch_collector_stream_clients_closed_total{reason="flood"}'), 2);
});

test('what a client sends is ignored, and more than 1 KiB closes it with 1009', async (t) => {
  const c = await withCollector(t);
  const p = await connect(streamUrl(c));
  p.ws.send(JSON.stringify({ type: 'subscribe', namespace: 'kube-system' }));
  c.feed.publish(event({ id: 'x1' }));
  await p.waitFor(isAlert('x1'));
  t.deepEqual(p.frames.map((f) => f.type), ['hello', 'alert.created']);
  p.ws.send('y'.repeat(2048));
  const closed = await p.closed;
  t.is(closed.code, 1009);
});

test('collector stop closes every client with 1001 (going away) and then refuses new ones', async (t) => {
  const c = await withCollector(t);
  const a = await connect(streamUrl(c));
  const b = await connect(streamUrl(c, '?severity=critical'));
  await Promise.all([a.waitFor((f) => f.type === 'hello'), b.waitFor((f) => f.type === 'hello')]);
  const started = Date.now();
  let timer: NodeJS.Timeout | undefined;
  const stopped = await Promise.race([c.stop().then(() => true), new Promise<false>((resolve) => (timer = setTimeout(() => resolve(false), 5_000)))]);
  clearTimeout(timer);
  t.true(stopped, 'stop finished within 5 s with clients connected');
  t.true(Date.now() - started < 4_000, 'stop was not held up by the open streams');
  for (const p of [a, b]) t.deepEqual(await p.closed, { code: 1001, reason: 'collector stopping' });
  await t.throwsAsync(connect(streamUrl(c)));
});

test('authorize hook: null is refused with 401 before upgrading; a principal connects', async (t) => {
  const http = createServer((_req, res) => res.writeHead(404).end());
  const feed = createAlertFeed();
  const limits: StreamLimits = { maxClients: 4, queueMessages: 10, queueBytes: 1 << 20, slowTimeoutMs: 30_000, heartbeatMs: 30_000, allowedOrigins: [] };
  const seen: string[] = [];
  const stream = attachStream(http, {
    feed,
    logger: silent,
    registry: new Registry(),
    limits,
    async authorize(req) {
      seen.push(req.url ?? '');
      return req.headers.authorization === 'Bearer good' ? { name: 'oncall', role: 'viewer' } : null;
    },
  });
  await new Promise<void>((resolve) => http.listen(0, '127.0.0.1', resolve));
  t.teardown(async () => {
    await stream.close();
    await new Promise((resolve) => http.close(resolve));
  });
  const base = `ws://127.0.0.1:${(http.address() as AddressInfo).port}/api/v1/stream`;
  const none = await refused(base);
  t.is(none.status, 401);
  t.is(none.headers['www-authenticate'], 'Bearer');
  t.is(none.body.error.code, 'unauthorized');
  t.is((await refused(base, { authorization: 'Bearer bad' })).status, 401);
  t.is(stream.clients, 0);
  const ok = await connect(base, { headers: { authorization: 'Bearer good' } });
  await ok.waitFor((f) => f.type === 'hello');
  feed.publish(event({ id: 'authorized' }));
  await ok.waitFor(isAlert('authorized'));
  t.is(stream.clients, 1);
  // A wrong path is refused before the hook runs.
  t.is((await refused(`ws://127.0.0.1:${(http.address() as AddressInfo).port}/x`, { authorization: 'Bearer good' })).status, 404);
  t.is(seen.length, 3);
});
