/**
 * The HTTP edge under a hostile client, with a real collector over real HTTP: failed
 * authentications bounded by credential, by address (127.0.0.N stand for other hosts) and overall
 * without ever refusing a valid token; the console loading without a token and without counting as
 * failures; /metrics rendered once for a storm of scrapes; 413 instead of a reset; live-feed slots
 * per token.
 */
import test, { type ExecutionContext } from 'ava';
import { Agent, request } from 'node:http';
import type { Socket } from 'node:net';
import type { CollectorHandle } from '../../collector/main.js';
import { createAuthFailureLimiter } from '../../collector/http/rate-limit.js';
import { FRESH_RENDERS } from '../../runtime/health.js';
import { withCollector as withTestCollector } from '../helpers/collector.js';
import { send as sendTo, upgrade as upgradeTo, type Answer, type SendOptions } from '../helpers/http-client.js';

const VIEWER = 'viewer-token-0123456789abcdef';
const REVIEWER = 'reviewer-token-0123456789abcdef';

function withCollector(t: ExecutionContext, extra: Record<string, unknown> = {}): Promise<CollectorHandle> {
  return withTestCollector(t, extra, { tokens: `tokens:\n  - name: viewer-user\n    role: viewer\n    token: ${VIEWER}\n  - name: reviewer-user\n    role: reviewer\n    token: ${REVIEWER}\n` });
}

/** One request over a fresh connection from `from` (a 127.0.0.N address stands for another host). */
const send = (c: CollectorHandle, path: string, options: SendOptions = {}): Promise<Answer> => sendTo(c.url, path, options);

async function denied(c: CollectorHandle, reason: string): Promise<number> {
  const text = await c.metrics.registry.getSingleMetricAsString('driftwatch_collector_api_requests_denied_total');
  return Number(new RegExp(`reason="${reason}"\\} (\\d+)`).exec(text)?.[1] ?? 0);
}

test('the failure limiter: a credential locks, an address and everyone are throttled, each in its window', (t) => {
  let now = 0;
  const limits = { perCredential: 3, credentialWindowMs: 10_000, perAddress: 5, overall: 8, windowMs: 1_000 };
  const l = createAuthFailureLimiter(limits, { now: () => now });
  for (let i = 0; i < 3; i++) l.fail(`a${i}`, 'x');
  t.true(l.lockedFor('x') > 0, 'three failures of one credential from three addresses lock it');
  t.is(l.lockedFor('y'), 0);
  t.is(l.throttled('a0'), null, 'one failure per address is under its bound');
  for (let i = 0; i < 5; i++) l.fail('b', `b${i}`);
  t.is(l.throttled('b')?.gate, 'address_throttled');
  t.is(l.throttled('c')?.gate, 'overall_throttled', 'eight failures in all throttle everyone');
  now = 1_000;
  t.is(l.throttled('b'), null, 'the address window ended');
  t.true(l.lockedFor('x') > 0, 'the credential stays locked for its own window');
  now = 10_000;
  t.is(l.lockedFor('x'), 0);
});

test('a credential that keeps failing is locked, whatever address it comes from; other credentials are not', async (t) => {
  const c = await withCollector(t);
  const bad = 'rotated-out-token-0123456789';
  for (let i = 1; i <= 10; i++) t.is((await send(c, '/api/v1/alerts', { token: bad, from: `127.0.0.${i + 10}` })).status, 401);
  const locked = await send(c, '/api/v1/alerts', { token: bad, from: '127.0.0.30' });
  t.is(locked.status, 429, 'the 11th try from a new address');
  t.regex(JSON.parse(locked.body).error.message as string, /with this token/);
  t.is((await send(c, '/api/v1/alerts', { token: 'another-wrong-token-0123456', from: '127.0.0.30' })).status, 401, 'another wrong token is only refused');
  t.is((await send(c, '/api/v1/alerts', { token: VIEWER, from: '127.0.0.30' })).status, 200);
  t.is(await denied(c, 'credential_locked'), 1);
});

