/**
 * The SQLite store: one file, WAL, synchronous=FULL (a batch is acknowledged only after its commit
 * is on disk), prepared statements only. Opening it brings the file to the current schema
 * (migrations.ts), then composes the slices, one file each, over the one connection; slices that
 * change another's aggregate inside their transaction (ingest, accepting an alert, quarantine) are
 * handed that slice's functions here.
 */
import type { Store } from '../store.js';
import { sqliteAlerts } from './alerts.js';
import { sqliteBaselines } from './baselines.js';
import { openDatabase, type StoreLogger } from './db.js';
import { sqliteDeviations } from './deviations.js';
import { sqliteExceptions } from './exceptions.js';
import { sqliteIngest } from './ingest.js';
import { finishMigration, migrate } from './migrations.js';
import { sqliteNodes } from './nodes.js';
import { sqliteOutbox } from './outbox.js';
import { sqliteQuarantine } from './quarantine.js';
import { sqliteRetention } from './retention.js';

export type { StoreLogger } from './db.js';

/** Open (creating if needed) the store at `path`. */
export function openSqliteStore(path: string, options: { busyTimeoutMs?: number; logger?: StoreLogger | undefined } = {}): Store {
  const log: StoreLogger = options.logger ?? { warn: () => undefined };
  const db = openDatabase(path, options.busyTimeoutMs ?? 5_000);
  const migration = migrate(db, path, log);
  const baselines = sqliteBaselines(db, log);
  const quarantine = sqliteQuarantine(db, { baselines });
  const deviations = sqliteDeviations(db, { quarantine });
  const outbox = sqliteOutbox(db);
  const alerts = sqliteAlerts(db, { baselines, outbox });
  const store: Store = {
    ...sqliteIngest(db, { baselines, quarantine, deviations, alerts, outbox }),
    ...alerts.store,
    ...deviations.store,
    ...baselines.store,
    ...outbox.store,
    ...sqliteExceptions(db),
    ...sqliteNodes(db),
    ...quarantine.store,
    ...sqliteRetention(db),
    close: () => db.close(),
  };
  finishMigration(db, migration, (node, delta, receivedAt) => void baselines.applyDelta(node, delta, receivedAt, {}));
  return store;
}
