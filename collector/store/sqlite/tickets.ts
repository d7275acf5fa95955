/**
 * The image-ticket slice on SQLite: one row per (ticket sink, image repository) holding the ticket
 * opened for it, and the image's alerts the sink was told are open. A step on a ticket is taken
 * under a claim on its row (the outbox's lease, in the same SQL shape as the PostgreSQL store's):
 * on SQLite one process holds it, on PostgreSQL two replicas take turns.
 */
import type { ImageTicket, ImageTicketChange, TicketState, TicketStore } from '../store.js';
import { writeTransaction, type Db } from './db.js';

/** Longest repository, sink, alert id and owner stored (they come from alerts and config: bounded anyway). */
export const TICKET_LIMITS = Object.freeze({ repository: 1024, name: 128, ref: 256, url: 2048 });

/** Revision 7: the tables of this slice (idempotent). */
export const IMAGE_TICKETS_TABLES = `
    CREATE TABLE IF NOT EXISTS image_tickets (
      sink         TEXT NOT NULL,
      repository   TEXT NOT NULL,
      ref          TEXT NOT NULL DEFAULT '',
      url          TEXT NOT NULL DEFAULT '',
      state        TEXT NOT NULL DEFAULT 'none',
      opened       INTEGER NOT NULL DEFAULT 0,
      updated_at   INTEGER NOT NULL DEFAULT 0,
      lease_owner  TEXT NOT NULL DEFAULT '',
      lease_until  INTEGER NOT NULL DEFAULT 0,
      PRIMARY KEY (sink, repository)
    ) WITHOUT ROWID;
    CREATE TABLE IF NOT EXISTS image_ticket_alerts (
      sink         TEXT NOT NULL,
      repository   TEXT NOT NULL,
      alert        TEXT NOT NULL,
      PRIMARY KEY (sink, repository, alert)
    ) WITHOUT ROWID;
`;

/** A row of image_tickets. */
export interface ImageTicketRow {
  sink: string;
  repository: string;
  ref: string;
  url: string;
  state: string;
  opened: number;
  updated_at: number;
}

/** The row as the store's type, with its count of open alerts. */
export function imageTicketOf(r: ImageTicketRow, openAlerts: number): ImageTicket {
  const state: TicketState = r.state === 'open' || r.state === 'closed' ? r.state : 'none';
  return { sink: r.sink, repository: r.repository, ref: r.ref, url: r.url, state, openAlerts, opened: r.opened, updatedAt: r.updated_at };
}

/** The key columns, bounded the same way on both stores. */
export function ticketKey(sink: string, repository: string, owner = ''): { sink: string; repository: string; owner: string } {
  return { sink: sink.slice(0, TICKET_LIMITS.name), repository: repository.slice(0, TICKET_LIMITS.repository), owner: owner.slice(0, TICKET_LIMITS.name) };
}

/** The columns a change sets (null: unchanged), bounded. */
export function ticketColumns(c: ImageTicketChange): { ref: string | null; url: string | null; state: TicketState | null; opened: number; at: number } {
  return { ref: c.ref === undefined ? null : c.ref.slice(0, TICKET_LIMITS.ref), url: c.url === undefined ? null : c.url.slice(0, TICKET_LIMITS.url), state: c.state ?? null, opened: c.openedTicket ? 1 : 0, at: c.at };
}

/** The image-ticket slice on `db`. */
export function sqliteTickets(db: Db): TicketStore {
  const claim = db.prepare(
    `INSERT INTO image_tickets (sink, repository, lease_owner, lease_until, updated_at) VALUES (@sink, @repository, @owner, @until, @now)
     ON CONFLICT (sink, repository) DO UPDATE SET lease_owner = excluded.lease_owner, lease_until = excluded.lease_until
     WHERE image_tickets.lease_until < @now OR image_tickets.lease_owner = excluded.lease_owner
     RETURNING sink, repository, ref, url, state, opened, updated_at`,
  );
  const countOpen = db.prepare(`SELECT count(*) FROM image_ticket_alerts WHERE sink = ? AND repository = ?`).pluck();
  const isOpen = db.prepare(`SELECT count(*) FROM image_ticket_alerts WHERE sink = ? AND repository = ? AND alert = ?`).pluck();
  const update = db.prepare(
    `UPDATE image_tickets SET ref = coalesce(@ref, ref), url = coalesce(@url, url), state = coalesce(@state, state), opened = opened + @opened, updated_at = @at
     WHERE sink = @sink AND repository = @repository AND lease_owner = @owner`,
  );
  const addAlert = db.prepare(`INSERT INTO image_ticket_alerts (sink, repository, alert) VALUES (?, ?, ?) ON CONFLICT DO NOTHING`);
  const removeAlert = db.prepare(`DELETE FROM image_ticket_alerts WHERE sink = ? AND repository = ? AND alert = ?`);
  const release = db.prepare(`UPDATE image_tickets SET lease_owner = '', lease_until = 0 WHERE sink = ? AND repository = ? AND lease_owner = ?`);
  const select = db.prepare(`SELECT sink, repository, ref, url, state, opened, updated_at FROM image_tickets WHERE sink = ? AND repository = ?`);
  const alertId = (a: string) => a.slice(0, TICKET_LIMITS.name);
  return {
    claimImageTicket: writeTransaction(db, (sink: string, repository: string, alert: string, owner: string, now: number, leaseMs: number) => {
      const k = ticketKey(sink, repository, owner);
      const row = claim.get({ ...k, until: now + leaseMs, now }) as ImageTicketRow | undefined;
      if (!row) return null;
      return { ticket: imageTicketOf(row, countOpen.get(k.sink, k.repository) as number), alertOpen: (isOpen.get(k.sink, k.repository, alertId(alert)) as number) > 0 };
    }),
    recordImageTicket: writeTransaction(db, (sink: string, repository: string, owner: string, change: ImageTicketChange) => {
      const k = ticketKey(sink, repository, owner);
      if (update.run({ ...k, ...ticketColumns(change) }).changes === 0) return false;
      if (change.alertOpened !== undefined) addAlert.run(k.sink, k.repository, alertId(change.alertOpened));
      if (change.alertClosed !== undefined) removeAlert.run(k.sink, k.repository, alertId(change.alertClosed));
      return true;
    }),
    releaseImageTicket: (sink, repository, owner) => {
      const k = ticketKey(sink, repository, owner);
      release.run(k.sink, k.repository, k.owner);
    },
    getImageTicket: (sink, repository) => {
      const k = ticketKey(sink, repository);
      const row = select.get(k.sink, k.repository) as ImageTicketRow | undefined;
      return row ? imageTicketOf(row, countOpen.get(k.sink, k.repository) as number) : null;
    },
  };
}
