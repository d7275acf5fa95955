/**
 * What every slice of the PostgreSQL store shares: the pool (node-postgres), queries with bound
 * parameters only, transactions on one client of the pool (READ COMMITTED, row locks where two
 * replicas could race, retried whole on a deadlock or serialization failure), savepoints, and the
 * per-key and per-node locks. Page cursors are the SQLite store's (one format for both).
 */
import pg from 'pg';

export { decodeCursor, encodeCursor } from '../sqlite/db.js';
export type { StoreLogger } from '../sqlite/db.js';

/** The result of one statement: its rows and how many rows it changed. */
export interface SqlResult<R> {
  rows: R[];
  rowCount: number;
}

/**
 * One statement with its values bound ($1, $2, …): on the pool, or on a transaction's client. A
 * `name` prepares it once per connection (for a hot statement with a fixed text; the name must
 * always stand for the same text).
 */
export type Sql = <R = Record<string, unknown>>(text: string, values?: readonly unknown[], name?: string) => Promise<SqlResult<R>>;

/** int8 (counts, ms times, sequence numbers) as a JS number: every value this store keeps is below 2^53. */
const INT8 = 20;
const types = {
  getTypeParser: ((oid: number, format?: 'text' | 'binary') => (oid === INT8 ? (v: string) => Number(v) : pg.types.getTypeParser(oid, format))) as typeof pg.types.getTypeParser,
};

/** A pool to `url`, its bigints read as numbers. */
export function createPool(url: string, options: { max?: number | undefined; statementTimeoutMs?: number | undefined }): pg.Pool {
  const pool = new pg.Pool({ connectionString: url, max: options.max ?? 10, types, statement_timeout: options.statementTimeoutMs ?? 60_000, application_name: 'driftwatch-collector' });
  // An idle client whose connection the server ended: the pool drops it; the next query connects again.
  pool.on('error', () => undefined);
  return pool;
}

/** Statements on a pool or a client. */
export function sqlOf(on: pg.Pool | pg.PoolClient): Sql {
  return async <R>(text: string, values: readonly unknown[] = [], name?: string) => {
    const r = name === undefined ? await on.query(text, values as unknown[]) : await on.query({ name, text, values: values as unknown[] });
    return { rows: r.rows as R[], rowCount: r.rowCount ?? 0 };
  };
}

/** SQLSTATEs after which the whole transaction is worth running again: serialization failure, deadlock. */
const RETRYABLE = new Set(['40001', '40P01']);
/** Attempts of one transaction before its error is the caller's. */
const MAX_ATTEMPTS = 8;

/** Who is told of each transaction run again, per pool (the collector counts them in a metric). */
const retryHooks = new WeakMap<pg.Pool, (code: string) => void>();

/** Tell `onRetry` (with the SQLSTATE) each time a transaction on `pool` runs again after a deadlock or serialization failure. */
export function countRetries(pool: pg.Pool, onRetry: (code: string) => void): void {
  retryHooks.set(pool, onRetry);
}

/** Whether `err` is a serialization failure or a deadlock (the transaction can run again). */
export function retryable(err: unknown): boolean {
  return typeof err === 'object' && err !== null && RETRYABLE.has((err as { code?: string }).code ?? '');
}

/**
 * Run `fn` in one transaction on one client of `pool`: BEGIN, COMMIT, ROLLBACK when it throws.
 * A deadlock or serialization failure runs it again from the start (up to MAX_ATTEMPTS, after a
 * short random pause), so `fn` must do nothing but SQL and pure computation.
 */
export async function transaction<T>(pool: pg.Pool, fn: (sql: Sql) => Promise<T>, mode = 'BEGIN'): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    const client = await pool.connect();
    let broken: Error | undefined;
    // A checked-out client has no listener of the pool's: the server ending its connection (a
    // restart, pg_terminate_backend) would emit 'error' with none and end the process. The query
    // under way fails with it anyway; the client is then released broken (the pool closes it).
    const onError = (err: Error) => void (broken ??= err);
    client.on('error', onError);
    try {
      await client.query(mode);
      const out = await fn(sqlOf(client));
      await client.query('COMMIT');
      return out;
    } catch (err) {
      await client.query('ROLLBACK').catch((e: unknown) => (broken = e instanceof Error ? e : new Error(String(e))));
      if (retryable(err) && attempt < MAX_ATTEMPTS) {
        retryHooks.get(pool)?.((err as { code: string }).code);
        await new Promise((r) => setTimeout(r, Math.random() * 20 * attempt));
        continue;
      }
      throw err;
    } finally {
      // A client whose ROLLBACK failed is in an unknown state: the pool closes it.
      client.removeListener('error', onError);
      client.release(broken);
    }
  }
}

/** A read-only transaction on one snapshot: the several statements of one read see the same data. */
export function snapshot<T>(pool: pg.Pool, fn: (sql: Sql) => Promise<T>): Promise<T> {
  return transaction(pool, fn, 'BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY');
}

/**
 * Run `fn` inside a savepoint of the caller's transaction: when it throws, what it did is rolled
 * back and the error rethrown; the transaction goes on.
 */
export async function savepoint<T>(sql: Sql, fn: () => Promise<T>): Promise<T> {
  await sql('SAVEPOINT batch');
  try {
    const out = await fn();
    await sql('RELEASE SAVEPOINT batch');
    return out;
  } catch (err) {
    await sql('ROLLBACK TO SAVEPOINT batch');
    throw err;
  }
}

/**
 * Lock baseline keys until the transaction ends, creating their lock rows as needed: every write to
 * a key's baseline (a delta, a review, an accepted alert, a quarantine) holds it, so two replicas'
 * read-modify-writes of one key (a node's previous share, the examples kept) never interleave.
 * Sorted, so two transactions that lock several keys cannot deadlock on them.
 */
export async function lockKeys(sql: Sql, keys: Iterable<string>): Promise<void> {
  const sorted = [...new Set(keys)].sort();
  if (sorted.length === 0) return;
  // Two statements whatever the number of keys; rows made and locked in byte order (the keys are COLLATE "C").
  await sql(`INSERT INTO baseline_keys (key) SELECT k FROM unnest($1::text[]) AS k ORDER BY k COLLATE "C" ON CONFLICT (key) DO NOTHING`, [sorted]);
  await sql(`SELECT key FROM baseline_keys WHERE key = ANY($1::text[]) ORDER BY key FOR UPDATE`, [sorted]);
}

/** Lock several nodes (shared, see lockNode) in one statement, in one order. */
export async function lockNodesShared(sql: Sql, nodes: Iterable<string>): Promise<void> {
  const sorted = [...new Set(nodes)].sort();
  if (sorted.length === 0) return;
  await sql(`SELECT pg_advisory_xact_lock_shared(hashtextextended('node:' || n, 20)) FROM (SELECT n FROM unnest($1::text[]) AS n ORDER BY n COLLATE "C" OFFSET 0) AS s`, [sorted]);
}

/**
 * A node's lock: shared by its batches that carry deltas, exclusive for quarantining it, so that a
 * batch either commits before the quarantine drops what the node taught or sees the quarantine.
 * Taken before any key's lock (one order everywhere).
 */
export async function lockNode(sql: Sql, node: string, exclusive: boolean): Promise<void> {
  await sql(exclusive ? `SELECT pg_advisory_xact_lock(hashtextextended($1, 20))` : `SELECT pg_advisory_xact_lock_shared(hashtextextended($1, 20))`, [`node:${node}`]);
}
