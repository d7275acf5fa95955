/**
 * Every route of the HTTP API, as a table: without a token 401, with a role too weak 403, with the
 * least role it needs neither. The table must name every route of the server's own table
 * (collector/http/routes/index.ts), so a route added later without a row fails here; and the
 * README's HTTP API table must name every route with its least role, and nothing else.
 */
import test from 'ava';
import { readFileSync } from 'node:fs';
import { request } from 'node:http';
import { fileURLToPath } from 'node:url';
import { withCollector } from '../helpers/collector.js';
import { ROUTES as SERVER_ROUTES, ROUTE_TABLE } from '../../collector/http/routes/index.js';
import { createRouteTable, route } from '../../collector/http/route.js';

const ROLES = ['viewer', 'responder', 'reviewer', 'admin'] as const;
type Role = (typeof ROLES)[number];
const TOKEN: Record<Role, string> = { viewer: 'v-0123456789abcdef0123', responder: 'r-0123456789abcdef0123', reviewer: 'w-0123456789abcdef0123', admin: 'a-0123456789abcdef0123' };
const K = encodeURIComponent('docker.io/library/nginx');

const ROUTES: [string, string, Role][] = [
  ['GET', '/api/v1/alerts', 'viewer'],
  ['GET', '/api/v1/alerts/0123456789abcdef', 'viewer'],
  ['POST', '/api/v1/alerts/0123456789abcdef/acknowledge', 'responder'],
  ['POST', '/api/v1/alerts/0123456789abcdef/ack', 'responder'],
  ['POST', '/api/v1/alerts/0123456789abcdef/resolve', 'responder'],
  ['POST', '/api/v1/alerts/0123456789abcdef/accept', 'reviewer'],
  ['GET', '/api/v1/deviations', 'viewer'],
  ['GET', '/api/v1/exceptions', 'viewer'],
  ['GET', '/api/v1/exceptions/ex-0', 'viewer'],
  ['POST', '/api/v1/exceptions', 'reviewer'],
  ['DELETE', '/api/v1/exceptions/ex-0', 'reviewer'],
  ['GET', '/api/v1/baselines', 'viewer'],
  ['GET', `/api/v1/baselines/${K}`, 'viewer'],
  ['GET', `/api/v1/baselines/${K}/versions`, 'viewer'],
  ['GET', `/api/v1/baselines/${K}/diff`, 'viewer'],
  ['GET', `/api/v1/baselines/${K}/export`, 'viewer'],
  ['POST', `/api/v1/baselines/${K}/lock`, 'reviewer'],
  ['POST', `/api/v1/baselines/${K}/unlock`, 'reviewer'],
  ['POST', `/api/v1/baselines/${K}/relearn`, 'reviewer'],
  ['POST', `/api/v1/baselines/${K}/entries`, 'reviewer'],
  ['POST', `/api/v1/baselines/${K}/entries/x/approve`, 'reviewer'],
  ['POST', `/api/v1/baselines/${K}/entries/x/remove`, 'reviewer'],
  ['POST', `/api/v1/baselines/${K}/nodes/node-1/drop`, 'reviewer'],
  ['POST', `/api/v1/baselines/${K}/drift/allow`, 'reviewer'],
  ['POST', `/api/v1/baselines/${K}/drift/disallow`, 'reviewer'],
  ['POST', '/api/v1/baselines/bulk', 'reviewer'],
  ['POST', '/api/v1/baselines/import', 'reviewer'],
  ['GET', '/api/v1/nodes', 'viewer'],
  ['GET', '/api/v1/nodes/quarantined', 'viewer'],
  ['GET', '/api/v1/nodes/node-1', 'viewer'],
  ['DELETE', '/api/v1/nodes/node-1', 'responder'],
  ['POST', '/api/v1/nodes/node-1/quarantine', 'admin'],
  ['DELETE', '/api/v1/nodes/node-1/quarantine', 'admin'],
  ['GET', '/api/v1/images', 'viewer'],
  ['GET', '/api/v1/images/export', 'viewer'],
  ['GET', `/api/v1/images/${K}`, 'viewer'],
  ['GET', '/api/v1/audit', 'reviewer'],
  ['GET', '/api/v1/whoami', 'viewer'],
  ['GET', '/api/v1/stream', 'viewer'],
  ['POST', '/api/v1/sboms', 'reviewer'],
  ['GET', '/api/v1/sboms', 'viewer'],
  ['GET', `/api/v1/sboms/sha256:${'0'.repeat(64)}`, 'viewer'],
  ['GET', `/api/v1/baselines/${K}/sbom`, 'viewer'],
];

test('every API route: 401 without a token, 403 below its least role, through at it', async (t) => {
  const tokens = `tokens:\n${ROLES.map((r) => `  - name: ${r}-user\n    role: ${r}\n    token: ${TOKEN[r]}\n`).join('')}`;
  const c = await withCollector(t, { apiRateLimit: 10_000 }, { tokens });
  // Anonymous calls are failed authentications, and an address gets 20 a minute: each route's
  // anonymous call comes from its own loopback address (127.0.0.0/8 all reaches the collector).
  const call = (method: string, path: string, role: Role | null, from = '127.0.0.1') =>
    new Promise<number>((resolve, reject) => {
      const headers: Record<string, string> = { 'content-type': 'application/json' };
      if (role) headers.authorization = `Bearer ${TOKEN[role]}`;
      const req = request({ host: '127.0.0.1', port: c.httpPort, method, path, headers, localAddress: from }, (res) => {
        res.resume();
        res.on('end', () => resolve(res.statusCode ?? 0));
      });
      req.on('error', reject);
      req.end(method === 'GET' || method === 'DELETE' ? undefined : '{}');
    });
  for (const [i, [method, path, least]] of ROUTES.entries()) {
    t.is(await call(method, path, null, `127.0.0.${10 + i}`), 401, `anonymous ${method} ${path}`);
    for (const role of ROLES) {
      const status = await call(method, path, role);
      if (ROLES.indexOf(role) < ROLES.indexOf(least)) t.is(status, 403, `${role} ${method} ${path}`);
      else t.false(status === 401 || status === 403, `${role} ${method} ${path} answered ${status}`);
    }
  }
});

