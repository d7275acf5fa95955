/**
 * The collector's composition root. Shutdown (SIGTERM): stop accepting streams, let the batch being
 * committed finish (commits are synchronous, so an acknowledged batch is always on disk), end the
 * open streams (agents resend anything unacknowledged elsewhere or later), close HTTP, close SQLite.
 */
import { createServer } from 'node:http';
import * as grpc from '@grpc/grpc-js';
import cron from 'node-cron';
import { Counter } from 'prom-client';
import { z } from 'zod';
import { boolFlag, durationMs, hostPort, loadConfig } from '../runtime/config.js';
import { createProbeServer } from '../runtime/health.js';
import { formatHostPort, limitConnections, listenHttp, parseHostPort } from '../runtime/listen.js';
import { LOG_LEVELS, createLogger, type Logger } from '../runtime/logger.js';
import { createReloadingTls, type ReloadingTls } from '../runtime/tls.js';
import { VERSION } from '../runtime/version.js';
import { alertJson, createApiHandler } from './api.js';
import { createAlerting } from './alerting/index.js';
import { AlertingConfigSchema, alertmanagerTimingIssues, receiverReferences } from './alerting/config.js';
import { FIRING_TIMEOUT_RESENDS } from './sinks/alertmanager.js';
import { createAlertFeed, type AlertFeed } from './feed.js';
import { openAuditLog, serveAudit, type AuditLog } from './audit.js';
import { createApiAuth, serveWhoami, type ApiAuth } from './auth.js';
import { createConsoleServer } from './console-server.js';
import { createIngest } from './ingest.js';
import { SinksConfigSchema, createSinks } from './sinks/index.js';
import type { Alerting } from './alerting/index.js';
import { createCollectorMetrics, type CollectorMetrics } from './metrics.js';
import { createNodeIdentityInterceptor } from './node-identity.js';
import { createNodeTracker, type NodeTracker } from './nodes.js';
import { createAuthFailureLimiter } from './rate-limit.js';
import { createInThreadWriter, startIngestWorker } from './ingest-writer.js';
import { openSqliteStore } from './store/sqlite.js';
import type { Alert, Store } from './store/store.js';
import { attachStream, normalizeOrigin } from './stream.js';

