/**
 * The collector's composition root. Every consumer uses the store's slices through the asynchronous
 * contract (store/async.ts); SQLite's synchronous slices are wrapped once, here. Shutdown (SIGTERM):
 * stop accepting streams, let the batches taken be committed and acknowledged (an acknowledged batch
 * is always on disk), end the open streams (agents resend anything unacknowledged elsewhere or
 * later), close HTTP, wait for the requests, jobs and writes still using the store, close it.
 */
import { createServer } from 'node:http';
import * as grpc from '@grpc/grpc-js';
import cron from 'node-cron';
import { Counter, Gauge } from 'prom-client';
import { ConfigError } from '../runtime/config.js';
import { createProbeServer } from '../runtime/health.js';
import { formatHostPort, limitConnections, listenHttp, parseHostPort } from '../runtime/listen.js';
import { createLogger, type Logger } from '../runtime/logger.js';
import { createReloadingTls, type ReloadingTls } from '../runtime/tls.js';
import { VERSION } from '../runtime/version.js';
import { alertView } from './http/views.js';
import { createAlerting } from './alerting/index.js';
import { ownerOf } from './alerting/config.js';
import { STORM_SHARE_MS } from './alerting/storm-share.js';
import { createAlertFeed, type AlertFeed } from './http/feed.js';
import { createAuditLog, type AuditLog } from './audit.js';
import { createApiAuth, type ApiAuth } from './http/auth.js';
import type { CollectorConfig } from './config.js';
import { requiredRole, requestBodyLimit } from './http/routes/index.js';
import { createHttpHandler } from './http/server.js';
import { createIngest } from './ingest/service.js';
import { createSinks } from './sinks/index.js';
import { createPackageLookup } from './sbom/notification-packages.js';
import { noticeFirstRuns } from './sbom/version-watch.js';
import type { Alerting } from './alerting/index.js';
import { createCollectorMetrics, type CollectorMetrics } from './metrics.js';
import { createNodeIdentityInterceptor } from './ingest/node-identity.js';
import { createNodeTracker, type NodeTracker } from './ingest/node-tracker.js';
import { createAuthFailureLimiter } from './http/rate-limit.js';
import { createInThreadWriter, startIngestWorker } from './ingest/writer.js';
import { asAsync, type AsyncStore } from './store/async.js';
import { openSqliteStore } from './store/sqlite/index.js';
import { DatabaseUrlError, maskSecrets, isPostgresUrl, passwordsOf, readDatabaseUrlFile } from './store/database-url.js';
import type { Alert } from './alerting/alert.js';
import { attachStream } from './http/stream.js';
import { createTokenReviewer } from './ingest/token-review.js';
import { createLeadership, replicaId } from './replicas/leadership.js';
import { followChanges, type Replication } from './replicas/changes.js';
import type { ChangeFeed } from './store/postgres/feed.js';

// The collector's settings live in config.ts; what starts a collector needs both.
export { CollectorConfigSchema, loadCollectorConfig, type CollectorConfig } from './config.js';

