/**
 * A route of the collector's HTTP server, and the matcher over the list of them (routes/index.ts).
 *
 * A route is `{method, path, role, query, body, handle}`: dispatch, authorization (auth.ts asks the
 * table for the matched route's role), the console's permissions (`GET /api/v1/whoami` lists the
 * routes the caller may call) and the refusals (404, 405 with Allow, 400 naming the parameter or
 * field) all read the same list, so a route cannot exist without its role and its schemas.
 *
 * Paths are matched segment by segment after percent-decoding: empty segments are dropped, `{name}`
 * takes one segment (a baseline key is one percent-encoded segment: `docker.io%2Flibrary%2Fnginx`),
 * a final `{name...}` one or more. Where several routes match, a literal segment wins over `{name}`,
 * which wins over `{name...}`, position by position from the left; two routes of one method with
 * the same shape are refused when the table is built. A GET route answers HEAD too.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { z } from 'zod';
import type { ReadinessCheck } from '../../runtime/health.js';
import type { Alerting } from '../alerting/index.js';
import type { AuditLog } from '../audit.js';
import type { NodeTracker } from '../ingest/node-tracker.js';
import type { Async } from '../store/async.js';
import type { AlertStore, BaselineStore, DeviationStore, ExceptionStore, ImageStore, OutboxStore, QuarantineStore, SbomStore } from '../store/store.js';
import type { Principal, Role } from './auth.js';
import type { ConsoleServer } from './console/server.js';

/** The methods routes are declared with (HEAD is answered by GET routes). */
export const METHODS = ['GET', 'POST', 'DELETE'] as const;
/** One of METHODS. */
export type Method = (typeof METHODS)[number];

/** What handlers use. */
export interface RouteDeps {
  /** What the API shows and reviews (changes to alerts and exceptions go through `alerting`, which notifies). */
  store: Async<AlertStore & DeviationStore & BaselineStore & OutboxStore & ExceptionStore & QuarantineStore & ImageStore & SbomStore>;
  alerting: Pick<Alerting, 'transition' | 'addException' | 'revokeException'>;
  /** Where every change is recorded (who, what, when, before/after), and `GET /api/v1/audit` reads. */
  audit: Pick<AuditLog, 'record' | 'list'>;
  /** Each node's agent (GET/DELETE /api/v1/nodes); without it those routes answer 404. */
  nodes?: Pick<NodeTracker, 'list' | 'get' | 'forget'> | undefined;
  /** The image inventory's settings: when a node's report is stale, and the owning team of an image (alerting.owners). */
  images?: { staleAfterMs: number; ownerOf(repository: string, namespace: string): string } | undefined;
  /** The console's static files. */
  console: Pick<ConsoleServer, 'serve'>;
  /** /metrics, /livez, /readyz (runtime/health.ts). */
  health: (req: IncomingMessage, res: ServerResponse) => Promise<boolean>;
  now: () => number;
  /** Longest exception lifetime accepted, in ms. */
  maxExceptionLifetime: number;
  /** Called after a review change of a baseline (agents are told). */
  onBaselineChanged: (key: string) => void;
}

/** What a handler gets for one request. */
export interface RouteContext<Q = unknown, B = unknown> {
  req: IncomingMessage;
  res: ServerResponse;
  /** The path's `{name}` parameters, percent-decoded. */
  params: Readonly<Record<string, string>>;
  /** The query as the route's schema parsed it. */
  query: Q;
  /** The JSON body as the route's schema parsed it (undefined for a route without a body schema). */
  body: B;
  /** Who asks (anonymous admin when the API is open; null on an open route without a token). */
  principal: Principal | null;
  /** The name changes are recorded under. */
  actor: string;
  /** Record a change in the audit log as this request's principal; resolves once committed (a handler answers after). */
  record(action: string, target: string, before: unknown, after: unknown): Promise<void>;
  deps: RouteDeps;
  /** The whole table (whoami lists what the caller may call). */
  routes: readonly Route[];
}

/** What a handler answers: JSON (200 unless told), text or bytes with their headers, or `SENT` when it wrote the response itself. */
export type Reply = { status?: number; json: unknown } | { status?: number; text: string | Buffer; headers: Readonly<Record<string, string>> } | typeof SENT;

/** The reply of a handler that wrote its response itself. */
export const SENT = Symbol('sent');

/** A query schema: an object of string parameters (each given at most once). */
export type QuerySchema = z.ZodObject<z.core.$ZodShape, z.core.$strict>;

/** One route. */
export interface Route {
  method: Method;
  /** `/api/v1/alerts/{id}/acknowledge`; a final `{name...}` takes the rest of the path. */
  path: string;
  /** The least role; `open` needs no token. */
  role: Role | 'open';
  /** The query parameters it takes: none when absent (any is refused); `ignored` for static files and probes. */
  query?: QuerySchema | 'ignored' | undefined;
  /** The JSON body it takes (at most 16 KiB; empty reads as `{}`); the body is not read when absent. */
  body?: z.ZodType | undefined;
  /** A larger request body this route reads itself (an SBOM document), in bytes: auth.ts lets it past maxBodyBytes. */
  maxBodyBytes?: number | undefined;
  handle(ctx: RouteContext): Reply | Promise<Reply>;
}

type Empty = Record<string, never>;

