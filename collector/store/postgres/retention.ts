/** The retention slice on PostgreSQL: old deviations, closed alerts and settled deliveries go, in one transaction. */
import type pg from 'pg';
import type { Async } from '../async.js';
import type { RetentionStore } from '../store.js';
import { transaction } from './db.js';

/** The retention slice on `pool`. */
export function postgresRetention(pool: pg.Pool): Async<RetentionStore> {
  return {
    prune: (deviationsBefore, alertsBefore) =>
      transaction(pool, async (sql) => ({
        deviations: (await sql(`DELETE FROM deviations WHERE received_at < $1`, [deviationsBefore])).rowCount,
        alerts: (await sql(`DELETE FROM alerts WHERE state IN ('resolved', 'accepted') AND last_seen < $1 AND state_at < $1`, [alertsBefore])).rowCount,
        deliveries: (await sql(`DELETE FROM outbox WHERE state != 'pending' AND created_at < $1`, [alertsBefore])).rowCount,
      })),
  };
}
