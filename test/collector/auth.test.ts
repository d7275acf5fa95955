/**
 * The HTTP API's authentication and authorization with a real collector over real HTTP: the route
 * table, the tokens file (parsing, reloading), 401/403/429/413 per role, websocket upgrades, and the
 * audit log read back through GET /api/v1/audit.
 */
import test, { type ExecutionContext } from 'ava';
import { createHash } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { MAX_AUDIT_VALUE_CHARS } from '../../collector/audit.js';
import { parseTokensFile } from '../../collector/http/auth.js';
import { requiredRole } from '../../collector/http/routes/index.js';
import { loadCollectorConfig, type CollectorHandle } from '../../collector/main.js';
import { withCollector, type TestCollector } from '../helpers/collector.js';

const TOKENS = {
  viewer: 'viewer-token-0123456789abcdef',
  responder: 'responder-token-0123456789abcdef',
  reviewer: 'reviewer-token-0123456789abcdef',
  admin: 'admin-token-0123456789abcdef',
} as const;
type RoleName = keyof typeof TOKENS;

function tokensYaml(tokens: Record<string, string> = TOKENS): string {
  const lines = ['tokens:'];
  for (const [role, token] of Object.entries(tokens)) {
    // The admin's is stored as its digest, the way the README recommends.
    if (role === 'admin') lines.push(`  - name: ${role}-user`, `    role: ${role}`, `    sha256: ${createHash('sha256').update(token).digest('hex')}`);
    else lines.push(`  - name: ${role}-user`, `    role: ${role}`, `    token: ${token}`);
  }
  return `${lines.join('\n')}\n`;
}

function withTokens(t: ExecutionContext, extra: Record<string, unknown> = {}): Promise<TestCollector> {
  return withCollector(t, { tlsReloadInterval: '100ms', ...extra }, { tokens: tokensYaml() });
}

function call(c: CollectorHandle, method: string, path: string, token?: string, init: RequestInit = {}) {
  const headers: Record<string, string> = {};
  if (token !== undefined) headers.authorization = `Bearer ${token}`;
  return fetch(`${c.url}${path}`, { method, headers, ...init });
}

test('the route table gives every method and path its least role; what no route takes needs any token', (t) => {
  const cases: [string, string, ReturnType<typeof requiredRole>][] = [
    ['GET', '/livez', 'open'],
    ['GET', '/readyz', 'open'],
    ['GET', '/healthz', 'open'],
    ['GET', '/metrics', 'open'],
    // No route takes these: a token of any role, then 404 or 405 (never a handler).
    ['POST', '/livez', 'viewer'],
    ['GET', '/api/v1/alerts', 'viewer'],
    ['HEAD', '/api/v1/alerts/abc', 'viewer'],
    ['GET', '/api/v1/stream', 'viewer'],
    ['GET', '/api/v1/baselines/docker.io%2Flibrary%2Fnginx', 'viewer'],
    ['GET', '/api/v1/audit', 'reviewer'],
    ['GET', '//api/v1//audit/', 'reviewer'],
    ['GET', '/api/v1/%61udit', 'reviewer'],
    ['POST', '/api/v1/alerts/abc/ack', 'responder'],
    ['POST', '/api/v1/alerts/abc/resolve', 'responder'],
    ['POST', '/api/v1/alerts/abc/accept', 'reviewer'],
    ['POST', '/api/v1/alerts/a%2Fb/accept', 'reviewer'],
    ['POST', '/api/v1/baselines/docker.io%2Flibrary%2Fnginx/lock', 'reviewer'],
    ['POST', '/api/v1/baselines/docker.io/library/nginx/relearn', 'viewer'], // the key must be one percent-encoded segment: 404
    ['POST', '/api/v1/exceptions', 'reviewer'],
    ['DELETE', '/api/v1/exceptions/7', 'reviewer'],
    ['PATCH', '/api/v1/exceptions/7', 'viewer'],
    ['POST', '/api/v1/nodes/node-1/quarantine', 'admin'],
    ['DELETE', '/api/v1/nodes/node-1/quarantine', 'admin'],
    ['DELETE', '/api/v1/nodes/node-1', 'responder'],
    ['GET', '/api/v1/nodes/quarantined', 'viewer'],
    ['POST', '/api/v1/something-new', 'viewer'],
    ['PUT', '/api/v1/audit', 'viewer'],
    ['OPTIONS', '/api/v1/alerts', 'viewer'],
    ['GET', '/api/v1/%zz', null],
  ];
  for (const [method, path, role] of cases) t.is(requiredRole(method, path), role, `${method} ${path}`);
});