test('an attacker rotating addresses meets the overall budget; valid tokens still get in from anywhere', async (t) => {
  const c = await withCollector(t);
  // 16 addresses × 19 failures: under every address's bound, over the overall one (300 a minute).
  const statuses: number[] = [];
  for (let a = 0; a < 16; a++) {
    const from = `127.0.1.${a + 1}`;
    const batch = await Promise.all(Array.from({ length: 19 }, (_, i) => send(c, '/api/v1/alerts', { token: `guess-${a}-${i}-0123456789abcdef`, from })));
    statuses.push(...batch.map((r) => r.status));
  }
  t.is(statuses.filter((s) => s === 401).length, 300, 'the first 300 failures are answered 401');
  t.is(statuses.filter((s) => s === 429).length, 4);
  const fresh = await send(c, '/api/v1/alerts', { token: 'guess-new-0123456789abcdef', from: '127.0.2.1' });
  t.is(fresh.status, 429, 'a new address gets 429 for a failing attempt');
  t.regex(JSON.parse(fresh.body).error.message as string, /from all clients/);
  t.is((await send(c, '/api/v1/alerts', { token: VIEWER, from: '127.0.2.1' })).status, 200, 'a valid token is never refused for others’ failures');
  t.true((await denied(c, 'overall_throttled')) >= 5);
});

test('requests without a token are not failures: 100 of them leave the failure budget untouched', async (t) => {
  const c = await withCollector(t);
  for (let i = 0; i < 100; i++) t.is((await send(c, '/api/v1/whoami')).status, 401);
  t.is((await send(c, '/api/v1/alerts', { token: 'a-first-wrong-token-0123456' })).status, 401, 'a wrong token still gets 401, not 429');
  t.is(await denied(c, 'address_throttled'), 0);
});

/** Every file the console page loads before sign-in: its links and scripts, and their static imports. */
async function consoleLoad(c: CollectorHandle): Promise<Map<string, number>> {
  const seen = new Map<string, number>();
  const page = await send(c, '/console/');
  seen.set('/console/', page.status);
  const queue = [...page.body.matchAll(/(?:href|src)="([^"]+)"/g)].map((m) => new URL(m[1] as string, `${c.url}/console/`).pathname);
  // Browsers ask for /favicon.ico on their own.
  queue.push('/favicon.ico');
  while (queue.length > 0) {
    const path = queue.shift() as string;
    if (seen.has(path)) continue;
    const r = await send(c, path);
    seen.set(path, r.status);
    if (path.endsWith('.js')) for (const m of r.body.matchAll(/(?:from|import)\s*\(?\s*['"](\.[^'"]+)['"]/g)) queue.push(new URL(m[1] as string, `${c.url}${path}`).pathname);
  }
  return seen;
}

test('reloading the console 100 times needs no token, counts no failure, and never locks its user out', async (t) => {
  const c = await withCollector(t);
  const first = await consoleLoad(c);
  t.true(first.has('/console/main.js') && first.has('/console/style.css') && first.has('/favicon.ico') && first.has('/console/favicon.svg'), [...first.keys()].join(' '));
  t.true(first.size > 5, 'the modules main.js imports are followed');
  for (const [path, status] of first) t.is(status, 200, path);
  for (let i = 1; i < 100; i++) {
    const load = await consoleLoad(c);
    t.true([...load.values()].every((s) => s === 200));
  }
  const icon = await send(c, '/favicon.ico');
  t.is(icon.headers['content-type'], 'image/svg+xml');
  t.is((await send(c, '/api/v1/whoami', { token: VIEWER })).status, 200);
  for (const reason of ['invalid_token', 'credential_locked', 'address_throttled', 'overall_throttled']) t.is(await denied(c, reason), 0, reason);
});

test('2,000 concurrent scrapes of /metrics share a handful of renderings while /livez answers', async (t) => {
  // A long interval: a handful of renderings must serve the whole storm, however slow this machine is.
  const c = await withCollector(t, { metricsInterval: '1m' });
  const agent = new Agent({ keepAlive: false, maxSockets: Infinity });
  const get = (path: string) =>
    new Promise<number | string>((resolve) => {
      const req = request(`${c.url}${path}`, { agent }, (res) => {
        res.resume();
        res.on('end', () => resolve(res.statusCode ?? 0));
      });
      // A listen backlog overflowing under 2,000 connects at once is the kernel's, not the collector's.
      req.on('error', (err: NodeJS.ErrnoException) => resolve(err.code ?? 'error'));
      req.end();
    });
  const scrapes = Array.from({ length: 2000 }, () => get('/metrics'));
  const livez = await get('/livez');
  const statuses = await Promise.all(scrapes);
  t.is(livez, 200);
  const answered = statuses.filter((s) => typeof s === 'number');
  t.true(answered.length >= 1000, `${answered.length} scrapes answered`);
  t.true(answered.every((s) => s === 200));
  const scrapesText = await c.metrics.registry.getSingleMetricAsString('driftwatch_metrics_scrapes_total');
  const rendered = Number(/served="rendered"\} (\d+)$/m.exec(scrapesText)?.[1]);
  t.true(rendered >= 1 && rendered <= FRESH_RENDERS, `rendered ${rendered} times for the whole storm`);
  const others = [...scrapesText.matchAll(/served="(?:shared|cached)"\} (\d+)/g)].reduce((n, m) => n + Number(m[1]), 0);
  t.is(others + rendered, answered.length, 'every other scrape shared a rendering or got its text');
});