test('the table names every route of the server, and each row is the route it means', (t) => {
  const covered = new Set<string>();
  for (const [method, path] of ROUTES) {
    const m = ROUTE_TABLE.match(method, path);
    if (m === null || m.route === null) {
      t.fail(`${method} ${path}: no route of the server takes it`);
      continue;
    }
    covered.add(`${m.route.method} ${m.route.path}`);
  }
  const api = SERVER_ROUTES.filter((r) => r.path.startsWith('/api/v1/'));
  t.true(api.length >= 30, `${api.length} API routes`);
  for (const r of api) t.true(covered.has(`${r.method} ${r.path}`), `no row for ${r.method} ${r.path}`);
});

test('the README\'s HTTP API table names every route with its least role, and no route the server lacks', (t) => {
  const readme = readFileSync(fileURLToPath(new URL('../../../README.md', import.meta.url)), 'utf8');
  const section = readme.slice(readme.indexOf('### HTTP API'));
  const rows = section.slice(0, section.indexOf('\n\n', section.indexOf('| route |'))).split('\n').filter((l) => l.startsWith('| `'));
  t.true(rows.length >= 20, `${rows.length} rows`);
  const documented = new Map<string, string>();
  for (const row of rows) {
    const [routes = '', role = ''] = row.split(/(?<!\\)\|/).slice(1).map((c) => c.trim());
    const least = role.startsWith('none') ? 'open' : role.split(' ')[0] as string;
    for (const m of routes.matchAll(/`([A-Z]+) (\/[^`?]*)(?:\?[^`]*)?`/g)) documented.set(`${m[1]} ${m[2]}`, least);
  }
  const served = new Map(SERVER_ROUTES.map((r) => [`${r.method} ${r.path}`, r.role as string]));
  for (const [route, role] of served) t.is(documented.get(route), role, `README row for ${route}`);
  for (const route of documented.keys()) t.true(served.has(route), `the README names ${route}, which the server does not have`);
});

test('the matcher: a literal segment wins over {name}, {name...} takes the rest, HEAD is GET, 405 says what is allowed', (t) => {
  const ok = () => ({ json: null });
  const table = createRouteTable([
    route({ method: 'GET', path: '/a/{id}', role: 'viewer', handle: ok }),
    route({ method: 'GET', path: '/a/special', role: 'admin', handle: ok }),
    route({ method: 'POST', path: '/a/{id}', role: 'responder', handle: ok }),
    route({ method: 'DELETE', path: '/a/{id}/x', role: 'reviewer', handle: ok }),
    route({ method: 'GET', path: '/files/{path...}', role: 'open', handle: ok }),
  ]);
  const hit = (method: string, path: string) => {
    const m = table.match(method, path);
    return m === null ? null : m.route === null ? { allow: m.allow } : { path: m.route.path, params: m.params };
  };
  t.deepEqual(hit('GET', '/a/special'), { path: '/a/special', params: {} });
  t.deepEqual(hit('GET', '/a/other'), { path: '/a/{id}', params: { id: 'other' } });
  t.deepEqual(hit('HEAD', '/a/other'), { path: '/a/{id}', params: { id: 'other' } });
  t.deepEqual(hit('POST', '/a/special'), { path: '/a/{id}', params: { id: 'special' } }, 'the literal is a GET route: the POST takes it');
  t.deepEqual(hit('GET', '//a//b%2Fc/'), { path: '/a/{id}', params: { id: 'b/c' } }, 'empty segments dropped, one segment decoded');
  t.deepEqual(hit('PUT', '/a/b'), { allow: ['GET', 'HEAD', 'POST'] });
  t.deepEqual(hit('GET', '/a/b/x'), { allow: ['DELETE'] });
  t.deepEqual(hit('GET', '/a/b/y'), { allow: [] });
  t.deepEqual(hit('GET', '/files/x/y/z'), { path: '/files/{path...}', params: { path: 'x/y/z' } });
  t.deepEqual(hit('GET', '/files'), { allow: [] }, '{name...} takes at least one segment');
  t.is(hit('GET', '/a/%zz'), null);
  t.is(table.roleOf('GET', '/a/special'), 'admin');
  t.is(table.roleOf('DELETE', '/a/b/x'), 'reviewer');
  t.is(table.roleOf('PUT', '/a/b'), 'viewer', 'no route: any token, then 405');
  t.is(table.roleOf('GET', '/nowhere'), 'viewer', 'no route: any token, then 404');
  t.throws(() => createRouteTable([route({ method: 'GET', path: '/a/{id}', role: 'viewer', handle: ok }), route({ method: 'GET', path: '/a/{name}', role: 'admin', handle: ok })]), { message: /two routes GET a\/\{\}/ });
  t.throws(() => createRouteTable([route({ method: 'GET', path: '/a/{rest...}/b', role: 'viewer', handle: ok })]), { message: /must be the last segment/ });
});

test('the server\'s table: every path well formed, one route per method and shape, every write behind a role', (t) => {
  t.notThrows(() => createRouteTable(SERVER_ROUTES));
  for (const r of SERVER_ROUTES) if (r.method !== 'GET') t.not(r.role, 'open', `${r.method} ${r.path}`);
  for (const r of SERVER_ROUTES) if (r.role === 'open') t.false(r.path.startsWith('/api/'), `${r.path} is open`);
});
