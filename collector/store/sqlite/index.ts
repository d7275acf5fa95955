/**
 * The SQLite store: one file, WAL, synchronous=FULL (a batch is acknowledged only after its commit
 * is on disk), prepared statements only. Opening it brings the file to the current schema
 * (migrations.ts), then composes the slices, one file each, over the one connection; slices that
 * change another's aggregate inside their transaction (ingest, accepting an alert, quarantine) are
 * handed that slice's functions here.
 */
import type { IngestStore, Store } from '../store.js';
import { sqliteAlerts } from './alerts.js';
import { sqliteAudit } from './audit.js';
import { sqliteBaselines } from './baselines.js';
import { openDatabase, type StoreLogger } from './db.js';
import { sqliteDeviations } from './deviations.js';
import { sqliteExceptions } from './exceptions.js';
import { sqliteImages } from './images.js';
import { sqliteIngest } from './ingest.js';
import { sqliteJobLeases } from './job-leases.js';
import { finishMigration, migrate } from './migrations.js';
import { sqliteNodes } from './nodes.js';
import { sqliteOutbox } from './outbox.js';
import { sqliteQuarantine } from './quarantine.js';
import { sqliteRetention } from './retention.js';
import { sqliteStorm } from './storm.js';
import { sqliteTickets } from './tickets.js';
import { sqliteSboms } from './sboms.js';

export type { StoreLogger } from './db.js';

/** How a store is opened. */
export interface SqliteStoreOptions {
  /** How long a write waits for the other connection's transaction (default 5 s). */
  busyTimeoutMs?: number;
  logger?: StoreLogger | undefined;
}

/**
 * A connection to the file at `path`, brought to the current schema, with the slices that ingest
 * writes through; `finish` completes the migration once every slice is prepared.
 */
function openSlices(path: string, options: SqliteStoreOptions) {
  const log: StoreLogger = options.logger ?? { warn: () => undefined };
  const db = openDatabase(path, options.busyTimeoutMs ?? 5_000);
  const migration = migrate(db, path, log);
  const baselines = sqliteBaselines(db, log);
  const quarantine = sqliteQuarantine(db, { baselines });
  const deviations = sqliteDeviations(db, { quarantine });
  const outbox = sqliteOutbox(db);
  const alerts = sqliteAlerts(db, { baselines, outbox });
  const ingest = sqliteIngest(db, { baselines, quarantine, deviations, alerts, outbox });
  const finish = () => finishMigration(db, migration, (node, delta, receivedAt) => void baselines.applyDelta(node, delta, receivedAt, {}));
  return { db, baselines, quarantine, deviations, outbox, alerts, ingest, finish };
}

/** Open (creating if needed) the store at `path`. */
export function openSqliteStore(path: string, options: SqliteStoreOptions = {}): Store {
  const { db, baselines, quarantine, deviations, outbox, alerts, ingest, finish } = openSlices(path, options);
  const store: Store = {
    ...ingest,
    ...alerts.store,
    ...deviations.store,
    ...baselines.store,
    ...outbox.store,
    ...sqliteExceptions(db),
    ...sqliteNodes(db),
    ...sqliteJobLeases(db),
    ...sqliteStorm(db),
    ...quarantine.store,
    ...sqliteRetention(db),
    ...sqliteAudit(db),
    ...sqliteImages(db),
    ...sqliteTickets(db),
    ...sqliteSboms(db),
    close: () => db.close(),
  };
  finish();
  return store;
}

/**
 * The ingest slice alone, on a connection of its own: the ingest worker thread's. Opening it migrates
 * like openSqliteStore (idempotent: the main thread's store opened the file first).
 */
export function openSqliteIngest(path: string, options: SqliteStoreOptions = {}): IngestStore & { close(): void } {
  const { db, ingest, finish } = openSlices(path, options);
  finish();
  return { ...ingest, close: () => db.close() };
}