test('a tokens file with a mistake is refused naming the entry', (t) => {
  const bad: [string, RegExp][] = [
    ['tokens:\n  - name: a\n    role: viewer\n', /exactly one of sha256 or token/],
    ['tokens:\n  - name: a\n    role: root\n    token: aaaaaaaaaaaaaaaaaaaa\n', /tokens\.0\.role/],
    ['tokens:\n  - name: a\n    role: viewer\n    token: short\n', /16 to 4096/],
    ['tokens:\n  - name: a\n    role: viewer\n    token: aaaaaaaaaaaaaaaaaaaa\n    extra: 1\n', /unknown key extra/],
    ['tokens:\n  - name: a\n    role: viewer\n    token: aaaaaaaaaaaaaaaaaaaa\n  - name: a\n    role: admin\n    token: bbbbbbbbbbbbbbbbbbbb\n', /given twice/],
    ['tokens:\n  - name: a\n    role: viewer\n    token: aaaaaaaaaaaaaaaaaaaa\n  - name: b\n    role: admin\n    token: aaaaaaaaaaaaaaaaaaaa\n', /same token/],
    ['users: []\n', /^tokens: .*expected array/],
  ];
  for (const [text, message] of bad) t.throws(() => parseTokensFile(text), { message }, text);
  t.is(parseTokensFile('tokens: []\n').length, 0);
});

test('without a tokens file the collector refuses to start unless insecure', (t) => {
  t.throws(() => loadCollectorConfig({ db: '/tmp/x.db', tlsCert: 'c', tlsKey: 'k', tlsCa: 'ca' }, {}), { message: /apiTokensFile: .*insecure/ });
  t.throws(() => loadCollectorConfig({ db: '/tmp/x.db', apiTokensFile: 't' }, {}), { message: /tlsCert: the agent stream needs TLS/ });
  t.notThrows(() => loadCollectorConfig({ db: '/tmp/x.db' }, { DRIFTWATCH_INSECURE: 'true' }));
});

