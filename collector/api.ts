/**
 * The collector's HTTP JSON API under /api/v1/, plus /metrics, /livez, /healthz and /readyz.
 * Lists are `{ "items": [...], "next": cursor|null }`; errors are `{ "error": { "code", "message" } }`
 * with a 4xx status saying what was wrong with the request. Times are RFC 3339 strings.
 */
import { randomBytes } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { Counter, type Registry } from 'prom-client';
import { z } from 'zod';
import type { EventKind } from '../core/event.js';
import { EVENT_KINDS } from '../core/event.js';
import { describeEntry, entryFromId, entryId, type Entry } from '../core/entry.js';
import { parseDuration } from '../core/duration.js';
import { generalizationOf } from '../core/baseline.js';
import { SEVERITIES, escapeGlob, type Severity } from '../core/severity.js';
import { firstIssue } from '../core/zod-issue.js';
import { serveHealth, type ReadinessCheck } from '../runtime/health.js';
import {
  BaselineDocError,
  baselineName,
  parseBaselineDocuments,
  parseSelector,
  toBaselineDocument,
  toFalcoRules,
  toNetworkPolicy,
  type BaselineDocument,
  type BaselineView as DocView,
} from '../core/baseline-doc.js';
import type { Alerting } from './alerting/index.js';
import type { AuditLog } from './audit.js';
import { BodyError, bodyRefusalHeaders, parseJsonBody, readBodyText } from './request-body.js';
import type { NodeStatus, NodeTracker } from './ingest/node-tracker.js';
import { ALERT_STATES, type Alert, type AlertException, type AlertTransition, type OutboxItem } from './alerting/alert.js';
import {
  CursorError,
  type AlertStore,
  type BaselineChange,
  type BaselineStore,
  type BaselineSummary,
  type BaselineVersion,
  type BaselineView,
  type DeviationStore,
  type ExceptionStore,
  type OutboxStore,
  type QuarantineStore,
  type StoredDeviation,
} from './store/store.js';

/** An API error with its HTTP status. */
export class ApiError extends Error {
  constructor(readonly status: number, readonly code: string, message: string) {
    super(message);
    this.name = 'ApiError';
  }
}

/** Largest request body accepted, in bytes. */
const MAX_BODY_BYTES = 16 << 10;
const MAX_LIMIT = 1000;
const DEFAULT_LIMIT = 100;

/** Last millisecond of year 9999: later times have no RFC 3339 form (rows stored before times were bounded). */
const MAX_RFC3339_MS = 253_402_300_799_999;

function iso(ms: number): string | null {
  return ms > 0 && ms <= MAX_RFC3339_MS ? new Date(ms).toISOString() : null;
}

/** The JSON shape of an alert. */
export function alertJson(a: Alert) {
  const [podNamespace] = a.pods.length > 0 ? (a.pods[0] as string).split('/') : [''];
  const namespace = a.namespace !== '' ? a.namespace : podNamespace;
  return {
    id: a.fingerprint,
    state: a.state,
    image: a.image,
    baselineKey: a.baselineKey,
    kind: a.kind,
    summary: describeEntry(a.entry),
    reason: a.reason,
    explanation: a.explanation,
    process: a.entry.type === 'process' ? { exe: a.entry.exe, applet: a.entry.applet ?? null, args: a.entry.args, parent: a.entry.parent, user: a.entry.user } : null,
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
    severity: a.severity,
    rule: { id: a.ruleId, reason: a.ruleReason },
    team: a.team,
    labels: a.labels,
    receivers: a.receivers,
    suppressedBy: a.suppressedBy === '' ? null : a.suppressedBy,
    stateChange: a.stateAt > 0 ? { by: a.stateBy, at: iso(a.stateAt), comment: a.stateComment } : null,
  };
}

function deliveryJson(d: OutboxItem) {
  return {
    sink: d.sink,
    action: d.action,
    state: d.state,
    attempts: d.attempts,
    lastError: d.lastError === '' ? null : d.lastError,
    createdAt: iso(d.createdAt),
    nextAttemptAt: d.state === 'pending' ? iso(d.nextAt) : null,
    doneAt: iso(d.doneAt),
  };
}

