/**
 * `driftwatch store migrate`: an installation's SQLite file copied whole into an empty PostgreSQL
 * database (issue 20): every table, rows as stored (times, sequence numbers, JSON text byte for
 * byte), so every read returns what it returned from SQLite and new rows continue the sequences.
 *
 * - The source is opened read-only and read in one transaction (one snapshot, even if a collector
 *   still writes to it; stop it first, or what it writes after the snapshot stays behind). It is
 *   never written: a file of an older revision is refused with the way to upgrade it, not upgraded
 *   here, so that the file stays readable by the Driftwatch that wrote it if the move is abandoned.
 * - The target is brought to the current PostgreSQL schema, then, in ONE transaction: its tables
 *   locked (a collector started on it meanwhile waits), refused unless every one is empty, the rows
 *   copied table by table in bounded multi-row INSERTs with bound parameters, the identity sequences
 *   moved past the copied ids, and the row counts compared. Any failure rolls everything back: the
 *   target is left empty.
 * - baseline_open_alerts is not copied: the alerts trigger rebuilds it, and it is compared after.
 *   baseline_keys (PostgreSQL's per-key lock rows) is made on demand by the store.
 */
import Database from 'better-sqlite3';
import { existsSync } from 'node:fs';
import type pg from 'pg';
import { createPool, sqlOf, type Sql } from './postgres/db.js';
import { redactedUrl } from './postgres/index.js';
import { migrate as migratePostgres } from './postgres/migrations.js';
import { DAY_MS, createDaysInMigration } from './postgres/partitions.js';
import { SCHEMA_VERSION as SQLITE_SCHEMA_VERSION } from './sqlite/schema.js';

/** One table to copy: its name, and target columns whose value the source computes (SQLite SQL, a constant). */
interface TableSpec {
  table: string;
  /** Target column → SQLite expression, for columns the SQLite table does not have as such. */
  derived?: Readonly<Record<string, string>>;
  /** The identity column whose sequence continues after the copied rows. */
  identity?: 'seq';
  /** Added to SQLite files without a revision (the image inventory): copied when the file has it. */
  optional?: true;
}

/**
 * Every table of the store, in dependency order (what a row names comes before it: nodes and
 * reviews before baselines, deviations before the alerts that group them, alerts before their
 * deliveries). The schemas declare no foreign keys; the order keeps a reader of a half-done copy
 * (there is none, it is one transaction) and a future foreign key honest.
 */
const TABLES: readonly TableSpec[] = [
  { table: 'nodes' },
  { table: 'quarantined_nodes' },
  { table: 'baseline_reviews' },
  // SQLite reads a node's state out of its header; PostgreSQL keeps it as a column.
  { table: 'baseline_nodes', derived: { state: `json_extract(header, '$.state')` } },
  { table: 'baseline_entries' },
  { table: 'baseline_entry_nodes' },
  { table: 'baseline_entry_reviews' },
  { table: 'baseline_versions' },
  { table: 'exceptions' },
  { table: 'deviations', identity: 'seq' },
  { table: 'alerts', identity: 'seq' },
  { table: 'outbox', identity: 'seq' },
  { table: 'audit_log', identity: 'seq' },
  // The ticket of each image (ticket sinks), claims included: a stopped collector released its own.
  { table: 'image_tickets' },
  { table: 'image_ticket_alerts' },
  // Issue 22: SBOMs per image digest (files_listed: SQLite's 0/1 reads as PostgreSQL's boolean).
  { table: 'sboms' },
  { table: 'sbom_packages' },
  { table: 'sbom_files' },
  { table: 'image_reports', optional: true },
  { table: 'image_containers', optional: true },
  { table: 'image_versions', optional: true },
  { table: 'image_places', optional: true },
  // New versions each node added this hour (inventory bounds): copied, so a move is no fresh hour.
  { table: 'image_version_quota', optional: true },
];

/**
 * Tables of the target that must be empty besides the copied ones (schema_version is the schema's own):
 * derived ones, and job_leases and storm_counts, whose rows would mean a collector already runs on the target
 * (neither is copied: a SQLite installation is one process, and the first replica to start takes the leases).
 */
