/**
 * The storm slice on PostgreSQL: what each replica counted in its open storm-control windows, so
 * that N replicas keep one notification rate. One transaction: a replica's rows go in with one
 * statement (arrays unnested), windows that ended go, and the others' counts come back summed.
 */
import type pg from 'pg';
import type { Async } from '../async.js';
import { MAX_JOB_NAME } from '../sqlite/job-leases.js';
import { boundedStormCounts, MAX_STORM_ROWS } from '../sqlite/storm.js';
import type { StormStore } from '../store.js';
import { transaction } from './db.js';

/** The storm slice on `pool`. */
export function postgresStorm(pool: pg.Pool): Async<StormStore> {
  return {
    shareStorm: (owner, counts, now) =>
      transaction(pool, async (tx) => {
        await tx(`DELETE FROM storm_counts WHERE until <= $1`, [now]);
        const mine = boundedStormCounts(counts).filter((c) => c.until > now);
        if (mine.length > 0) {
          await tx(
            `INSERT INTO storm_counts (owner, scope, start, until, count, summarized)
             SELECT $1, * FROM unnest($2::text[], $3::bigint[], $4::bigint[], $5::int[], $6::boolean[])
             ON CONFLICT (owner, scope, start) DO UPDATE SET until = excluded.until, count = excluded.count, summarized = excluded.summarized`,
            [owner.slice(0, MAX_JOB_NAME), mine.map((c) => c.scope), mine.map((c) => c.start), mine.map((c) => c.until), mine.map((c) => c.count), mine.map((c) => c.summarized)],
          );
        }
        const { rows } = await tx<{ scope: string; start: string; until: string; count: string; summarized: boolean }>(
          `SELECT scope, start, max(until) AS until, sum(count) AS count, bool_or(summarized) AS summarized FROM storm_counts
           WHERE owner <> $1 AND until > $2 GROUP BY scope, start ORDER BY scope, start LIMIT ${MAX_STORM_ROWS}`,
          [owner.slice(0, MAX_JOB_NAME), now],
        );
        return rows.map((r) => ({ scope: r.scope, start: Number(r.start), until: Number(r.until), count: Number(r.count), summarized: r.summarized }));
      }),
  };
}
