/**
 * The retention slice on PostgreSQL: old deviations, closed alerts and settled deliveries go.
 * Deviations go first: whole day partitions are dropped in a transaction of their own (which locks
 * the table for a moment, so nothing slower shares it), then the day the cut-off falls in loses its
 * older rows and deviation_ids the ids received before it, in a second one (partitions.ts). Each
 * run also makes the partitions ahead.
 */
import type pg from 'pg';
import type { Async } from '../async.js';
import type { RetentionStore } from '../store.js';
import { transaction } from './db.js';
import { deleteRowsBefore, dropDaysBefore, type PartitionKeeper } from './partitions.js';

/** The retention slice on `pool`; `now` is the clock the partitions ahead are made by. */
export function postgresRetention(pool: pg.Pool, deps: { partitions: PartitionKeeper; now?: () => number }): Async<RetentionStore> {
  const now = deps.now ?? Date.now;
  return {
    async prune(deviationsBefore, alertsBefore) {
      await deps.partitions.ahead(now());
      const dropped = await transaction(pool, async (sql) => {
        // Dropping a partition waits for readers of the table; give up after a while rather than hold every query up behind it.
        await sql(`SET LOCAL lock_timeout = '30s'`);
        return dropDaysBefore(sql, deviationsBefore);
      });
      const deviations = dropped + (await transaction(pool, (sql) => deleteRowsBefore(sql, deviationsBefore)));
      return transaction(pool, async (sql) => ({
        deviations,
        alerts: (await sql(`DELETE FROM alerts WHERE state IN ('resolved', 'accepted') AND last_seen < $1 AND state_at < $1`, [alertsBefore])).rowCount,
        deliveries: (await sql(`DELETE FROM outbox WHERE state != 'pending' AND created_at < $1`, [alertsBefore])).rowCount,
      }));
    },
  };
}
