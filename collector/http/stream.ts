/**
 * The websocket live feed, `GET /api/v1/stream`: every alert change the collector publishes on its
 * feed (collector/http/feed.ts), filtered per client, as JSON text frames. Read-only: what a client
 * sends is ignored (and bounded by a small maxPayload).
 *
 * A connection gets, in order: a `hello` frame (the filters in effect, the server version), then
 * `{"type":"alert.created"|"alert.updated"|"alert.state","at":RFC 3339,"alert":{…}}` frames, and a
 * `{"type":"dropped","count":n}` frame where messages were lost because the client did not keep
 * up. After a `dropped` frame a client that needs every change re-reads /api/v1/alerts.
 *
 * Everything an upgrade request can be refused for is checked before the upgrade, and answered with
 * an HTTP status and a JSON error body like the rest of the API: 404 (another path), 403 (Origin),
 * 401 (authorize said no), 400 (a bad filter), 429 (the token holds its share of clients), 503 (full,
 * or stopping).
 */
import { STATUS_CODES, type IncomingMessage, type Server } from 'node:http';
import type { Duplex } from 'node:stream';
import { Counter, Gauge, type Registry } from 'prom-client';
import { WebSocket, WebSocketServer } from 'ws';
import { EVENT_KINDS, type EventKind } from '../../core/event.js';
import type { Logger } from '../../runtime/logger.js';
import { WEBSOCKET_PROTOCOL } from './auth.js';
import { VERSION } from '../../runtime/version.js';
import type { AlertFeed, FeedEvent, FeedEventType } from './feed.js';
import type { AlertState } from '../alerting/alert.js';

/** The path of the live feed. */
export const STREAM_PATH = '/api/v1/stream';

import { SEVERITIES, type Severity } from '../../core/severity.js';
export { SEVERITIES, type Severity };

const FEED_EVENT_TYPES = ['alert.created', 'alert.updated', 'alert.state'] as const satisfies readonly FeedEventType[];
const ALERT_STATES = ['firing', 'acknowledged', 'resolved', 'accepted'] as const satisfies readonly AlertState[];
// Compile-time checks that the lists above name every member of their unions.
type Exhaustive<U, L extends readonly unknown[]> = [U] extends [L[number]] ? true : never;
const feedTypesExhaustive: Exhaustive<FeedEventType, typeof FEED_EVENT_TYPES> = true;
const statesExhaustive: Exhaustive<AlertState, typeof ALERT_STATES> = true;
void feedTypesExhaustive;
void statesExhaustive;

/** What a client asked for; an empty list means "any". */
export interface StreamFilter {
  /** Minimum severity; alerts without a severity pass only when this is null. */
  readonly severity: Severity | null;
  readonly namespace: readonly string[];
  /** Image repository or baseline key, exact. */
  readonly image: readonly string[];
  readonly state: readonly AlertState[];
  readonly kind: readonly EventKind[];
  readonly type: readonly FeedEventType[];
}

/** A query string the live feed refuses; `code` as in the API's error bodies. */
export class StreamFilterError extends Error {
  constructor(readonly code: 'unknown_parameter' | 'invalid_parameter', message: string) {
    super(message);
    this.name = 'StreamFilterError';
  }
}

const FILTER_KEYS = ['severity', 'namespace', 'image', 'state', 'kind', 'type'] as const;
const MAX_QUERY_CHARS = 8192;
const MAX_VALUES = 64;
const NAMESPACE_RE = /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/;
// Image references and baseline keys: printable ASCII without spaces or quotes.
const IMAGE_RE = /^[A-Za-z0-9._\-/:@+]{1,512}$/;

function quote(s: string): string {
  return JSON.stringify(s.length > 64 ? `${s.slice(0, 64)}…` : s);
}

function values(params: URLSearchParams, name: string): string[] {
  const out: string[] = [];
  for (const raw of params.getAll(name)) {
    for (const v of raw.split(',')) {
      const value = v.trim();
      if (value === '') throw new StreamFilterError('invalid_parameter', `${name} has an empty value`);
      if (!out.includes(value)) out.push(value);
      if (out.length > MAX_VALUES) throw new StreamFilterError('invalid_parameter', `${name} takes at most ${MAX_VALUES} values`);
    }
  }
  return out;
}

