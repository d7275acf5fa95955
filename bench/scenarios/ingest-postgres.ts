/**
 * Ingest into PostgreSQL (issue 20): collector-ingest's agents and traffic (simulated agents, one
 * process and connection each, real proto, 500-deviation batches, 4 in flight; a bad deploy of 20
 * images × 5 new behaviours) into real `driftwatch collector` processes on one PostgreSQL: first one
 * replica, then three with the agents split across them (agent i → replica i mod 3), each run on a
 * fresh database of the same server.
 *
 * - Server: the tests' harness (test/helpers/postgres.ts) with fsync and synchronous_commit ON
 *   (the harness's default is fsync=off), so an acknowledged batch is on disk, as in production.
 * - Floor, same server, same run: the same rows (every batch of every agent, in send order) into a
 *   plain table (the store's columns, id its primary key, no partitions, no other index) in
 *   multi-row INSERTs of 500 rows, each its own transaction, from one client with
 *   synchronous_commit=on; measured before and after the collectors ran, the mean taken.
 * - Check: the database holds exactly as many deviations as the agents had acknowledged.
 * - Goal: each collector rate ≥ 0.5 of the floor.
 */
import type { SimConfig } from '../children/sim-agent.js';
import { streamFile } from '../lib/data.js';
import { eventPool, makeDeviation } from '../lib/deviations.js';
import { checkSpec } from '../lib/hot-path-data.js';
import { cpuSecondsOf, mib, percentile, rssOf } from '../lib/measure.js';
import { postgresInsertFloor, quietClient, spawnPostgresCollector, startDurablePostgres, urlFile } from '../lib/postgres-bench.js';
import type { CollectorChild } from '../lib/procs.js';
import { startSims, type BurstResult, type SimGroup } from '../lib/sims.js';
import { rowOf, type DeviationRow } from '../lib/sqlite-floor.js';
import { figure, type Figure, type Scenario, type ScenarioContext } from '../lib/types.js';

const NAME = 'ingest-postgres';
const BATCH = 500;
const WINDOW = 4;
const IMAGES = 20;
const VARIANTS = 5;
const POOL = 3_000;

interface Run {
  replicas: number;
  burst: BurstResult;
  rate: number;
  /** Cores each replica used during the burst, and its RSS after. */
  cpu: number[];
  rss: number[];
  stored: number;
  stat: { commits: string; rollbacks: string; deadlocks: string };
}