test('401 without or with a wrong token, 403 for a role too weak, through for a strong enough one', async (t) => {
  const c = await withTokens(t);
  const none = await call(c, 'GET', '/api/v1/alerts');
  t.is(none.status, 401);
  t.is(none.headers.get('www-authenticate'), 'Bearer realm="driftwatch"');
  t.is(((await none.json()) as { error: { code: string } }).error.code, 'unauthenticated');
  const wrong = await call(c, 'GET', '/api/v1/alerts', 'not-a-real-token-at-all-0000');
  t.is(wrong.status, 401);
  t.regex(wrong.headers.get('www-authenticate') ?? '', /invalid_token/);
  t.is((await call(c, 'GET', '/api/v1/alerts', `${TOKENS.viewer}x`)).status, 401, 'a token with one more character is another token');
  t.is((await fetch(`${c.url}/api/v1/alerts`, { headers: { authorization: `Basic ${TOKENS.viewer}` } })).status, 401);

  // Expected status per role; a request that passes auth reaches the API (404 for an alert or
  // exception that does not exist); what no route takes is 404 or 405 for any token.
  const table: [string, string, Record<RoleName, number>][] = [
    ['GET', '/api/v1/alerts', { viewer: 200, responder: 200, reviewer: 200, admin: 200 }],
    ['GET', '/api/v1/baselines', { viewer: 200, responder: 200, reviewer: 200, admin: 200 }],
    ['GET', '/api/v1/audit', { viewer: 403, responder: 403, reviewer: 200, admin: 200 }],
    ['POST', '/api/v1/alerts/abc/ack', { viewer: 403, responder: 404, reviewer: 404, admin: 404 }],
    ['POST', '/api/v1/alerts/abc/accept', { viewer: 403, responder: 403, reviewer: 404, admin: 404 }],
    ['POST', '/api/v1/baselines/docker.io%2Flibrary%2Fnginx/lock', { viewer: 403, responder: 403, reviewer: 404, admin: 404 }],
    ['DELETE', '/api/v1/exceptions/1', { viewer: 403, responder: 403, reviewer: 404, admin: 404 }],
    ['POST', '/api/v1/exceptions', { viewer: 403, responder: 403, reviewer: 400, admin: 400 }],
    ['POST', '/api/v1/tokens', { viewer: 404, responder: 404, reviewer: 404, admin: 404 }],
    ['PUT', '/api/v1/audit', { viewer: 405, responder: 405, reviewer: 405, admin: 405 }],
  ];
  for (const [method, path, expected] of table) {
    for (const role of Object.keys(TOKENS) as RoleName[]) {
      const res = await call(c, method, path, TOKENS[role]);
      t.is(res.status, expected[role], `${role} ${method} ${path}`);
      if (res.status === 403) t.regex(((await res.json()) as { error: { message: string } }).error.message, new RegExp(`needs the role`));
      else await res.arrayBuffer();
    }
    t.is((await call(c, method, path)).status, 401, `anonymous ${method} ${path}`);
  }
  // Health stays open; metrics too unless metricsAuth.
  for (const path of ['/livez', '/healthz', '/readyz', '/metrics']) t.is((await call(c, 'GET', path)).status, 200, path);
  const metrics = await (await call(c, 'GET', '/metrics')).text();
  t.regex(metrics, /^driftwatch_collector_api_requests_denied_total\{reason="forbidden"\} \d+/m);
  t.regex(metrics, /^driftwatch_collector_api_requests_denied_total\{reason="unauthenticated"\} \d+/m);
  t.false(metrics.includes(TOKENS.viewer), 'no token in the metrics');
});

test('metricsAuth puts /metrics behind a viewer token', async (t) => {
  const c = await withTokens(t, { metricsAuth: true });
  t.is((await call(c, 'GET', '/metrics')).status, 401);
  t.is((await call(c, 'GET', '/metrics', TOKENS.viewer)).status, 200);
  t.is((await call(c, 'GET', '/livez')).status, 200);
});

test('failures from one address slow its failing attempts, never a good token from it', async (t) => {
  const c = await withTokens(t);
  for (let i = 0; i < 20; i++) t.is((await call(c, 'GET', '/api/v1/alerts', `guess-${i}-0123456789abcdef`)).status, 401);
  const slowed = await call(c, 'GET', '/api/v1/alerts', 'guess-20-0123456789abcdef');
  t.is(slowed.status, 429, 'a further failing attempt from this address');
  t.truthy(Number(slowed.headers.get('retry-after')) > 0);
  t.is((await call(c, 'GET', '/api/v1/alerts', TOKENS.admin)).status, 200, 'a valid token from the same address still gets in');
  t.is((await call(c, 'GET', '/livez')).status, 200, 'open routes stay open');
  t.regex(await (await call(c, 'GET', '/metrics')).text(), /^driftwatch_collector_api_requests_denied_total\{reason="address_throttled"\} 1$/m);
});