function enumValues<T extends string>(params: URLSearchParams, name: string, allowed: readonly T[]): T[] {
  const vs = values(params, name);
  for (const v of vs) {
    if (!(allowed as readonly string[]).includes(v)) throw new StreamFilterError('invalid_parameter', `${name} ${quote(v)} is not one of: ${allowed.join(', ')}`);
  }
  return vs as T[];
}

function patternValues(params: URLSearchParams, name: string, re: RegExp, what: string): string[] {
  const vs = values(params, name);
  for (const v of vs) if (!re.test(v)) throw new StreamFilterError('invalid_parameter', `${name} ${quote(v)} is not ${what}`);
  return vs;
}

/**
 * Parse a live-feed query string. Each filter is repeatable (`kind=exec&kind=connect`) or a comma
 * list (`kind=exec,connect`), except `severity`, which is one minimum. Unknown parameters are
 * refused so that a typo does not silently widen the feed.
 */
export function parseStreamFilter(query: string): StreamFilter {
  if (query.length > MAX_QUERY_CHARS) throw new StreamFilterError('invalid_parameter', `query string longer than ${MAX_QUERY_CHARS} characters`);
  const params = new URLSearchParams(query);
  for (const name of new Set(params.keys())) {
    if (!(FILTER_KEYS as readonly string[]).includes(name)) {
      throw new StreamFilterError('unknown_parameter', `unknown query parameter ${quote(name)}; allowed: ${FILTER_KEYS.join(', ')}`);
    }
  }
  const severities = enumValues(params, 'severity', SEVERITIES);
  if (severities.length > 1) throw new StreamFilterError('invalid_parameter', 'severity is a minimum and takes one value');
  return Object.freeze({
    severity: severities[0] ?? null,
    namespace: Object.freeze(patternValues(params, 'namespace', NAMESPACE_RE, 'a Kubernetes namespace name')),
    image: Object.freeze(patternValues(params, 'image', IMAGE_RE, 'an image repository or baseline key')),
    state: Object.freeze(enumValues(params, 'state', ALERT_STATES)),
    kind: Object.freeze(enumValues(params, 'kind', EVENT_KINDS)),
    type: Object.freeze(enumValues(params, 'type', FEED_EVENT_TYPES)),
  });
}

function severityRank(s: unknown): number {
  return typeof s === 'string' ? (SEVERITIES as readonly string[]).indexOf(s) : -1;
}

/** Namespaces an alert touches: its `namespace` and those of its pods (`namespace/name`). */
function alertNamespaces(alert: FeedEvent['alert']): string[] {
  const out = typeof alert.namespace === 'string' && alert.namespace !== '' ? [alert.namespace] : [];
  for (const pod of Array.isArray(alert.pods) ? alert.pods : []) {
    const slash = typeof pod === 'string' ? pod.indexOf('/') : -1;
    if (slash > 0) out.push(pod.slice(0, slash));
  }
  return out;
}

/** Whether a feed event passes a client's filter. Pure. */
export function matchesFilter(filter: StreamFilter, event: FeedEvent): boolean {
  const alert = event.alert;
  if (filter.type.length > 0 && !filter.type.includes(event.type)) return false;
  if (filter.severity !== null) {
    // Read loosely: `severity` is being added to the alert's JSON shape; until it is there, or for
    // an alert without one, a severity filter lets nothing through.
    const rank = severityRank((alert as { severity?: unknown }).severity);
    if (rank === -1 || rank > severityRank(filter.severity)) return false;
  }
  if (filter.state.length > 0 && !(filter.state as readonly string[]).includes(alert.state)) return false;
  if (filter.kind.length > 0 && !(filter.kind as readonly string[]).includes(alert.kind)) return false;
  if (filter.image.length > 0 && !filter.image.includes(alert.image) && !filter.image.includes(alert.baselineKey)) return false;
  if (filter.namespace.length > 0 && !alertNamespaces(alert).some((ns) => filter.namespace.includes(ns))) return false;
  return true;
}

/** Who is connecting, as the authorize hook names them. */
export interface StreamPrincipal {
  name: string;
  role: string;
}

/** A refusal from the authorize hook, sent as the HTTP answer to the upgrade. */
export interface StreamRefusal {
  status: number;
  code: string;
  message: string;
  headers?: Record<string, string> | undefined;
}