/** The JSON shape of an exception, with its status at `now`. */
export function exceptionJson(e: AlertException, now: number) {
  return {
    id: e.id,
    status: e.revokedAt > 0 ? 'revoked' : e.expiresAt <= now ? 'expired' : 'active',
    match: { key: e.key || null, entry: e.entry || null, namespace: e.namespace || null },
    reason: e.reason,
    owner: e.owner,
    createdBy: e.createdBy,
    createdAt: iso(e.createdAt),
    expiresAt: iso(e.expiresAt),
    revokedAt: iso(e.revokedAt),
    revokedBy: e.revokedBy || null,
    remindedAt: iso(e.remindedAt),
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
    // The node's own time when it was too far ahead of the collector's clock (`time` is then the receive time).
    reportedTime: d.reportedTime === undefined ? null : Number.isSafeInteger(d.reportedTime) ? d.reportedTime : null,
    receivedAt: iso(s.receivedAt),
    node: d.event.node,
    nodeQuarantined: s.nodeQuarantined,
    container: d.event.container,
    pod: d.event.pod,
    process: d.event.process,
    network: d.event.network,
  };
}

function baselineHeaderJson(b: Omit<BaselineView, 'entries'>) {
  return {
    key: b.key,
    state: b.state,
    version: b.version,
    partial: b.partial,
    namespaces: b.namespaces,
    windowStart: iso(b.windowStart),
    learnUntil: iso(b.learnUntil),
    enforcingSince: iso(b.enforcingSince),
    events: b.events,
    overflow: b.overflow,
    images: b.images,
    nodes: b.nodes.map((n) => n.node),
    nodeStates: b.nodes,
  };
}

function baselineSummaryJson(b: BaselineSummary) {
  return { ...baselineHeaderJson(b), processEntries: b.processEntries, networkEntries: b.networkEntries, openAlerts: b.openAlerts };
}

function entryJson(e: { id: string; entry: Entry }) {
  return { id: e.id, summary: describeEntry(e.entry), ...e.entry };
}

/** The JSON of a baseline with its entries (the contract of core/baseline-doc's BaselineView). */
export function baselineJson(b: BaselineView) {
  const active = b.entries.filter((e) => e.status !== 'removed').map((e) => e.id);
  return {
    ...baselineHeaderJson(b),
    entries: b.entries.map((e) => ({
      ...entryJson(e),
      status: e.status,
      statusReason: e.statusReason,
      // A block or class learned from many addresses: the evidence the baseline holds for it; null for any other entry.
      generalization: generalizationOf(e.entry, active),
      firstSeen: iso(e.firstSeen),
      lastSeen: iso(e.lastSeen),
      count: e.count,
      nodes: e.nodes,
      // Nodes whose share of the entry was dropped (quarantined, or by a reviewer): it stays through other nodes or security.
      droppedNodes: e.droppedNodes,
      examples: e.examples,
    })),
  };
}

function versionJson(v: BaselineVersion) {
  return { version: v.version, at: iso(v.at), by: v.by, action: v.action, reason: v.reason, state: v.state, entries: v.entryIds.length, removed: v.removedIds.length };
}

/** The JSON shape of a node's agent. */
export function nodeJson(n: NodeStatus) {
  return {
    node: n.node,
    agentVersion: n.agentVersion,
    sources: n.sources,
    connected: n.streams > 0,
    streams: n.streams,
    firstSeen: iso(n.firstSeen),
    lastContact: iso(n.lastContact),
    /** Age of the oldest record in its spool not yet acknowledged, in seconds (0: nothing waits). */
    lagSeconds: n.lagMs / 1000,
    spooled: n.spooled,
    spoolBytes: n.spoolBytes,
    spoolDropped: n.spoolDropped,
    watermark: iso(n.watermark),
    silent: n.silent,
    silentSince: iso(n.silentSince),
    stopped: n.stopped,
    stoppedAt: iso(n.stoppedAt),
  };
}

function sendJson(res: ServerResponse, status: number, body: unknown, extraHeaders: Record<string, string> = {}): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json; charset=utf-8', 'cache-control': 'no-store', 'x-content-type-options': 'nosniff', ...extraHeaders });
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

/** Largest import (a folder of Baseline documents), in bytes. */
const MAX_IMPORT_BYTES = 8 << 20;

/** The media type of a request, lower case, without parameters. */
function mediaType(req: IncomingMessage): string {
  return (req.headers['content-type'] ?? '').split(';')[0]?.trim().toLowerCase() ?? '';
}

/** Read a text body of one of `types`, at most `max` bytes, as strict UTF-8. */
async function readText(req: IncomingMessage, max: number, types: readonly string[]): Promise<string> {
  if (!types.includes(mediaType(req))) throw new ApiError(415, 'unsupported_media_type', `send the body as ${types[0]}`);
  return readBodyText(req, max);
}

