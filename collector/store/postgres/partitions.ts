/**
 * The deviations table's partitions (schema revision 2): one per UTC day of `received_at`, the
 * time retention prunes on, so that retention drops whole days instead of deleting rows.
 *
 * - Why a day: retention keeps 30 days by default, so about 31 partitions plus the days ahead: few
 *   enough that a page (a Merge Append of one index scan per partition) stays cheap, and the one
 *   partition retention still deletes rows from (the day its cut-off falls in) holds at most one
 *   day. A week would leave up to a quarter of the kept data to row-by-row deletes.
 * - Days ahead: today and the next AHEAD_DAYS days exist before rows arrive; made on open, by each
 *   retention run, and by ingest when its receive time comes within a day of the last one made.
 * - DEFAULT partition: a row whose day has no partition (a stepped clock, rows copied from an old
 *   database) is stored there, never refused. Making a day's partition moves that day's rows out
 *   of DEFAULT first: the partition is built as a plain table, filled from DEFAULT, then attached
 *   (ATTACH takes a lighter lock on the parent than CREATE TABLE … PARTITION OF, and PostgreSQL
 *   refuses a new partition whose rows still sit in DEFAULT).
 * - Names carry the day (`deviations_d20260131`) and are built from integers only.
 */
import type pg from 'pg';
import { transaction, type Sql, type StoreLogger } from './db.js';

/** One day in ms: the width of one partition. */
export const DAY_MS = 86_400_000;
/** Days after today whose partitions exist ahead of their rows. */
export const AHEAD_DAYS = 7;
/** The advisory lock that makes two replicas take turns creating partitions ("dwpt"). */
const PARTITION_LOCK = 0x64777074;
/** The partition rows of no day's partition land in. */
export const DEFAULT_PARTITION = 'deviations_default';

/** The UTC day (days since the epoch) of a time in ms. */
export function dayOf(ms: number): number {
  return Math.floor(ms / DAY_MS);
}

/** The partition name of a day. */
export function partitionName(day: number): string {
  if (!Number.isSafeInteger(day) || day < 0 || day > 2_932_896) throw new RangeError(`no partition for day ${day}`);
  return `deviations_d${new Date(day * DAY_MS).toISOString().slice(0, 10).replace(/-/g, '')}`;
}

/** One attached day partition: its name and its bounds [from, to) in ms. */
export interface DayPartition {
  name: string;
  from: number;
  to: number;
}

/** The day partitions attached now, oldest first (DEFAULT not among them). */
export async function dayPartitions(sql: Sql): Promise<DayPartition[]> {
  const { rows } = await sql<{ name: string; bound: string }>(
    `SELECT c.relname AS name, pg_get_expr(c.relpartbound, c.oid) AS bound
     FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
     WHERE i.inhparent = 'deviations'::regclass`,
  );
  const out: DayPartition[] = [];
  for (const r of rows) {
    const m = /FROM \('?(-?\d+)'?\) TO \('?(-?\d+)'?\)/.exec(r.bound);
    if (m) out.push({ name: r.name, from: Number(m[1]), to: Number(m[2]) });
  }
  return out.sort((a, b) => a.from - b.from);
}

/**
 * Make the partitions of `days` that do not exist, inside the caller's transaction (which should
 * hold PARTITION_LOCK: see ensureDays): each built as a table like the parent, given the day's rows
 * from DEFAULT, and attached; indexes and the once-per-id trigger come with the attach.
 */
async function createDays(sql: Sql, days: Iterable<number>): Promise<number> {
  let created = 0;
  for (const day of new Set(days)) {
    const name = partitionName(day);
    const { rows } = await sql<{ attached: boolean }>(
      `SELECT EXISTS (SELECT 1 FROM pg_inherits WHERE inhrelid = to_regclass($1) AND inhparent = 'deviations'::regclass) AS attached`,
      [name],
    );
    if (rows[0]?.attached) continue;
    const from = day * DAY_MS;
    const to = from + DAY_MS;
    // DDL takes no parameters: the name and bounds are built from a checked integer above.
    await sql(`CREATE TABLE IF NOT EXISTS ${name} (LIKE deviations INCLUDING DEFAULTS)`);
    await sql(
      `WITH moved AS (DELETE FROM ${DEFAULT_PARTITION} WHERE received_at >= $1 AND received_at < $2 RETURNING *)
       INSERT INTO ${name} SELECT * FROM moved`,
      [from, to],
    );
    await sql(`ALTER TABLE deviations ATTACH PARTITION ${name} FOR VALUES FROM (${from}) TO (${to})`);
    created++;
  }
  return created;
}