/** Limits of the live feed. */
export interface StreamLimits {
  /** Clients at once (connected, or being authorized); more are refused with 503. */
  maxClients: number;
  /**
   * Clients at once per principal (per API token; per address when anonymous), so that one token
   * cannot hold every slot; more are refused with 429. Absent: only maxClients applies.
   */
  maxClientsPerPrincipal?: number | undefined;
  /** Messages held for a client that is not keeping up; beyond it the oldest are dropped. */
  queueMessages: number;
  /** Bytes held for such a client; beyond it the oldest are dropped. */
  queueBytes: number;
  /** A client that stays behind this long is closed (1008). */
  slowTimeoutMs: number;
  /** Ping interval; a client that has not answered the previous ping is terminated. */
  heartbeatMs: number;
  /** Browser origins allowed besides the collector's own (exact, normalized `scheme://host[:port]`). */
  allowedOrigins: readonly string[];
}

/** What attachStream needs. */
export interface StreamDeps {
  feed: AlertFeed;
  logger: Logger;
  registry: Registry;
  limits: StreamLimits;
  /** Who the request is; null refuses it with 401, a refusal with its own status. Absent: everyone may connect. */
  authorize?: ((req: IncomingMessage) => Promise<StreamPrincipal | StreamRefusal | null>) | undefined;
  now?: () => number;
}

/** The live feed attached to an HTTP server. */
export interface StreamServer {
  /** Connected clients. */
  readonly clients: number;
  /** Refuse new clients, close every open one with 1001 (going away), and wait for them (bounded). */
  close(): Promise<void>;
}

/** Bytes the ws layer may hold for one client before messages wait in its queue instead. */
const HIGH_WATER_BYTES = 256 << 10;
/** Largest message a client may send (it is ignored anyway). */
const MAX_CLIENT_PAYLOAD = 1024;
/** Frames (messages and pings) a client may send per heartbeat interval before it is closed. */
const MAX_INBOUND_PER_HEARTBEAT = 100;
/** How long a closed client gets to complete the close handshake before its socket is destroyed. */
const CLOSE_GRACE_MS = 2_000;

const CLOSE_GOING_AWAY = 1001;
const CLOSE_POLICY = 1008;

