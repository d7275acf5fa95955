import test from 'ava';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { DEFAULT_RETRY, DeliveryError, errorForStatus, parseRetryAfter, post, responseDetail, withRetry, type DeliveryErrorCode } from '../../../collector/sinks/http.js';
import { startRecorder } from '../../helpers/recorder.js';

const NOW = Date.UTC(2026, 10, 23, 12, 0, 0);

const statuses: [number, DeliveryErrorCode | null][] = [
  [200, null],
  [202, null],
  [204, null],
  [301, 'rejected'],
  [400, 'rejected'],
  [401, 'rejected'],
  [403, 'rejected'],
  [404, 'rejected'],
  [410, 'rejected'],
  [413, 'rejected'],
  [429, 'throttled'],
  [500, 'unavailable'],
  [502, 'unavailable'],
  [503, 'unavailable'],
  [504, 'unavailable'],
];

for (const [status, code] of statuses) {
  test(`HTTP ${status} → ${code ?? 'delivered'}`, (t) => {
    const err = errorForStatus(status, undefined, '', NOW);
    t.is(err?.code ?? null, code);
    if (err) t.is(err.retryable, code !== 'rejected');
  });
}

test('Retry-After: seconds, HTTP-date, garbage, bounds', (t) => {
  t.is(parseRetryAfter('3', NOW), 3000);
  t.is(parseRetryAfter(' 0 ', NOW), 0);
  t.is(parseRetryAfter(new Date(NOW + 10_000).toUTCString(), NOW), 10_000);
  t.is(parseRetryAfter(new Date(NOW - 10_000).toUTCString(), NOW), 0);
  t.is(parseRetryAfter('soon', NOW), undefined);
  t.is(parseRetryAfter('-5', NOW), undefined);
  t.is(parseRetryAfter('2026', NOW), 2_026_000);
  t.is(parseRetryAfter('Mon, 23 Nov', NOW), undefined);
  t.is(parseRetryAfter(undefined, NOW), undefined);
  t.is(parseRetryAfter('99999999', NOW), 86_400_000);
  t.is(errorForStatus(429, '7', '', NOW)?.retryAfterMs, 7000);
});

test('withRetry: retries retryable errors with growing waits, stops at maxAttempts', async (t) => {
  const waits: number[] = [];
  let calls = 0;
  const err = await t.throwsAsync(
    withRetry(async () => {
      calls++;
      throw new DeliveryError('unavailable', 'HTTP 503', 503, undefined);
    }, { ...DEFAULT_RETRY, maxAttempts: 4 }, new AbortController().signal, { sleep: async (ms) => void waits.push(ms), random: () => 1 }),
    { instanceOf: DeliveryError },
  );
  t.is(calls, 4);
  t.is(err?.attempts, 4);
  t.deepEqual(waits, [500, 1000, 2000]);
});

test('withRetry: never retries rejected, aborted or foreign errors; waits exactly Retry-After', async (t) => {
  for (const e of [new DeliveryError('rejected', 'HTTP 400', 400, undefined), new DeliveryError('aborted', 'x', undefined, undefined), new TypeError('bug')]) {
    let calls = 0;
    await t.throwsAsync(withRetry(async () => {
      calls++;
      throw e;
    }, DEFAULT_RETRY, new AbortController().signal, { sleep: async () => {} }));
    t.is(calls, 1);
  }
  const waits: number[] = [];
  let calls = 0;
  const out = await withRetry(async () => {
    if (++calls === 1) throw new DeliveryError('throttled', 'HTTP 429', 429, 2500);
    return 'ok';
  }, DEFAULT_RETRY, new AbortController().signal, { sleep: async (ms) => void waits.push(ms) });
  t.is(out, 'ok');
  t.deepEqual(waits, [2500]);
});

