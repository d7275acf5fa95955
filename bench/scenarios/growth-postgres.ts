/**
 * Growth on PostgreSQL (issue 20): the collector's HTTP API, as a user calls it, on a PostgreSQL
 * store holding few and many deviations; the curve must stay flat, as growth-collector's does on
 * SQLite. Each size is served by its own real `driftwatch collector --db-url-file` process, and
 * every request is timed end to end (HTTP, the collector, the database) against a /livez round trip
 * to the same collector as the floor.
 *
 * - Server: a throwaway PostgreSQL started by the tests' harness (test/helpers/postgres.ts), one
 *   database per size, each migrated by the store itself (openPostgresStore).
 * - Seed, through the store's own ingest: every node's baseline delta for each of KEYS keys, and one
 *   real deviation per key (so the alerts table holds rows the store wrote).
 * - Fill, on the server (generate_series, not through the API, so 10M rows take minutes): alerts
 *   cloned from a seeded row, one per DEVIATIONS_PER_ALERT deviations as in growth-collector, one in
 *   four of the hot image; deviations over the last DAYS days (the default retention, so every size
 *   has the same day partitions), their ids claimed in deviation_ids as the schema's trigger would
 *   (the trigger itself skipped for the load with session_replication_role), the body a real
 *   deviation's JSON. The secondary indexes of `deviations` are dropped for the load and created
 *   again from their own definitions (pg_indexes), then VACUUM ANALYZE.
 * - Requests: growth-collector's: alert list (100), alert list by image (20), alert detail (its
 *   recent deviations and deliveries), deviation list by node (100), baseline list, baseline detail.
 *   Requests go round the sizes in turn so that machine noise falls on every size alike.
 * - Sizes: quick 10k / 100k; full 10k / 1M; `--huge` 10k / 1M / 10M.
 * - Figures: p50 and p99 of each request at each size, the fill time and database size; flatness
 *   of each request (p50 over /livez, smallest size ÷ largest), goal ≥ 0.7 as on SQLite.
 */
import pg from 'pg';
import { openPostgresStore } from '../../collector/store/postgres/index.js';
import { DAY_MS, dayOf, ensureDays } from '../../collector/store/postgres/partitions.js';
import type { BaselineSnapshot } from '../../core/baseline.js';
import { deltaOf, statsOf } from '../../test/helpers/baseline-delta.js';
import { deviationOf } from '../../test/helpers/ingest.js';
import { startPostgres } from '../../test/helpers/postgres.js';
import { fmt, mib, percentile, rssOf } from '../lib/measure.js';
import { spawnPostgresCollector, urlFile } from '../lib/postgres-bench.js';
import type { CollectorChild } from '../lib/procs.js';
import { figure, type Figure, type Scenario, type ScenarioContext } from '../lib/types.js';

const NAME = 'growth-postgres';
const DAYS = 30;
const NODES = 8;
const KEYS = 20;
const DEVIATIONS_PER_ALERT = 100;
const HOT_IMAGE = 'docker.io/bench/hot';
/** Rows per INSERT … SELECT statement while filling. */
const CHUNK = 1_000_000;

function sizes(ctx: ScenarioContext): number[] {
  if (ctx.quick) return [10_000, 100_000];
  return process.argv.includes('--huge') || process.env.DWBENCH_HUGE === '1' ? [10_000, 1_000_000, 10_000_000] : [10_000, 1_000_000];
}

const label = (n: number) => (n >= 1e6 ? `${n / 1e6}M` : `${n / 1e3}k`);
const keyOf = (k: number) => `docker.io/bench/app-${k}`;

/** Baselines of every key from every node, and one deviation per key, through the store's ingest. */
async function seed(url: string, now: number): Promise<void> {
  const store = await openPostgresStore(url);
  try {
    for (let n = 1; n <= NODES; n++) {
      const node = `node-${n}`;
      const deltas: BaselineSnapshot[] = [];
      for (let k = 0; k < KEYS; k++) {
        const entries = Array.from({ length: 20 }, (_, e) =>
          statsOf({ type: 'process', exe: `/usr/bin/tool-${e}`, parent: 'sh', user: 'user', args: '--run' }, node, { firstSeen: now - DAY_MS, lastSeen: now, count: 10 + e }),
        );
        deltas.push(deltaOf(keyOf(k), entries));
      }
      await store.ingest(node, [], deltas, now);
    }
    for (let k = 0; k < KEYS; k++) await store.ingest('node-1', [deviationOf({ image: keyOf(k), exe: '/bin/nc', i: k })], [], now);
  } finally {
    await store.close();
  }
}

/**
 * Fill to `n` deviations (and n / DEVIATIONS_PER_ALERT alerts) received over the DAYS days before `now`,
 * in seq order of receipt.
 */
