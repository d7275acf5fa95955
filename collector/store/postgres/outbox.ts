/**
 * The outbox slice on PostgreSQL: notifications for sinks, written in the transaction that decides
 * them (ingest, a transition, alerting's enqueue); the row stays as the delivery record.
 */
import type pg from 'pg';
import type { OutboxEntry } from '../../alerting/alert.js';
import type { Async } from '../async.js';
import { MAX_LISTED_DELIVERIES, outboxOf, type OutboxRow } from '../sqlite/outbox.js';
import type { OutboxStore } from '../store.js';
import { transaction, type Sql } from './db.js';

/** The outbox slice, and `write`: one notification into the outbox inside the caller's transaction. */
export interface PostgresOutbox {
  store: Async<OutboxStore>;
  /** Write `item`, decided at `now`: a pending one is due at `now` (or its notBefore), a settled one is done at `now`. */
  write(sql: Sql, item: OutboxEntry, now: number): Promise<void>;
}

/** The outbox slice on `pool`. */
export function postgresOutbox(pool: pg.Pool, sql: Sql): PostgresOutbox {
  const write = async (tx: Sql, i: OutboxEntry, now: number) => {
    await tx(`INSERT INTO outbox (alert, sink, action, body, state, next_at, last_error, created_at, done_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)`, [
      i.alert,
      i.sink,
      i.action,
      i.body,
      i.state,
      Math.max(now, i.notBefore ?? 0),
      i.lastError,
      now,
      i.state === 'pending' ? 0 : now,
    ]);
  };
  return {
    store: {
      enqueue: (items, now) =>
        transaction(pool, async (tx) => {
          for (const i of items) await write(tx, i, now);
        }),
      // One statement: the row is locked by the subquery (a row another replica is claiming at the
      // same moment is skipped, not waited for), leased, and returned as it was before the lease.
      async claimDelivery(sink, now, owner, leaseMs) {
        const { rows } = await sql<OutboxRow>(
          `UPDATE outbox SET lease_owner = $3, lease_until = $4
           WHERE seq = (SELECT seq FROM outbox WHERE sink = $1 AND state = 'pending' AND next_at <= $2 AND lease_until < $2
                        ORDER BY next_at, seq LIMIT 1 FOR UPDATE SKIP LOCKED)
           RETURNING *`,
          [sink, now, owner, now + leaseMs],
        );
        return rows[0] ? outboxOf(rows[0]) : null;
      },
      renewDelivery: async (seq, owner, until) =>
        (await sql(`UPDATE outbox SET lease_until = $3 WHERE seq = $1 AND state = 'pending' AND lease_owner = $2`, [seq, owner, until])).rowCount > 0,
      nextDueAt: async (sink) =>
        (await sql<{ n: number | null }>(`SELECT min(GREATEST(next_at, lease_until)) AS n FROM outbox WHERE sink = $1 AND state = 'pending'`, [sink])).rows[0]?.n ?? null,
      settleDelivery: async (seq, owner, o) =>
        (
          await sql(
            `UPDATE outbox SET state = $1, attempts = $2, next_at = $3, last_error = $4, done_at = $5, lease_owner = '', lease_until = 0
             WHERE seq = $6 AND state = 'pending' AND lease_owner = $7`,
            [o.state, o.attempts, o.nextAt, o.error, o.state === 'pending' ? 0 : o.at, seq, owner],
          )
        ).rowCount > 0,
      deliveriesOf: async (alert) => (await sql<OutboxRow>(`SELECT * FROM outbox WHERE alert = $1 ORDER BY seq DESC LIMIT ${MAX_LISTED_DELIVERIES}`, [alert])).rows.map(outboxOf),
      pendingDeliveries: async () => (await sql<{ n: number }>(`SELECT count(*) AS n FROM outbox WHERE state = 'pending'`)).rows[0]!.n,
    },
    write,
  };
}
