/**
 * The deviations slice: what agents reported, stored once per (node, id) by the ingest slice,
 * listed newest first, marked when their node is quarantined.
 */
import type { Deviation } from '../../../core/deviation.js';
import type { DeviationStore, Page, PreparedDeviation, StoredDeviation } from '../store.js';
import { decodeCursor, encodeCursor, statementCache, type Db } from './db.js';
import type { SqliteQuarantine } from './quarantine.js';

/** The stored (unique) id of a deviation: the agent's id scoped by its node, so no node can collide with another's. */
export function scopedDeviationId(node: string, id: string): string {
  // Node names (RFC 1123) have no ':', so the scoped id is unambiguous.
  return `${node}:${id}`;
}

/** The deviations slice, and `insert` for the ingest transaction. */
export interface SqliteDeviations {
  store: DeviationStore;
  /** Store `d`, received at `receivedAt`; false when its id (scoped by node) is stored already. */
  insert(d: PreparedDeviation, receivedAt: number): boolean;
}

/** The deviations slice on `db`; `quarantine` says which nodes' deviations are marked. */
export function sqliteDeviations(db: Db, deps: { quarantine: SqliteQuarantine }): SqliteDeviations {
  const { quarantine } = deps;
  const listStatement = statementCache(db);
  const insertDeviation = db.prepare(
    `INSERT OR IGNORE INTO deviations (id, fingerprint, baseline_key, kind, time, received_at, node, body) VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
  );
  const countDeviations = db.prepare(`SELECT count(*) FROM deviations`).pluck();
  return {
    store: {
      listDeviations(q): Page<StoredDeviation> {
        const before = decodeCursor(q.cursor);
        const where = ['seq < @before'];
        if (q.fingerprint !== undefined) where.push('fingerprint = @fingerprint');
        if (q.baselineKey !== undefined) where.push('baseline_key = @baselineKey');
        if (q.node !== undefined) where.push('node = @node');
        const rows = listStatement(`SELECT seq, fingerprint, received_at, body FROM deviations WHERE ${where.join(' AND ')} ORDER BY seq DESC LIMIT @limit`)
          .all({ before, fingerprint: q.fingerprint, baselineKey: q.baselineKey, node: q.node, limit: q.limit + 1 }) as {
          seq: number;
          fingerprint: string;
          received_at: number;
          body: string;
        }[];
        const more = rows.length > q.limit;
        const page = rows.slice(0, q.limit);
        const quarantined = quarantine.names();
        return {
          items: page.map((r) => {
            const deviation = JSON.parse(r.body) as Deviation;
            return { deviation, fingerprint: r.fingerprint, receivedAt: r.received_at, nodeQuarantined: quarantined.has(deviation.event.node) };
          }),
          next: more ? encodeCursor((page[page.length - 1] as { seq: number }).seq) : null,
        };
      },
      countDeviations: () => countDeviations.get() as number,
    },
    insert: (d, receivedAt) => insertDeviation.run(scopedDeviationId(d.node, d.id), d.fingerprint, d.key, d.kind, d.time, receivedAt, d.node, d.body).changes === 1,
  };
}