async function run(ctx: ScenarioContext): Promise<Figure[]> {
  const AGENTS = ctx.quick ? 4 : 10;
  const batchesPerStream = ctx.quick ? 5 : 24;
  const maxSendMs = ctx.quick ? 5_000 : 20_000;
  const pool = streamFile(ctx.cacheDir, checkSpec(ctx.quick));
  const configs = (target: string): SimConfig[] =>
    Array.from({ length: AGENTS }, (_, i) => ({
      target,
      nodes: [`node-${i + 1}`],
      poolPath: pool.path,
      poolSize: POOL,
      poolImages: IMAGES,
      batchesPerStream,
      batchSize: BATCH,
      window: WINDOW,
      variants: VARIANTS,
      serialBase: i * 10_000_000,
      heartbeatMs: 10_000,
      maxSendMs,
    }));

  // The rows the agents send, batch by batch, agent after agent (as collector-ingest's SQLite floor).
  const events = eventPool(pool.path, POOL, IMAGES);
  const rows: DeviationRow[] = [];
  const receivedAt = Date.now();
  for (let k = 0; k < batchesPerStream * BATCH; k += BATCH) {
    for (let a = 0; a < AGENTS; a++) {
      for (let i = k; i < k + BATCH; i++) {
        const serial = a * 10_000_000 + i;
        rows.push(rowOf(makeDeviation(events[serial % events.length]!, `node-${a + 1}`, serial % VARIANTS, serial), receivedAt));
      }
    }
  }

  const server = await startDurablePostgres();
  const collectors: CollectorChild[] = [];
  let sims: SimGroup | undefined;
  const stopCollectors = async () => {
    await Promise.all(collectors.map((c) => c.stop()));
    collectors.length = 0;
  };
  try {
    ctx.log(`postgres ${server.majorVersion} up (fsync=on, synchronous_commit=on); floor: inserting ${rows.length} rows`);
    const floorBefore = await postgresInsertFloor(server, rows, BATCH);
    ctx.log(`postgres floor (before): ${Math.round(floorBefore.rate)} rows/s`);

    const runs: Run[] = [];
    for (const replicas of [1, 3]) {
      const url = await server.createDatabase();
      const file = urlFile(ctx.workDir, url);
      // One at a time: the first creates the schema, the others find it.
      for (let r = 0; r < replicas; r++) collectors.push(await spawnPostgresCollector(file));
      const targets = collectors.map((c) => c.target);
      if (!sims) sims = await startSims(configs(targets[0]!), 120_000);
      else await sims.reconnect(targets);
      ctx.log(`${replicas} replica(s): ${AGENTS} agents connected`);
      const cpu0 = collectors.map((c) => cpuSecondsOf(c.pid));
      const burst = await sims.burst(1, maxSendMs + 120_000);
      const cpu = collectors.map((c, i) => (cpuSecondsOf(c.pid) - cpu0[i]!) / (burst.ms / 1000));
      const rss = collectors.map((c) => rssOf(c.pid));
      const rate = burst.deviations / (burst.ms / 1000);
      const client = quietClient(url);
      await client.connect();
      const stored = Number((await client.query<{ n: string }>('SELECT count(*) AS n FROM deviations')).rows[0]!.n);
      // Transactions rolled back (deadlocks between replicas are retried whole): context for the rate.
      const stat = (await client.query<{ commits: string; rollbacks: string; deadlocks: string }>(
        'SELECT xact_commit AS commits, xact_rollback AS rollbacks, deadlocks FROM pg_stat_database WHERE datname = current_database()',
      )).rows[0]!;
      await client.end();
      ctx.log(`${replicas} replica(s): ${burst.deviations} deviations acknowledged in ${Math.round(burst.ms)} ms = ${Math.round(rate)}/s, ${stored} stored; CPU ${cpu.map((c) => c.toFixed(2)).join(' / ')} cores; database: ${stat.commits} commits, ${stat.rollbacks} rollbacks, ${stat.deadlocks} deadlocks`);
      if (stored !== burst.deviations) throw new Error(`${replicas} replica(s): the agents had ${burst.deviations} deviations acknowledged, the database holds ${stored}`);
      runs.push({ replicas, burst, rate, cpu, rss, stored, stat });
      await stopCollectors();
    }
    await sims?.stop();
    sims = undefined;

    const floorAfter = await postgresInsertFloor(server, rows, BATCH);
    ctx.log(`postgres floor (after): ${Math.round(floorAfter.rate)} rows/s`);
    const floor = (floorBefore.rate + floorAfter.rate) / 2;
    const floorName = 'bare PostgreSQL multi-row INSERTs rows/s';
    const figures: Figure[] = [];
    for (const r of runs) {
      const split = r.replicas === 1 ? `${AGENTS} agents on 1 replica` : `${AGENTS} agents split over ${r.replicas} replicas`;
      figures.push(
        figure.rate(NAME, `collector deviations/s, ${r.replicas} replica${r.replicas > 1 ? 's' : ''}`, r.rate, 'deviations/s', floorName, floor, 0.5,
          `${r.burst.deviations} deviations in ${r.burst.batches} batches of ${BATCH} (${split}), all stored once; replica CPU ${r.cpu.map((c) => c.toFixed(2)).join(' / ')} cores, RSS ${r.rss.map((b) => Math.round(mib(b))).join(' / ')} MiB; ack p50 ${Math.round(percentile(r.burst.latencies, 50))} ms, p99 ${Math.round(percentile(r.burst.latencies, 99))} ms; the database counted ${r.stat.commits} commits, ${r.stat.rollbacks} rollbacks, ${r.stat.deadlocks} deadlocks.` +
            (r.replicas === 1
              ? ` Floor: the same ${rows.length} rows into a plain table (the store's columns, id primary key, no partitions or other index) in multi-row INSERTs of ${BATCH}, one transaction each, one client, on the same server with fsync=on and synchronous_commit=on; mean of ${Math.round(floorBefore.rate)} before and ${Math.round(floorAfter.rate)} after the collectors ran`
              : ''),
        ),
      );
    }
    for (const r of runs) figures.push(figure.info(NAME, `batch ack latency p99, ${r.replicas} replica${r.replicas > 1 ? 's' : ''}`, percentile(r.burst.latencies, 99), 'ms', `send → ack of a ${BATCH}-deviation batch (acknowledged after commit), ${WINDOW} in flight per agent`));
    return figures;
  } finally {
    await sims?.stop().catch(() => undefined);
    await stopCollectors().catch(() => undefined);
    await server.stop();
  }
}

export const scenario: Scenario = { name: NAME, title: 'Collector ingest into PostgreSQL, 1 and 3 replicas', run };
