/**
 * The routes around the API: health and metrics, the console's static files (open: they hold no
 * data), who the caller is and what it may call, the audit log, and the live feed's websocket.
 */
import { ApiError } from '../errors.js';
import { roleAtLeast, ANONYMOUS } from '../auth.js';
import { SENT, route, type Reply, type Route, type RouteContext } from '../route.js';
import { query, queryCursor, queryLimit } from '../schemas.js';

async function health(ctx: RouteContext): Promise<Reply> {
  if (await ctx.deps.health(ctx.req, ctx.res)) return SENT;
  // `/livez/` or `//livez`: the table matched the segments, the health server wants the exact path.
  throw new ApiError(404, 'not_found', 'no such path');
}

function consoleFile(ctx: RouteContext): Reply {
  if (ctx.deps.console.serve(ctx.req, ctx.res)) return SENT;
  throw new ApiError(404, 'not_found', 'no such path');
}

/** `METHOD /path` of every API route `role` may call, as whoami lists them. */
export function allowedRoutes(routes: readonly Route[], role: Parameters<typeof roleAtLeast>[0]): string[] {
  return routes.filter((r) => r.path.startsWith('/api/v1/') && r.role !== 'open' && roleAtLeast(role, r.role)).map((r) => `${r.method} ${r.path}`);
}

/** The routes around the API. */
export const systemRoutes: readonly Route[] = [
  // The metrics route is `viewer` with metricsAuth (auth.ts).
  ...['/livez', '/healthz', '/readyz', '/metrics'].map((path) => route({ method: 'GET', path, role: 'open', query: 'ignored', handle: health })),
  ...['/', '/console', '/console/{file...}', '/favicon.ico'].map((path) => route({ method: 'GET', path, role: 'open', query: 'ignored', handle: consoleFile })),
  route({
    method: 'GET',
    path: '/api/v1/whoami',
    role: 'viewer',
    // The caller's name and role, and the routes it may call: a client offers only what it may do,
    // from the server's table instead of a copy of it.
    handle(ctx) {
      const who = ctx.principal ?? ANONYMOUS;
      return { json: { name: who.name, role: who.role, routes: allowedRoutes(ctx.routes, who.role) } };
    },
  }),
  route({
    method: 'GET',
    path: '/api/v1/audit',
    role: 'reviewer',
    query: query({ limit: queryLimit, cursor: queryCursor }),
    handle: async ({ query: q, deps }) => ({ json: await deps.audit.list(q.cursor, q.limit) }),
  }),
  route({
    method: 'GET',
    path: '/api/v1/stream',
    role: 'viewer',
    // The live feed is a websocket, taken on the server's 'upgrade' event (collector/stream.ts,
    // authorized by this route's role); a plain GET is told so.
    handle() {
      throw new ApiError(426, 'upgrade_required', 'the live feed is a websocket: send Upgrade: websocket', { upgrade: 'websocket' });
    },
  }),
];