/** A browser origin, `scheme://host[:port]`, kept normalized (lower case, no default port). */
const origin = z
  .string()
  .max(256)
  .transform((v, ctx) => {
    const normalized = normalizeOrigin(v);
    if (normalized === null || !/^https?:\/\/[^/?#@]+\/?$/i.test(v)) {
      ctx.addIssue({ code: 'custom', message: `${JSON.stringify(v.slice(0, 64))} is not an http(s) origin (scheme://host[:port], no path)` });
      return z.NEVER;
    }
    return normalized;
  });
import { createTokenReviewer } from './token-review.js';

/** The collector's configuration schema. */
export const CollectorConfigSchema = z.strictObject({
  db: z.string().min(1),
  grpcListen: hostPort.default('0.0.0.0:7070'),
  httpListen: hostPort.default('0.0.0.0:8080'),
  /** A port of its own for the kubelet's probes (/livez, /healthz, /readyz), so that no load on the API delays them ('' = none). */
  probeListen: z.union([z.literal(''), hostPort]).default(''),
  /** HTTP API connections open at once; more are closed as they are accepted (counted). */
  httpMaxConnections: z.coerce.number().int().min(16).max(1_000_000).default(1_024),
  /** HTTP API connections open at once from one address; more are closed as they are accepted (counted). */
  httpMaxConnectionsPerAddress: z.coerce.number().int().min(4).max(1_000_000).default(256),
  logLevel: z.enum(LOG_LEVELS).default('info'),
  maxBatchItems: z.coerce.number().int().min(1).max(10_000).default(2_000),
  /** Where ingest commits run: a worker thread with its own connection (default), or the event loop. */
  ingestThread: z.enum(['worker', 'main']).default('worker'),
  /** Largest gRPC message accepted, in bytes. */
  maxMessageBytes: z.coerce.number().int().min(64 << 10).max(256 << 20).default(16 << 20),
  /** Websocket live-feed (/api/v1/stream) clients at once; more are refused with 503. */
  streamMaxClients: z.coerce.number().int().min(1).max(10_000).default(64),
  /** Live-feed clients at once per API token (per principal), so one token cannot hold every slot; more are refused with 429. */
  streamMaxClientsPerToken: z.coerce.number().int().min(1).max(10_000).default(16),
  /** Messages held for a live-feed client that is behind; beyond it the oldest are dropped. */
  streamQueue: z.coerce.number().int().min(1).max(10_000).default(1_000),
  /** Bytes held for a live-feed client that is behind; beyond it the oldest are dropped. */
  streamQueueBytes: z.coerce.number().int().min(64 << 10).max(256 << 20).default(4 << 20),
  /** A live-feed client behind for this long is closed (1008). */
  streamSlowTimeout: durationMs.refine((ms) => ms >= 1_000 && ms <= 3_600_000, 'must be from 1s to 1h').default(30_000),
  /** Live-feed ping interval; a client that misses a pong is terminated. */
  streamHeartbeat: durationMs.refine((ms) => ms >= 1_000 && ms <= 600_000, 'must be from 1s to 10m').default(30_000),
  /** Browser origins (scheme://host[:port]) allowed on the live feed besides the collector's own. */
  streamAllowedOrigins: z.array(origin).max(64).default([]),
  /** Where notifications go (collector/sinks; see config/sinks.example.yaml). */
  sinks: SinksConfigSchema.shape.sinks,
  /** Severity, routes, owners, storm control, outbox, retention (collector/alerting/config.ts). */
  alerting: AlertingConfigSchema.default(AlertingConfigSchema.parse({})),
  /** The URL people reach the collector at, for links in notifications ('' = no links). */
  publicUrl: z.union([z.literal(''), z.url({ protocol: /^https?$/ })]).default(''),
  /** Plaintext agent stream without node identity, and an API without tokens, where not configured. */
  insecure: boolFlag.default(false),
  /** The collector's certificate and key (PEM) for the agent stream. */
  tlsCert: z.string().min(1).optional(),
  tlsKey: z.string().min(1).optional(),
  /** The CA that signs agent certificates (agentAuth certificate). */
  tlsCa: z.string().min(1).optional(),
  /** How often the TLS files are checked for rotation. */
  tlsReloadInterval: durationMs.refine((ms) => ms >= 100, 'must be at least 100ms').default(10_000),
  /** How agents prove their node: their client certificate's CN, or a ServiceAccount token checked by TokenReview. */
  agentAuth: z.enum(['certificate', 'token']).default('certificate'),
  /** Service accounts (namespace:name) whose tokens may speak for a node (agentAuth token). */
  agentServiceAccounts: z.array(z.string().regex(/^[a-z0-9]([-a-z0-9.]*[a-z0-9])?:[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/, 'must be NAMESPACE:NAME')).default([]),
  /** Kubernetes API server for TokenReviews; default https://$KUBERNETES_SERVICE_HOST:$KUBERNETES_SERVICE_PORT. */
  kubeApiServer: z.url({ protocol: /^https?$/ }).optional(),
  kubeTokenFile: z.string().min(1).default('/var/run/secrets/kubernetes.io/serviceaccount/token'),
  kubeCaFile: z.string().min(1).default('/var/run/secrets/kubernetes.io/serviceaccount/ca.crt'),
  /** The audience agent tokens must carry. */
  tokenAudience: z.string().min(1).max(253).default('driftwatch'),
  /** Most agent streams open at once per node. */
  maxStreamsPerNode: z.coerce.number().int().min(1).max(64).default(4),
  /** YAML file of API tokens (name, role, sha256 or token); re-read when it changes. */
  apiTokensFile: z.string().min(1).optional(),
  /** Require a viewer token for /metrics. */
  metricsAuth: boolFlag.default(false),
  /** The interval in which /metrics is rendered at most 5 times (concurrent scrapes share one rendering). */
  metricsInterval: durationMs.refine((ms) => ms <= 60_000, 'must be at most 1m').default(1_000),
  /** Requests per second per API token (bursts of twice that). */
  apiRateLimit: z.coerce.number().int().min(1).max(100_000).default(50),
  /** Largest HTTP request body. */
  maxBodyBytes: z.coerce.number().int().min(1024).max(64 << 20).default(1 << 20),
  /** A node whose agent sent nothing (agents send a heartbeat every 10 s) for this long is marked silent, and alerting is told. */
  silentAfter: durationMs.refine((ms) => ms >= 15_000 && ms <= 7 * 86_400_000, 'must be from 15s to 7d').default(300_000),
}).superRefine((c, ctx) => {
  const issue = (key: string, message: string) => ctx.addIssue({ code: 'custom', path: [key], message });
  if ((c.tlsCert === undefined) !== (c.tlsKey === undefined)) issue(c.tlsCert === undefined ? 'tlsCert' : 'tlsKey', 'tlsCert and tlsKey go together');
  if (c.tlsCert === undefined && !c.insecure) {
    issue('tlsCert', 'the agent stream needs TLS: give tlsCert and tlsKey (and tlsCa to verify agent certificates; `driftwatch certs init` makes them), or set insecure for plaintext');
  }
  if (c.tlsCert !== undefined && c.agentAuth === 'certificate' && c.tlsCa === undefined) issue('tlsCa', 'agentAuth certificate needs tlsCa, the CA that signs agent certificates');
  if (c.tlsCert !== undefined && c.agentAuth === 'token') {
    if (c.agentServiceAccounts.length === 0) issue('agentServiceAccounts', 'agentAuth token needs the agent service account(s), as NAMESPACE:NAME');
    if (c.kubeApiServer === undefined) issue('kubeApiServer', 'agentAuth token needs the API server URL (set automatically inside a pod)');
  }
  if (c.apiTokensFile === undefined && !c.insecure) issue('apiTokensFile', 'the HTTP API needs tokens: give apiTokensFile, or set insecure to leave it open');
  const names = new Set(c.sinks.map((s) => s.name));
  for (const ref of receiverReferences(c.alerting)) {
    if (!names.has(ref.name)) ctx.addIssue({ code: 'custom', path: ref.path, message: `no sink is named ${ref.name}; configured: ${[...names].join(', ') || 'none'}` });
  }
  for (const i of alertmanagerTimingIssues(c.alerting, c.sinks, FIRING_TIMEOUT_RESENDS)) ctx.addIssue({ code: 'custom', path: i.path, message: i.message });
});

/** The validated, frozen collector configuration. */
export type CollectorConfig = Readonly<z.output<typeof CollectorConfigSchema>>;

/** Load the collector's config from a file, the environment (DRIFTWATCH_*) and flags. */
export function loadCollectorConfig(flags: Record<string, unknown>, env = process.env, file?: string): CollectorConfig {
  const withApi = { ...flags };
  // Inside a pod the API server is found the way client-go finds it.
  if (withApi.kubeApiServer === undefined && env.DRIFTWATCH_KUBE_API_SERVER === undefined && env.KUBERNETES_SERVICE_HOST) {
    const host = env.KUBERNETES_SERVICE_HOST.includes(':') ? `[${env.KUBERNETES_SERVICE_HOST}]` : env.KUBERNETES_SERVICE_HOST;
    withApi.kubeApiServer = `https://${host}:${env.KUBERNETES_SERVICE_PORT ?? '443'}`;
  }
  return loadConfig(CollectorConfigSchema, { file, env, envPrefix: 'DRIFTWATCH_', listKeys: ['agentServiceAccounts', 'streamAllowedOrigins'], flags: withApi });
}

/** A running collector. */
export interface CollectorHandle {
  readonly grpcPort: number;
  readonly httpPort: number;
  /** The probe listener's port (probeListen), null without one. */
  readonly probePort: number | null;
  /** Base URL of the HTTP API, e.g. http://127.0.0.1:8080 */
  readonly url: string;
  readonly store: Store;
  readonly metrics: CollectorMetrics;
  /** Live alert changes (the websocket feed subscribes). */
  readonly feed: AlertFeed;
  readonly alerting: Alerting;
  /** The audit log (who changed what, when, before/after). */
  readonly audit: AuditLog;
  /** The API's auth layer (principalOf(req) says who made a request). */
  readonly auth: ApiAuth;
  /** Each node's agent: last contact, lag, silence. */
  readonly nodes: NodeTracker;
  stop(): Promise<void>;
}

function bindGrpc(server: grpc.Server, address: string, credentials: grpc.ServerCredentials): Promise<number> {
  return new Promise((resolve, reject) => {
    server.bindAsync(address, credentials, (err, port) => (err ? reject(err) : resolve(port)));
  });
}

/** Start a collector. `onAlert` sees every new alert (the demo uses it; sinks plug in here later). */
export async function startCollector(
  config: CollectorConfig,
  options: { logger?: Logger; onAlert?: (alert: Alert) => void; now?: () => number } = {},
): Promise<CollectorHandle> {
  const logger = options.logger ?? createLogger('driftwatch-collector', config.logLevel);
  const now = options.now ?? Date.now;
  const metrics = createCollectorMetrics();
  const store = openSqliteStore(config.db, { logger: logger.child({ component: 'store' }) });
  const alertLog = logger.child({ component: 'alerts' });
  const feed = createAlertFeed((err) => logger.error({ err }, 'a live feed subscriber failed'));
  const sinks = createSinks({ sinks: config.sinks }, { logger, registry: metrics.registry, now });
  const alerting = createAlerting({ store, sinks, config: config.alerting, feed, logger: logger.child({ component: 'alerting' }), registry: metrics.registry, now, publicUrl: config.publicUrl });
  const jobs = [
    cron.schedule(config.alerting.retentionSchedule, () => void alerting.prune(), { name: 'retention', noOverlap: true }),
    cron.schedule(config.alerting.reminderSchedule, () => void alerting.remindExpiringExceptions(), { name: 'exception-reminders', noOverlap: true }),
    cron.schedule(config.alerting.digestSchedule, () => void alerting.sendDigests(), { name: 'digests', noOverlap: true }),
  ];
  const resendTimer = setInterval(() => {
    alerting.resendToAlertmanager().catch((err: unknown) => logger.error({ err }, 'Alertmanager re-send failed'));
  }, config.alerting.alertmanagerResend);
  resendTimer.unref();
  const nodes = createNodeTracker({ silentAfterMs: config.silentAfter }, { store, alerting, registry: metrics.registry, logger: logger.child({ component: 'nodes' }), now });
  const writer =
    config.ingestThread === 'worker' && config.db !== ':memory:'
      ? await startIngestWorker({ db: config.db, spec: alerting.policySpec }, { hooks: alerting.policyHooks, logger: logger.child({ component: 'ingest' }) })
      : createInThreadWriter(store, alerting.policy);
  alerting.onExceptions((active) => writer.setExceptions(active));
  const ingest = createIngest(
    { version: VERSION, maxBatchItems: config.maxBatchItems },
    {
      store,
      writer,
      metrics,
      logger: logger.child({ component: 'ingest' }),
      now,
      afterCommit: (result) => alerting.afterCommit(result),
      nodes,
      onNewAlert(alert) {
        // One JSON line per new alert: the first channel on-call can already consume (log shipping).
        alertLog.warn({ alert: alertJson(alert) }, 'new alert');
        options.onAlert?.(alert);
      },
    },
  );
  const tlsReloads = new Counter({ name: 'driftwatch_collector_tls_reloads_total', help: 'Reloads of the TLS files after they changed, by result', labelNames: ['result'], registers: [metrics.registry] });
  let tls: ReloadingTls | null = null;
  let credentials = grpc.ServerCredentials.createInsecure();
  const agentAuth = config.tlsCert === undefined ? 'none' : config.agentAuth;
  if (config.tlsCert !== undefined) {
    tls = createReloadingTls(
      { cert: config.tlsCert, key: config.tlsKey, ca: agentAuth === 'certificate' ? config.tlsCa : undefined },
      { intervalMs: config.tlsReloadInterval, logger: logger.child({ component: 'tls' }), onReload: (result) => tlsReloads.inc({ result }) },
    );
    // grpc-js 1.14 hands its first argument on as the identity (certificate + key) provider and its
    // second as the CA provider; one provider serves both. A null CA provider asks for no client
    // certificate (agentAuth token), a CA provider with `true` requires one.
    credentials = grpc.experimental.createCertificateProviderServerCredentials(tls, agentAuth === 'certificate' ? tls : null, agentAuth === 'certificate');
  } else {
    logger.warn('insecure: the agent stream is plaintext and agents are not authenticated; any client that reaches the gRPC port can send deviations as any node');
  }
  const reviewer =
    agentAuth === 'token'
      ? createTokenReviewer(
          { apiServer: config.kubeApiServer as string, tokenFile: config.kubeTokenFile, caFile: config.kubeCaFile, audience: config.tokenAudience, serviceAccounts: config.agentServiceAccounts },
          { logger: logger.child({ component: 'token-review' }) },
        )
      : undefined;
  const identity = createNodeIdentityInterceptor(
    { mode: agentAuth, maxStreamsPerNode: config.maxStreamsPerNode },
    { logger: logger.child({ component: 'agent-auth' }), registry: metrics.registry, failures: createAuthFailureLimiter(), reviewer },
  );
  const server = new grpc.Server({
    interceptors: [identity],
    'grpc.max_receive_message_length': config.maxMessageBytes,
    'grpc.max_send_message_length': 1 << 20,
    'grpc.keepalive_time_ms': 60_000,
    'grpc.keepalive_permit_without_calls': 1,
    'grpc.http2.min_ping_interval_without_data_ms': 10_000,
  });
  server.addService(ingest.service, ingest.implementation);
  const grpcAt = parseHostPort(config.grpcListen);
  const grpcPort = await bindGrpc(server, formatHostPort(grpcAt.host, grpcAt.port), credentials);

  let ready = true;
  const readiness = () => (ready ? null : 'shutting down');
  const audit = openAuditLog(config.db);
  const auth = createApiAuth(
    {
      tokensFile: config.apiTokensFile ?? null,
      metricsAuth: config.metricsAuth,
      reloadIntervalMs: Math.min(config.tlsReloadInterval, 5_000),
      requestsPerSecond: config.apiRateLimit,
      maxBodyBytes: config.maxBodyBytes,
    },
    {
      logger: logger.child({ component: 'api-auth' }),
      registry: metrics.registry,
      // Who may change things is itself a change worth a record.
      onTokensChanged: (before, after) => audit.record({ actor: 'system', role: 'admin', action: 'api-tokens.reload', target: config.apiTokensFile ?? '', before, after }),
    },
  );
  if (config.apiTokensFile === undefined) logger.warn('insecure: the HTTP API has no tokens file; anyone who reaches it can read and change everything');
  const api = createApiHandler({
    store,
    alerting,
    registry: metrics.registry,
    readiness,
    metricsIntervalMs: config.metricsInterval,
    now,
    maxExceptionLifetime: config.alerting.maxExceptionLifetime,
    principalOf: (req) => auth.principalOf(req),
    audit,
    onBaselineChanged: (key) => ingest.pushBaselines([key]),
    nodes,
  });
  const consoleServer = createConsoleServer({ logger: logger.child({ component: 'console' }) });
  const handler = auth.wrap(async (req, res) => {
    if (consoleServer.serve(req, res)) return;
    if (serveWhoami(req, res, auth)) return;
    if (serveAudit(req, res, audit)) return;
    await api(req, res);
  });
  // Timeouts are enforced every connectionsCheckingInterval (Node: 30 s unless told), so a client
  // that sends its headers a byte at a time is cut within 12 s, not 40.
  const http = createServer({ maxHeaderSize: 16 << 10, connectionsCheckingInterval: 2_000 }, (req, res) => {
    handler(req, res).catch((err: unknown) => {
      logger.error({ err, url: req.url?.slice(0, 256) }, 'API request failed');
      if (!res.headersSent) res.writeHead(500, { 'content-type': 'application/json' });
      res.end('{"error":{"code":"internal","message":"internal error"}}');
    });
  });
  http.requestTimeout = 30_000;
  http.headersTimeout = 10_000;
  http.maxHeadersCount = 100;
  const dropped = new Counter({
    name: 'driftwatch_collector_http_connections_dropped_total',
    help: 'HTTP connections closed as they were accepted, by listener (api, probes) and bound (max_connections, per_address)',
    labelNames: ['listener', 'reason'],
    registers: [metrics.registry],
  });
  limitConnections(http, { max: config.httpMaxConnections, perAddress: config.httpMaxConnectionsPerAddress }, (reason) => dropped.inc({ listener: 'api', reason }));
  const stream = attachStream(http, {
    feed,
    logger,
    registry: metrics.registry,
    // The same tokens and roles as the rest of the API (viewer and up).
    async authorize(req) {
      const d = auth.authorize(req);
      if (d.allow) return d.principal ?? { name: 'anonymous', role: 'admin' };
      const headers: Record<string, string> = d.status === 401 ? { 'WWW-Authenticate': 'Bearer realm="driftwatch"' } : d.retryAfterS !== undefined ? { 'Retry-After': String(d.retryAfterS) } : {};
      return { status: d.status, code: d.code, message: d.message, headers };
    },
    limits: {
      maxClients: config.streamMaxClients,
      maxClientsPerPrincipal: config.streamMaxClientsPerToken,
      queueMessages: config.streamQueue,
      queueBytes: config.streamQueueBytes,
      slowTimeoutMs: config.streamSlowTimeout,
      heartbeatMs: config.streamHeartbeat,
      allowedOrigins: config.streamAllowedOrigins,
    },
  });
  const httpAt = parseHostPort(config.httpListen);
  const httpPort = await listenHttp(http, httpAt);
  const urlHost = httpAt.host === '0.0.0.0' || httpAt.host === '::' ? '127.0.0.1' : httpAt.host;
  const url = `http://${formatHostPort(urlHost, httpPort)}`;
  const probes = config.probeListen === '' ? null : createProbeServer(readiness, { onDrop: () => dropped.inc({ listener: 'probes', reason: 'max_connections' }) });
  const probeAt = config.probeListen === '' ? null : parseHostPort(config.probeListen);
  const probePort = probes && probeAt ? await listenHttp(probes, probeAt) : null;
  logger.info({ grpc: formatHostPort(grpcAt.host, grpcPort), http: formatHostPort(httpAt.host, httpPort), grpcPort, httpPort, ...(probeAt && probePort !== null ? { probes: formatHostPort(probeAt.host, probePort), probePort } : {}), db: config.db, version: VERSION, tls: tls !== null, agentAuth, apiAuth: config.apiTokensFile !== undefined }, 'collector started');

  let stopping: Promise<void> | null = null;
  return {
    grpcPort,
    httpPort,
    probePort,
    url,
    store,
    metrics,
    feed,
    alerting,
    audit,
    auth,
    nodes,
    stop() {
      stopping ??= (async () => {
        ready = false;
        for (const job of jobs) await job.destroy();
        clearInterval(resendTimer);
        let closed = Promise.resolve();
        await new Promise<void>((resolve) => {
          const timer = setTimeout(() => {
            server.forceShutdown();
            resolve();
          }, 5_000);
          server.tryShutdown(() => {
            clearTimeout(timer);
            resolve();
          });
          closed = ingest.closeAll();
        });
        // Every batch taken is committed (and acknowledged where its stream is still open) before the
        // writer's connection closes.
        await closed;
        await writer.close();
        // Live-feed clients first (1001): upgraded sockets would otherwise hold http.close open.
        await stream.close();
        await new Promise<void>((resolve) => {
          http.close(() => resolve());
          http.closeAllConnections();
        });
        if (probes) {
          await new Promise<void>((resolve) => {
            probes.close(() => resolve());
            probes.closeAllConnections();
          });
        }
        nodes.stop();
        await alerting.stop();
        store.close();
        audit.close();
        auth.close();
        tls?.close();
        logger.info('collector stopped');
      })();
      return stopping;
    },
  };
}