async function fill(client: pg.Client, n: number, now: number, body: string): Promise<void> {
  const start = (dayOf(now) - DAYS + 1) * DAY_MS;
  const span = now - start;
  const alerts = Math.max(1, Math.floor(n / DEVIATIONS_PER_ALERT));
  // Alerts cloned from a seeded one; fingerprints md5('bench-alert-' || g), one in four of the hot image.
  await client.query(
    `INSERT INTO alerts (fingerprint, baseline_key, image, kind, entry, reason, explanation, nearest, first_seen, last_seen, count, nodes, pods,
       last_deviation_id, example, created_at, severity, rule_id, rule_reason, team, namespace, labels, receivers, suppressed_by)
     SELECT md5('bench-alert-' || g), CASE WHEN g % 4 = 0 THEN $2 ELSE 'docker.io/bench/app-' || (g % $3) END, CASE WHEN g % 4 = 0 THEN $2 ELSE 'docker.io/bench/app-' || (g % $3) END,
       t.kind, t.entry, t.reason, t.explanation, t.nearest, $4::bigint + (g * $5::bigint / $1), $4::bigint + (g * $5::bigint / $1), ${DEVIATIONS_PER_ALERT}, t.nodes, t.pods,
       t.last_deviation_id, t.example, $4::bigint + (g * $5::bigint / $1), t.severity, t.rule_id, t.rule_reason, t.team, t.namespace, t.labels, t.receivers, t.suppressed_by
     FROM generate_series(1, $1::bigint) AS g, (SELECT * FROM alerts ORDER BY seq LIMIT 1) AS t`,
    [alerts, HOT_IMAGE, KEYS, start, span],
  );
  const { rows: defs } = await client.query<{ def: string; name: string }>(
    `SELECT indexdef AS def, indexname AS name FROM pg_indexes WHERE schemaname = current_schema() AND tablename = 'deviations' AND indexname <> 'deviations_pkey'`,
  );
  for (const d of defs) await client.query(`DROP INDEX ${pg.escapeIdentifier(d.name)}`);
  // The ids claimed as the trigger claims them; the trigger skipped for this session's load only.
  await client.query(`SET session_replication_role = replica`);
  for (let from = 1; from <= n; from += CHUNK) {
    const to = Math.min(n, from + CHUNK - 1);
    const values = [from, to, n, NODES, alerts, start, span, body, HOT_IMAGE, KEYS];
    await client.query(
      `INSERT INTO deviation_ids (id, received_at) SELECT 'node-' || (g % $4 + 1) || ':bench-' || g, $5::bigint + (g * $6::bigint / $3)
       FROM generate_series($1::bigint, $2::bigint) AS g`,
      [from, to, n, NODES, start, span],
    );
    await client.query(
      `INSERT INTO deviations (id, fingerprint, baseline_key, kind, time, received_at, node, body)
       SELECT 'node-' || (g % $4 + 1) || ':bench-' || g, md5('bench-alert-' || (g % $5 + 1)),
              CASE WHEN (g % $5 + 1) % 4 = 0 THEN $9 ELSE 'docker.io/bench/app-' || ((g % $5 + 1) % $10) END, 'exec',
              $6::bigint + (g * $7::bigint / $3), $6::bigint + (g * $7::bigint / $3), 'node-' || (g % $4 + 1), $8
       FROM generate_series($1::bigint, $2::bigint) AS g`,
      values,
    );
  }
  await client.query(`RESET session_replication_role`);
  // pg_indexes shows a partitioned table's index as `ON ONLY` the parent: made so, it would cover no
  // partition (and stay invalid). Made again on the whole table, as the migration made it.
  for (const d of defs) await client.query(d.def.replace(/ ON ONLY /, ' ON '));
  const { rows: invalid } = await client.query(`SELECT count(*) AS n FROM pg_index WHERE indrelid = 'deviations'::regclass AND NOT indisvalid`);
  if (Number(invalid[0]!.n) !== 0) throw new Error('an index of deviations is not valid after the fill');
  await client.query('VACUUM ANALYZE deviations');
  await client.query('VACUUM ANALYZE deviation_ids');
  await client.query('VACUUM ANALYZE alerts');
}

interface Served {
  size: number;
  alerts: number;
  fillSeconds: number;
  bytes: number;
  partitions: number;
  collector: CollectorChild;
  queries: Record<string, string>;
  samples: Map<string, number[]>;
}

async function timed(url: string): Promise<number> {
  const t0 = performance.now();
  const res = await fetch(url);
  await res.arrayBuffer();
  if (!res.ok) throw new Error(`GET ${url}: ${res.status}`);
  return performance.now() - t0;
}

