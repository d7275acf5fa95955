/** The retention slice: old deviations, closed alerts and settled deliveries go, in one transaction. */
import type { RetentionStore } from '../store.js';
import { writeTransaction, type Db } from './db.js';

/** The retention slice on `db`. */
export function sqliteRetention(db: Db): RetentionStore {
  const pruneDeviations = db.prepare(`DELETE FROM deviations WHERE received_at < ?`);
  const pruneAlerts = db.prepare(`DELETE FROM alerts WHERE state IN ('resolved', 'accepted') AND last_seen < ? AND state_at < ?`);
  const pruneOutbox = db.prepare(`DELETE FROM outbox WHERE state != 'pending' AND created_at < ?`);
  return {
    prune: writeTransaction(db, (deviationsBefore: number, alertsBefore: number) => ({
      deviations: pruneDeviations.run(deviationsBefore).changes,
      alerts: pruneAlerts.run(alertsBefore, alertsBefore).changes,
      deliveries: pruneOutbox.run(alertsBefore).changes,
    })),
  };
}