test('requests per token are rate limited', async (t) => {
  const c = await withTokens(t, { apiRateLimit: 1 });
  // Ten at once: however slow this machine, they arrive well within the nine seconds of refill
  // that would let them all through.
  const statuses = await Promise.all(Array.from({ length: 10 }, async () => (await call(c, 'GET', '/api/v1/alerts', TOKENS.viewer)).status));
  t.true(statuses.filter((s) => s === 200).length >= 2, 'a burst of twice the rate');
  t.true(statuses.includes(429));
  t.is((await call(c, 'GET', '/api/v1/alerts', TOKENS.reviewer)).status, 200, 'another token has its own bucket');
});

test('a body larger than maxBodyBytes is refused with 413 before the handler', async (t) => {
  const c = await withTokens(t, { maxBodyBytes: 1024 });
  const res = await call(c, 'POST', '/api/v1/alerts/abc/ack', TOKENS.admin, { body: 'x'.repeat(4096) });
  t.is(res.status, 413);
});

test('the tokens file is re-read when it changes; a broken one keeps the previous tokens; the change is audited', async (t) => {
  const c = await withTokens(t);
  const fresh = 'fresh-token-for-carol-0123456789';
  writeFileSync(c.tokensFile, `tokens:\n  - name: carol\n    role: reviewer\n    token: ${fresh}\n  - name: viewer-user\n    role: viewer\n    token: ${TOKENS.viewer}\n`);
  const deadline = Date.now() + 5_000;
  while ((await call(c, 'GET', '/api/v1/alerts', fresh)).status !== 200) {
    if (Date.now() > deadline) return t.fail('the new token was never accepted');
    await new Promise((r) => setTimeout(r, 50));
  }
  t.is((await call(c, 'GET', '/api/v1/alerts', TOKENS.admin)).status, 401, 'a removed token is refused');

  const audit = (await (await call(c, 'GET', '/api/v1/audit', fresh)).json()) as { items: { actor: string; action: string; before: unknown; after: unknown }[] };
  const reload = audit.items.find((e) => e.action === 'api-tokens.reload');
  t.truthy(reload);
  t.is(reload!.actor, 'system');
  t.deepEqual(reload!.after, [{ name: 'carol', role: 'reviewer' }, { name: 'viewer-user', role: 'viewer' }]);
  t.true((reload!.before as { name: string }[]).some((p) => p.name === 'admin-user'));
  t.false(JSON.stringify(audit).includes('token-0123456789'), 'no token in the audit log');

  writeFileSync(c.tokensFile, 'tokens:\n  - name: [broken\n');
  await new Promise((r) => setTimeout(r, 400));
  t.is((await call(c, 'GET', '/api/v1/alerts', fresh)).status, 200, 'the previous tokens stay in force');
  t.regex(await (await call(c, 'GET', '/metrics')).text(), /^driftwatch_collector_api_tokens_reloads_total\{result="error"\} 1$/m);
});

test('a websocket upgrade needs a token like any read', async (t) => {
  const c = await withTokens(t);
  const upgrade = (token?: string) =>
    new Promise<string>((resolve, reject) => {
      const s = connect(c.httpPort, '127.0.0.1');
      let text = '';
      s.setEncoding('utf8');
      s.on('data', (d: string) => {
        text += d;
        // The status line and headers are all a refusal or a 101 says; a 101 leaves the socket open.
        if (text.includes('\r\n\r\n') && text.startsWith('HTTP/1.1 101 ')) {
          s.destroy();
          resolve(text);
        }
      });
      s.on('end', () => resolve(text));
      s.on('error', reject);
      s.write(
        `GET /api/v1/stream HTTP/1.1\r\nhost: x\r\nconnection: upgrade\r\nupgrade: websocket\r\nsec-websocket-version: 13\r\nsec-websocket-key: dGhlIHNhbXBsZSBub25jZQ==\r\n${token ? `authorization: Bearer ${token}\r\n` : ''}\r\n`,
      );
    });
  t.regex(await upgrade(), /^HTTP\/1\.1 401 /);
  t.regex(await upgrade('nope-nope-nope-nope-nope'), /^HTTP\/1\.1 401 /);
  t.regex(await upgrade(TOKENS.viewer), /^HTTP\/1\.1 101 /, 'a viewer may watch the live feed');
});

