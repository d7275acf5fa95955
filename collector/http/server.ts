/**
 * The collector's HTTP request pipeline: authorize (auth.ts, with the matched route's role), match
 * the route (routes/index.ts), parse its query and body with its schemas, run its handler, answer.
 * A path no route has is 404, a method the path's routes do not take 405 with Allow; a refusal is
 * counted (driftwatch_collector_api_requests_rejected_total) and answered by errors.ts; anything
 * else is a fault, logged and answered 500 without detail.
 *
 * The HTTP API lives under /api/v1/: objects are JSON, lists `{ "items": [...], "next": cursor|null }`,
 * errors `{ "error": { "code", "message" } }`, times RFC 3339 strings.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { Counter, type Registry } from 'prom-client';
import type { Logger } from '../../runtime/logger.js';
import { serveHealth, type ReadinessCheck } from '../../runtime/health.js';
import { ANONYMOUS, sendRefusal, type ApiAuth } from './auth.js';
import { createConsoleServer } from './console/server.js';
import { ApiError, refusalOf, sendError, sendJson } from './errors.js';
import { readApiJson } from './request-body.js';
import { SENT, type Reply, type RouteContext, type RouteDeps, type RouteTable } from './route.js';
import { ROUTE_TABLE } from './routes/index.js';
import { parseBody, parseQuery } from './schemas.js';

/** What the HTTP server needs. */
export interface HttpDeps extends Omit<RouteDeps, 'console' | 'health' | 'now' | 'maxExceptionLifetime' | 'onBaselineChanged'> {
  auth: Pick<ApiAuth, 'authorize'>;
  logger: Logger;
  registry: Registry;
  readiness: ReadinessCheck;
  /** The interval in which /metrics is rendered at most FRESH_RENDERS times (runtime/health.ts). */
  metricsIntervalMs?: number | undefined;
  now?: (() => number) | undefined;
  /** Longest exception lifetime accepted (default 366 days). */
  maxExceptionLifetime?: number | undefined;
  /** Called after a review change of a baseline (agents are told). */
  onBaselineChanged?: ((key: string) => void) | undefined;
  /** The console's compiled browser modules (default: next to the server's code in dist/). */
  consoleModulesDir?: string | undefined;
  /** The table (default: every route of routes/index.ts). */
  table?: RouteTable | undefined;
}

/** The request listener, and what it is still doing. */
export interface HttpHandler {
  (req: IncomingMessage, res: ServerResponse): void;
  /** Resolves once every request taken so far is answered (at shutdown, before the store closes). */
  idle(): Promise<void>;
}

/** Create the request listener: `http.createServer(options, createHttpHandler(deps))`. It never rejects. */
export function createHttpHandler(deps: HttpDeps): HttpHandler {
  const table = deps.table ?? ROUTE_TABLE;
  const routeDeps: RouteDeps = {
    store: deps.store,
    alerting: deps.alerting,
    audit: deps.audit,
    nodes: deps.nodes,
    images: deps.images,
    console: createConsoleServer({ logger: deps.logger.child({ component: 'console' }), modulesDir: deps.consoleModulesDir }),
    health: (req, res) => serveHealth(req, res, deps.registry, deps.readiness, { metricsIntervalMs: deps.metricsIntervalMs }),
    now: deps.now ?? Date.now,
    maxExceptionLifetime: deps.maxExceptionLifetime ?? 366 * 86_400_000,
    onBaselineChanged: deps.onBaselineChanged ?? (() => {}),
  };
  // Every request refused for what it asked (bad body, parameter, path): hostile input is counted.
  const rejected =
    (deps.registry.getSingleMetric('driftwatch_collector_api_requests_rejected_total') as Counter | undefined) ??
    new Counter({ name: 'driftwatch_collector_api_requests_rejected_total', help: 'API requests refused as invalid (4xx after authorization), by status and error code', labelNames: ['status', 'code'], registers: [deps.registry] });

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const decision = deps.auth.authorize(req);
    if (!decision.allow) return sendRefusal(res, decision);
    try {
      const rawUrl = req.url ?? '/';
      const q = rawUrl.indexOf('?');
      const path = q === -1 ? rawUrl : rawUrl.slice(0, q);
      const method = req.method ?? 'GET';
      const match = table.match(method, path);
      // authorize() refused a malformed path already; this keeps the pipeline whole without it.
      if (match === null) throw new ApiError(400, 'invalid_path', 'malformed percent-encoding in the path');
      if (match.route === null) {
        if (match.allow.length > 0) throw new ApiError(405, 'method_not_allowed', `${method.slice(0, 16)} is not allowed here; allowed: ${match.allow.join(', ')}`, { allow: match.allow.join(', ') });
        if (!path.startsWith('/api/v1/')) throw new ApiError(404, 'not_found', 'the API is under /api/v1/');
        throw new ApiError(404, 'not_found', path.startsWith('/api/v1/baselines/') ? 'no such API resource (a baseline key is one percent-encoded segment: docker.io%2Flibrary%2Fnginx)' : 'no such API resource');
      }
      const { route, params } = match;
      const query = parseQuery(route.query, new URLSearchParams(q === -1 ? '' : rawUrl.slice(q + 1)));
      const body = route.body === undefined ? undefined : parseBody(route.body, await readApiJson(req));
      const principal = decision.principal;
      const who = principal ?? ANONYMOUS;
      const ctx: RouteContext = {
        req,
        res,
        params,
        query,
        body,
        principal,
        actor: who.name,
        record: async (action, target, before, after) => {
          await deps.audit.record({ actor: who.name, role: who.role, action, target, before, after });
        },
        deps: routeDeps,
        routes: table.routes,
      };
      send(res, await route.handle(ctx));
    } catch (err) {
      const refusal = refusalOf(err);
      if (refusal === null) throw err;
      rejected.inc({ status: String(refusal.status), code: refusal.code });
      sendError(res, refusal);
    }
  }

  /** Requests being handled (their store calls may still be under way). */
  const inFlight = new Set<Promise<void>>();
  const listener = (req: IncomingMessage, res: ServerResponse): void => {
    const handled = handle(req, res).catch((err: unknown) => {
      deps.logger.error({ err, url: req.url?.slice(0, 256) }, 'API request failed');
      if (!res.headersSent) res.writeHead(500, { 'content-type': 'application/json' });
      res.end('{"error":{"code":"internal","message":"internal error"}}');
    });
    inFlight.add(handled);
    void handled.finally(() => inFlight.delete(handled));
  };
  return Object.assign(listener, {
    async idle() {
      while (inFlight.size > 0) await Promise.all(inFlight);
    },
  });
}

function send(res: ServerResponse, reply: Reply): void {
  if (reply === SENT) return;
  if ('json' in reply) return sendJson(res, reply.status ?? 200, reply.json);
  res.writeHead(reply.status ?? 200, reply.headers);
  res.end(reply.text);
}
