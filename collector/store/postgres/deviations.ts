/**
 * The deviations slice on PostgreSQL: what agents reported, stored once per (node, id) by the
 * ingest slice (per group commit, one statement claims each id in deviation_ids, then multi-row
 * INSERTs store only the rows whose id it claimed, so a batch replayed to another replica, even at the same
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

/** Rows per INSERT statement of ingest (8 parameters each: well under PostgreSQL's 65,535). */
const ROWS_PER_INSERT = 500;

/** The INSERT of `n` rows of the deviations table, one parameter per cell. */
function insertRows(n: number): string {
  const tuples: string[] = [];
  for (let r = 0; r < n; r++) {
    const p = r * 8;
    tuples.push(`($${p + 1}, $${p + 2}, $${p + 3}, $${p + 4}, $${p + 5}::bigint, $${p + 6}::bigint, $${p + 7}, $${p + 8})`);
  }
  return `INSERT INTO deviations (id, fingerprint, baseline_key, kind, time, received_at, node, body) VALUES ${tuples.join(', ')}`;
}

/** The full-size INSERT, prepared under its name on each connection (parsed and planned once). */
const INSERT_FULL = { name: `driftwatch-insert-deviations-${ROWS_PER_INSERT}`, text: insertRows(ROWS_PER_INSERT) };

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
      const once: PreparedDeviation[] = [];
      const ids: string[] = [];
      const seen = new Set<string>();
      for (const d of ds) {
        const id = scopedDeviationId(d.node, d.id);
        if (seen.has(id)) continue;
        seen.add(id);
        once.push(d);
        ids.push(id);
      }
      // The ids claimed in deviation_ids in id order (two replicas storing one batch take turns on
      // the same order; the second skips what the first claimed), in one statement: ids are short.
      const { rows } = await tx<{ id: string }>(
        `INSERT INTO deviation_ids (id, received_at) SELECT id, $2 FROM unnest($1::text[]) AS id ORDER BY id COLLATE "C" ON CONFLICT (id) DO NOTHING RETURNING id`,
        [ids, receivedAt],
      );
      const claimed = new Set(rows.map((r) => r.id));
      // Then the rows whose id this transaction claimed, in their order, as multi-row VALUES with one
      // parameter per cell: a body sent in a text[] is escaped by the client and parsed again by the
      // server, which halved the rate of this statement (bench: 10k against 21k rows/s). The
      // transaction said it claims its ids itself (CLAIMS_IDS): the per-row trigger stays out.
      const mine = ids.flatMap((id, i) => (claimed.has(id) ? [i] : []));
      for (let at = 0; at < mine.length; at += ROWS_PER_INSERT) {
        const part = mine.slice(at, at + ROWS_PER_INSERT);
        const values: unknown[] = [];
        for (const i of part) {
          const d = once[i]!;
          values.push(ids[i], d.fingerprint, d.key, d.kind, d.time, receivedAt, d.node, d.body);
        }
        if (part.length === ROWS_PER_INSERT) await tx(INSERT_FULL.text, values, INSERT_FULL.name);
        else await tx(insertRows(part.length), values);
      }
      return claimed;
    },
  };
}
