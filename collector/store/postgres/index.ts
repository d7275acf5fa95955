/**
 * The PostgreSQL store (issue 20): every slice of store.ts behind the asynchronous contract, over one
 * pool of node-postgres connections; several collectors (replicas) may open the same database.
 * Opening it brings the database to the current schema (migrations.ts), then composes the slices,
 * one file each, as the SQLite store does; slices that change another's aggregate inside their
 * transaction (ingest, accepting an alert, quarantine) are handed that slice's functions here.
 */
import type pg from 'pg';
import type { Async, AsyncStore } from '../async.js';
import type { IngestStore, StormStore } from '../store.js';
import { postgresAlerts } from './alerts.js';
import { postgresAudit } from './audit.js';
import { postgresBaselines } from './baselines.js';
import { countRetries, createPool, sqlOf, type StoreLogger } from './db.js';
import { postgresDeviations } from './deviations.js';
import { postgresExceptions } from './exceptions.js';
import { postgresImages } from './images.js';
import { postgresIngest } from './ingest.js';
import { postgresJobLeases } from './job-leases.js';
import { migrate } from './migrations.js';
import { postgresNodes } from './nodes.js';
import { postgresOutbox } from './outbox.js';
import { partitionKeeper } from './partitions.js';
import { postgresQuarantine } from './quarantine.js';
import { postgresRetention } from './retention.js';
import { postgresStorm } from './storm.js';
import { postgresTickets } from './tickets.js';
import { postgresSboms } from './sboms.js';

/** How a PostgreSQL store is opened. */
export interface PostgresStoreOptions {
  /** Most connections this collector holds (default 10). */
  maxConnections?: number | undefined;
  /** Longest one statement may run before the server cancels it (default 60 s). */
  statementTimeoutMs?: number | undefined;
  logger?: StoreLogger | undefined;
  /** Told (with the SQLSTATE) each time a transaction runs again after a deadlock or serialization failure. */
  onRetry?: ((code: string) => void) | undefined;
}

/** The database's address without its password, for messages (store migrate's too). */
export function redactedUrl(url: string): string {
  try {
    const u = new URL(url);
    u.password = '';
    return `${u.protocol}//${u.username === '' ? '' : `${u.username}@`}${u.host}${u.pathname}`;
  } catch {
    return 'the PostgreSQL database';
  }
}

/** The slices ingest writes through, on `pool` (the whole store's, or an ingest worker thread's own). */
function ingestSlices(pool: pg.Pool, log: StoreLogger) {
  const sql = sqlOf(pool);
  const partitions = partitionKeeper(pool, log);
  const baselines = postgresBaselines(pool, log);
  const quarantine = postgresQuarantine(pool, sql, { baselines });
  const deviations = postgresDeviations(sql, { quarantine });
  const outbox = postgresOutbox(pool, sql);
  const alerts = postgresAlerts(pool, sql, { baselines, outbox });
  const ingest = postgresIngest(pool, { baselines, quarantine, deviations, alerts, outbox, partitions });
  return { sql, partitions, baselines, quarantine, deviations, outbox, alerts, ingest };
}

/** Open the store in the database at `url` (postgres://…), migrating it to the current schema. */
export async function openPostgresStore(url: string, options: PostgresStoreOptions = {}): Promise<AsyncStore & { ping(): Promise<void>; close(): Promise<void> }> {
  const log: StoreLogger = options.logger ?? { warn: () => undefined };
  const pool = createPool(url, { max: options.maxConnections, statementTimeoutMs: options.statementTimeoutMs });
  if (options.onRetry) countRetries(pool, options.onRetry);
  try {
    await migrate(pool, redactedUrl(url));
  } catch (err) {
    await pool.end().catch(() => undefined);
    throw err;
  }
  const { sql, partitions, baselines, quarantine, deviations, outbox, alerts, ingest } = ingestSlices(pool, log);
  await partitions.ahead(Date.now());
  let closed: Promise<void> | undefined;
  return {
    ...ingest,
    ...alerts.store,
    ...deviations.store,
    ...baselines.store,
    ...outbox.store,
    ...postgresExceptions(sql),
    ...postgresNodes(pool, sql),
    ...postgresJobLeases(sql),
    ...postgresStorm(pool),
    ...quarantine.store,
    ...postgresRetention(pool, { partitions }),
    ...postgresAudit(sql),
    ...postgresImages(pool),
    ...postgresTickets(pool, sql),
    ...postgresSboms(pool, sql),
    // One round trip on the pool: what the collector's readiness asks of the database.
    ping: async () => void (await pool.query('SELECT 1')),
    close: () => (closed ??= pool.end()),
  };
}

/**
 * Only what ingest needs (its slice, and the storm slice replicas share their storm counts through),
 * on a pool of its own: the collector's ingest worker thread (ingest/worker.ts). The database was
 * opened, and migrated, by the collector's store first.
 */
export function openPostgresIngest(url: string, options: PostgresStoreOptions = {}): Async<IngestStore> & Async<StormStore> & { close(): Promise<void> } {
  const pool = createPool(url, { max: options.maxConnections ?? 2, statementTimeoutMs: options.statementTimeoutMs });
  if (options.onRetry) countRetries(pool, options.onRetry);
  const { ingest } = ingestSlices(pool, options.logger ?? { warn: () => undefined });
  let closed: Promise<void> | undefined;
  return { ...ingest, ...postgresStorm(pool), close: () => (closed ??= pool.end()) };
}
