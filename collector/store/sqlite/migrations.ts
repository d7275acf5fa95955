/**
 * From any older file to the current schema (schema.ts), in order. Each step is idempotent: a file
 * already current goes through all of them and nothing changes. Revision 1 kept one JSON snapshot per
 * key and node; its snapshots are re-applied as deltas once the slices exist (finishMigration).
 */
import type { BaselineSnapshot } from '../../../core/baseline.js';
import { validEntryId } from './baselines.js';
import { writeTransaction, type Db, type StoreLogger } from './db.js';
import { SBOM_TABLES } from './sboms.js';
import { ALERT_COLUMNS_V3, ALERT_INDEXES, AUDIT_TABLE, IMAGES_TABLES, JOB_LEASES_TABLE, LEASE_COLUMNS, NODES_TABLE, OPEN_ALERT_COUNTER, OPEN_STATES, PROVENANCE_COLUMNS, QUARANTINE_TABLE, SCHEMA_VERSION, STORM_TABLE, TABLES } from './schema.js';
import { IMAGE_TICKETS_TABLES } from './tickets.js';

/** What finishMigration needs to know about the file as it was opened. */
export interface Migration {
  /** The file is revision 1 (its baseline_snapshots still to be re-applied). */
  legacy: boolean;
}

/** Bring the file at `path` up to the current schema, as far as SQL alone can; throws for a file of a newer revision. */
export function migrate(db: Db, path: string, log: StoreLogger): Migration {
  const schema = db.pragma('user_version', { simple: true }) as number;
  if (schema > SCHEMA_VERSION) throw new Error(`${path} was written by a newer Driftwatch (schema ${schema}; this one reads up to ${SCHEMA_VERSION})`);
  // Revision 1 kept one JSON snapshot per key and node, and entry ids only in baseline_entries.
  const legacy = (db.prepare(`SELECT count(*) FROM sqlite_master WHERE name = 'baseline_snapshots'`).pluck().get() as number) > 0;
  if (legacy) db.exec(`DROP TABLE IF EXISTS baseline_entries`);
  db.exec(TABLES);
  const alertColumns = new Set((db.prepare(`SELECT name FROM pragma_table_info('alerts')`).pluck().all() as string[]));
  for (const [name, definition] of ALERT_COLUMNS_V3) if (!alertColumns.has(name)) db.exec(`ALTER TABLE alerts ADD COLUMN ${name} ${definition}`);
  // Provenance of examples and of dropped shares, added to files made before them (older rows: NULL, not recorded).
  for (const [table, name, definition] of PROVENANCE_COLUMNS) {
    if (!(db.prepare(`SELECT name FROM pragma_table_info('${table}')`).pluck().all() as string[]).includes(name)) db.exec(`ALTER TABLE ${table} ADD COLUMN ${name} ${definition}`);
  }
  db.exec(QUARANTINE_TABLE);
  if (schema < 4) {
    writeTransaction(db, () => {
      // Older versions took entry ids as agents sent them; one that does not read back as an entry
      // broke every read of its key. Such rows go, with a log line each (bounded).
      const bad: { key: string; entry_id: string }[] = [];
      for (const table of ['baseline_entries', 'baseline_entry_nodes', 'baseline_entry_reviews']) {
        for (const r of db.prepare(`SELECT DISTINCT key, entry_id FROM ${table}`).iterate() as IterableIterator<{ key: string; entry_id: string }>) {
          if (!validEntryId(r.entry_id)) bad.push(r);
        }
      }
      const seen = new Set<string>();
      for (const r of bad) {
        const k = `${r.key}\n${r.entry_id}`;
        if (seen.has(k)) continue;
        seen.add(k);
        for (const table of ['baseline_entries', 'baseline_entry_nodes', 'baseline_entry_reviews']) db.prepare(`DELETE FROM ${table} WHERE key = ? AND entry_id = ?`).run(r.key, r.entry_id);
        if (seen.size <= 100) log.warn({ key: r.key.slice(0, 256), entryId: r.entry_id.slice(0, 256) }, 'removed a stored baseline entry whose id is not an entry id');
      }
      if (seen.size > 100) log.warn({ removed: seen.size }, 'removed stored baseline entries whose id is not an entry id');
      // Deviation ids were unique across nodes; they are unique per node now.
      db.exec(`UPDATE deviations SET id = node || ':' || id WHERE instr(id, ':') = 0`);
    })();
  }
  db.exec(ALERT_INDEXES);
  const hadCounts = (db.prepare(`SELECT count(*) FROM sqlite_master WHERE name = 'baseline_open_alerts'`).pluck().get() as number) > 0;
  db.exec(OPEN_ALERT_COUNTER);
  if (!hadCounts) {
    db.exec(`INSERT INTO baseline_open_alerts (key, n) SELECT baseline_key, count(*) FROM alerts WHERE state IN ${OPEN_STATES} GROUP BY baseline_key`);
  }
  db.exec(NODES_TABLE);
  db.exec(AUDIT_TABLE);
  // Revision 5: outbox leases and job leases (several replicas; see schema.ts).
  const outboxColumns = new Set(db.prepare(`SELECT name FROM pragma_table_info('outbox')`).pluck().all() as string[]);
  for (const [name, definition] of LEASE_COLUMNS) if (!outboxColumns.has(name)) db.exec(`ALTER TABLE outbox ADD COLUMN ${name} ${definition}`);
  db.exec(JOB_LEASES_TABLE);
  // Revision 6: storm-control counts shared by replicas.
  db.exec(STORM_TABLE);
  // Revision 7: one ticket per image repository (ticket sinks).
  db.exec(IMAGE_TICKETS_TABLES);
  // The image inventory (issue 21): tables only, created where missing.
  db.exec(IMAGES_TABLES);
  // Revision 8 (issue 22): the SBOM slice's tables.
  db.exec(SBOM_TABLES);
  return { legacy };
}

/**
 * The steps that need the slices: revision 1's snapshots re-applied through `applyDelta` (the
 * baselines slice's merge), then the revision recorded.
 */
export function finishMigration(db: Db, migration: Migration, applyDelta: (node: string, delta: BaselineSnapshot, receivedAt: number) => void): void {
  if (migration.legacy) {
    writeTransaction(db, () => {
      // One snapshot at a time: they may add up to more than memory should hold at once.
      const one = db.prepare(`SELECT received_at, snapshot FROM baseline_snapshots WHERE key = ? AND node = ?`);
      for (const { key, node } of db.prepare(`SELECT key, node FROM baseline_snapshots`).all() as { key: string; node: string }[]) {
        const r = one.get(key, node) as { received_at: number; snapshot: string };
        applyDelta(node, JSON.parse(r.snapshot) as BaselineSnapshot, r.received_at);
      }
      db.exec(`DROP TABLE baseline_snapshots`);
    })();
  }
  db.pragma(`user_version = ${SCHEMA_VERSION}`);
}