/** A running collector. */
export interface CollectorHandle {
  readonly grpcPort: number;
  readonly httpPort: number;
  /** The probe listener's port (probeListen), null without one. */
  readonly probePort: number | null;
  /** Base URL of the HTTP API, e.g. http://127.0.0.1:8080 */
  readonly url: string;
  readonly store: AsyncStore;
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

/** The store the configuration names, opened: SQLite (db) or PostgreSQL (dbUrlFile, DRIFTWATCH_DB_URL). */
interface OpenedDatabase {
  readonly store: AsyncStore;
  /** Which engine: SQLite's ingest may run in a worker thread of its own over the same file. */
  readonly kind: 'sqlite' | 'postgres';
  /** What the logs name: the file, or the URL without its password. */
  readonly label: string;
  /** One round trip to the server (PostgreSQL); null where there is no server to lose. */
  readonly ping: (() => Promise<void>) | null;
  /**
   * What the ingest worker thread opens for itself (the SQLite file, the PostgreSQL URL); null where
   * no second connection can see the same data (an in-memory SQLite database).
   */
  readonly workerDb: string | null;
  /** Listen to what every replica commits (PostgreSQL); null where this process is the only writer. */
  readonly openChanges: ((onError: (err: unknown) => void) => Promise<ChangeFeed>) | null;
  close(): Promise<void>;
}

/** Open the configured store. The PostgreSQL URL is read (from its file) once, here; its password appears in no message. */
async function openDatabase(config: CollectorConfig, logger: Logger, metrics: CollectorMetrics): Promise<OpenedDatabase> {
  const log = logger.child({ component: 'store' });
  // db is a SQLite file, or a postgres:// URL without a password (the schema refused one with it).
  if (config.db !== undefined && !isPostgresUrl(config.db)) {
    const sqlite = openSqliteStore(config.db, { logger: log });
    return { store: asAsync(sqlite), kind: 'sqlite', label: config.db, workerDb: config.db === ':memory:' ? null : config.db, ping: null, openChanges: null, close: async () => sqlite.close() };
  }
  let url: string;
  try {
    url = config.db ?? (config.dbUrlFile !== undefined ? readDatabaseUrlFile(config.dbUrlFile, `dbUrlFile (${config.dbUrlFile})`) : (config.dbUrl as string));
  } catch (err) {
    if (err instanceof DatabaseUrlError) throw new ConfigError('dbUrlFile', err.message);
    throw err;
  }
  const { openPostgresStore, redactedUrl } = await import('./store/postgres/index.js');
  const label = redactedUrl(url);
  const secrets = passwordsOf(url);
  try {
    const pg = await openPostgresStore(url, { logger: log, onRetry: (code) => metrics.transactionRetries.inc({ code }) });
    // The URL stays in this closure: the feed's connection is opened with it, nothing else sees it.
    const openChanges = async (onError: (err: unknown) => void) => {
      const { openChangeFeed } = await import('./store/postgres/feed.js');
      return openChangeFeed(url, { onError: (err) => onError(new Error(maskSecrets((err as Error)?.message ?? String(err), secrets))) });
    };
    return { store: pg, kind: 'postgres', label, workerDb: url, ping: () => pg.ping(), openChanges, close: () => pg.close() };
  } catch (err) {
    // A driver's or server's message could quote the URL: masked, and the original not kept as the cause.
    const e = new Error(`cannot open the PostgreSQL store at ${label}: ${maskSecrets((err as Error).message ?? String(err), secrets)}`);
    e.name = 'StoreOpenError';
    throw e;
  }
}

/** How often readiness asks PostgreSQL, and how long an answer may take before the database counts as unreachable. */
const DB_CHECK_INTERVAL_MS = 2_000;
const DB_CHECK_TIMEOUT_MS = 5_000;

/**
 * The lease of a scheduled job: until a minute past its next run, so its leader keeps it from run to
 * run and another replica takes it over at the first run after a leader died (a run of one missed
 * at most). A schedule with no next run gets an hour.
 */
function cronLeaseMs(next: Date | null, now: number): number {
  return next === null ? 3_600_000 : Math.max(60_000, next.getTime() - now + 60_000);
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
  const database = await openDatabase(config, logger, metrics);
  const { store } = database;
  // Several replicas on PostgreSQL: this one's name in the outbox and job leases.
  const owner = replicaId();
  const replicated = database.openChanges !== null;
  // Ingest commits in a worker thread of its own (writer.ts), unless told to run on the event loop.
  const ingestWorkerDb = config.ingestThread === 'worker' ? database.workerDb : null;
  const alertLog = logger.child({ component: 'alerts' });
  const feed = createAlertFeed((err) => logger.error({ err }, 'a live feed subscriber failed'));
  const sinks = createSinks({ sinks: config.sinks }, { logger, registry: metrics.registry, now, tickets: store, owner });
  // On PostgreSQL the live feed is fed from the change feed (every replica's changes, this one's
  // included, once each); alerting publishes to a feed nobody listens to, so it reads nothing for it.
  const alerting = await createAlerting({
    store,
    sinks,
    config: config.alerting,
    feed: replicated ? createAlertFeed() : feed,
    logger: logger.child({ component: 'alerting' }),
    registry: metrics.registry,
    now,
    publicUrl: config.publicUrl,
    owner,
    deliveryLeaseMs: config.deliveryLease,
    // The package behind an alert's executable, looked up from the image's SBOM when it is delivered (issue 22).
    enrichNotification: createPackageLookup({ store, logger: logger.child({ component: 'sbom' }), now }),
    // Replicas count each other's storm windows; one collector on SQLite has no others. The counts
    // are those of the policy that decides: the ingest worker's, which shares them itself.
    stormShareMs: replicated && ingestWorkerDb === null ? STORM_SHARE_MS : 0,
  });
  const leadership = createLeadership({ store, owner, logger: logger.child({ component: 'leadership' }), now });
  const audit = createAuditLog(store);
  /** Jobs under way (scheduled ones, audit records of token reloads): shutdown waits for them before the store closes. */
  const running = new Set<Promise<unknown>>();
  const job = (name: string, run: () => Promise<unknown>) => () => {
    const p = run().catch((err: unknown) => logger.error({ err, job: name }, 'scheduled job failed'));
    running.add(p);
    return p.finally(() => running.delete(p));
  };
  // Each periodic job runs on the one replica leading it (always this one on SQLite). A lease outlives
  // the job's period, so its leader keeps it from run to run; a dead leader's job passes to another
  // replica once its lease ends. The task's promise goes back to node-cron: noOverlap holds while a
  // run still waits for the store.
  const scheduled = (name: string, expression: string, run: () => Promise<unknown>) => {
    const task = cron.schedule(
      expression,
      job(name, () => leadership.runIfLeader(name, cronLeaseMs(task.getNextRun(), now()), run)),
      { name, noOverlap: true },
    );
    return task;
  };
  const jobs = [
    scheduled('retention', config.alerting.retentionSchedule, () => alerting.prune()),
    scheduled('exception-reminders', config.alerting.reminderSchedule, () => alerting.remindExpiringExceptions()),
    scheduled('digests', config.alerting.digestSchedule, () => alerting.sendDigests()),
    // Image versions and places not seen for alertRetention go with the closed alerts.
    scheduled('image-retention', config.alerting.retentionSchedule, async () => {
      const versions = await store.pruneImages(now() - config.alerting.alertRetention);
      if (versions > 0) logger.info({ versions }, 'retention: image versions not seen lately forgotten');
    }),
  ];
  // 1.5 periods: a dead leader's re-sends resume within 2.5 periods, before Alertmanager's firing
  // timeout (at least 3 re-send periods, config.ts) resolves what it stopped re-sending.
  const resendLeaseMs = Math.floor(config.alerting.alertmanagerResend * 1.5);
  const resend = job('alertmanager-resend', () => leadership.runIfLeader('alertmanager-resend', resendLeaseMs, () => alerting.resendToAlertmanager()));
  const resendTimer = setInterval(() => void resend(), config.alerting.alertmanagerResend);
  resendTimer.unref();
  const nodes = await createNodeTracker(
    { silentAfterMs: config.silentAfter },
    {
      store,
      alerting,
      registry: metrics.registry,
      logger: logger.child({ component: 'nodes' }),
      now,
      // On PostgreSQL silence is judged from the cluster's view, and raised by one replica.
      cluster: replicated ? { runIfLeader: (ttlMs, fn) => leadership.runIfLeader('node-silence', ttlMs, fn) } : undefined,
    },
  );
  const writer =
    ingestWorkerDb !== null
      ? await startIngestWorker(
          { db: ingestWorkerDb, spec: alerting.policySpec, storm: replicated ? { owner, everyMs: STORM_SHARE_MS } : undefined },
          { hooks: alerting.policyHooks, logger: logger.child({ component: 'ingest' }), onRetry: (code) => metrics.transactionRetries.inc({ code }) },
        )
      : createInThreadWriter(store, alerting.policy);
  alerting.onExceptions((active) => writer.setExceptions(active));
  const ingest = createIngest(
    { version: VERSION, maxBatchItems: config.maxBatchItems, pushOnCommit: !replicated, minReportIntervalMs: config.imageReportInterval },
    {
      store,
      images: store,
      // An image version that first runs: its SBOM's changes for the baselines (issue 22), after the inventory's write.
      onNewImageVersions: (versions) => void job('sbom-first-run', () => noticeFirstRuns({ store, audit, logger: logger.child({ component: 'sbom' }) }, versions))(),
      writer,
      metrics,
      logger: logger.child({ component: 'ingest' }),
      now,
      afterCommit: (result) => alerting.afterCommit(result),
      nodes,
      onNewAlert(alert) {
        // One JSON line per new alert: the first channel on-call can already consume (log shipping).
        alertLog.warn({ alert: alertView(alert) }, 'new alert');
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
  // PostgreSQL can go away under a running collector (a restart, a failover): while it does not
  // answer, the replica is not ready (agents and API calls go to another), and it stays up: batches
  // in flight fail and are resent, later ones commit once the pool reconnects.
  let databaseDown: string | null = null;
  const databaseUp = new Gauge({ name: 'driftwatch_collector_database_up', help: 'Whether the database answered its last check (1) or not (0)', registers: [metrics.registry] });
  databaseUp.set(1);
  let checking: Promise<void> | null = null;
  const checkDatabase = (ping: () => Promise<void>) => {
    if (checking) return;
    let timer: NodeJS.Timeout | undefined;
    const deadline = new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`no answer within ${DB_CHECK_TIMEOUT_MS} ms`)), DB_CHECK_TIMEOUT_MS)));
    checking = Promise.race([ping(), deadline])
      .then(
        () => {
          if (databaseDown !== null) logger.info({ db: database.label }, 'the database answers again');
          databaseDown = null;
          databaseUp.set(1);
        },
        (err: unknown) => {
          if (databaseDown === null) logger.warn({ db: database.label, error: (err as Error).message }, 'the database does not answer: not ready');
          databaseDown = 'the database does not answer';
          databaseUp.set(0);
        },
      )
      .finally(() => {
        clearTimeout(timer);
        checking = null;
      });
  };
  const ping = database.ping;
  const databaseTimer = ping === null ? null : setInterval(() => checkDatabase(ping), DB_CHECK_INTERVAL_MS);
  databaseTimer?.unref();
  const readiness = () => (ready ? databaseDown : 'shutting down');
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
      roleOf: requiredRole,
      bodyLimitOf: requestBodyLimit,
      // Who may change things is itself a change worth a record.
      onTokensChanged: (before, after) => void job('api-tokens-audit', () => audit.record({ actor: 'system', role: 'admin', action: 'api-tokens.reload', target: config.apiTokensFile ?? '', before, after }))(),
    },
  );
  if (config.apiTokensFile === undefined) logger.warn('insecure: the HTTP API has no tokens file; anyone who reaches it can read and change everything');
  const handler = createHttpHandler({
    auth,
    logger,
    store,
    alerting,
    registry: metrics.registry,
    readiness,
    metricsIntervalMs: config.metricsInterval,
    now,
    maxExceptionLifetime: config.alerting.maxExceptionLifetime,
    audit,
    // On PostgreSQL the change feed pushes what the store announced (to every replica's agents).
    onBaselineChanged: replicated ? () => undefined : (key) => ingest.pushBaselines([key]),
    nodes,
    images: {
      staleAfterMs: config.imageStaleAfter,
      // The team alerting.owners gives an alert of this image in its first namespace.
      ownerOf: (repository, namespace) => ownerOf(config.alerting, { baselineKey: repository, namespace, labels: {}, severity: 'low' }),
    },
  });
  // Timeouts are enforced every connectionsCheckingInterval (Node: 30 s unless told), so a client
  // that sends its headers a byte at a time is cut within 12 s, not 40.
  const http = createServer({ maxHeaderSize: 16 << 10, connectionsCheckingInterval: 2_000 }, handler);
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
  let changes: ChangeFeed | null = null;
  let replication: Replication | null = null;
  if (database.openChanges) {
    const feedLog = logger.child({ component: 'change-feed' });
    changes = await database.openChanges((err) => feedLog.warn({ error: (err as Error).message }, 'the change feed lost its connection; reconnecting'));
    replication = followChanges({ changes, store, pushBaselines: (keys) => ingest.pushBaselines(keys), onAlertChange: () => alerting.wakeOutbox(), onExceptionChange: () => void alerting.reloadExceptions().catch((err: unknown) => feedLog.error({ err }, 'change feed: reloading the active exceptions failed')), feed, logger: feedLog, registry: metrics.registry, now });
    // What is committed from here on is heard (agents connect once the listeners are bound below).
    await changes.ready;
  }
  const httpAt = parseHostPort(config.httpListen);
  const httpPort = await listenHttp(http, httpAt);
  const urlHost = httpAt.host === '0.0.0.0' || httpAt.host === '::' ? '127.0.0.1' : httpAt.host;
  const url = `http://${formatHostPort(urlHost, httpPort)}`;
  const probes = config.probeListen === '' ? null : createProbeServer(readiness, { onDrop: () => dropped.inc({ listener: 'probes', reason: 'max_connections' }) });
  const probeAt = config.probeListen === '' ? null : parseHostPort(config.probeListen);
  const probePort = probes && probeAt ? await listenHttp(probes, probeAt) : null;
  logger.info({ grpc: formatHostPort(grpcAt.host, grpcPort), http: formatHostPort(httpAt.host, httpPort), grpcPort, httpPort, ...(probeAt && probePort !== null ? { probes: formatHostPort(probeAt.host, probePort), probePort } : {}), db: database.label, version: VERSION, tls: tls !== null, agentAuth, apiAuth: config.apiTokensFile !== undefined }, 'collector started');
  if (replicated) logger.info({ owner }, 'replica of a shared database: deliveries and periodic jobs under leases, changes heard from every replica');

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
        if (databaseTimer) clearInterval(databaseTimer);
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
        // Nothing may still be using the store when it closes: requests being answered (bounded: a
        // request whose socket went may never finish reading its body), jobs, node records, alerting.
        await Promise.race([handler.idle(), new Promise((resolve) => setTimeout(resolve, 5_000).unref())]);
        await nodes.stop();
        await replication?.stop();
        await changes?.close();
        // Aborts a re-send round in flight, so the jobs below end soon.
        await alerting.stop();
        await Promise.all(running);
        await checking;
        // Another replica leads the periodic jobs at their next run, without waiting for the leases to end.
        await leadership.resignAll();
        // The pool last: everything that used it above has finished.
        await database.close();
        auth.close();
        tls?.close();
        logger.info('collector stopped');
      })();
      return stopping;
    },
  };
}