/** Declare a route; the handler's query and body get their types from the schemas. */
export function route<Q extends QuerySchema | 'ignored' | undefined = undefined, B extends z.ZodType | undefined = undefined>(r: {
  method: Method;
  path: string;
  role: Role | 'open';
  query?: Q;
  body?: B;
  maxBodyBytes?: number;
  handle(ctx: RouteContext<Q extends QuerySchema ? z.output<Q> : Empty, B extends z.ZodType ? z.output<B> : undefined>): Reply | Promise<Reply>;
}): Route {
  return r as Route;
}

type Segment = { literal: string } | { param: string } | { rest: string };

interface Compiled {
  route: Route;
  segments: Segment[];
}

/** What the table says about a method and path. */
export type Match =
  /** A route takes it. */
  | { route: Route; params: Record<string, string> }
  /** No route takes it: `allow` are the methods routes of this path take (empty: no route has this path). */
  | { route: null; allow: string[] };

/** The table. */
export interface RouteTable {
  readonly routes: readonly Route[];
  /** The route for `method` on `path` (not percent-decoded, without the query), or null when the path's percent-encoding is malformed. */
  match(method: string, path: string): Match | null;
  /**
   * The least role for `method` on `path`: the route's, or `viewer` where no route takes it (any
   * token: the answer is a 404 or 405, and anonymous callers learn nothing of the table); null
   * when the path's percent-encoding is malformed.
   */
  roleOf(method: string, path: string): Role | 'open' | null;
  /** The body bound the route of `method` on `path` declares (Route.maxBodyBytes), or null. */
  bodyLimitOf(method: string, path: string): number | null;
}

function compile(path: string): Segment[] {
  const parts = path.split('/').filter((s) => s !== '');
  return parts.map((p, i) => {
    const m = /^\{([a-zA-Z]+)(\.\.\.)?\}$/.exec(p);
    if (!m) {
      if (/[{}]/.test(p)) throw new Error(`route ${path}: segment ${p} is neither a literal nor {name}`);
      return { literal: p };
    }
    if (m[2] !== undefined && i !== parts.length - 1) throw new Error(`route ${path}: {name...} must be the last segment`);
    return m[2] !== undefined ? { rest: m[1] as string } : { param: m[1] as string };
  });
}

/** Path segments after percent-decoding, empty ones dropped; null when the encoding is malformed. */
export function pathSegments(path: string): string[] | null {
  try {
    return path
      .split('/')
      .filter((s) => s !== '')
      .map((s) => decodeURIComponent(s));
  } catch {
    return null;
  }
}

function bind(segments: Segment[], path: string[]): Record<string, string> | null {
  const params: Record<string, string> = {};
  for (let i = 0; i < segments.length; i++) {
    const s = segments[i] as Segment;
    if ('rest' in s) {
      if (i >= path.length) return null;
      params[s.rest] = path.slice(i).join('/');
      return params;
    }
    if (i >= path.length) return null;
    const value = path[i] as string;
    if ('literal' in s) {
      if (s.literal !== value) return null;
    } else params[s.param] = value;
  }
  return segments.length === path.length ? params : null;
}

/** 0 literal, 1 param, 2 rest, per position: the smaller sorts first (more specific). */
function rank(segments: Segment[]): number[] {
  return segments.map((s) => ('literal' in s ? 0 : 'param' in s ? 1 : 2));
}

function moreSpecific(a: number[], b: number[]): boolean {
  for (let i = 0; i < Math.min(a.length, b.length); i++) if (a[i] !== b[i]) return (a[i] as number) < (b[i] as number);
  return a.length > b.length;
}

const ALLOW_ORDER = ['GET', 'HEAD', 'POST', 'DELETE'];

/** Build the table; throws when a path is malformed or two routes of one method have the same shape. */
export function createRouteTable(routes: readonly Route[]): RouteTable {
  const compiled: Compiled[] = routes.map((r) => ({ route: r, segments: compile(r.path) }));
  const shapes = new Set<string>();
  for (const c of compiled) {
    const shape = `${c.route.method} ${c.segments.map((s) => ('literal' in s ? s.literal : 'param' in s ? '{}' : '{...}')).join('/')}`;
    if (shapes.has(shape)) throw new Error(`two routes ${shape}`);
    shapes.add(shape);
  }
  function match(method: string, path: string): Match | null {
    const segments = pathSegments(path);
    if (segments === null) return null;
    const want = method === 'HEAD' ? 'GET' : method;
    let best: { c: Compiled; params: Record<string, string>; rank: number[] } | null = null;
    const allow = new Set<string>();
    for (const c of compiled) {
      const params = bind(c.segments, segments);
      if (params === null) continue;
      allow.add(c.route.method);
      if (c.route.method === 'GET') allow.add('HEAD');
      if (c.route.method !== want) continue;
      const r = rank(c.segments);
      if (best === null || moreSpecific(r, best.rank)) best = { c, params, rank: r };
    }
    if (best !== null) return { route: best.c.route, params: best.params };
    return { route: null, allow: ALLOW_ORDER.filter((m) => allow.has(m)) };
  }
  return {
    routes,
    match,
    roleOf(method, path) {
      const m = match(method, path);
      if (m === null) return null;
      return m.route === null ? 'viewer' : m.route.role;
    },
    bodyLimitOf(method, path) {
      const m = match(method, path);
      return m?.route?.maxBodyBytes ?? null;
    },
  };
}
