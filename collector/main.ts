/**
 * The collector's composition root. Shutdown (SIGTERM): stop accepting streams, let the batch being
 * committed finish (commits are synchronous, so an acknowledged batch is always on disk), end the
 * open streams (agents resend anything unacknowledged elsewhere or later), close HTTP, close SQLite.
 */
import { createServer } from 'node:http';
import * as grpc from '@grpc/grpc-js';
import cron from 'node-cron';
import { z } from 'zod';
import { durationMs, hostPort, loadConfig } from '../runtime/config.js';
import { formatHostPort, listenHttp, parseHostPort } from '../runtime/listen.js';
import { LOG_LEVELS, createLogger, type Logger } from '../runtime/logger.js';
import { VERSION } from '../runtime/version.js';
import { alertJson, createApiHandler } from './api.js';
import { createAlerting } from './alerting/index.js';
import { AlertingConfigSchema, receiverReferences } from './alerting/config.js';
import { createAlertFeed, type AlertFeed } from './feed.js';
import { createIngest } from './ingest.js';
import { SinksConfigSchema, createSinks } from './sinks/index.js';
import type { Alerting } from './alerting/index.js';
import { createCollectorMetrics, type CollectorMetrics } from './metrics.js';
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

/** The collector's configuration schema. */
export const CollectorConfigSchema = z.strictObject({
  db: z.string().min(1),
  grpcListen: hostPort.default('0.0.0.0:7070'),
  httpListen: hostPort.default('0.0.0.0:8080'),
  logLevel: z.enum(LOG_LEVELS).default('info'),
  maxBatchItems: z.coerce.number().int().min(1).max(10_000).default(2_000),
  /** Largest gRPC message accepted, in bytes. */
  maxMessageBytes: z.coerce.number().int().min(64 << 10).max(256 << 20).default(16 << 20),
  /** Websocket live-feed (/api/v1/stream) clients at once; more are refused with 503. */
  streamMaxClients: z.coerce.number().int().min(1).max(10_000).default(64),
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
}).superRefine((c, ctx) => {
  const names = new Set(c.sinks.map((s) => s.name));
  for (const ref of receiverReferences(c.alerting)) {
    if (!names.has(ref.name)) ctx.addIssue({ code: 'custom', path: ref.path, message: `no sink is named ${ref.name}; configured: ${[...names].join(', ') || 'none'}` });
  }
});

/** The validated, frozen collector configuration. */
export type CollectorConfig = Readonly<z.output<typeof CollectorConfigSchema>>;

/** Load the collector's config from a file, the environment (DRIFTWATCH_*) and flags. */
export function loadCollectorConfig(flags: Record<string, unknown>, env = process.env, file?: string): CollectorConfig {
  return loadConfig(CollectorConfigSchema, { file, env, envPrefix: 'DRIFTWATCH_', listKeys: ['streamAllowedOrigins'], flags });
}

/** A running collector. */
export interface CollectorHandle {
  readonly grpcPort: number;
  readonly httpPort: number;
  /** Base URL of the HTTP API, e.g. http://127.0.0.1:8080 */
  readonly url: string;
  readonly store: Store;
  readonly metrics: CollectorMetrics;
  /** Live alert changes (the websocket feed subscribes). */
  readonly feed: AlertFeed;
  readonly alerting: Alerting;
  stop(): Promise<void>;
}

function bindGrpc(server: grpc.Server, address: string): Promise<number> {
  return new Promise((resolve, reject) => {
    server.bindAsync(address, grpc.ServerCredentials.createInsecure(), (err, port) => (err ? reject(err) : resolve(port)));
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
  const store = openSqliteStore(config.db);
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
  const ingest = createIngest(
    { version: VERSION, maxBatchItems: config.maxBatchItems },
    {
      store,
      metrics,
      logger: logger.child({ component: 'ingest' }),
      now,
      policy: alerting.policy,
      afterCommit: (result) => alerting.afterCommit(result),
      onNewAlert(alert) {
        // One JSON line per new alert: the first channel on-call can already consume (log shipping).
        alertLog.warn({ alert: alertJson(alert) }, 'new alert');
        options.onAlert?.(alert);
      },
    },
  );
  const server = new grpc.Server({
    'grpc.max_receive_message_length': config.maxMessageBytes,
    'grpc.max_send_message_length': 1 << 20,
    'grpc.keepalive_time_ms': 60_000,
    'grpc.keepalive_permit_without_calls': 1,
    'grpc.http2.min_ping_interval_without_data_ms': 10_000,
  });
  server.addService(ingest.service, ingest.implementation);
  const grpcAt = parseHostPort(config.grpcListen);
  const grpcPort = await bindGrpc(server, formatHostPort(grpcAt.host, grpcAt.port));

  let ready = true;
  const handler = createApiHandler({ store, alerting, registry: metrics.registry, readiness: () => (ready ? null : 'shutting down'), now, maxExceptionLifetime: config.alerting.maxExceptionLifetime });
  const http = createServer((req, res) => {
    handler(req, res).catch((err: unknown) => {
      logger.error({ err, url: req.url?.slice(0, 256) }, 'API request failed');
      if (!res.headersSent) res.writeHead(500, { 'content-type': 'application/json' });
      res.end('{"error":{"code":"internal","message":"internal error"}}');
    });
  });
  http.requestTimeout = 30_000;
  http.headersTimeout = 10_000;
  const stream = attachStream(http, {
    feed,
    logger,
    registry: metrics.registry,
    limits: {
      maxClients: config.streamMaxClients,
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
  logger.info({ grpc: formatHostPort(grpcAt.host, grpcPort), http: formatHostPort(httpAt.host, httpPort), grpcPort, httpPort, db: config.db, version: VERSION }, 'collector started');

  let stopping: Promise<void> | null = null;
  return {
    grpcPort,
    httpPort,
    url,
    store,
    metrics,
    feed,
    alerting,
    stop() {
      stopping ??= (async () => {
        ready = false;
        for (const job of jobs) await job.destroy();
        clearInterval(resendTimer);
        await new Promise<void>((resolve) => {
          const timer = setTimeout(() => {
            server.forceShutdown();
            resolve();
          }, 5_000);
          server.tryShutdown(() => {
            clearTimeout(timer);
            resolve();
          });
          ingest.closeAll();
        });
        // Live-feed clients first (1001): upgraded sockets would otherwise hold http.close open.
        await stream.close();
        await new Promise<void>((resolve) => {
          http.close(() => resolve());
          http.closeAllConnections();
        });
        await alerting.stop();
        store.close();
        logger.info('collector stopped');
      })();
      return stopping;
    },
  };
}