/** Normalize an origin (`scheme://host[:port]`), or null if it is not an http(s) origin. */
export function normalizeOrigin(origin: string): string | null {
  let url: URL;
  try {
    url = new URL(origin);
  } catch {
    return null;
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') return null;
  return url.origin;
}

/**
 * Cross-site websocket hijacking protection: a browser always sends Origin, so a request without
 * one is a non-browser client (CLI, curl, a script) and is let through to authorization. A browser
 * request passes when it comes from the collector's own origin (same host as the Host header) or
 * from a configured one.
 */
function originAllowed(req: IncomingMessage, allowed: ReadonlySet<string>): boolean {
  const raw = req.headers.origin;
  if (raw === undefined) return true;
  const origin = normalizeOrigin(raw);
  if (origin === null) return false;
  if (allowed.has(origin)) return true;
  const host = req.headers.host;
  if (host === undefined) return false;
  const self = normalizeOrigin(`${new URL(origin).protocol}//${host}`);
  return self !== null && self === origin;
}

interface Queued {
  text: string;
  bytes: number;
}

interface Client {
  readonly ws: WebSocket;
  readonly filter: StreamFilter;
  readonly who: string;
  /** Whose share of the slots it takes (see maxClientsPerPrincipal). */
  readonly holder: string;
  queue: Queued[];
  queueBytes: number;
  /** Messages dropped since the last `dropped` frame. */
  dropped: number;
  /** Answered the last ping. */
  alive: boolean;
  /** Frames received since the last heartbeat. */
  inbound: number;
  /** Runs while the client has a backlog; closes it when it fires. */
  slowTimer: NodeJS.Timeout | null;
  closing: boolean;
}

function createStreamMetrics(registry: Registry) {
  const r = [registry];
  return {
    clients: new Gauge({ name: 'driftwatch_collector_stream_clients', help: 'Open websocket live-feed clients', registers: r }),
    sent: new Counter({ name: 'driftwatch_collector_stream_messages_sent_total', help: 'Alert messages handed to live-feed clients', registers: r }),
    dropped: new Counter({ name: 'driftwatch_collector_stream_messages_dropped_total', help: 'Alert messages dropped because a live-feed client did not keep up', registers: r }),
    closed: new Counter({
      name: 'driftwatch_collector_stream_clients_closed_total',
      help: 'Live-feed clients closed by the collector, by reason (slow: behind for too long; no_pong: missed a heartbeat; flood: sent too many frames)',
      labelNames: ['reason'],
      registers: r,
    }),
    rejected: new Counter({ name: 'driftwatch_collector_stream_rejected_total', help: 'Live-feed upgrade requests refused, by HTTP status', labelNames: ['status'], registers: r }),
    perPrincipal: new Counter({ name: 'driftwatch_collector_stream_token_limit_total', help: 'Live-feed upgrades refused because their token (or anonymous address) already holds streamMaxClientsPerToken clients', registers: r }),
  };
}

/** Answer an upgrade request with an HTTP error and a JSON body, then destroy the socket. */
function refuse(socket: Duplex, status: number, code: string, message: string, headers: Record<string, string> = {}): void {
  if (!socket.writable) {
    socket.destroy();
    return;
  }
  const body = JSON.stringify({ error: { code, message } });
  const lines = [
    `HTTP/1.1 ${status} ${STATUS_CODES[status] ?? ''}`,
    'Connection: close',
    'Content-Type: application/json; charset=utf-8',
    `Content-Length: ${Buffer.byteLength(body)}`,
    'Cache-Control: no-store',
    'X-Content-Type-Options: nosniff',
    ...Object.entries(headers).map(([k, v]) => `${k}: ${v}`),
  ];
  socket.once('finish', () => socket.destroy());
  socket.end(`${lines.join('\r\n')}\r\n\r\n${body}`);
  // A peer that never reads must not keep the socket.
  setTimeout(() => socket.destroy(), CLOSE_GRACE_MS).unref();
}

/** Attach the live feed to `server`'s upgrade requests. Call before the server listens. */
export function attachStream(server: Server, deps: StreamDeps): StreamServer {
  const { feed, limits } = deps;
  const now = deps.now ?? Date.now;
  const log = deps.logger.child({ component: 'stream' });
  const metrics = createStreamMetrics(deps.registry);
  const allowedOrigins = new Set(limits.allowedOrigins.map((o) => normalizeOrigin(o)).filter((o): o is string => o !== null));
  const wss = new WebSocketServer({
    noServer: true,
    clientTracking: false,
    maxPayload: MAX_CLIENT_PAYLOAD,
    // No compression: per-client zlib contexts cost memory per connection and buy little here.
    perMessageDeflate: false,
    // Pings are answered by hand (below): an automatic pong is written even to a client that does
    // not read, so a client sending pings could grow our buffers without bound.
    autoPong: false,
    // A browser offers `driftwatch.v1` with the subprotocol that carries its token (auth.ts):
    // answer `driftwatch.v1`, never the token's; offered nothing of ours, answer no subprotocol.
    handleProtocols: (offered) => (offered.has(WEBSOCKET_PROTOCOL) ? WEBSOCKET_PROTOCOL : false),
  });
  const clients = new Set<Client>();
  // Slots taken by upgrades still being authorized, so that concurrent handshakes cannot overshoot maxClients.
  let pending = 0;
  let stopping = false;

  function write(c: Client, text: string): void {
    c.ws.send(text, (err) => {
      // Written to the socket: there may be room for what waits in the queue.
      if (!err) pump(c);
    });
  }

  function pump(c: Client): void {
    while (!c.closing && c.ws.readyState === WebSocket.OPEN && (c.dropped > 0 || c.queue.length > 0) && c.ws.bufferedAmount < HIGH_WATER_BYTES) {
      if (c.dropped > 0) {
        // Everything dropped is older than everything still queued (the queue drops from its
        // front), so the marker goes exactly where the gap is.
        write(c, JSON.stringify({ type: 'dropped', count: c.dropped }));
        c.dropped = 0;
        continue;
      }
      const next = c.queue.shift() as Queued;
      c.queueBytes -= next.bytes;
      write(c, next.text);
      metrics.sent.inc();
    }
    if (c.queue.length === 0 && c.dropped === 0 && c.slowTimer !== null) {
      clearTimeout(c.slowTimer);
      c.slowTimer = null;
    }
  }

  function deliver(c: Client, text: string): void {
    if (c.closing) return;
    if (c.queue.length === 0 && c.dropped === 0 && c.ws.bufferedAmount < HIGH_WATER_BYTES) {
      write(c, text);
      metrics.sent.inc();
      return;
    }
    // Behind: hold the message; when the queue is full drop the oldest, so that a client that
    // catches up sees the newest state of its alerts, after a `dropped` marker for the rest.
    const bytes = Buffer.byteLength(text);
    c.queue.push({ text, bytes });
    c.queueBytes += bytes;
    while (c.queue.length > limits.queueMessages || (c.queueBytes > limits.queueBytes && c.queue.length > 0)) {
      const old = c.queue.shift() as Queued;
      c.queueBytes -= old.bytes;
      c.dropped += 1;
      metrics.dropped.inc();
    }
    c.slowTimer ??= setTimeout(() => closeSlow(c), limits.slowTimeoutMs);
    pump(c);
  }

  function closeSlow(c: Client): void {
    c.slowTimer = null;
    if (c.closing) return;
    log.warn({ client: c.who, queued: c.queue.length, dropped: c.dropped, bufferedBytes: c.ws.bufferedAmount }, 'live-feed client too slow, closing');
    metrics.closed.inc({ reason: 'slow' });
    shut(c, CLOSE_POLICY, 'too slow: behind for too long');
  }

  /** Close a client and let go of its queue; destroy the socket if the close handshake stalls. */
  function shut(c: Client, code: number, reason: string): Promise<void> {
    c.closing = true;
    c.queue = [];
    c.queueBytes = 0;
    if (c.slowTimer !== null) clearTimeout(c.slowTimer);
    c.slowTimer = null;
    if (c.ws.readyState === WebSocket.CLOSED) return Promise.resolve();
    return new Promise((resolve) => {
      // A client that does not read never sees the close frame behind its backlog.
      const timer = setTimeout(() => c.ws.terminate(), CLOSE_GRACE_MS);
      c.ws.once('close', () => {
        clearTimeout(timer);
        resolve();
      });
      if (c.ws.readyState === WebSocket.OPEN) c.ws.close(code, reason);
    });
  }

  function rfc3339(ms: number): string {
    // Date's range is ±8.64e15 ms; anything else would throw.
    return new Date(Number.isFinite(ms) && Math.abs(ms) <= 8.64e15 ? ms : now()).toISOString();
  }

  const unsubscribe = feed.subscribe((event) => {
    let text: string | null = null;
    for (const c of clients) {
      if (c.closing || !matchesFilter(c.filter, event)) continue;
      // Serialized once, for the first client that wants it.
      text ??= JSON.stringify({ type: event.type, at: rfc3339(event.at), alert: event.alert });
      deliver(c, text);
    }
  }, () => clients.size > 0);

  const heartbeat = setInterval(() => {
    for (const c of clients) {
      if (c.closing) continue;
      if (!c.alive) {
        log.info({ client: c.who }, 'live-feed client missed a heartbeat, terminating');
        metrics.closed.inc({ reason: 'no_pong' });
        c.closing = true;
        c.ws.terminate();
        continue;
      }
      c.alive = false;
      c.inbound = 0;
      if (c.ws.readyState === WebSocket.OPEN) c.ws.ping();
    }
  }, limits.heartbeatMs);
  heartbeat.unref();

  function accept(req: IncomingMessage, ws: WebSocket, filter: StreamFilter, who: string, holder: string): void {
    const c: Client = { ws, filter, who, holder, queue: [], queueBytes: 0, dropped: 0, alive: true, inbound: 0, slowTimer: null, closing: false };
    ws.on('pong', () => {
      c.alive = true;
    });
    // Clients cannot send commands: messages are ignored; maxPayload bounds their size, and
    // this budget their number.
    const inbound = (): boolean => {
      c.inbound += 1;
      if (c.inbound <= MAX_INBOUND_PER_HEARTBEAT || c.closing) return !c.closing;
      log.warn({ client: who }, 'live-feed client sent too many frames, closing');
      metrics.closed.inc({ reason: 'flood' });
      void shut(c, CLOSE_POLICY, 'this feed takes no messages');
      return false;
    };
    ws.on('message', inbound);
    ws.on('ping', (data) => {
      // Answered only while the client reads what it is sent.
      if (inbound() && ws.readyState === WebSocket.OPEN && ws.bufferedAmount < HIGH_WATER_BYTES) ws.pong(data);
    });
    ws.on('error', (err) => log.debug({ client: who, err: err.message }, 'live-feed client error'));
    ws.on('close', (code) => {
      clients.delete(c);
      if (c.slowTimer !== null) clearTimeout(c.slowTimer);
      metrics.clients.set(clients.size);
      log.info({ client: who, code }, 'live-feed client disconnected');
    });
    const hello = {
      type: 'hello',
      at: new Date(now()).toISOString(),
      version: VERSION,
      filters: filter,
      limits: { queueMessages: limits.queueMessages, queueBytes: limits.queueBytes, heartbeatSeconds: limits.heartbeatMs / 1000 },
    };
    write(c, JSON.stringify(hello));
    clients.add(c);
    metrics.clients.set(clients.size);
    log.info({ client: who, remote: req.socket.remoteAddress, filters: filter }, 'live-feed client connected');
  }

  async function onUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): Promise<void> {
    // Before any await: an error on a socket without a listener would crash the process.
    socket.on('error', () => socket.destroy());
    const rawUrl = req.url ?? '/';
    const q = rawUrl.indexOf('?');
    const path = q === -1 ? rawUrl : rawUrl.slice(0, q);
    const no = (status: number, code: string, message: string, headers?: Record<string, string>) => {
      metrics.rejected.inc({ status: String(status) });
      log.debug({ status, code, url: rawUrl.slice(0, 256), remote: req.socket.remoteAddress }, 'live-feed upgrade refused');
      refuse(socket, status, code, message, headers);
    };
    if (path !== STREAM_PATH) return no(404, 'not_found', `no websocket endpoint here; the live feed is ${STREAM_PATH}`);
    if (req.method !== 'GET') return no(405, 'method_not_allowed', 'a websocket upgrade is a GET', { Allow: 'GET' });
    if (stopping) return no(503, 'unavailable', 'the collector is stopping');
    if (!originAllowed(req, allowedOrigins)) return no(403, 'forbidden_origin', 'this Origin may not open the live feed');
    let filter: StreamFilter;
    try {
      filter = parseStreamFilter(q === -1 ? '' : rawUrl.slice(q + 1));
    } catch (err) {
      if (err instanceof StreamFilterError) return no(400, err.code, err.message);
      throw err;
    }
    if (clients.size + pending >= limits.maxClients) return no(503, 'too_many_clients', `the live feed has its ${limits.maxClients} clients`, { 'Retry-After': '30' });
    pending += 1;
    let principal: StreamPrincipal | StreamRefusal | null = { name: 'anonymous', role: 'none' };
    try {
      if (deps.authorize) principal = await deps.authorize(req);
    } catch (err) {
      log.error({ err }, 'live-feed authorization failed');
      return no(500, 'internal', 'authorization failed');
    } finally {
      pending -= 1;
    }
    if (principal === null) return no(401, 'unauthorized', 'missing or invalid credentials', { 'WWW-Authenticate': 'Bearer' });
    if ('status' in principal) return no(principal.status, principal.code, principal.message, principal.headers);
    // Re-checked after the await: the collector may have begun stopping meanwhile.
    if (stopping) return no(503, 'unavailable', 'the collector is stopping');
    if (socket.destroyed) return;
    const who = principal.name;
    const holder = who === 'anonymous' ? `anonymous@${req.socket.remoteAddress ?? ''}` : who;
    if (limits.maxClientsPerPrincipal !== undefined) {
      // Counted after the await and accepted without another one (handleUpgrade calls back at
      // once), so concurrent upgrades of one token cannot overshoot.
      let held = 0;
      for (const c of clients) if (c.holder === holder) held++;
      if (held >= limits.maxClientsPerPrincipal) {
        metrics.perPrincipal.inc();
        return no(429, 'too_many_clients_for_token', `this token already holds ${limits.maxClientsPerPrincipal} live-feed clients`, { 'Retry-After': '30' });
      }
    }
    // handleUpgrade answers malformed handshakes (missing key, wrong version) itself with 400.
    wss.handleUpgrade(req, socket, head, (ws) => accept(req, ws, filter, who, holder));
  }

  const listener = (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    onUpgrade(req, socket, head).catch((err: unknown) => {
      log.error({ err }, 'live-feed upgrade failed');
      socket.destroy();
    });
  };
  server.on('upgrade', listener);

  let closing: Promise<void> | null = null;
  return {
    get clients() {
      return clients.size;
    },
    close() {
      closing ??= (async () => {
        stopping = true;
        unsubscribe();
        clearInterval(heartbeat);
        await Promise.all([...clients].map((c) => shut(c, CLOSE_GOING_AWAY, 'collector stopping')));
        wss.close();
        // The upgrade listener stays: until the HTTP server closes, late upgrades get a 503
        // rather than a reset.
      })();
      return closing;
    },
  };
}
