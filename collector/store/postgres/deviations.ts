/**
 * The deviations slice on PostgreSQL: what agents reported, stored once per (node, id) by the
 * ingest slice (one INSERT per group commit, which claims each id in deviation_ids and stores
 * only the rows whose id it claimed, so a batch replayed to another replica, even at the same
 * moment, is stored once; every other writer's rows are claimed by the table's trigger: schema.ts,
 * revisions 2 and 4), listed newest first, marked when their node
 * is quarantined. The table is partitioned by day of receipt (partitions.ts); a page is one index
 * scan per partition merged in seq order (Merge Append), never a sort of every row.
 */
import type { Deviation } from '../../../core/deviation.js';
import type { Async } from '../async.js';
import { scopedDeviationId } from '../sqlite/deviations.js';
import type { DeviationQuery, DeviationStore, Page, PreparedDeviation, StoredDeviation } from '../store.js';
import { decodeCursor, encodeCursor, type Sql } from './db.js';
import type { PostgresQuarantine } from './quarantine.js';

/**
 * What an ingest transaction starts with: it claims the ids of the deviations it stores itself
 * (`insert`), so the schema's per-row trigger skips its rows (schema.ts, revision 4).
 */
export const CLAIMS_IDS = `BEGIN; SET LOCAL driftwatch.ids_claimed = 'on'`;

/** The deviations slice, and `insert` for the ingest transaction (which must start with CLAIMS_IDS). */
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
      // A deviation twice in `ds`: its first copy is the one to store.
      const seen = new Set<string>();
      const once = ds.filter((d) => {
        const id = scopedDeviationId(d.node, d.id);
        if (seen.has(id)) return false;
        seen.add(id);
        return true;
      });
      // The ids claimed in deviation_ids in id order (two replicas storing one batch take turns on
      // the same order), then the rows whose id this statement claimed, in their order. The
      // transaction said it claims its ids itself (CLAIMS_IDS): the per-row trigger stays out.
      const { rows } = await tx<{ id: string }>(
        `WITH d AS (SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::bigint[], $7::text[], $8::text[]) WITH ORDINALITY AS d(id, fingerprint, baseline_key, kind, time, node, body, ord)),
         claimed AS (INSERT INTO deviation_ids (id, received_at) SELECT id, $6 FROM d ORDER BY id COLLATE "C" ON CONFLICT (id) DO NOTHING RETURNING id)
         INSERT INTO deviations (id, fingerprint, baseline_key, kind, time, received_at, node, body)
         SELECT d.id, d.fingerprint, d.baseline_key, d.kind, d.time, $6, d.node, d.body FROM d JOIN claimed ON claimed.id = d.id COLLATE "C" ORDER BY d.ord
         RETURNING id`,
        [
          once.map((d) => scopedDeviationId(d.node, d.id)),
          once.map((d) => d.fingerprint),
          once.map((d) => d.key),
          once.map((d) => d.kind),
          once.map((d) => d.time),
          receivedAt,
          once.map((d) => d.node),
          once.map((d) => d.body),
        ],
      );
      return new Set(rows.map((r) => r.id));
    },
  };
}