async function run(ctx: ScenarioContext): Promise<Figure[]> {
  // Filling is the slow part: WAL and checkpoints sized for it; reads are what is measured.
  const server = await startPostgres({ settings: { shared_buffers: "'256MB'", max_wal_size: "'8GB'", synchronous_commit: 'off', maintenance_work_mem: "'512MB'", max_connections: '100' } });
  const served: Served[] = [];
  try {
    const now = Date.now();
    const body = JSON.stringify(deviationOf({ i: 1 }));
    const reps = ctx.quick ? 20 : 60;
    for (const size of sizes(ctx)) {
      const url = await server.createDatabase();
      await seed(url, now);
      const client = new pg.Client({ connectionString: url });
      client.on('error', () => undefined);
      await client.connect();
      const pool = new pg.Pool({ connectionString: url, max: 1 });
      pool.on('error', () => undefined);
      await ensureDays(pool, Array.from({ length: DAYS }, (_, i) => dayOf(now) - DAYS + 1 + i));
      await pool.end();
      ctx.log(`filling ${size} deviations`);
      const t0 = performance.now();
      await fill(client, size, now, body);
      const fillSeconds = (performance.now() - t0) / 1000;
      const { rows } = await client.query<{ n: string; alerts: string; parts: string; bytes: string }>(
        `SELECT (SELECT count(*) FROM deviations) AS n, (SELECT count(*) FROM alerts) AS alerts,
                (SELECT count(*) FROM pg_inherits WHERE inhparent = 'deviations'::regclass) AS parts, pg_database_size(current_database()) AS bytes`,
      );
      await client.end();
      const r = rows[0]!;
      ctx.log(`filled ${r.n} deviations, ${r.alerts} alerts in ${fillSeconds.toFixed(1)} s over ${r.parts} partitions; database ${Math.round(mib(Number(r.bytes)))} MiB`);
      const collector = await spawnPostgresCollector(urlFile(ctx.workDir, url));
      const u = collector.url;
      const fp = (await (await fetch(`${u}/api/v1/alerts?limit=100`)).json() as { items: { id: string }[] }).items[50]!.id;
      const queries: Record<string, string> = {
        livez: `${u}/livez`,
        'alert list': `${u}/api/v1/alerts?limit=100`,
        'alert list by image': `${u}/api/v1/alerts?limit=20&image=${encodeURIComponent(HOT_IMAGE)}`,
        'alert detail': `${u}/api/v1/alerts/${fp}`,
        'deviation list by node': `${u}/api/v1/deviations?limit=100&node=node-3`,
        'baseline list': `${u}/api/v1/baselines`,
        'baseline detail': `${u}/api/v1/baselines/${encodeURIComponent(keyOf(3))}`,
      };
      served.push({ size, alerts: Number(r.alerts), fillSeconds, bytes: Number(r.bytes), partitions: Number(r.parts), collector, queries, samples: new Map(Object.keys(queries).map((k) => [k, []])) });
    }
    // Each round sends one request of each kind to each size in turn (the first 5 rounds warm up).
    for (let round = 0; round < reps + 5; round++) {
      for (const name of Object.keys(served[0]!.queries)) {
        for (const s of served) {
          const ms = await timed(s.queries[name]!);
          if (round >= 5) s.samples.get(name)!.push(ms);
        }
      }
    }
    const p = (s: Served, name: string, q: number) => percentile(s.samples.get(name)!, q);
    const figures: Figure[] = [];
    for (const s of served) {
      const livez = p(s, 'livez', 50);
      ctx.log(`${s.size}: ${Object.keys(s.queries).map((n) => `${n} p50 ${fmt(p(s, n, 50))} / p99 ${fmt(p(s, n, 99))} ms`).join(', ')}; collector RSS ${Math.round(mib(rssOf(s.collector.pid)))} MiB`);
      const note = `${s.size} deviations over ${DAYS} days (${s.partitions} partitions), ${s.alerts} alerts, ${KEYS} baselines × ${NODES} nodes; filled in ${s.fillSeconds.toFixed(1)} s; database ${Math.round(mib(s.bytes))} MiB; lists of 100 (by image: 20), ${reps} requests each through the collector's HTTP API`;
      let first = true;
      for (const name of Object.keys(s.queries)) {
        if (name === 'livez') continue;
        figures.push(figure.cost(NAME, `${name} p50 @ ${label(s.size)}`, p(s, name, 50), 'ms', '/livez round trip', livez, null, first ? note : undefined));
        figures.push(figure.cost(NAME, `${name} p99 @ ${label(s.size)}`, p(s, name, 99), 'ms', '/livez round trip', livez, null));
        first = false;
      }
      figures.push(figure.info(NAME, `fill time @ ${label(s.size)}`, s.fillSeconds, 's', 'INSERT … SELECT generate_series, secondary indexes built after'));
      figures.push(figure.info(NAME, `database size @ ${label(s.size)}`, mib(s.bytes), 'MiB'));
    }
    const small = served[0]!;
    const large = served[served.length - 1]!;
    for (const name of Object.keys(small.queries)) {
      if (name === 'livez') continue;
      const flat = p(small, name, 50) / p(small, 'livez', 50) / (p(large, name, 50) / p(large, 'livez', 50));
      figures.push(figure.flat(NAME, `${name} flatness ${label(small.size)} → ${label(large.size)}`, flat, ctx.quick ? null : 0.7, 'p50 relative to /livez, smallest ÷ largest size'));
    }
    return figures;
  } finally {
    for (const s of served) await s.collector.stop().catch(() => undefined);
    await server.stop();
  }
}

export const scenario: Scenario = { name: NAME, title: 'Growth: collector API on PostgreSQL', run };
