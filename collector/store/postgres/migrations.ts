/**
 * Bring a PostgreSQL database to the current schema (schema.ts): the migrations it has not had, in
 * order, each in one transaction with its revision recorded in schema_version. Several replicas
 * starting at once take turns on an advisory lock; a database of a newer revision is refused.
 */
import type pg from 'pg';
import { transaction } from './db.js';
import { MIGRATIONS, SCHEMA_VERSION } from './schema.js';

/** The advisory lock the migrations hold (any fixed number; this one reads "dwmg"). */
const MIGRATION_LOCK = 0x64776d67;

/** Migrate the database behind `pool`; the revision it was at before. Throws for a newer one. */
export async function migrate(pool: pg.Pool, where: string): Promise<number> {
  return transaction(pool, async (sql) => {
    await sql(`SELECT pg_advisory_xact_lock($1)`, [MIGRATION_LOCK]);
    await sql(`CREATE TABLE IF NOT EXISTS schema_version (version BIGINT NOT NULL, applied_at BIGINT NOT NULL, description TEXT NOT NULL)`);
    const { rows } = await sql<{ v: number | null }>(`SELECT max(version) AS v FROM schema_version`);
    const from = rows[0]?.v ?? 0;
    if (from > SCHEMA_VERSION) throw new Error(`${where} was written by a newer Driftwatch (schema ${from}; this one reads up to ${SCHEMA_VERSION})`);
    for (const m of MIGRATIONS) {
      if (m.version <= from) continue;
      await sql(m.sql);
      await m.run?.(sql, Date.now());
      await sql(`INSERT INTO schema_version (version, applied_at, description) VALUES ($1, $2, $3)`, [m.version, Date.now(), m.description]);
    }
    return from;
  });
}