test('post: reads at most maxResponseBytes of an endless answer', async (t) => {
  const server = createServer((_req, res) => {
    res.writeHead(200);
    const chunk = Buffer.alloc(64 << 10, 'a');
    const pump = () => {
      while (res.write(chunk)) {
        /* keep writing until back-pressure */
      }
    };
    res.on('drain', pump);
    pump();
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.teardown(() => {
    server.closeAllConnections();
    server.close();
  });
  const res = await post({ url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/`, headers: {}, body: '{}', timeoutMs: 5000, maxResponseBytes: 1000 }, AbortSignal.timeout(5000));
  t.is(res.body.length, 1000);
  t.true(res.truncated);
});

test('post: a slow destination times out as unavailable', async (t) => {
  const rec = await startRecorder(t, () => ({ status: 200, delayMs: 2000 }));
  const start = performance.now();
  const err = await t.throwsAsync(post({ url: rec.url, headers: {}, body: '{}', timeoutMs: 100, maxResponseBytes: 1000 }, AbortSignal.timeout(5000)), { instanceOf: DeliveryError });
  t.is(err?.code, 'unavailable');
  t.true(performance.now() - start < 1000);
});

test('post: refuses non-http schemes and bad URLs without quoting them', async (t) => {
  const e1 = await t.throwsAsync(post({ url: 'file:///etc/passwd', headers: {}, body: '', timeoutMs: 100, maxResponseBytes: 10 }, AbortSignal.timeout(1000)), { instanceOf: DeliveryError });
  t.is(e1?.code, 'rejected');
  const e2 = await t.throwsAsync(post({ url: 'not a url SECRET', headers: {}, body: '', timeoutMs: 100, maxResponseBytes: 10 }, AbortSignal.timeout(1000)), { instanceOf: DeliveryError });
  t.false(e2!.message.includes('SECRET'));
});

test('responseDetail: secrets blanked, control characters dropped, bounded', (t) => {
  t.is(responseDetail('bad key abcd1234\r\nx', ['abcd1234']), 'bad key [redacted] x');
  t.true(responseDetail('y'.repeat(10_000)).length <= 201);
});

test('a spent rate limit is throttling, not a refusal: 403 or 429 with x-ratelimit-remaining 0 waits until x-ratelimit-reset; Retry-After wins', (t) => {
  const reset = String(NOW / 1000 + 42);
  const spent = errorForStatus(403, undefined, 'API rate limit exceeded', NOW, { remaining: '0', reset });
  t.is(spent?.code, 'throttled');
  t.is(spent?.retryAfterMs, 42_000);
  t.is(errorForStatus(429, undefined, '', NOW, { remaining: '0', reset })?.retryAfterMs, 42_000);
  t.is(errorForStatus(403, '7', '', NOW, { remaining: '0', reset })?.retryAfterMs, 7_000, 'a secondary limit\'s Retry-After');
  t.is(errorForStatus(403, undefined, 'Resource not accessible by integration', NOW, { remaining: '4999', reset })?.code, 'rejected', 'a 403 with budget left is a refusal');
  t.is(errorForStatus(403, undefined, '', NOW, { remaining: '0', reset: 'tomorrow' })?.retryAfterMs, undefined, 'a reset that is no time: the outbox backoff decides');
  t.is(errorForStatus(403, undefined, '', NOW, { remaining: '0', reset: String(NOW / 1000 + 10 * 86_400) })?.retryAfterMs, 86_400_000, 'bounded to a day');
});

test('post() sends PATCH, PUT and GET as asked; a GET carries no body', async (t) => {
  const rec = await startRecorder(t, () => ({ status: 200, body: '{"ok":true}' }));
  const signal = new AbortController().signal;
  for (const method of ['PATCH', 'PUT', 'GET'] as const) {
    const res = await post({ method, url: `${rec.url}/x`, headers: {}, body: '{"state":"closed"}', timeoutMs: 5_000, maxResponseBytes: 1024 }, signal);
    t.is(res.body, '{"ok":true}');
  }
  t.deepEqual(rec.received.map((r) => [r.method, r.body, r.headers['content-type'] ?? '']), [
    ['PATCH', '{"state":"closed"}', 'application/json'],
    ['PUT', '{"state":"closed"}', 'application/json'],
    ['GET', '', ''],
  ]);
});
