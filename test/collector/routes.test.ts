/**
 * Every route of the HTTP API, as a table: without a token 401, with a role too weak 403, with the
 * least role it needs neither. The table must name every resource the API serves (checked against
 * the API's own source), so a route added later without a row fails here.
 */
import test from 'ava';
import { readFileSync } from 'node:fs';
import { request } from 'node:http';
import { fileURLToPath } from 'node:url';
import { withCollector } from '../helpers/collector.js';

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
  ['POST', '/api/v1/baselines/bulk', 'reviewer'],
  ['POST', '/api/v1/baselines/import', 'reviewer'],
  ['GET', '/api/v1/nodes', 'viewer'],
  ['GET', '/api/v1/nodes/node-1', 'viewer'],
  ['DELETE', '/api/v1/nodes/node-1', 'responder'],
  ['GET', '/api/v1/audit', 'reviewer'],
  ['GET', '/api/v1/whoami', 'viewer'],
  ['GET', '/api/v1/stream', 'viewer'],
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

test('the table names every resource the API serves', (t) => {
  const source = readFileSync(fileURLToPath(new URL('../../../collector/api.ts', import.meta.url)), 'utf8');
  const resources = new Set([...source.matchAll(/resource === '([a-z]+)'/g)].map((m) => m[1] as string));
  t.true(resources.size >= 5, `found ${[...resources].join(', ')}`);
  for (const r of resources) t.true(ROUTES.some(([, path]) => path.startsWith(`/api/v1/${r}`)), `no row for /api/v1/${r}`);
});
