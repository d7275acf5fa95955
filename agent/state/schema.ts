/**
 * The agent state's tables, and bringing an older state dir up to date. Run once when the state is
 * opened, before any statement is prepared.
 */
import type Database from 'better-sqlite3';
import { MAX_EXAMPLES, type BaselineSnapshot } from '../../core/baseline.js';

/** The schema revision this code writes (PRAGMA user_version). */
export const SCHEMA_VERSION = 3;

/**
 * Create the tables, or bring an older state dir up to date. Revision 1 kept each baseline as one
 * JSON snapshot; revision 2 keeps a header per baseline and a row per entry; revision 3 adds each
 * spooled record's severity rank and the time it was spooled (overflow policy, lag).
 */
export function migrate(db: Database.Database, now: () => number): void {
  const version = db.pragma('user_version', { simple: true }) as number;
  if (version > SCHEMA_VERSION) {
    throw new Error(`the state dir was written by a newer Driftwatch (schema ${version}; this one reads up to ${SCHEMA_VERSION})`);
  }
  db.transaction(() => {
    const legacy = version < 2 && (db.prepare(`SELECT count(*) FROM pragma_table_info('baselines') WHERE name = 'snapshot'`).pluck().get() as number) > 0;
    if (legacy) db.exec(`ALTER TABLE baselines RENAME TO baselines_v1`);
    db.exec(`
      CREATE TABLE IF NOT EXISTS spool (
        seq   INTEGER PRIMARY KEY AUTOINCREMENT,
        kind  TEXT NOT NULL,
        ref   TEXT NOT NULL,
        body  TEXT NOT NULL,
        bytes INTEGER NOT NULL,
        severity   INTEGER NOT NULL DEFAULT 2,
        spooled_at INTEGER NOT NULL DEFAULT 0
      );
      CREATE UNIQUE INDEX IF NOT EXISTS spool_ref ON spool(kind, ref);
      CREATE TABLE IF NOT EXISTS baselines (key TEXT PRIMARY KEY, header TEXT NOT NULL);
      CREATE TABLE IF NOT EXISTS entries (
        key        TEXT NOT NULL,
        id         TEXT NOT NULL,
        first_seen INTEGER NOT NULL,
        last_seen  INTEGER NOT NULL,
        count      INTEGER NOT NULL,
        nodes      TEXT NOT NULL,
        examples   TEXT NOT NULL,
        PRIMARY KEY (key, id)
      ) WITHOUT ROWID;
      CREATE TABLE IF NOT EXISTS positions (source TEXT PRIMARY KEY, position TEXT NOT NULL);
      -- Added without a new revision: older agents ignore it, newer ones create it.
      CREATE TABLE IF NOT EXISTS cluster_baselines (key TEXT PRIMARY KEY, body TEXT NOT NULL);
    `);
    // Revision 2 spools lack the severity rank (their deviations count as medium) and the spool time.
    const spoolColumns = new Set(db.prepare(`SELECT name FROM pragma_table_info('spool')`).pluck().all() as string[]);
    if (!spoolColumns.has('severity')) db.exec(`ALTER TABLE spool ADD COLUMN severity INTEGER NOT NULL DEFAULT 2`);
    if (!spoolColumns.has('spooled_at')) {
      db.exec(`ALTER TABLE spool ADD COLUMN spooled_at INTEGER NOT NULL DEFAULT 0`);
      db.prepare(`UPDATE spool SET spooled_at = ?`).run(now());
    }
    db.exec(`CREATE INDEX IF NOT EXISTS spool_evict ON spool(kind, severity DESC, seq)`);
    if (legacy) {
      const header = db.prepare(`INSERT OR REPLACE INTO baselines (key, header) VALUES (?, ?)`);
      const entry = db.prepare(`INSERT OR REPLACE INTO entries (key, id, first_seen, last_seen, count, nodes, examples) VALUES (?, ?, ?, ?, ?, ?, ?)`);
      // One snapshot at a time (a write cannot run while a read iterates on the same connection).
      const one = db.prepare(`SELECT snapshot FROM baselines_v1 WHERE key = ?`).pluck();
      for (const key of db.prepare(`SELECT key FROM baselines_v1`).pluck().all() as string[]) {
        const { entries, ...h } = JSON.parse(one.get(key) as string) as BaselineSnapshot;
        header.run(h.key, JSON.stringify(h));
        for (const e of entries) entry.run(h.key, e.id, e.firstSeen, e.lastSeen, e.count, JSON.stringify(e.nodes), JSON.stringify(e.examples.slice(0, MAX_EXAMPLES)));
      }
      db.exec(`DROP TABLE baselines_v1`);
    }
    db.pragma(`user_version = ${SCHEMA_VERSION}`);
  })();
}