test('a JSON body over the bound gets 413 with a reason, announced or chunked, and the next request works', async (t) => {
  const c = await withCollector(t);
  const json = (size: number) => JSON.stringify({ comment: 'x'.repeat(size) });
  const post = (body: string, chunked: boolean) =>
    send(c, '/api/v1/baselines/bulk', { method: 'POST', token: REVIEWER, headers: { 'content-type': 'application/json' }, body, chunked });
  for (const [size, chunked] of [[20 << 10, false], [900 << 10, false], [20 << 10, true], [900 << 10, true], [2 << 20, false]] as const) {
    const r = await post(json(size), chunked);
    t.is(r.status, 413, `${size} bytes ${chunked ? 'chunked' : 'with Content-Length'}`);
    t.is(JSON.parse(r.body).error.code, 'body_too_large');
    t.is(r.headers.connection, 'close');
  }
  // The same over one kept-alive connection: a cut body must not reset the next request.
  const agent = new Agent({ keepAlive: true, maxSockets: 1 });
  t.teardown(() => agent.destroy());
  const onAgent = (body: string, chunked: boolean) =>
    new Promise<number>((resolve, reject) => {
      const req = request(`${c.url}/api/v1/baselines/bulk`, { method: 'POST', agent, headers: { authorization: `Bearer ${REVIEWER}`, 'content-type': 'application/json', ...(chunked ? {} : { 'content-length': String(Buffer.byteLength(body)) }) } }, (res) => {
        res.resume();
        res.on('end', () => resolve(res.statusCode ?? 0));
      });
      req.on('error', reject);
      req.end(body);
    });
  t.is(await onAgent(json(200 << 10), true), 413);
  t.is(await onAgent(json(500 << 10), false), 413);
  t.is(await onAgent('{"action":"lock","filter":{"prefix":"none/"}}', false), 200);
  t.true((await denied(c, 'body_too_large')) >= 1, 'a Content-Length over maxBodyBytes is counted at the door');
});

/** Open a live-feed websocket with `token`; resolves with the status line and the socket. */
const upgrade = (c: CollectorHandle, token: string) => upgradeTo(c.httpPort, token);

test('one token holds at most its share of live-feed slots; other tokens still connect', async (t) => {
  const c = await withCollector(t, { streamMaxClientsPerToken: 2 });
  const open: Socket[] = [];
  t.teardown(() => open.forEach((s) => s.destroy()));
  for (let i = 0; i < 2; i++) {
    const u = await upgrade(c, VIEWER);
    open.push(u.socket);
    t.regex(u.status, /^HTTP\/1\.1 101 /);
  }
  const third = await upgrade(c, VIEWER);
  open.push(third.socket);
  t.regex(third.status, /^HTTP\/1\.1 429 /);
  const other = await upgrade(c, REVIEWER);
  open.push(other.socket);
  t.regex(other.status, /^HTTP\/1\.1 101 /, 'another token has its own share');
  t.regex(await c.metrics.registry.getSingleMetricAsString('driftwatch_collector_stream_token_limit_total'), /_total 1$/m);
});
