/**
 * Growth on PostgreSQL (issue 20): the deviation list of the PostgreSQL store (day partitions,
 * schema revision 2) with few and with many stored deviations; the curve must stay flat, as the
 * SQLite one does in growth-collector. Latency is the store's own `listDeviations` (what the API's
 * GET /api/v1/deviations runs; the collector cannot be pointed at PostgreSQL yet), timed in this
 * process against a `SELECT 1` round trip on the same server as the floor.
 *
 * - Server: a throwaway PostgreSQL started by the tests' harness (test/helpers/postgres.ts, no ava
 *   at run time), one database per size, each migrated by openPostgresStore.
 * - Data: the same 30 days (the default retention) at every size, so every size has the same
 *   31 day partitions and only the rows per partition grow; 10 nodes, 20 keys, 100 fingerprints;
 *   rows made on the server by INSERT … SELECT generate_series through the parent table (its
 *   trigger claims each id, as for ingest), the body one real deviation's JSON.
 * - Queries: the first page (100), a page of one node (100), of one fingerprint (100), and a page
 *   of one node halfway down (a cursor from the middle of the seq range). Requests go round the
 *   sizes in turn so that machine noise falls on every size alike.
 * - Sizes: quick 10k / 100k; full 10k / 1M; `--huge` 10k / 1M / 10M.
 * - Figure: for each query, p50 at the smallest size ÷ p50 at the largest, each over its own
 *   floor; the goal, ≥ 0.5, is the issue's "latency at the large size at most twice the small".
 */
import pg from 'pg';
import { encodeCursor } from '../../collector/store/postgres/db.js';
import { openPostgresStore } from '../../collector/store/postgres/index.js';
import { DAY_MS, dayOf, ensureDays } from '../../collector/store/postgres/partitions.js';
import { deviationOf } from '../../test/helpers/ingest.js';
import { startPostgres } from '../../test/helpers/postgres.js';
import { fmt, percentile } from '../lib/measure.js';
import { figure, type Figure, type Scenario, type ScenarioContext } from '../lib/types.js';

const NAME = 'growth-postgres';
const DAYS = 30;
const NODES = 10;
const KEYS = 20;
const FINGERPRINTS = 100;
/** Rows per INSERT … SELECT statement while loading. */
const CHUNK = 200_000;

function sizes(ctx: ScenarioContext): number[] {
  if (ctx.quick) return [10_000, 100_000];
  return process.argv.includes('--huge') || process.env.DWBENCH_HUGE === '1' ? [10_000, 1_000_000, 10_000_000] : [10_000, 1_000_000];
}

const label = (n: number) => (n >= 1e6 ? `${n / 1e6}M` : `${n / 1e3}k`);

/** Load `n` deviations received over the DAYS days before `now`, in seq order of receipt. */
async function load(client: pg.Client, n: number, now: number, body: string): Promise<void> {
  const start = (dayOf(now) - DAYS + 1) * DAY_MS;
  const span = now - start;
  for (let from = 1; from <= n; from += CHUNK) {
    const to = Math.min(n, from + CHUNK - 1);
    await client.query(
      `INSERT INTO deviations (id, fingerprint, baseline_key, kind, time, received_at, node, body)
       SELECT 'node-' || (g % $4) || ':bench-' || g, 'fp-' || (g % $6), 'docker.io/bench/app-' || (g % $5), 'exec',
              $7::bigint + (g * $8::bigint / $3), $7::bigint + (g * $8::bigint / $3), 'node-' || (g % $4), $9
       FROM generate_series($1::bigint, $2::bigint) AS g`,
      [from, to, n, NODES, KEYS, FINGERPRINTS, start, span, body],
    );
  }
  await client.query('VACUUM ANALYZE deviations');
  await client.query('VACUUM ANALYZE deviation_ids');
}

/** One size: its database, its queries and their timings. */
interface Size {
  size: number;
  loadSeconds: number;
  partitions: number;
  queries: Record<string, () => Promise<unknown>>;
  samples: Map<string, number[]>;
}