test('audit entries are readable newest first, paged, with huge values truncated', async (t) => {
  const c = await withTokens(t);
  for (let i = 1; i <= 5; i++) await c.audit.record({ actor: 'alice', role: 'reviewer', action: 'baseline.lock', target: `key-${i}`, before: { state: 'enforcing' }, after: { state: 'locked', i } });
  await c.audit.record({ actor: 'bob', role: 'responder', action: 'alert.acknowledge', target: 'x'.repeat(5000), before: { blob: 'y'.repeat(100_000) }, after: null });
  const first = (await (await call(c, 'GET', '/api/v1/audit?limit=4', TOKENS.reviewer)).json()) as { items: any[]; next: string | null };
  t.is(first.items.length, 4);
  t.is(first.items[0].actor, 'bob');
  t.is(first.items[0].target.length, 1024, 'target bounded');
  t.true(first.items[0].before.truncated);
  t.true(JSON.stringify(first.items[0].before).length <= MAX_AUDIT_VALUE_CHARS);
  t.is(first.items[0].after, null);
  t.deepEqual(first.items[1].after, { state: 'locked', i: 5 });
  t.regex(first.items[1].time, /^\d{4}-\d\d-\d\dT/);
  t.truthy(first.next);
  const second = (await (await call(c, 'GET', `/api/v1/audit?limit=4&cursor=${first.next}`, TOKENS.admin)).json()) as { items: any[]; next: string | null };
  t.deepEqual(second.items.map((e) => e.target), ['key-2', 'key-1']);
  t.is(second.next, null);
  t.is((await call(c, 'GET', '/api/v1/audit?cursor=bogus', TOKENS.admin)).status, 400);
  t.is((await call(c, 'GET', '/api/v1/audit?limit=0', TOKENS.admin)).status, 400);
  t.is((await call(c, 'GET', '/api/v1/audit?who=me', TOKENS.admin)).status, 400);
  t.is((await call(c, 'GET', '/api/v1/audit', TOKENS.responder)).status, 403);
});

test('an open API (insecure, no tokens file) acts as anonymous admin', async (t) => {
  const c = await withCollector(t);
  t.is((await fetch(`${c.url}/api/v1/audit`)).status, 200);
  t.is((await fetch(`${c.url}/api/v1/alerts`)).status, 200);
});

test('readJsonBody bounds a chunked body that announces no length', async (t) => {
  const { readJsonBody, BodyError } = await import('../../collector/http/request-body.js');
  const { createServer } = await import('node:http');
  const server = createServer((req, res) => {
    readJsonBody(req, 1024).then(
      (v) => res.writeHead(200).end(JSON.stringify(v)),
      (err: unknown) => {
        if (!(err instanceof BodyError)) throw err;
        if (!res.headersSent) res.writeHead(err.status, { connection: 'close' }).end(err.code);
      },
    );
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  t.teardown(() => new Promise<void>((r) => server.close(() => r())));
  const url = `http://127.0.0.1:${(server.address() as { port: number }).port}/`;
  const post = (body: string | ReadableStream, type = 'application/json') => fetch(url, { method: 'POST', headers: { 'content-type': type }, body, duplex: 'half' } as RequestInit);
  t.is(await (await post('{"a":1}')).text(), '{"a":1}');
  t.is((await post('{"a":')).status, 400);
  t.is((await post('{}', 'text/plain')).status, 415);
  const chunked = new ReadableStream({
    start(c) {
      for (let i = 0; i < 8; i++) c.enqueue(new TextEncoder().encode(`"${'x'.repeat(500)}",`));
      c.close();
    },
  });
  const res = await post(chunked).catch(() => null);
  t.true(res === null || res.status === 413, 'refused (413, or the connection closed mid-upload)');
});
