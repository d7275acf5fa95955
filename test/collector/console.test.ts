/**
 * The console's server side with a real collector over real HTTP and websockets: static files from
 * a manifest (content types, CSP, ETags, no path reaching anything else), `GET /api/v1/whoami`,
 * and the live feed authenticated by the subprotocol a browser can send. The browser itself is
 * driven in test/console/.
 */
import test, { type ExecutionContext } from 'ava';
import { readFileSync, readdirSync } from 'node:fs';
import { request } from 'node:http';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { WebSocket } from 'ws';
import { ROUTES, requiredRole } from '../../collector/http/routes/index.js';
import { CONSOLE_CSP } from '../../collector/http/console/server.js';
import { type CollectorHandle } from '../../collector/main.js';
import { withCollector } from '../helpers/collector.js';

const TOKENS = { viewer: 'viewer-token-0123456789abcdef', responder: 'responder+token/0123456789==' } as const;
const MODULES_DIR = fileURLToPath(new URL('../../collector/console/', import.meta.url));

function withTokens(t: ExecutionContext): Promise<CollectorHandle> {
  return withCollector(t, {}, { tokens: `tokens:\n  - name: vera\n    role: viewer\n    token: ${TOKENS.viewer}\n  - name: rob\n    role: responder\n    token: "${TOKENS.responder}"\n` });
}

/** A raw GET: the path goes on the wire exactly as given (fetch would normalize `..`). */
function rawGet(c: CollectorHandle, path: string, headers: Record<string, string> = {}, method = 'GET'): Promise<{ status: number; headers: Record<string, string | string[] | undefined>; body: string }> {
  const url = new URL(c.url);
  return new Promise((resolve, reject) => {
    const req = request({ host: url.hostname, port: url.port, path, method, headers }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (body += chunk));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
    });
    req.on('error', reject);
    req.end();
  });
}

test('/ and /console redirect to /console/, which serves the page, its stylesheet and modules with strict headers', async (t) => {
  const c = await withTokens(t);
  for (const path of ['/', '/console', '/?x=1']) {
    const r = await rawGet(c, path);
    t.is(r.status, 302, path);
    t.is(r.headers.location, '/console/');
  }
  const page = await rawGet(c, '/console/');
  t.is(page.status, 200);
  t.is(page.headers['content-type'], 'text/html; charset=utf-8');
  t.is(page.headers['content-security-policy'], CONSOLE_CSP);
  t.regex(CONSOLE_CSP, /^default-src 'self';/);
  t.is(page.headers['x-content-type-options'], 'nosniff');
  t.is(page.headers['x-frame-options'], 'DENY');
  t.is(page.headers['cache-control'], 'no-cache');
  t.regex(page.body, /<script type="module" src="main\.js"><\/script>/);
  // No inline script or style: every <script> has a src, no style attribute or element.
  t.deepEqual(page.body.match(/<script(?![^>]*\bsrc=)[^>]*>/g), null);
  t.false(/\sstyle=|<style/i.test(page.body));

  const css = await rawGet(c, '/console/style.css');
  t.is(css.status, 200);
  t.is(css.headers['content-type'], 'text/css; charset=utf-8');
  const compiled = readdirSync(MODULES_DIR).filter((n) => n.endsWith('.js'));
  t.true(compiled.includes('main.js') && compiled.length >= 5);
  for (const name of compiled) {
    const js = await rawGet(c, `/console/${name}`);
    t.is(js.status, 200, name);
    t.is(js.headers['content-type'], 'text/javascript; charset=utf-8');
    t.is(js.headers['content-security-policy'], CONSOLE_CSP);
    t.is(js.body, readFileSync(join(MODULES_DIR, name), 'utf8'));
  }

  // Revalidation by ETag; HEAD has the headers and no body.
  const etag = page.headers.etag as string;
  t.regex(etag, /^"[A-Za-z0-9_-]+"$/);
  t.is((await rawGet(c, '/console/', { 'if-none-match': etag })).status, 304);
  t.is((await rawGet(c, '/console/', { 'if-none-match': '"other"' })).status, 200);
  const head = await rawGet(c, '/console/main.js', {}, 'HEAD');
  t.is(head.status, 200);
  t.is(head.body, '');
  t.is(Number(head.headers['content-length']), readFileSync(join(MODULES_DIR, 'main.js')).length);
});

