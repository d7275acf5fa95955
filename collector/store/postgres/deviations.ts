/**
 * The deviations slice on PostgreSQL: what agents reported, stored once per (node, id) by the
 * ingest slice (one multi-row INSERT per batch; the table's trigger claims each id in
 * deviation_ids and skips an id already there, so a batch replayed to another replica, even at the
 * same moment, is stored once: schema.ts, revision 2), listed newest first, marked when their node
 * is quarantined. The table is partitioned by day of receipt (partitions.ts); a page is one index
 * scan per partition merged in seq order (Merge Append), never a sort of every row.
 */
import type { Deviation } from '../../../core/deviation.js';
import type { Async } from '../async.js';
import { scopedDeviationId } from '../sqlite/deviations.js';
import type { DeviationQuery, DeviationStore, Page, PreparedDeviation, StoredDeviation } from '../store.js';
import { decodeCursor, encodeCursor, type Sql } from './db.js';
import type { PostgresQuarantine } from './quarantine.js';

/** The deviations slice, and `insert` for the ingest transaction. */
export interface PostgresDeviations {
  store: Async<DeviationStore>;
  /** Store `ds` received at `receivedAt`; the scoped ids that were new (the others are stored already). */
  insert(sql: Sql, ds: readonly PreparedDeviation[], receivedAt: number): Promise<Set<string>>;
}

/** The page query of `q` (exported so a test can EXPLAIN exactly what the slice runs). */
export function listQuery(q: Pick<DeviationQuery, 'cursor' | 'fingerprint' | 'baselineKey' | 'node' | 'limit'>): { text: string; values: unknown[] } {
  const values: unknown[] = [decodeCursor(q.cursor)];
  const where = ['seq < $1'];
  // The WHERE clause is assembled from fixed fragments only; every value is a bound parameter.
  const filter = (column: string, value: string | undefined) => {
    if (value === undefined) return;
    values.push(value);
    where.push(`${column} = $${values.length}`);
  };
  filter('fingerprint', q.fingerprint);
  filter('baseline_key', q.baselineKey);
  filter('node', q.node);
  values.push(q.limit + 1);
  return { text: `SELECT seq, fingerprint, received_at, body FROM deviations WHERE ${where.join(' AND ')} ORDER BY seq DESC LIMIT $${values.length}`, values };
}

/** The deviations slice over `sql`; `quarantine` says which nodes' deviations are marked. */
export function postgresDeviations(sql: Sql, deps: { quarantine: PostgresQuarantine }): PostgresDeviations {
  const { quarantine } = deps;
  return {
    store: {
      async listDeviations(q): Promise<Page<StoredDeviation>> {
        const { text, values } = listQuery(q);
        const { rows } = await sql<{ seq: number; fingerprint: string; received_at: number; body: string }>(text, values);
        const more = rows.length > q.limit;
        const page = rows.slice(0, q.limit);
        const quarantined = await quarantine.names(sql);
        return {
          items: page.map((r) => {
            const deviation = JSON.parse(r.body) as Deviation;
            return { deviation, fingerprint: r.fingerprint, receivedAt: r.received_at, nodeQuarantined: quarantined.has(deviation.event.node) };
          }),
          next: more ? encodeCursor(page[page.length - 1]!.seq) : null,
        };
      },
      countDeviations: async () => (await sql<{ n: number }>(`SELECT count(*) AS n FROM deviations`)).rows[0]!.n,
    },
    async insert(tx, ds, receivedAt) {
      if (ds.length === 0) return new Set();
      // No ON CONFLICT: nothing unique on id is left to conflict with; the trigger skips a stored id.
      const { rows } = await tx<{ id: string }>(
        `INSERT INTO deviations (id, fingerprint, baseline_key, kind, time, received_at, node, body)
         SELECT id, fingerprint, baseline_key, kind, time, $6, node, body
         FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::bigint[], $7::text[], $8::text[]) AS d(id, fingerprint, baseline_key, kind, time, node, body)
         RETURNING id`,
        [
          ds.map((d) => scopedDeviationId(d.node, d.id)),
          ds.map((d) => d.fingerprint),
          ds.map((d) => d.key),
          ds.map((d) => d.kind),
          ds.map((d) => d.time),
          receivedAt,
          ds.map((d) => d.node),
          ds.map((d) => d.body),
        ],
      );
      return new Set(rows.map((r) => r.id));
    },
  };
}