const DERIVED_TABLES = ['baseline_open_alerts', 'baseline_keys', 'job_leases', 'storm_counts'] as const;

/** Rows per INSERT (fewer when a table's columns would pass PostgreSQL's 65,535 parameters). */
export const CHUNK_ROWS = 1_000;
const MAX_PARAMETERS = 60_000;

/** Why a migration did not happen; the message says what to do. */
export class StoreMigrationError extends Error {
  constructor(
    readonly code: 'source_missing' | 'source_not_a_store' | 'source_revision' | 'target_not_empty' | 'target_schema' | 'count_mismatch',
    message: string,
  ) {
    super(message);
    this.name = 'StoreMigrationError';
  }
}

/** One table's rows on both sides after the copy. */
export interface TableCount {
  table: string;
  source: number;
  target: number;
}

/** What a finished migration did. */
export interface MigrationReport {
  tables: TableCount[];
  /** Open-alert counters (rebuilt by the target's trigger): keys with open alerts on both sides. */
  openAlertKeys: { source: number; target: number };
  ms: number;
}

/** Options of one migration. */
export interface MigrateOptions {
  /** Called after each table is copied (for progress lines). */
  onTable?: (table: string, rows: number) => void;
  /** Rows per INSERT (default CHUNK_ROWS); tests use small ones to cross chunk boundaries. */
  chunkRows?: number;
}

const quote = (name: string) => `"${name.replace(/"/g, '""')}"`;

/** Open the SQLite file read-only and check it is a store of the revision this code copies. */
function openSource(path: string): Database.Database {
  if (!existsSync(path)) throw new StoreMigrationError('source_missing', `${path} does not exist`);
  const db = new Database(path, { readonly: true, fileMustExist: true });
  try {
    const revision = db.pragma('user_version', { simple: true }) as number;
    const tables = new Set(db.prepare(`SELECT name FROM sqlite_master WHERE type = 'table'`).pluck().all() as string[]);
    const missing = TABLES.filter((t) => !t.optional).map((t) => t.table).filter((t) => !tables.has(t));
    if (revision === 0 && missing.length === TABLES.filter((t) => !t.optional).length) throw new StoreMigrationError('source_not_a_store', `${path} is not a Driftwatch collector database (none of its tables)`);
    if (revision < SQLITE_SCHEMA_VERSION || tables.has('baseline_snapshots')) {
      throw new StoreMigrationError(
        'source_revision',
        `${path} is schema revision ${revision}; this Driftwatch copies revision ${SQLITE_SCHEMA_VERSION}. Upgrade the file first: start this version's collector on it once ` +
          `(driftwatch collector --db ${path} …; it upgrades the file as it opens it), stop it, then run store migrate again. ` +
          `store migrate never writes to the file it copies, so that it stays usable if you go back.`,
      );
    }
    if (revision > SQLITE_SCHEMA_VERSION) throw new StoreMigrationError('source_revision', `${path} was written by a newer Driftwatch (schema ${revision}; this one reads up to ${SQLITE_SCHEMA_VERSION}): use that version's store migrate`);
    if (missing.length > 0) throw new StoreMigrationError('source_not_a_store', `${path} has no table ${missing.join(', ')}: not a complete Driftwatch collector database`);
    return db;
  } catch (err) {
    db.close();
    throw err;
  }
}

/** The columns a table is copied with: each target column and the source expression giving it. */
async function columnsOf(source: Database.Database, sql: Sql, spec: TableSpec): Promise<{ target: string[]; source: string[] }> {
  const sourceColumns = (source.prepare(`SELECT name FROM pragma_table_info(?)`).pluck().all(spec.table) as string[]);
  const { rows } = await sql<{ column_name: string; required: boolean }>(
    `SELECT column_name, (is_nullable = 'NO' AND column_default IS NULL AND is_identity = 'NO' AND is_generated = 'NEVER') AS required
       FROM information_schema.columns WHERE table_schema = current_schema() AND table_name = $1 ORDER BY ordinal_position`,
    [spec.table],
  );
  const targetColumns = new Set(rows.map((r) => r.column_name));
  const derived = spec.derived ?? {};
  const pairs: [string, string][] = [...sourceColumns.map((c): [string, string] => [c, quote(c)]), ...Object.entries(derived)];
  const absent = pairs.map(([t]) => t).filter((t) => !targetColumns.has(t));
  if (absent.length > 0) throw new StoreMigrationError('target_schema', `the target's table ${spec.table} has no column ${absent.join(', ')}: it is not the schema this Driftwatch writes`);
  const given = new Set(pairs.map(([t]) => t));
  const unfilled = rows.filter((r) => r.required && !given.has(r.column_name)).map((r) => r.column_name);
  if (unfilled.length > 0) throw new StoreMigrationError('target_schema', `the target's table ${spec.table} requires ${unfilled.join(', ')}, which the SQLite store does not have`);
  return { target: pairs.map(([t]) => t), source: pairs.map(([, s]) => s) };
}

