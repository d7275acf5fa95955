/**
 * The outbox slice: notifications for sinks, written in the transaction that decides them (ingest,
 * a transition, alerting's enqueue), delivered by the outbox worker, retried with backoff across
 * restarts; the row stays as the delivery record.
 */
import type { OutboxEntry, OutboxItem } from '../../alerting/alert.js';
import type { OutboxStore } from '../store.js';
import { writeTransaction, type Db } from './db.js';

/** Deliveries listed per alert. */
export const MAX_LISTED_DELIVERIES = 50;

export interface OutboxRow {
  seq: number;
  alert: string;
  sink: string;
  action: string;
  body: string;
  state: OutboxItem['state'];
  attempts: number;
  next_at: number;
  last_error: string;
  created_at: number;
  done_at: number;
}

export function outboxOf(r: OutboxRow): OutboxItem {
  return {
    seq: r.seq,
    alert: r.alert,
    sink: r.sink,
    action: r.action,
    body: r.body,
    state: r.state,
    attempts: r.attempts,
    nextAt: r.next_at,
    lastError: r.last_error,
    createdAt: r.created_at,
    doneAt: r.done_at,
  };
}

/** The outbox slice, and `write`: one notification into the outbox inside the caller's transaction. */
export interface SqliteOutbox {
  store: OutboxStore;
  /** Write `item`, decided at `now`: a pending one is due at `now` (or its notBefore), a settled one is done at `now`. */
  write(item: OutboxEntry, now: number): void;
}

/** The outbox slice on `db`. */
export function sqliteOutbox(db: Db): SqliteOutbox {
  const insertOutbox = db.prepare(`INSERT INTO outbox (alert, sink, action, body, state, next_at, last_error, created_at, done_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`);
  // The same statements as the PostgreSQL store's, in one transaction; one process, so nothing races.
  const selectDue = db.prepare(`SELECT * FROM outbox WHERE sink = ? AND state = 'pending' AND next_at <= ? AND lease_until < ? ORDER BY next_at, seq LIMIT 1`);
  const lease = db.prepare(`UPDATE outbox SET lease_owner = ?, lease_until = ? WHERE seq = ?`);
  const renew = db.prepare(`UPDATE outbox SET lease_until = @until WHERE seq = @seq AND state = 'pending' AND lease_owner = @owner`);
  const selectNextDue = db.prepare(`SELECT min(max(next_at, lease_until)) FROM outbox WHERE sink = ? AND state = 'pending'`).pluck();
  const settleOutbox = db.prepare(
    `UPDATE outbox SET state = @state, attempts = @attempts, next_at = @nextAt, last_error = @error, done_at = @doneAt, lease_owner = '', lease_until = 0
     WHERE seq = @seq AND state = 'pending' AND lease_owner = @owner`,
  );
  const claimTx = writeTransaction(db, (sink: string, now: number, owner: string, leaseMs: number): OutboxItem | null => {
    const row = selectDue.get(sink, now, now) as OutboxRow | undefined;
    if (!row) return null;
    lease.run(owner, now + leaseMs, row.seq);
    return outboxOf(row);
  });
  const selectDeliveries = db.prepare(`SELECT * FROM outbox WHERE alert = ? ORDER BY seq DESC LIMIT ${MAX_LISTED_DELIVERIES}`);
  const countPending = db.prepare(`SELECT count(*) FROM outbox WHERE state = 'pending'`).pluck();
  const write = (i: OutboxEntry, now: number) =>
    void insertOutbox.run(i.alert, i.sink, i.action, i.body, i.state, Math.max(now, i.notBefore ?? 0), i.lastError, now, i.state === 'pending' ? 0 : now);
  return {
    store: {
      enqueue: writeTransaction(db, (items: readonly OutboxEntry[], now: number) => {
        for (const i of items) write(i, now);
      }),
      claimDelivery: (sink, now, owner, leaseMs) => claimTx(sink, now, owner, leaseMs),
      renewDelivery: (seq, owner, until) => renew.run({ seq, owner, until }).changes > 0,
      nextDueAt: (sink) => (selectNextDue.get(sink) as number | null) ?? null,
      settleDelivery: (seq, owner, o) =>
        settleOutbox.run({ seq, owner, state: o.state, attempts: o.attempts, nextAt: o.nextAt, error: o.error, doneAt: o.state === 'pending' ? 0 : o.at }).changes > 0,
      deliveriesOf: (alert) => (selectDeliveries.all(alert) as OutboxRow[]).map(outboxOf),
      pendingDeliveries: () => countPending.get() as number,
    },
    write,
  };
}
