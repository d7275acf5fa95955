/**
 * The collector's HTTP JSON API under /api/v1/, plus /metrics, /livez, /healthz and /readyz.
 * Lists are `{ "items": [...], "next": cursor|null }`; errors are `{ "error": { "code", "message" } }`
 * with a 4xx status saying what was wrong with the request. Times are RFC 3339 strings.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Registry } from 'prom-client';
import type { EventKind } from '../core/event.js';
import type { MergedBaseline } from '../core/merge.js';
import { EVENT_KINDS } from '../core/event.js';
import { describeEntry } from '../core/entry.js';
import { serveHealth, type ReadinessCheck } from '../runtime/health.js';
import { CursorError, type Alert, type AlertState, type BaselineSummary, type Store, type StoredDeviation } from './store/store.js';

/** An API error with its HTTP status. */
export class ApiError extends Error {
  constructor(readonly status: number, readonly code: string, message: string) {
    super(message);
    this.name = 'ApiError';
  }
}

const ALERT_STATES: readonly AlertState[] = ['firing', 'acknowledged', 'resolved', 'accepted'];
const MAX_LIMIT = 1000;
const DEFAULT_LIMIT = 100;

function iso(ms: number): string | null {
  return ms > 0 ? new Date(ms).toISOString() : null;
}

/** The JSON shape of an alert. */
export function alertJson(a: Alert) {
  const [namespace] = a.pods.length > 0 ? (a.pods[0] as string).split('/') : [''];
  return {
    id: a.fingerprint,
    state: a.state,
    image: a.image,
    baselineKey: a.baselineKey,
    kind: a.kind,
    summary: describeEntry(a.entry),
    reason: a.reason,
    explanation: a.explanation,
    process: a.entry.type === 'process' ? { exe: a.entry.exe, args: a.entry.args, parent: a.entry.parent, user: a.entry.user } : null,
    network: a.entry.type === 'network' ? { direction: a.entry.direction, protocol: a.entry.protocol, peer: a.entry.peer, port: a.entry.port } : null,
    example: a.example,
    nearest: a.nearest,
    firstSeen: iso(a.firstSeen),
    lastSeen: iso(a.lastSeen),
    count: a.count,
    nodes: a.nodes,
    pods: a.pods,
    namespace: namespace ?? '',
    lastDeviationId: a.lastDeviationId,
    createdAt: iso(a.createdAt),
  };
}

function deviationJson(s: StoredDeviation) {
  const d = s.deviation;
  return {
    id: d.id,
    alertId: s.fingerprint,
    baselineKey: d.key,
    baselineVersion: d.baselineVersion,
    kind: d.event.kind,
    summary: describeEntry(d.entry),
    reason: d.reason,
    explanation: d.explanation,
    entry: d.entry,
    time: iso(d.event.time),
    receivedAt: iso(s.receivedAt),
    node: d.event.node,
    container: d.event.container,
    pod: d.event.pod,
    process: d.event.process,
    network: d.event.network,
  };
}

function baselineHeaderJson(b: Omit<MergedBaseline, 'entries'>) {
  return {
    key: b.key,
    state: b.state,
    windowStart: iso(b.windowStart),
    learnUntil: iso(b.learnUntil),
    enforcingSince: iso(b.enforcingSince),
    events: b.events,
    overflow: b.overflow,
    images: b.images,
    nodes: b.nodes,
  };
}

function baselineSummaryJson(b: BaselineSummary) {
  return { ...baselineHeaderJson(b), processEntries: b.processEntries, networkEntries: b.networkEntries };
}

function baselineJson(b: MergedBaseline) {
  return {
    ...baselineHeaderJson(b),
    entries: b.entries.map((e) => ({
      id: e.id,
      summary: describeEntry(e.entry),
      ...e.entry,
      firstSeen: iso(e.firstSeen),
      lastSeen: iso(e.lastSeen),
      count: e.count,
      nodes: e.nodes,
      examples: e.examples,
    })),
  };
}

function sendJson(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json; charset=utf-8', 'cache-control': 'no-store', 'x-content-type-options': 'nosniff' });
  res.end(text);
}

function oneParam(params: URLSearchParams, name: string, max = 512): string | undefined {
  const all = params.getAll(name);
  if (all.length === 0) return undefined;
  if (all.length > 1) throw new ApiError(400, 'invalid_parameter', `${name} given more than once`);
  const v = all[0] as string;
  if (v.length > max) throw new ApiError(400, 'invalid_parameter', `${name} longer than ${max} characters`);
  return v;
}

function limitParam(params: URLSearchParams): number {
  const raw = oneParam(params, 'limit', 8);
  if (raw === undefined) return DEFAULT_LIMIT;
  if (!/^\d+$/.test(raw) || Number(raw) < 1 || Number(raw) > MAX_LIMIT) throw new ApiError(400, 'invalid_parameter', `limit must be an integer from 1 to ${MAX_LIMIT}`);
  return Number(raw);
}