/** Copy one table: SQLite rows in order, CHUNK_ROWS per INSERT. The number of rows copied. */
async function copyTable(source: Database.Database, sql: Sql, spec: TableSpec, chunkRows: number): Promise<number> {
  const columns = await columnsOf(source, sql, spec);
  const perInsert = Math.max(1, Math.min(chunkRows, Math.floor(MAX_PARAMETERS / columns.target.length)));
  const head = `INSERT INTO ${quote(spec.table)} (${columns.target.map(quote).join(', ')})${spec.identity ? ' OVERRIDING SYSTEM VALUE' : ''} VALUES `;
  // Names come from the fixed table list and the two schemas' own column names; every value is a parameter.
  const read = source.prepare(`SELECT ${columns.source.join(', ')} FROM ${quote(spec.table)}`).raw(true);
  let copied = 0;
  let chunk: unknown[][] = [];
  const flush = async () => {
    if (chunk.length === 0) return;
    const width = columns.target.length;
    const tuples = chunk.map((_, i) => `(${columns.target.map((__, j) => `$${i * width + j + 1}`).join(', ')})`);
    await sql(head + tuples.join(', '), chunk.flat());
    copied += chunk.length;
    chunk = [];
  };
  // One statement at a time on the source connection: the iterator holds it until the table is done.
  for (const row of read.iterate() as IterableIterator<unknown[]>) {
    chunk.push(row);
    if (chunk.length >= perInsert) await flush();
  }
  await flush();
  return copied;
}

/**
 * Copy the SQLite store at `sqlitePath` into the PostgreSQL database at `postgresUrl` (see the
 * header). Throws StoreMigrationError for a source or target it refuses; any error leaves the
 * target's tables empty.
 */
