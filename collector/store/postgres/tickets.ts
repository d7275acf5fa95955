/**
 * The image-ticket slice on PostgreSQL: the SQLite store's statements (sqlite/tickets.ts). Two
 * replicas delivering two alerts of one image at once both ask for the row's claim; the upsert's
 * row lock makes them take turns and the second sees the first's live lease, so one ticket is opened.
 */
import type { Async } from '../async.js';
import { imageTicketOf, ticketColumns, ticketKey, TICKET_LIMITS, type ImageTicketRow } from '../sqlite/tickets.js';
import type { TicketStore } from '../store.js';
import { transaction, type Sql } from './db.js';
import type pg from 'pg';

/** Revision 5 of the PostgreSQL schema: the tables of this slice. */
export const IMAGE_TICKETS_MIGRATION = `
    CREATE TABLE image_tickets (
      sink         TEXT COLLATE "C" NOT NULL,
      repository   TEXT COLLATE "C" NOT NULL,
      ref          TEXT NOT NULL DEFAULT '',
      url          TEXT NOT NULL DEFAULT '',
      state        TEXT NOT NULL DEFAULT 'none',
      opened       BIGINT NOT NULL DEFAULT 0,
      updated_at   BIGINT NOT NULL DEFAULT 0,
      lease_owner  TEXT NOT NULL DEFAULT '',
      lease_until  BIGINT NOT NULL DEFAULT 0,
      PRIMARY KEY (sink, repository)
    );
    CREATE TABLE image_ticket_alerts (
      sink         TEXT COLLATE "C" NOT NULL,
      repository   TEXT COLLATE "C" NOT NULL,
      alert        TEXT COLLATE "C" NOT NULL,
      PRIMARY KEY (sink, repository, alert)
    );
`;

const COLUMNS = 'sink, repository, ref, url, state, opened, updated_at';

/** The image-ticket slice on `pool`. */
export function postgresTickets(pool: pg.Pool, sql: Sql): Async<TicketStore> {
  const alertId = (a: string) => a.slice(0, TICKET_LIMITS.name);
  const countOpen = async (q: Sql, sink: string, repository: string) =>
    (await q<{ n: number }>(`SELECT count(*) AS n FROM image_ticket_alerts WHERE sink = $1 AND repository = $2`, [sink, repository])).rows[0]!.n;
  return {
    claimImageTicket: (sink, repository, alert, owner, now, leaseMs) =>
      transaction(pool, async (tx) => {
        const k = ticketKey(sink, repository, owner);
        const { rows } = await tx<ImageTicketRow>(
          `INSERT INTO image_tickets (sink, repository, lease_owner, lease_until, updated_at) VALUES ($1, $2, $3, $4, $5)
           ON CONFLICT (sink, repository) DO UPDATE SET lease_owner = excluded.lease_owner, lease_until = excluded.lease_until
           WHERE image_tickets.lease_until < $5 OR image_tickets.lease_owner = excluded.lease_owner
           RETURNING ${COLUMNS}`,
          [k.sink, k.repository, k.owner, now + leaseMs, now],
        );
        if (!rows[0]) return null;
        const open = await tx<{ n: number }>(`SELECT count(*) AS n FROM image_ticket_alerts WHERE sink = $1 AND repository = $2 AND alert = $3`, [k.sink, k.repository, alertId(alert)]);
        return { ticket: imageTicketOf(rows[0], await countOpen(tx, k.sink, k.repository)), alertOpen: open.rows[0]!.n > 0 };
      }),
    recordImageTicket: (sink, repository, owner, change) =>
      transaction(pool, async (tx) => {
        const k = ticketKey(sink, repository, owner);
        const c = ticketColumns(change);
        const updated = await tx(
          `UPDATE image_tickets SET ref = coalesce($4, ref), url = coalesce($5, url), state = coalesce($6, state), opened = opened + $7, updated_at = $8
           WHERE sink = $1 AND repository = $2 AND lease_owner = $3`,
          [k.sink, k.repository, k.owner, c.ref, c.url, c.state, c.opened, c.at],
        );
        if (updated.rowCount === 0) return false;
        if (change.alertOpened !== undefined) await tx(`INSERT INTO image_ticket_alerts (sink, repository, alert) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING`, [k.sink, k.repository, alertId(change.alertOpened)]);
        if (change.alertClosed !== undefined) await tx(`DELETE FROM image_ticket_alerts WHERE sink = $1 AND repository = $2 AND alert = $3`, [k.sink, k.repository, alertId(change.alertClosed)]);
        return true;
      }),
    releaseImageTicket: async (sink, repository, owner) => {
      const k = ticketKey(sink, repository, owner);
      await sql(`UPDATE image_tickets SET lease_owner = '', lease_until = 0 WHERE sink = $1 AND repository = $2 AND lease_owner = $3`, [k.sink, k.repository, k.owner]);
    },
    getImageTicket: async (sink, repository) => {
      const k = ticketKey(sink, repository);
      const { rows } = await sql<ImageTicketRow>(`SELECT ${COLUMNS} FROM image_tickets WHERE sink = $1 AND repository = $2`, [k.sink, k.repository]);
      return rows[0] ? imageTicketOf(rows[0], await countOpen(sql, k.sink, k.repository)) : null;
    },
  };
}