async function run(ctx: ScenarioContext): Promise<Figure[]> {
  // Loading is the slow part: WAL and checkpoints sized for it; reads are what is measured.
  const server = await startPostgres({ settings: { shared_buffers: "'256MB'", max_wal_size: "'4GB'", synchronous_commit: 'off', maintenance_work_mem: "'256MB'" } });
  const closers: (() => Promise<unknown>)[] = [];
  try {
    const now = Date.now();
    const body = JSON.stringify(deviationOf({ i: 1 }));
    const reps = ctx.quick ? 30 : 100;
    const dbs: Size[] = [];
    for (const size of sizes(ctx)) {
      const url = await server.createDatabase();
      const store = await openPostgresStore(url);
      closers.push(() => store.close());
      const pool = new pg.Pool({ connectionString: url, max: 1 });
      // An idle client whose server goes away emits 'error' on the pool: expected when the scenario stops the server.
      pool.on('error', () => undefined);
      closers.push(() => pool.end());
      await ensureDays(pool, Array.from({ length: DAYS }, (_, i) => dayOf(now) - DAYS + 1 + i));
      const client = new pg.Client({ connectionString: url });
      await client.connect();
      ctx.log(`loading ${size} deviations`);
      const t0 = performance.now();
      await load(client, size, now, body);
      const loadSeconds = (performance.now() - t0) / 1000;
      const { rows } = await client.query<{ n: string; parts: string; mid: string }>(
        `SELECT (SELECT count(*) FROM deviations) AS n, (SELECT count(*) FROM pg_inherits WHERE inhparent = 'deviations'::regclass) AS parts, (SELECT max(seq) / 2 FROM deviations) AS mid`,
      );
      await client.end();
      ctx.log(`loaded ${rows[0]!.n} in ${loadSeconds.toFixed(1)} s over ${rows[0]!.parts} partitions`);
      const mid = encodeCursor(Number(rows[0]!.mid));
      const queries: Record<string, () => Promise<unknown>> = {
        floor: () => pool.query('SELECT 1'),
        'first page': () => store.listDeviations({ limit: 100 }),
        'page by node': () => store.listDeviations({ limit: 100, node: 'node-3' }),
        'page by fingerprint': () => store.listDeviations({ limit: 100, fingerprint: 'fp-42' }),
        'page by node, halfway down': () => store.listDeviations({ limit: 100, node: 'node-3', cursor: mid }),
      };
      for (const q of Object.values(queries)) for (let i = 0; i < 5; i++) await q();
      dbs.push({ size, loadSeconds, partitions: Number(rows[0]!.parts), queries, samples: new Map<string, number[]>(Object.keys(queries).map((k) => [k, []])) });
    }
    for (let round = 0; round < reps; round++) {
      for (const name of Object.keys(dbs[0]!.queries)) {
        for (const db of dbs) {
          const t0 = performance.now();
          await db.queries[name]!();
          db.samples.get(name)!.push(performance.now() - t0);
        }
      }
    }
    const figures: Figure[] = [];
    const p50 = (db: Size, name: string) => percentile(db.samples.get(name)!, 50);
    for (const db of dbs) {
      const floor = p50(db, 'floor');
      ctx.log(`${db.size}: ${Object.keys(db.queries).map((n) => `${n} ${fmt(p50(db, n))} ms`).join(', ')}`);
      const note = `${db.size} deviations over ${DAYS} days, ${db.partitions} partitions; loaded in ${db.loadSeconds.toFixed(1)} s; ${reps} requests each`;
      let first = true;
      for (const name of Object.keys(db.queries)) {
        if (name === 'floor') continue;
        figures.push(figure.cost(NAME, `${name} p50 @ ${label(db.size)}`, p50(db, name), 'ms', 'SELECT 1 round trip', floor, null, first ? note : undefined));
        first = false;
      }
    }
    const small = dbs[0]!;
    const large = dbs[dbs.length - 1]!;
    for (const name of Object.keys(small.queries)) {
      if (name === 'floor') continue;
      const flat = p50(small, name) / p50(small, 'floor') / (p50(large, name) / p50(large, 'floor'));
      figures.push(figure.flat(NAME, `${name} flatness ${label(small.size)} → ${label(large.size)}`, flat, 0.5, 'p50 over SELECT 1, smallest ÷ largest (≥ 0.5: at most twice as slow)'));
    }
    return figures;
  } finally {
    for (const close of closers.reverse()) await close().catch(() => undefined);
    await server.stop();
  }
}

export const scenario: Scenario = { name: NAME, title: 'Growth: PostgreSQL deviation pages', run };
