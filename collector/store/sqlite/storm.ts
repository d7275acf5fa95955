/**
 * The storm slice on SQLite: what each replica counted in its open storm-control windows. One process
 * uses the file, so no other replica ever shows up here; the statements are the PostgreSQL store's,
 * so one behaviour is tested on both.
 */
import type { StormCount } from '../../alerting/alert.js';
import type { StormStore } from '../store.js';
import { writeTransaction, type Db } from './db.js';
import { MAX_JOB_NAME } from './job-leases.js';

/** Longest scope stored (a baseline key, bounded by ingest already), and most windows taken or returned per call. */
export const MAX_STORM_SCOPE = 512;
export const MAX_STORM_ROWS = 10_000;

/** `counts` bounded: at most MAX_STORM_ROWS, scopes cut, numbers whole and not negative. */
export function boundedStormCounts(counts: readonly StormCount[]): StormCount[] {
  return counts.slice(0, MAX_STORM_ROWS).map((c) => ({
    scope: c.scope.slice(0, MAX_STORM_SCOPE),
    start: Math.trunc(c.start),
    until: Math.trunc(c.until),
    count: Math.max(0, Math.trunc(c.count)),
    summarized: c.summarized,
  }));
}

interface StormRow {
  scope: string;
  start: number;
  until: number;
  count: number;
  summarized: number;
}

/** The storm slice on `db`. */
export function sqliteStorm(db: Db): StormStore {
  const forget = db.prepare(`DELETE FROM storm_counts WHERE until <= ?`);
  const put = db.prepare(
    `INSERT INTO storm_counts (owner, scope, start, until, count, summarized) VALUES (@owner, @scope, @start, @until, @count, @summarized)
     ON CONFLICT (owner, scope, start) DO UPDATE SET until = excluded.until, count = excluded.count, summarized = excluded.summarized`,
  );
  const others = db.prepare(
    `SELECT scope, start, max(until) AS until, sum(count) AS count, max(summarized) AS summarized FROM storm_counts
     WHERE owner <> ? AND until > ? GROUP BY scope, start ORDER BY scope, start LIMIT ${MAX_STORM_ROWS}`,
  );
  const share = writeTransaction(db, (owner: string, counts: readonly StormCount[], now: number): StormCount[] => {
    forget.run(now);
    const me = owner.slice(0, MAX_JOB_NAME);
    for (const c of boundedStormCounts(counts)) if (c.until > now) put.run({ owner: me, ...c, summarized: c.summarized ? 1 : 0 });
    return (others.all(me, now) as StormRow[]).map((r) => ({ scope: r.scope, start: r.start, until: r.until, count: r.count, summarized: r.summarized === 1 }));
  });
  return { shareStorm: (owner, counts, now) => share(owner, counts, now) };
}