/** Make the partitions of `days` (idempotent; two replicas take turns); how many were made. */
export async function ensureDays(pool: pg.Pool, days: readonly number[]): Promise<number> {
  if (days.length === 0) return 0;
  // Most calls find every partition there: answer those without a lock.
  const { rows } = await pool.query<{ missing: string }>(
    `SELECT count(*) AS missing FROM unnest($1::text[]) AS p(name)
     WHERE NOT EXISTS (SELECT 1 FROM pg_inherits WHERE inhrelid = to_regclass(p.name) AND inhparent = 'deviations'::regclass)`,
    [days.map(partitionName)],
  );
  if (Number(rows[0]?.missing ?? 0) === 0) return 0;
  return transaction(pool, async (sql) => {
    // Queue behind a long reader for a while at most (a later call retries), not for a statement timeout.
    await sql(`SET LOCAL lock_timeout = '10s'`);
    await sql(`SELECT pg_advisory_xact_lock($1)`, [PARTITION_LOCK]);
    return createDays(sql, days);
  });
}

/** The days from today (UTC, by `now`) to AHEAD_DAYS after it. */
export function daysAhead(now: number): number[] {
  const today = dayOf(now);
  return Array.from({ length: AHEAD_DAYS + 1 }, (_, i) => today + i);
}

/** Keeps today's and the next days' partitions made, remembering how far they reach. */
export interface PartitionKeeper {
  /** Make the partitions from `now`'s day to AHEAD_DAYS after it, unless they are known to exist. */
  ahead(now: number): Promise<void>;
}

/**
 * A keeper over `pool`. A call whose day is more than a day before the last day made returns at
 * once (a comparison, so ingest can call it per batch); a failure (a lock not granted in time) is
 * logged and tried again by the next call: rows meanwhile land in DEFAULT, never refused.
 */
export function partitionKeeper(pool: pg.Pool, log: StoreLogger): PartitionKeeper {
  let madeUntil = -Infinity;
  let running: Promise<void> | undefined;
  return {
    async ahead(now) {
      if (dayOf(now) + 1 < madeUntil) return;
      running ??= (async () => {
        try {
          const days = daysAhead(now);
          await ensureDays(pool, days);
          madeUntil = days[days.length - 1]!;
        } catch (err) {
          log.warn({ err }, 'store: could not make the deviations partitions ahead; rows go to the DEFAULT partition until a later try succeeds');
        } finally {
          running = undefined;
        }
      })();
      await running;
    },
  };
}

/** In the migration's transaction (the lock held there): partitions for `days`. */
export async function createDaysInMigration(sql: Sql, days: Iterable<number>): Promise<number> {
  await sql(`SELECT pg_advisory_xact_lock($1)`, [PARTITION_LOCK]);
  return createDays(sql, days);
}

/**
 * Drop the day partitions wholly before `before`, in the caller's transaction (the drop locks the
 * whole table: nothing slower shares that transaction); the number of deviations they held.
 */
export async function dropDaysBefore(sql: Sql, before: number): Promise<number> {
  let dropped = 0;
  for (const p of await dayPartitions(sql)) {
    if (p.to > before) break;
    dropped += (await sql<{ n: number }>(`SELECT count(*) AS n FROM ${safeName(p.name)}`)).rows[0]!.n;
    await sql(`DROP TABLE ${safeName(p.name)}`);
  }
  return dropped;
}

/**
 * What dropDaysBefore leaves before `before`, row by row (the day it falls in, DEFAULT: partition
 * pruning scans only those, there is no index on received_at), and the ids received before it
 * (a scan of the narrow deviation_ids): row locks on old rows only, which ingest never waits for.
 * The number of deviations deleted.
 */
export async function deleteRowsBefore(sql: Sql, before: number): Promise<number> {
  const deleted = (await sql(`DELETE FROM deviations WHERE received_at < $1`, [before])).rowCount;
  await sql(`DELETE FROM deviation_ids WHERE received_at < $1`, [before]);
  return deleted;
}

/** A partition name read from the catalog, checked to be one this module makes before it goes into DDL. */
function safeName(name: string): string {
  if (!/^deviations_d\d{8}$/.test(name)) throw new Error(`unexpected partition ${JSON.stringify(name)} of deviations`);
  return name;
}