test('no path reaches a file outside the manifest', async (t) => {
  const c = await withTokens(t);
  const paths = [
    '/console/../package.json',
    '/console/..%2f..%2fpackage.json',
    '/console/%2e%2e/%2e%2e/package.json',
    '/console/%2e%2e%2fauth.js',
    '/console/main.js%00.css',
    '/console/main.ts',
    '/console/tsconfig.json',
    '/console//etc/passwd',
    '/console/./main.js',
    '/console/MAIN.JS',
    '/console/main.js/',
    '/console/\\..\\package.json',
  ];
  for (const path of paths) {
    const r = await rawGet(c, path);
    t.is(r.status, 404, path);
    t.is(r.body, 'not found\n', path);
    t.is(r.headers['content-security-policy'], CONSOLE_CSP, path);
  }
  // Writes are not for the console: 405, with what is allowed; without a token, 401 (nothing learned).
  const post = await fetch(`${c.url}/console/`, { method: 'POST', headers: { authorization: `Bearer ${TOKENS.responder}` } });
  t.is(post.status, 405);
  t.is(post.headers.get('allow'), 'GET, HEAD');
  t.is((await fetch(`${c.url}/console/`, { method: 'POST' })).status, 401);
});

test('the browser modules build the page with DOM calls only: no innerHTML, eval or document.write', (t) => {
  const compiled = readdirSync(MODULES_DIR).filter((n) => n.endsWith('.js'));
  t.true(compiled.length >= 5);
  for (const name of compiled) {
    const text = readFileSync(join(MODULES_DIR, name), 'utf8');
    t.false(/innerHTML|outerHTML|insertAdjacentHTML|document\.write|\beval\(|new Function\(|setTimeout\(['"`]/.test(text), name);
  }
});

test('route roles: the console\'s files are open to read, whoami needs a viewer, writes need a token (and get 405)', (t) => {
  t.is(requiredRole('GET', '/'), 'open');
  t.is(requiredRole('HEAD', '/console/'), 'open');
  t.is(requiredRole('GET', '/console/main.js'), 'open');
  t.is(requiredRole('GET', '/api/v1/whoami'), 'viewer');
  t.is(requiredRole('POST', '/console/'), 'viewer');
  t.is(requiredRole('POST', '/'), 'viewer');
  t.is(requiredRole('GET', '/consolex'), 'viewer');
});

test('GET /api/v1/whoami answers the token\'s name and role, and needs a token', async (t) => {
  const c = await withTokens(t);
  const me = await fetch(`${c.url}/api/v1/whoami`, { headers: { authorization: `Bearer ${TOKENS.viewer}` } });
  t.is(me.status, 200);
  t.is(me.headers.get('cache-control'), 'no-store');
  const vera = (await me.json()) as { name: string; role: string; routes: string[] };
  t.like(vera, { name: 'vera', role: 'viewer' });
  const rob = (await (await fetch(`${c.url}/api/v1/whoami`, { headers: { authorization: `Bearer ${TOKENS.responder}` } })).json()) as typeof vera;
  t.like(rob, { name: 'rob', role: 'responder' });
  // The routes each may call, from the server's table: reads for both, acknowledge for the
  // responder only, accepting (a reviewer's) and the audit log for neither.
  for (const r of ['GET /api/v1/alerts', 'GET /api/v1/baselines/{key}', 'GET /api/v1/whoami']) {
    t.true(vera.routes.includes(r), r);
    t.true(rob.routes.includes(r), r);
  }
  t.false(vera.routes.includes('POST /api/v1/alerts/{id}/acknowledge'));
  t.true(rob.routes.includes('POST /api/v1/alerts/{id}/acknowledge'));
  t.true(rob.routes.includes('DELETE /api/v1/nodes/{node}'));
  for (const r of ['POST /api/v1/alerts/{id}/accept', 'GET /api/v1/audit', 'POST /api/v1/exceptions']) t.false(rob.routes.includes(r), r);
  t.deepEqual(vera.routes, ROUTES.filter((r) => r.path.startsWith('/api/v1/') && r.role === 'viewer').map((r) => `${r.method} ${r.path}`));
  t.is((await fetch(`${c.url}/api/v1/whoami`)).status, 401);
  t.is((await fetch(`${c.url}/api/v1/whoami`, { headers: { authorization: 'Bearer not-a-valid-token-at-all' } })).status, 401);
});

test('every route the console offers an action for is in the server\'s table', async (t) => {
  // The console's module is browser code, compiled apart (collector/console/tsconfig.json).
  const consoleApi = (await import(new URL('../../collector/console/api.js', import.meta.url).href)) as { ACTION_ROUTES: Record<string, string | string[]> };
  const table = new Set(ROUTES.map((r) => `${r.method} ${r.path}`));
  const named = Object.values(consoleApi.ACTION_ROUTES).flat();
  t.true(named.length >= 7);
  for (const r of named) t.true(table.has(r), r);
});

function b64url(s: string): string {
  return Buffer.from(s, 'latin1').toString('base64url');
}

/** Open the live feed with `protocols`; resolves with the first frame and the chosen subprotocol, or the refusal's status. */
function openFeed(c: CollectorHandle, protocols: string[], headers: Record<string, string> = {}): Promise<{ status: number; protocol?: string; first?: Record<string, unknown>; upgradeHeaders?: Record<string, string | string[] | undefined> }> {
  return new Promise((resolve) => {
    const ws = new WebSocket(`${c.url.replace(/^http/, 'ws')}/api/v1/stream`, protocols, { headers });
    let upgradeHeaders: Record<string, string | string[] | undefined> | undefined;
    ws.on('upgrade', (res) => (upgradeHeaders = res.headers));
    ws.on('unexpected-response', (_req, res) => {
      resolve({ status: res.statusCode ?? 0 });
      res.resume();
      ws.terminate();
    });
    ws.on('message', (data) => {
      resolve({ status: 101, protocol: ws.protocol, first: JSON.parse(String(data)) as Record<string, unknown>, upgradeHeaders });
      ws.close();
    });
    ws.on('error', () => undefined);
  });
}

test('the live feed takes the token from the subprotocol a browser can send, and never echoes it', async (t) => {
  const c = await withTokens(t);
  // A token with characters a subprotocol cannot carry (+ / =) travels base64url-encoded.
  for (const token of [TOKENS.viewer, TOKENS.responder]) {
    const ok = await openFeed(c, ['driftwatch.v1', `driftwatch.bearer.${b64url(token)}`]);
    t.is(ok.status, 101);
    t.is(ok.protocol, 'driftwatch.v1');
    t.is(ok.first?.type, 'hello');
    t.is(ok.upgradeHeaders?.['sec-websocket-protocol'], 'driftwatch.v1');
    t.false(JSON.stringify(ok.upgradeHeaders).includes(b64url(token)));
  }
  // Refusals, before the upgrade: a wrong token, a malformed one, none at all.
  t.is((await openFeed(c, ['driftwatch.v1', `driftwatch.bearer.${b64url('wrong-token-0123456789abcdef')}`])).status, 401);
  t.is((await openFeed(c, ['driftwatch.v1', 'driftwatch.bearer.not.base64url!'])).status, 401);
  t.is((await openFeed(c, ['driftwatch.v1'])).status, 401);
  // Authorization still works for clients that can set it (no subprotocol asked, none answered).
  const cli = await openFeed(c, [], { authorization: `Bearer ${TOKENS.viewer}` });
  t.is(cli.status, 101);
  t.is(cli.protocol, '');
  // The subprotocol is read only on websocket upgrades: a plain request with it is still 401.
  const plain = await rawGet(c, '/api/v1/alerts', { 'sec-websocket-protocol': `driftwatch.v1, driftwatch.bearer.${b64url(TOKENS.viewer)}` });
  t.is(plain.status, 401);
});