/** Read a JSON body: at most MAX_BODY_BYTES, content-type application/json; an empty body is `{}`. */
async function readJson(req: IncomingMessage): Promise<unknown> {
  const text = await readBodyText(req, MAX_BODY_BYTES);
  if (text === '') return {};
  if (mediaType(req) !== 'application/json') throw new ApiError(415, 'unsupported_media_type', 'send the body as application/json');
  return parseJsonBody(text);
}

/** Validate `body` against `schema`; a 400 names the first wrong field. */
function parseBody<S extends z.ZodType>(schema: S, body: unknown): z.output<S> {
  const r = schema.safeParse(body);
  if (r.success) return r.data;
  const { path, unknownKeys, message } = firstIssue(r.error);
  if (unknownKeys.length > 0) throw new ApiError(400, 'invalid_body', `unknown field(s): ${unknownKeys.join(', ')}`);
  throw new ApiError(400, 'invalid_body', `${path || 'body'}: ${message}`);
}

const TransitionBody = z.strictObject({ comment: z.string().max(1000).default('') });

const ReasonBody = z.strictObject({ reason: z.string().trim().max(1000).default('') });

const field = z.string().min(1).max(1024).regex(/^[^\0\n]*$/, 'must be one line without NUL');
const EntryBody = z.discriminatedUnion('type', [
  z.strictObject({ type: z.literal('process'), exe: field, applet: z.string().min(1).max(15).regex(/^[^\0\n|]*$/).optional(), parent: z.string().max(256).regex(/^[^\0\n]*$/).default(''), user: z.enum(['root', 'system', 'user', 'unknown']), args: z.string().max(1024).regex(/^[^\0\n]*$/).default('') }),
  z.strictObject({ type: z.literal('network'), direction: z.enum(['egress', 'ingress', 'listen']), protocol: z.enum(['tcp', 'udp']), peer: field, port: z.number().int().min(0).max(65535) }),
]);
const AddEntryBody = z.strictObject({ entry: EntryBody, reason: z.string().trim().max(1000).default('') });

const REVIEWED_STATES = ['learning', 'enforcing', 'locked', 'relearn'] as const;

/** Most baselines one bulk change touches. */
const MAX_BULK = 5_000;

const BulkBody = z.strictObject({
  action: z.enum(['lock', 'unlock', 'relearn']),
  filter: z
    .strictObject({
      namespace: z.string().regex(/^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/, 'must be a namespace name').optional(),
      prefix: z.string().min(1).max(512).optional(),
      state: z.enum(REVIEWED_STATES).optional(),
    })
    .refine((f) => f.namespace !== undefined || f.prefix !== undefined || f.state !== undefined, 'give at least one of namespace, prefix, state: a bulk change of everything is refused'),
  reason: z.string().trim().max(1000).default(''),
});

const text = (max: number) => z.string().trim().min(1).max(max).regex(/^[^\0\r\n]*$/, 'must be one line without NUL');

const ExceptionBody = z
  .strictObject({
    /** Fill key and entry from this alert (exactly its baseline key and entry). */
    alert: z.string().regex(/^[0-9a-f]{8,64}$/, 'must be an alert id').optional(),
    key: text(512).optional(),
    entry: text(1024).optional(),
    namespace: z.string().regex(/^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/, 'must be a namespace name').optional(),
    reason: text(1000),
    owner: text(128),
    expiresAt: z.iso.datetime({ offset: true }).optional(),
    /** A duration from now such as `30d`. */
    expiresIn: z.string().max(32).optional(),
  })
  .refine((b) => (b.expiresAt === undefined) !== (b.expiresIn === undefined), { message: 'give exactly one of expiresAt and expiresIn', path: ['expiresAt'] })
  .refine((b) => b.alert !== undefined || b.key !== undefined || b.entry !== undefined || b.namespace !== undefined, {
    message: 'give what it matches: alert, or at least one of key, entry, namespace',
    path: ['key'],
  })
  .refine((b) => b.alert === undefined || (b.key === undefined && b.entry === undefined), { message: 'alert sets key and entry; do not give them too', path: ['alert'] });