function enumParam<T extends string>(params: URLSearchParams, name: string, allowed: readonly T[]): T | undefined {
  const v = oneParam(params, name, 32);
  if (v === undefined) return undefined;
  if (!(allowed as readonly string[]).includes(v)) throw new ApiError(400, 'invalid_parameter', `${name} must be one of: ${allowed.join(', ')}`);
  return v as T;
}

function checkParams(params: URLSearchParams, allowed: readonly string[]): void {
  for (const name of params.keys()) {
    if (!allowed.includes(name)) throw new ApiError(400, 'unknown_parameter', `unknown query parameter ${JSON.stringify(name.slice(0, 64))}; allowed: ${allowed.join(', ')}`);
  }
}

function decodeSegment(s: string): string {
  try {
    return decodeURIComponent(s);
  } catch {
    throw new ApiError(400, 'invalid_path', 'malformed percent-encoding in the path');
  }
}

/** Create the request handler. */
export function createApiHandler(deps: { store: Store; registry: Registry; readiness: ReadinessCheck }) {
  const { store } = deps;

  function route(method: string, segments: string[], params: URLSearchParams, res: ServerResponse): void {
    if (method !== 'GET' && method !== 'HEAD') throw new ApiError(405, 'method_not_allowed', `${method} is not allowed here`);
    const [resource, ...rest] = segments;
    if (resource === 'alerts' && rest.length === 0) {
      checkParams(params, ['limit', 'cursor', 'image', 'kind', 'state']);
      const page = store.listAlerts({
        limit: limitParam(params),
        cursor: oneParam(params, 'cursor', 64),
        image: oneParam(params, 'image'),
        kind: enumParam<EventKind>(params, 'kind', EVENT_KINDS),
        state: enumParam(params, 'state', ALERT_STATES),
      });
      return sendJson(res, 200, { items: page.items.map(alertJson), next: page.next });
    }
    if (resource === 'alerts' && rest.length === 1) {
      checkParams(params, []);
      const alert = store.getAlert(decodeSegment(rest[0] as string));
      if (!alert) throw new ApiError(404, 'not_found', 'no alert with this id');
      const recent = store.listDeviations({ limit: 20, fingerprint: alert.fingerprint });
      return sendJson(res, 200, { ...alertJson(alert), deviations: recent.items.map(deviationJson) });
    }
    if (resource === 'deviations' && rest.length === 0) {
      checkParams(params, ['limit', 'cursor', 'alert', 'key', 'node']);
      const page = store.listDeviations({
        limit: limitParam(params),
        cursor: oneParam(params, 'cursor', 64),
        fingerprint: oneParam(params, 'alert', 64),
        baselineKey: oneParam(params, 'key'),
        node: oneParam(params, 'node', 253),
      });
      return sendJson(res, 200, { items: page.items.map(deviationJson), next: page.next });
    }
    if (resource === 'baselines' && rest.length === 0) {
      checkParams(params, []);
      return sendJson(res, 200, { items: store.listBaselines().map(baselineSummaryJson) });
    }
    if (resource === 'baselines' && rest.length >= 1) {
      checkParams(params, []);
      // The key is percent-encoded (docker.io%2Flibrary%2Fnginx); unencoded slashes are accepted too.
      const key = rest.map(decodeSegment).join('/');
      const b = store.getBaseline(key);
      if (!b) throw new ApiError(404, 'not_found', `no baseline with key ${JSON.stringify(key.slice(0, 256))}`);
      return sendJson(res, 200, baselineJson(b));
    }
    throw new ApiError(404, 'not_found', 'no such API resource');
  }

  return async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    try {
      if (await serveHealth(req, res, deps.registry, deps.readiness)) return;
      const rawUrl = req.url ?? '/';
      if (rawUrl.length > 8192) throw new ApiError(414, 'uri_too_long', 'request URI longer than 8192 characters');
      const q = rawUrl.indexOf('?');
      const path = q === -1 ? rawUrl : rawUrl.slice(0, q);
      const params = new URLSearchParams(q === -1 ? '' : rawUrl.slice(q + 1));
      if (!path.startsWith('/api/v1/')) throw new ApiError(404, 'not_found', 'the API is under /api/v1/');
      const segments = path.slice('/api/v1/'.length).split('/').filter((s) => s !== '');
      route(req.method ?? 'GET', segments, params, res);
    } catch (err) {
      if (err instanceof ApiError) return sendJson(res, err.status, { error: { code: err.code, message: err.message } });
      if (err instanceof CursorError) return sendJson(res, 400, { error: { code: err.code, message: err.message } });
      throw err;
    }
  };
}