export async function migrateSqliteToPostgres(sqlitePath: string, postgresUrl: string, options: MigrateOptions = {}): Promise<MigrationReport> {
  const started = process.hrtime.bigint();
  const where = redactedUrl(postgresUrl);
  const source = openSource(sqlitePath);
  let pool: pg.Pool | undefined;
  try {
    // No statement timeout: one INSERT of a chunk is quick, but the lock wait and the whole copy are not bounded by it.
    pool = createPool(postgresUrl, { max: 1, statementTimeoutMs: 0 });
    await migratePostgres(pool, where);
    const client = await pool.connect();
    let broken: unknown;
    try {
      const sql = sqlOf(client);
      await sql('BEGIN');
      source.exec('BEGIN');
      try {
        const all = [...TABLES.map((t) => t.table), ...DERIVED_TABLES];
        // Nothing else writes the target while it is filled (a collector started on it waits for the commit).
        await sql(`LOCK TABLE ${all.map(quote).join(', ')} IN ACCESS EXCLUSIVE MODE`);
        const occupied: string[] = [];
        for (const table of all) if ((await sql<{ x: boolean }>(`SELECT EXISTS (SELECT 1 FROM ${quote(table)}) AS x`)).rows[0]!.x) occupied.push(table);
        if (occupied.length > 0) {
          throw new StoreMigrationError('target_not_empty', `${where} already holds data (${occupied.join(', ')}): store migrate copies only into an empty database, and has changed nothing. Give it a new database, or empty this one yourself if its data is disposable.`);
        }
        // The days the copied deviations were received on get their partitions first (the last 400 days, as
        // the schema's own migration does): otherwise every copied row would land in DEFAULT.
        const horizon = Date.now() - 400 * DAY_MS;
        const days = source.prepare(`SELECT DISTINCT received_at / ${DAY_MS} AS day FROM deviations WHERE received_at >= ?`).pluck().all(horizon) as number[];
        await createDaysInMigration(sql, days);
        // The tables this file has (an optional one a file never opened by this version lacks stays empty).
        const inSource = new Set(source.prepare(`SELECT name FROM sqlite_master WHERE type = 'table'`).pluck().all() as string[]);
        const copied = TABLES.filter((spec) => !spec.optional || inSource.has(spec.table));
        const counts = new Map<string, number>();
        for (const spec of copied) counts.set(spec.table, source.prepare(`SELECT count(*) FROM ${quote(spec.table)}`).pluck().get() as number);
        for (const spec of copied) {
          const rows = await copyTable(source, sql, spec, options.chunkRows ?? CHUNK_ROWS);
          options.onTable?.(spec.table, rows);
        }
        // Sequences continue after the copied ids. audit_log was AUTOINCREMENT: past its highest id ever given, not only its highest row.
        for (const spec of copied) {
          if (!spec.identity) continue;
          let high = source.prepare(`SELECT coalesce(max(${quote(spec.identity)}), 0) FROM ${quote(spec.table)}`).pluck().get() as number;
          const hasSequence = (source.prepare(`SELECT count(*) FROM sqlite_master WHERE name = 'sqlite_sequence'`).pluck().get() as number) > 0;
          if (hasSequence) high = Math.max(high, (source.prepare(`SELECT coalesce(max(seq), 0) FROM sqlite_sequence WHERE name = ?`).pluck().get(spec.table) as number) ?? 0);
          // An identity column or a sequence owned by the column (a partitioned table may use either).
          const sequence = (await sql<{ s: string | null }>(`SELECT pg_get_serial_sequence($1, $2) AS s`, [spec.table, spec.identity])).rows[0]?.s ?? null;
          if (sequence === null) throw new StoreMigrationError('target_schema', `the target's ${spec.table}.${spec.identity} has no sequence of its own: new rows could reuse copied ids; nothing was kept`);
          await sql(`SELECT setval($1::regclass, $2, $3)`, [sequence, Math.max(high, 1), high > 0]);
        }
        const tables: TableCount[] = [];
        for (const spec of copied) {
          const target = (await sql<{ n: number }>(`SELECT count(*)::bigint AS n FROM ${quote(spec.table)}`)).rows[0]!.n;
          tables.push({ table: spec.table, source: counts.get(spec.table)!, target });
        }
        const openSource = source.prepare(`SELECT key, n FROM baseline_open_alerts WHERE n > 0 ORDER BY key`).all() as { key: string; n: number }[];
        const openTarget = (await sql<{ key: string; n: number }>(`SELECT key, n FROM baseline_open_alerts WHERE n > 0 ORDER BY key`)).rows;
        const wrong = tables.filter((t) => t.source !== t.target);
        if (wrong.length > 0) throw new StoreMigrationError('count_mismatch', `rows differ after the copy (${wrong.map((t) => `${t.table}: ${t.source} in SQLite, ${t.target} in PostgreSQL`).join('; ')}); nothing was kept`);
        if (JSON.stringify(openSource) !== JSON.stringify(openTarget)) {
          throw new StoreMigrationError('count_mismatch', `the open alerts per baseline differ after the copy (${openSource.length} keys in SQLite, ${openTarget.length} in PostgreSQL); nothing was kept`);
        }
        await sql('COMMIT');
        const ms = Number(process.hrtime.bigint() - started) / 1e6;
        return { tables, openAlertKeys: { source: openSource.length, target: openTarget.length }, ms };
      } catch (err) {
        await sql('ROLLBACK').catch((e: unknown) => (broken = e));
        throw err;
      } finally {
        if (source.inTransaction) source.exec('COMMIT');
      }
    } finally {
      client.release(broken instanceof Error ? broken : broken === undefined ? undefined : true);
    }
  } finally {
    source.close();
    await pool?.end().catch(() => undefined);
  }
}
