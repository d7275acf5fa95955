/**
 * The collector's settings, each declared once with its flag and help (runtime/flags.ts): the
 * schema, `driftwatch collector`'s flags and its --help all come from the table below.
 */
import { z } from 'zod';
import { boolFlag, durationMs, hostPort, loadConfig } from '../runtime/config.js';
import { defineSettings, envOnly, fileOnly, flag } from '../runtime/flags.js';
import { LOG_LEVELS } from '../runtime/logger.js';
import { AlertingConfigSchema, alertmanagerTimingIssues, receiverReferences } from './alerting/config.js';
import { DEFAULT_DELIVERY_LEASE_MS } from './alerting/outbox.js';
import { FIRING_TIMEOUT_RESENDS } from './sinks/alertmanager.js';
import { SinksConfigSchema } from './sinks/index.js';
import { normalizeOrigin } from './http/stream.js';
import { passwordsOf } from './store/database-url.js';

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

/** Every collector setting: schema, flag and help. */
export const COLLECTOR_SETTINGS = defineSettings({
  /** The SQLite file (the default store); or PostgreSQL through dbUrlFile / DRIFTWATCH_DB_URL: exactly one of the three. */
  db: flag(z.string().min(1).optional(), {
    arg: 'FILE|URL',
    help: 'SQLite database file, created if missing; or postgres://USER@HOST/DB with\nno password in it (PGPASSWORD or ~/.pgpass give it; or the two below)',
  }),
  /** A file holding the postgres:// URL (a Secret mounted as a file), read at start: the URL never shows in the process list. */
  dbUrlFile: flag(z.string().min(1).max(4_096).optional(), { arg: 'FILE', help: 'PostgreSQL: a file holding the postgres://user:password@host/db URL,\nread at start (a Secret mounted as a file); instead of --db' }),
  /** The postgres:// URL itself, where no file can be mounted; never a flag or in the config file, and never logged with its password. */
  dbUrl: envOnly(z.string().max(8_192).optional(), 'DRIFTWATCH_DB_URL', 'PostgreSQL: the postgres://… URL itself, where no file can be mounted;\ninstead of --db and --db-url-file'),
  grpcListen: flag(hostPort.default('0.0.0.0:7070'), { arg: 'HOST:PORT', help: 'agent ingest; default 0.0.0.0:7070' }),
  httpListen: flag(hostPort.default('0.0.0.0:8080'), { arg: 'HOST:PORT', help: 'API, /metrics, /livez, /readyz; default 0.0.0.0:8080' }),
  /** A port of its own for the kubelet's probes (/livez, /healthz, /readyz), so that no load on the API delays them ('' = none). */
  probeListen: flag(z.union([z.literal(''), hostPort]).default(''), { arg: 'HOST:PORT', help: '/livez, /readyz alone on a port of their own, for the kubelet (none unless given)' }),
  /** HTTP API connections open at once; more are closed as they are accepted (counted). */
  httpMaxConnections: flag(z.coerce.number().int().min(16).max(1_000_000).default(1_024), { arg: 'N', help: 'API connections at once; more are closed on accept; default 1024' }),
  /** HTTP API connections open at once from one address; more are closed as they are accepted (counted). */
  httpMaxConnectionsPerAddress: flag(z.coerce.number().int().min(4).max(1_000_000).default(256), { arg: 'N', help: 'the same from one address; default 256' }),
  logLevel: flag(z.enum(LOG_LEVELS).default('info'), { arg: 'LEVEL', help: 'default info' }),
  maxBatchItems: flag(z.coerce.number().int().min(1).max(10_000).default(2_000), { arg: 'N', help: 'most records per agent batch; default 2000' }),
  /** Where ingest commits run: a worker thread with its own connection (default), or the event loop. */
  ingestThread: flag(z.enum(['worker', 'main']).default('worker'), { arg: 'WHERE', help: 'where ingest commits run: worker (default; a thread with its own connection to the database)\n| main (on the event loop)' }),
  /** A node's container report older than this no longer says what runs now (the image inventory). */
  imageStaleAfter: flag(durationMs.refine((ms) => ms >= 10_000 && ms <= 86_400_000, 'must be from 10s to 24h').default(180_000), {
    arg: 'DUR',
    help: "a node's container report older than this no longer counts as running\nnow; default 3m (agents report every 60s)",
  }),
  /** Least time between two container reports of one node; an earlier one is dropped (counted). */
  imageReportInterval: flag(durationMs.refine((ms) => ms >= 100 && ms <= 3_600_000, 'must be from 100ms to 1h').default(10_000), {
    arg: 'DUR',
    help: 'least time between two container reports of one node taken; default 10s',
  }),
  /** Largest gRPC message accepted, in bytes. */
  maxMessageBytes: flag(z.coerce.number().int().min(64 << 10).max(256 << 20).default(16 << 20), { arg: 'N', help: 'largest gRPC message; default 16777216' }),
  /** Websocket live-feed (/api/v1/stream) clients at once; more are refused with 503. */
  streamMaxClients: flag(z.coerce.number().int().min(1).max(10_000).default(64), { arg: 'N', help: 'websocket live-feed clients at once; default 64' }),
  /** Live-feed clients at once per API token (per principal), so one token cannot hold every slot; more are refused with 429. */
  streamMaxClientsPerToken: flag(z.coerce.number().int().min(1).max(10_000).default(16), { arg: 'N', help: 'live-feed clients at once per API token; default 16' }),
  /** Messages held for a live-feed client that is behind; beyond it the oldest are dropped. */
  streamQueue: flag(z.coerce.number().int().min(1).max(10_000).default(1_000), { arg: 'N', help: 'messages held for a live-feed client that is behind; default 1000' }),
  /** Bytes held for a live-feed client that is behind; beyond it the oldest are dropped. */
  streamQueueBytes: flag(z.coerce.number().int().min(64 << 10).max(256 << 20).default(4 << 20), { arg: 'N', help: 'bytes held for such a client; default 4194304' }),
  /** A live-feed client behind for this long is closed (1008). */
  streamSlowTimeout: flag(durationMs.refine((ms) => ms >= 1_000 && ms <= 3_600_000, 'must be from 1s to 1h').default(30_000), { arg: 'DUR', help: 'a client behind this long is closed; default 30s' }),
  /** Live-feed ping interval; a client that misses a pong is terminated. */
  streamHeartbeat: flag(durationMs.refine((ms) => ms >= 1_000 && ms <= 600_000, 'must be from 1s to 10m').default(30_000), { arg: 'DUR', help: 'ping interval, a missed pong ends the client; default 30s' }),
  /** Browser origins (scheme://host[:port]) allowed on the live feed besides the collector's own. */
  streamAllowedOrigins: flag(z.array(origin).max(64).default([]), { flag: 'stream-allowed-origin', arg: 'ORIGIN', repeatable: true, help: "browser origin allowed besides the collector's own" }),
  /** Where notifications go (collector/sinks; see config/sinks.example.yaml). */
  sinks: fileOnly(SinksConfigSchema.shape.sinks, 'where notifications go (config/sinks.example.yaml)'),
  /** Severity, routes, owners, storm control, outbox, retention (collector/alerting/config.ts). */
  alerting: fileOnly(AlertingConfigSchema.default(AlertingConfigSchema.parse({})), 'severity, routes, owners, storm control, outbox, retention'),
  /** The URL people reach the collector at, for links in notifications ('' = no links). */
  publicUrl: flag(z.union([z.literal(''), z.url({ protocol: /^https?$/ })]).default(''), { arg: 'URL', help: 'where people reach the collector, for links in notifications' }),
  /** Plaintext agent stream without node identity, and an API without tokens, where not configured. */
  insecure: flag(boolFlag.default(false), { help: 'plaintext agent stream and/or an API without tokens, where not configured' }),
  /** The collector's certificate and key (PEM) for the agent stream. */
  tlsCert: flag(z.string().min(1).optional(), { arg: 'FILE', help: "the collector's certificate for the agent stream" }),
  tlsKey: flag(z.string().min(1).optional(), { arg: 'FILE', help: 'its private key' }),
  /** The CA that signs agent certificates (agentAuth certificate). */
  tlsCa: flag(z.string().min(1).optional(), { arg: 'FILE', help: 'CA that signs agent certificates' }),
  /** How often the TLS files are checked for rotation. */
  tlsReloadInterval: flag(durationMs.refine((ms) => ms >= 100, 'must be at least 100ms').default(10_000), { arg: 'D', help: 'how often TLS files are checked for rotation; default 10s' }),
  /** How agents prove their node: their client certificate's CN, or a ServiceAccount token checked by TokenReview. */
  agentAuth: flag(z.enum(['certificate', 'token']).default('certificate'), { arg: 'MODE', help: 'certificate (CN = node, default) | token (TokenReview)' }),
  /** Service accounts (namespace:name) whose tokens may speak for a node (agentAuth token). */
  agentServiceAccounts: flag(z.array(z.string().regex(/^[a-z0-9]([-a-z0-9.]*[a-z0-9])?:[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/, 'must be NAMESPACE:NAME')).default([]), {
    flag: 'agent-service-account',
    arg: 'NS:NAME',
    repeatable: true,
    help: 'agent service account(s) for agentAuth token',
  }),
  /** Kubernetes API server for TokenReviews; default https://$KUBERNETES_SERVICE_HOST:$KUBERNETES_SERVICE_PORT. */
  kubeApiServer: flag(z.url({ protocol: /^https?$/ }).optional(), { arg: 'URL', help: 'API server for TokenReviews; default from KUBERNETES_SERVICE_HOST' }),
  kubeTokenFile: flag(z.string().min(1).default('/var/run/secrets/kubernetes.io/serviceaccount/token'), { arg: 'FILE', help: "the collector's own token; default the pod's" }),
  kubeCaFile: flag(z.string().min(1).default('/var/run/secrets/kubernetes.io/serviceaccount/ca.crt'), { arg: 'FILE', help: "CA of the API server; default the pod's" }),
  /** The audience agent tokens must carry. */
  tokenAudience: flag(z.string().min(1).max(253).default('driftwatch'), { arg: 'AUD', help: 'audience agent tokens must carry; default driftwatch' }),
  /** Most agent streams open at once per node. */
  maxStreamsPerNode: flag(z.coerce.number().int().min(1).max(64).default(4), { arg: 'N', help: 'agent streams open at once per node; default 4' }),
  /** YAML file of API tokens (name, role, sha256 or token); re-read when it changes. */
  apiTokensFile: flag(z.string().min(1).optional(), { arg: 'FILE', help: 'YAML API tokens with roles; re-read on change' }),
  /** Require a viewer token for /metrics. */
  metricsAuth: flag(boolFlag.default(false), { help: '/metrics needs a viewer token' }),
  /** The interval in which /metrics is rendered at most 5 times (concurrent scrapes share one rendering). */
  metricsInterval: flag(durationMs.refine((ms) => ms <= 60_000, 'must be at most 1m').default(1_000), { arg: 'D', help: '/metrics is rendered at most 5 times per interval; default 1s' }),
  /** Requests per second per API token (bursts of twice that). */
  apiRateLimit: flag(z.coerce.number().int().min(1).max(100_000).default(50), { arg: 'N', help: 'requests per second per API token; default 50' }),
  /** Largest HTTP request body. */
  maxBodyBytes: flag(z.coerce.number().int().min(1024).max(64 << 20).default(1 << 20), { arg: 'N', help: 'largest HTTP request body; default 1048576' }),
  /**
   * How long a notification claimed by a replica stays its own unless renewed (every third of it,
   * while an attempt lasts): a replica that dies mid-delivery has its deliveries taken over by another
   * after this long. Matters only with several replicas on PostgreSQL.
   */
  deliveryLease: flag(durationMs.refine((ms) => ms >= 2_000 && ms <= 3_600_000, 'must be from 2s to 1h').default(DEFAULT_DELIVERY_LEASE_MS), {
    arg: 'D',
    help: "a replica's claim on a notification it delivers; another replica takes\nit over this long after the replica died; default 2m",
  }),
  /** A node whose agent sent nothing (agents send a heartbeat every 10 s) for this long is marked silent, and alerting is told. */
  silentAfter: flag(durationMs.refine((ms) => ms >= 15_000 && ms <= 7 * 86_400_000, 'must be from 15s to 7d').default(300_000), {
    arg: 'D',
    help: 'a node whose agent sent nothing this long is marked silent and alerted on; default 5m',
  }),
});

/** The collector's configuration schema. */
export const CollectorConfigSchema = z.strictObject(COLLECTOR_SETTINGS.shape).superRefine((c, ctx) => {
  const issue = (key: string, message: string) => ctx.addIssue({ code: 'custom', path: [key], message });
  const databases = [c.db !== undefined && 'db', c.dbUrlFile !== undefined && 'dbUrlFile', c.dbUrl !== undefined && 'DRIFTWATCH_DB_URL'].filter((d) => d !== false);
  if (databases.length === 0) issue('db', 'give the database: db (a SQLite file, or a postgres:// URL without a password), or for PostgreSQL dbUrlFile (a file holding the URL) or DRIFTWATCH_DB_URL');
  if (databases.length > 1) issue(databases[1] === 'DRIFTWATCH_DB_URL' ? 'dbUrl' : databases[1]!, `give one database, not ${databases.join(' and ')}: db (SQLite), dbUrlFile or DRIFTWATCH_DB_URL (PostgreSQL)`);
  if (c.db !== undefined && /^[a-z][a-z0-9+.-]*:\/\//i.test(c.db)) {
    // A URL in db: PostgreSQL, and without a password (the process list and a ConfigMap are readable by many).
    const scheme = c.db.slice(0, c.db.indexOf(':')).slice(0, 32);
    if (!/^postgres(ql)?$/i.test(scheme)) issue('db', `db is a SQLite file or a postgres://… URL, not a ${scheme}:// one`);
    else if (passwordsOf(c.db).length > 0) issue('db', 'the PostgreSQL URL in db carries a password, which anyone on the machine reads in the process list (or the config file): give the URL without it and the password in PGPASSWORD or ~/.pgpass, or the whole URL in dbUrlFile or DRIFTWATCH_DB_URL');
  }
  // The URL is a secret: its check names the variable, never the value.
  if (c.dbUrl !== undefined && (!/^postgres(ql)?:\/\//.test(c.dbUrl) || /\s/.test(c.dbUrl))) issue('dbUrl', 'DRIFTWATCH_DB_URL does not hold a postgres://… URL');
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
  return loadConfig(CollectorConfigSchema, { file, env, envPrefix: 'DRIFTWATCH_', listKeys: COLLECTOR_SETTINGS.cli.listKeys, envOnlyKeys: COLLECTOR_SETTINGS.cli.envOnly, flags: withApi });
}