/** What the API needs. */
export interface ApiDeps {
  /** What the API shows and reviews (changes to alerts and exceptions go through `alerting`, which notifies). */
  store: AlertStore & DeviationStore & BaselineStore & OutboxStore & ExceptionStore & QuarantineStore;
  alerting: Alerting;
  registry: Registry;
  readiness: ReadinessCheck;
  /** The interval in which /metrics is rendered at most FRESH_RENDERS times (runtime/health.ts). */
  metricsIntervalMs?: number | undefined;
  now?: (() => number) | undefined;
  /** Who is asking (from authentication); default anonymous. */
  principalOf?: ((req: IncomingMessage) => { name: string; role: string } | null) | undefined;
  /** Where every change is recorded (who, what, when, before/after). */
  audit?: Pick<AuditLog, 'record'> | undefined;
  /** Longest exception lifetime accepted. */
  maxExceptionLifetime?: number | undefined;
  /** Called after a review change of a baseline (agents are told). */
  onBaselineChanged?: ((key: string) => void) | undefined;
  /** Each node's agent (GET/DELETE /api/v1/nodes). */
  nodes?: Pick<NodeTracker, 'list' | 'get' | 'forget'> | undefined;
}

/** Create the request handler. */
export function createApiHandler(deps: ApiDeps) {
  const { store, alerting } = deps;
  const now = deps.now ?? Date.now;
  const maxLifetime = deps.maxExceptionLifetime ?? 366 * 86_400_000;
  const principal = (req: IncomingMessage) => deps.principalOf?.(req) ?? { name: 'anonymous', role: 'admin' };
  const actorOf = (req: IncomingMessage) => principal(req).name;
  // Every request refused for what it asked (bad body, parameter, path): hostile input is counted.
  const rejectedRequests =
    (deps.registry.getSingleMetric('driftwatch_collector_api_requests_rejected_total') as Counter | undefined) ??
    new Counter({ name: 'driftwatch_collector_api_requests_rejected_total', help: 'API requests refused as invalid (4xx after authorization), by status and error code', labelNames: ['status', 'code'], registers: [deps.registry] });
  const record = (req: IncomingMessage, action: string, target: string, before: unknown, after: unknown) => {
    const who = principal(req);
    deps.audit?.record({ actor: who.name, role: who.role, action, target, before, after });
  };

  async function mutate(req: IncomingMessage, segments: string[], params: URLSearchParams, res: ServerResponse): Promise<void> {
    const method = req.method ?? 'GET';
    const [resource, ...rest] = segments;
    checkParams(params, []);
    if (resource === 'alerts' && rest.length === 2 && method === 'POST') {
      const verb = rest[1] as string;
      const verbs: Record<string, AlertTransition['to']> = { acknowledge: 'acknowledged', ack: 'acknowledged', resolve: 'resolved', accept: 'accepted' };
      const to = Object.hasOwn(verbs, verb) ? verbs[verb] : undefined;
      if (to === undefined) throw new ApiError(404, 'not_found', 'alert actions are acknowledge, resolve and accept');
      const body = parseBody(TransitionBody, await readJson(req));
      const change: AlertTransition = { to, by: actorOf(req), at: now(), comment: body.comment };
      const result = alerting.transition(decodeSegment(rest[0] as string), change);
      if (!result.ok && result.reason === 'not-found') throw new ApiError(404, 'not_found', 'no alert with this id');
      if (!result.ok) throw new ApiError(409, 'invalid_transition', `the alert is ${result.alert.state}; it cannot become ${to}`);
      const pick = (a: Alert) => ({ state: a.state, stateBy: a.stateBy, stateComment: a.stateComment, summary: describeEntry(a.entry), baselineKey: a.baselineKey });
      record(req, `alert.${verb === 'ack' ? 'acknowledge' : verb}`, result.after.fingerprint, pick(result.before), pick(result.after));
      if (to === 'accepted') deps.onBaselineChanged?.(result.after.baselineKey);
      return sendJson(res, 200, alertJson(result.after));
    }
    if (resource === 'exceptions' && rest.length === 0 && method === 'POST') {
      const b = parseBody(ExceptionBody, await readJson(req));
      const t = now();
      let expiresAt: number;
      if (b.expiresIn !== undefined) {
        try {
          expiresAt = t + parseDuration(b.expiresIn);
        } catch (err) {
          throw new ApiError(400, 'invalid_body', `expiresIn: ${(err as Error).message}`);
        }
      } else expiresAt = Date.parse(b.expiresAt as string);
      if (expiresAt <= t) throw new ApiError(400, 'invalid_body', 'expiresAt: must be in the future');
      if (expiresAt - t > maxLifetime) throw new ApiError(400, 'invalid_body', `expiresAt: at most ${Math.floor(maxLifetime / 86_400_000)} days from now`);
      let key = b.key ?? '';
      let entry = b.entry ?? '';
      if (b.alert !== undefined) {
        const alert = store.getAlert(b.alert);
        if (!alert) throw new ApiError(400, 'invalid_body', 'alert: no alert with this id');
        key = escapeGlob(alert.baselineKey);
        entry = escapeGlob(describeEntry(alert.entry));
      }
      const e: AlertException = {
        id: `ex-${randomBytes(8).toString('hex')}`,
        key,
        entry,
        namespace: b.namespace ?? '',
        reason: b.reason,
        owner: b.owner,
        createdBy: actorOf(req),
        createdAt: t,
        expiresAt,
        revokedAt: 0,
        revokedBy: '',
        remindedAt: 0,
      };
      alerting.addException(e);
      record(req, 'exception.create', e.id, null, exceptionJson(e, t));
      return sendJson(res, 201, exceptionJson(e, t));
    }
    if (resource === 'exceptions' && rest.length === 1 && method === 'DELETE') {
      const id = decodeSegment(rest[0] as string);
      const before = store.getException(id);
      if (!before) throw new ApiError(404, 'not_found', 'no exception with this id');
      if (before.revokedAt > 0) throw new ApiError(409, 'already_revoked', 'the exception was already revoked');
      const after = alerting.revokeException(id, actorOf(req)) as AlertException;
      record(req, 'exception.revoke', id, exceptionJson(before, now()), exceptionJson(after, now()));
      return sendJson(res, 200, exceptionJson(after, now()));
    }
    if (resource === 'baselines' && method === 'POST' && rest.length === 1 && rest[0] === 'bulk') {
      // "Lock every enforcing baseline in shop": one change per matching key, each its own version.
      const b = parseBody(BulkBody, await readJson(req));
      const matching = store
        .listBaselines()
        .filter((x) => (b.filter.state === undefined || x.state === b.filter.state) && (b.filter.prefix === undefined || x.key.startsWith(b.filter.prefix)) && (b.filter.namespace === undefined || x.namespaces.includes(b.filter.namespace)));
      const applied = [];
      const skipped = [];
      for (const x of matching.slice(0, MAX_BULK)) {
        const result = store.reviewBaseline(x.key, { action: b.action }, actorOf(req), b.reason, now());
        if (!result.ok) {
          skipped.push({ key: x.key, reason: result.message });
          continue;
        }
        record(req, `baseline.${b.action}`, x.key, { state: result.before?.state, version: result.before?.version }, { state: result.after.state, version: result.version, bulk: b.filter });
        deps.onBaselineChanged?.(x.key);
        applied.push({ key: x.key, state: result.after.state, version: result.version });
      }
      return sendJson(res, 200, { applied, skipped, truncated: matching.length > MAX_BULK });
    }
    if (resource === 'baselines' && method === 'POST' && rest.length === 1 && rest[0] === 'import') {
      // The folder-as-desired-state of GitOps: every document is applied; all are checked first.
      let docs: BaselineDocument[];
      try {
        docs = parseBaselineDocuments(await readText(req, MAX_IMPORT_BYTES, ['application/yaml', 'text/yaml', 'application/x-yaml', 'text/plain']));
      } catch (err) {
        if (err instanceof BaselineDocError) throw new ApiError(400, err.code, err.message);
        throw err;
      }
      if (docs.length === 0) throw new ApiError(400, 'invalid_document', 'no Baseline document in the body');
      const keys = new Set<string>();
      for (const d of docs) {
        if (keys.has(d.key)) throw new ApiError(400, 'invalid_document', `key ${JSON.stringify(d.key.slice(0, 256))} appears in two documents`);
        keys.add(d.key);
      }
      const applied = [];
      for (const d of docs) {
        const result = store.reviewBaseline(d.key, { action: 'import', state: d.state, entries: d.entries, removed: d.removed }, actorOf(req), 'import', now());
        if (!result.ok) throw new ApiError(result.status, 'conflict', `${d.key}: ${result.message}`);
        const active = (v: BaselineView | null) => new Set((v?.entries ?? []).filter((e) => e.status !== 'removed').map((e) => e.id));
        const before = active(result.before);
        const after = active(result.after);
        const summary = { key: d.key, version: result.version, state: result.after.state, added: [...after].filter((id) => !before.has(id)).length, removed: [...before].filter((id) => !after.has(id)).length };
        record(req, 'baseline.import', d.key, result.before && { state: result.before.state, version: result.before.version }, summary);
        deps.onBaselineChanged?.(d.key);
        applied.push(summary);
      }
      return sendJson(res, 200, { applied });
    }
    if (resource === 'baselines' && method === 'POST' && rest.length >= 2) {
      const key = decodeSegment(rest[0] as string);
      const [, what, entrySegment, verb, ...extra] = rest;
      let change: BaselineChange;
      let reason: string;
      if ((what === 'lock' || what === 'unlock' || what === 'relearn') && entrySegment === undefined) {
        reason = parseBody(ReasonBody, await readJson(req)).reason;
        change = { action: what };
      } else if (what === 'entries' && entrySegment === undefined) {
        const b = parseBody(AddEntryBody, await readJson(req));
        reason = b.reason;
        change = { action: 'add', entry: b.entry as Entry };
      } else if (what === 'entries' && entrySegment !== undefined && (verb === 'approve' || verb === 'remove') && extra.length === 0) {
        reason = parseBody(ReasonBody, await readJson(req)).reason;
        change = { action: verb, entryId: decodeSegment(entrySegment) };
      } else if (what === 'nodes' && entrySegment !== undefined && verb === 'drop' && extra.length === 0) {
        // One node's share of the key: what it taught goes (entries only it taught, its counts).
        reason = parseBody(ReasonBody, await readJson(req)).reason;
        change = { action: 'drop-node', node: decodeSegment(entrySegment) };
      } else throw new ApiError(404, 'not_found', 'baseline actions: lock, unlock, relearn, entries (add), entries/{id}/approve, entries/{id}/remove, nodes/{node}/drop');
      return review(req, res, key, change, reason);
    }
    // ---- nodes: quarantine one found compromised (its deltas refused, its teaching dropped, its deviations kept and marked) ----
    if (resource === 'nodes' && rest.length === 2 && rest[1] === 'quarantine' && (method === 'POST' || method === 'DELETE')) {
      const name = decodeSegment(rest[0] as string);
      if (!/^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$/.test(name)) throw new ApiError(400, 'invalid_parameter', 'not a Kubernetes node name');
      if (method === 'DELETE') {
        if (!store.releaseNode(name)) throw new ApiError(404, 'not_found', 'the node is not quarantined');
        record(req, 'node.release', name, { quarantined: true }, { quarantined: false });
        return sendJson(res, 200, { node: name, quarantined: false });
      }
      const reason = parseBody(ReasonBody, await readJson(req)).reason;
      const result = store.quarantineNode(name, actorOf(req), reason, now());
      if (!result) throw new ApiError(409, 'conflict', 'the node is already quarantined');
      const { keys, ...counts } = result;
      record(req, 'node.quarantine', name, { quarantined: false }, { quarantined: true, keys: keys.length, ...counts });
      for (const key of keys) deps.onBaselineChanged?.(key);
      return sendJson(res, 200, { node: name, quarantined: true, keys, ...counts });
    }
    // ---- nodes: forget one (decommissioned without a clean stop); resolves its silence alert ----
    if (resource === 'nodes' && deps.nodes && rest.length === 1 && method === 'DELETE') {
      const name = decodeSegment(rest[0] as string);
      const before = deps.nodes.get(name);
      if (!before || !deps.nodes.forget(name)) throw new ApiError(404, 'not_found', 'no node with this name');
      record(req, 'node.forget', name, nodeJson(before), null);
      return sendJson(res, 200, nodeJson(before));
    }
    throw new ApiError(405, 'method_not_allowed', `${method} is not allowed here`);
  }

  /** Apply a review change, audit it, tell the agents, answer with the new view. */
  function review(req: IncomingMessage, res: ServerResponse, key: string, change: BaselineChange, reason: string): void {
    const result = store.reviewBaseline(key, change, actorOf(req), reason, now());
    if (!result.ok) throw new ApiError(result.status, result.status === 409 ? 'conflict' : result.status === 404 ? 'not_found' : 'invalid_body', result.message);
    const summary = (v: BaselineView | null) =>
      v && {
        state: v.state,
        version: v.version,
        ...('entryId' in change ? { entry: v.entries.find((e) => e.id === change.entryId)?.status ?? null } : {}),
        ...(change.action === 'add' ? { entry: v.entries.find((e) => e.id === entryId(change.entry))?.status ?? null } : {}),
      };
    record(req, `baseline.${change.action}`, key, summary(result.before), { ...summary(result.after), ...result.dropped });
    deps.onBaselineChanged?.(key);
    sendJson(res, 200, baselineJson(result.after));
  }

  function route(method: string, segments: string[], params: URLSearchParams, res: ServerResponse): void {
    if (method !== 'GET' && method !== 'HEAD') throw new ApiError(405, 'method_not_allowed', `${method} is not allowed here`);
    const [resource, ...rest] = segments;
    if (resource === 'alerts' && rest.length === 0) {
      checkParams(params, ['limit', 'cursor', 'image', 'kind', 'state', 'severity', 'namespace']);
      const page = store.listAlerts({
        limit: limitParam(params),
        cursor: oneParam(params, 'cursor', 64),
        image: oneParam(params, 'image'),
        kind: enumParam<EventKind>(params, 'kind', EVENT_KINDS),
        state: enumParam(params, 'state', ALERT_STATES),
        severity: enumParam<Severity>(params, 'severity', SEVERITIES),
        namespace: oneParam(params, 'namespace', 63),
      });
      return sendJson(res, 200, { items: page.items.map(alertJson), next: page.next });
    }
    if (resource === 'alerts' && rest.length === 1) {
      checkParams(params, []);
      const alert = store.getAlert(decodeSegment(rest[0] as string));
      if (!alert) throw new ApiError(404, 'not_found', 'no alert with this id');
      const recent = store.listDeviations({ limit: 20, fingerprint: alert.fingerprint });
      return sendJson(res, 200, { ...alertJson(alert), deviations: recent.items.map(deviationJson), deliveries: store.deliveriesOf(alert.fingerprint).map(deliveryJson) });
    }
    if (resource === 'exceptions' && rest.length === 0) {
      checkParams(params, ['status']);
      const status = enumParam(params, 'status', ['active', 'expired', 'revoked'] as const);
      const t = now();
      const items = store.listExceptions().map((e) => exceptionJson(e, t)).filter((e) => status === undefined || e.status === status);
      return sendJson(res, 200, { items });
    }
    if (resource === 'exceptions' && rest.length === 1) {
      checkParams(params, []);
      const e = store.getException(decodeSegment(rest[0] as string));
      if (!e) throw new ApiError(404, 'not_found', 'no exception with this id');
      return sendJson(res, 200, exceptionJson(e, now()));
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
      checkParams(params, ['state', 'prefix']);
      const state = enumParam(params, 'state', REVIEWED_STATES);
      const prefix = oneParam(params, 'prefix');
      const items = store.listBaselines().filter((b) => (state === undefined || b.state === state) && (prefix === undefined || b.key.startsWith(prefix)));
      return sendJson(res, 200, { items: items.map(baselineSummaryJson) });
    }
    if (resource === 'baselines' && rest.length === 2 && rest[1] === 'export') {
      checkParams(params, ['format', 'selector', 'status']);
      const key = decodeSegment(rest[0] as string);
      const view = store.getBaseline(key);
      if (!view) throw new ApiError(404, 'not_found', `no baseline with key ${JSON.stringify(key.slice(0, 256))}`);
      const format = enumParam(params, 'format', ['yaml', 'networkpolicy', 'falco'] as const) ?? 'yaml';
      const json = baselineJson(view) as unknown as DocView;
      let text: string;
      try {
        if (format === 'yaml') text = toBaselineDocument(json, { status: oneParam(params, 'status', 5) === 'true' });
        else if (format === 'falco') text = toFalcoRules(json);
        else {
          const selector = oneParam(params, 'selector', 1024);
          if (selector === undefined) throw new ApiError(400, 'invalid_parameter', 'a NetworkPolicy needs selector=LABEL=VALUE[,...] naming the pods of this image');
          text = toNetworkPolicy(json, { podSelector: parseSelector(selector) });
        }
      } catch (err) {
        if (err instanceof BaselineDocError) throw new ApiError(err.code === 'not_expressible' ? 422 : 400, err.code, err.message);
        throw err;
      }
      const name = `${baselineName(key)}${format === 'yaml' ? '' : `-${format}`}.yaml`;
      res.writeHead(200, {
        'content-type': 'application/yaml; charset=utf-8',
        'content-disposition': `attachment; filename="${name}"`,
        'cache-control': 'no-store',
        'x-content-type-options': 'nosniff',
      });
      res.end(text);
      return;
    }
    if (resource === 'baselines' && rest.length === 2 && (rest[1] === 'versions' || rest[1] === 'diff')) {
      const key = decodeSegment(rest[0] as string);
      const view = store.getBaseline(key);
      if (!view) throw new ApiError(404, 'not_found', `no baseline with key ${JSON.stringify(key.slice(0, 256))}`);
      if (rest[1] === 'versions') {
        checkParams(params, []);
        return sendJson(res, 200, { items: store.listVersions(key).map(versionJson) });
      }
      checkParams(params, ['from', 'to']);
      const version = (name: string): { version: number | null; ids: string[]; removed: string[] } => {
        // Without `from`: since the last review version (what changed that nobody reviewed yet).
        const raw = oneParam(params, name, 12) ?? (name === 'from' ? String(view.version) : undefined);
        if (raw === undefined || raw === 'current') {
          const active = view.entries.filter((e) => e.status !== 'removed');
          return { version: null, ids: active.map((e) => e.id), removed: view.entries.filter((e) => e.status === 'removed').map((e) => e.id) };
        }
        if (!/^\d{1,9}$/.test(raw)) throw new ApiError(400, 'invalid_parameter', `${name} must be a version number or current`);
        if (raw === '0') return { version: 0, ids: [], removed: [] };
        const v = store.getVersion(key, Number(raw));
        if (!v) throw new ApiError(404, 'not_found', `no version ${raw} of this baseline`);
        return { version: v.version, ids: v.entryIds, removed: v.removedIds };
      };
      const from = version('from');
      const to = version('to');
      const before = new Set(from.ids);
      const after = new Set(to.ids);
      const entry = (id: string) => entryJson({ id, entry: entryFromId(id) });
      return sendJson(res, 200, {
        key,
        from: from.version,
        to: to.version,
        added: to.ids.filter((id) => !before.has(id)).map(entry),
        removed: from.ids.filter((id) => !after.has(id)).map(entry),
      });
    }
    if (resource === 'baselines' && rest.length >= 1) {
      checkParams(params, []);
      // The key is percent-encoded (docker.io%2Flibrary%2Fnginx); unencoded slashes are accepted too.
      const key = rest.map(decodeSegment).join('/');
      const b = store.getBaseline(key);
      if (!b) throw new ApiError(404, 'not_found', `no baseline with key ${JSON.stringify(key.slice(0, 256))}`);
      return sendJson(res, 200, baselineJson(b));
    }
    // ---- nodes (issue 7, delivery): last contact, lag, silence of each node's agent ----
    if (resource === 'nodes' && rest.length === 1 && rest[0] === 'quarantined') {
      checkParams(params, []);
      return sendJson(res, 200, { items: store.listQuarantined().map((q) => ({ node: q.node, by: q.by, at: iso(q.at), reason: q.reason })), next: null });
    }
    if (resource === 'nodes' && deps.nodes && rest.length <= 1) {
      checkParams(params, []);
      const quarantined = new Set(store.listQuarantined().map((q) => q.node));
      const json = (n: NodeStatus) => ({ ...nodeJson(n), quarantined: quarantined.has(n.node) });
      if (rest.length === 0) return sendJson(res, 200, { items: deps.nodes.list().map(json), next: null });
      const n = deps.nodes.get(decodeSegment(rest[0] as string));
      if (!n) throw new ApiError(404, 'not_found', 'no node with this name');
      return sendJson(res, 200, json(n));
    }
    throw new ApiError(404, 'not_found', 'no such API resource');
  }

  return async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    try {
      if (await serveHealth(req, res, deps.registry, deps.readiness, { metricsIntervalMs: deps.metricsIntervalMs })) return;
      const rawUrl = req.url ?? '/';
      if (rawUrl.length > 8192) throw new ApiError(414, 'uri_too_long', 'request URI longer than 8192 characters');
      const q = rawUrl.indexOf('?');
      const path = q === -1 ? rawUrl : rawUrl.slice(0, q);
      const params = new URLSearchParams(q === -1 ? '' : rawUrl.slice(q + 1));
      if (!path.startsWith('/api/v1/')) throw new ApiError(404, 'not_found', 'the API is under /api/v1/');
      const segments = path.slice('/api/v1/'.length).split('/').filter((s) => s !== '');
      const method = req.method ?? 'GET';
      if (method === 'GET' || method === 'HEAD') route(method, segments, params, res);
      else await mutate(req, segments, params, res);
    } catch (err) {
      if (err instanceof ApiError || err instanceof BodyError) {
        rejectedRequests.inc({ status: String(err.status), code: err.code });
        return sendJson(res, err.status, { error: { code: err.code, message: err.message } }, bodyRefusalHeaders(err.status));
      }
      if (err instanceof CursorError) {
        rejectedRequests.inc({ status: '400', code: err.code });
        return sendJson(res, 400, { error: { code: err.code, message: err.message } });
      }
      throw err;
    }
  };
}
