/**
 * Scenario 3 — collector ingest: 10 simulated agents, each its own process and connection, stream
 * deviation batches (500 per batch, 4 in flight, like the agent's uplink) over loopback gRPC into one
 * real collector process that validates, groups into alerts and commits them. Floors in the same run
 * with the same messages: a bare grpc-js server that only decodes and counts, and bare better-sqlite3
 * batched inserts of the same rows.
 */
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { SimConfig } from '../children/sim-agent.js';
import { streamFile } from '../lib/data.js';
import { eventPool, makeDeviation } from '../lib/deviations.js';
import { checkSpec } from '../lib/hot-path-data.js';
import { cpuSecondsOf, percentile, rssOf, mib } from '../lib/measure.js';
import { metricValue, spawnCollector, spawnNode } from '../lib/procs.js';
import { startSims } from '../lib/sims.js';
import { rowOf, sqliteInsertFloor } from '../lib/sqlite-floor.js';
import { figure, type Figure, type Scenario, type ScenarioContext } from '../lib/types.js';

const NAME = 'collector-ingest';
const COUNT_SERVER = fileURLToPath(new URL('../children/count-server.js', import.meta.url));

const BATCH = 500;
const WINDOW = 4;
// A bad deploy: deviations of 20 images × 5 new behaviours (at most 100 alerts), from every node.
const IMAGES = 20;
const VARIANTS = 5;
const POOL = 3_000;

async function run(ctx: ScenarioContext): Promise<Figure[]> {
  // 10 agents; the quick smoke run uses 4.
  const AGENTS = ctx.quick ? 4 : 10;
  const pool = streamFile(ctx.cacheDir, checkSpec(ctx.quick));
  const batchesPerStream = ctx.quick ? 5 : 24;
  const maxSendMs = ctx.quick ? 3_000 : 12_000;
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

  // Floor 1: bare better-sqlite3 inserts of the same rows: every batch of every agent, in the order
  // the agents send them (batch by batch, agent after agent). Measured before and after the collector
  // runs, the mean taken, so that drift of this shared machine's disk and CPU falls on both alike.
  ctx.log('sqlite floor: making rows');
  const events = eventPool(pool.path, POOL, IMAGES);
  const rows = [];
  const receivedAt = Date.now();
  for (let k = 0; k < batchesPerStream * BATCH; k += BATCH) {
    for (let a = 0; a < AGENTS; a++) {
      for (let i = k; i < k + BATCH; i++) {
        const serial = a * 10_000_000 + i;
        rows.push(rowOf(makeDeviation(events[serial % events.length]!, `node-${a + 1}`, serial % VARIANTS, serial), receivedAt));
      }
    }
  }
  ctx.log(`sqlite floor: inserting ${rows.length} rows`);
  const sqliteBefore = sqliteInsertFloor(ctx.workDir, rows, BATCH);
  ctx.log(`sqlite floor (before): ${Math.round(sqliteBefore.rate)} rows/s`);

  // Floor 2: the bare counting gRPC server.
  const counter = spawnNode(COUNT_SERVER, []);
  const started = await counter.waitForLog((l) => l.msg === 'count server started');
  const sims = await startSims(configs(`127.0.0.1:${started.grpcPort as number}`), 120_000);
  ctx.log(`grpc floor: ${AGENTS} agents ready (${Math.round(mib(sims.readyBytes))} MiB of batches)`);
  const grpcBurst = await sims.burst(1, maxSendMs + 60_000);
  const grpcFloor = grpcBurst.deviations / (grpcBurst.ms / 1000);
  ctx.log(`grpc floor: ${grpcBurst.deviations} deviations in ${Math.round(grpcBurst.ms)} ms = ${Math.round(grpcFloor)}/s`);
  await counter.stop();

  // The collector, fed the same batches by the same processes over new connections.
  const collector = await spawnCollector(join(ctx.workDir, 'collector.db'));
  await sims.reconnect(collector.target);
  ctx.log(`collector: ${AGENTS} agents connected`);
  const cpu0 = cpuSecondsOf(collector.pid);
  const burst = await sims.burst(1, maxSendMs + 120_000);
  const cpu = (cpuSecondsOf(collector.pid) - cpu0) / (burst.ms / 1000);
  const rate = burst.deviations / (burst.ms / 1000);
  const rss = rssOf(collector.pid);
  const metrics = `${collector.url}/metrics`;
  const commits = await metricValue(metrics, 'driftwatch_collector_commit_group_batches_count');
  const perCommit = (await metricValue(metrics, 'driftwatch_collector_commit_group_batches_sum')) / commits;
  ctx.log(`collector: ${burst.deviations} deviations in ${Math.round(burst.ms)} ms = ${Math.round(rate)}/s; ${commits} commits, ${perCommit.toFixed(1)} batches each`);
  await sims.stop();
  await collector.stop();
  const sqliteAfter = sqliteInsertFloor(ctx.workDir, rows, BATCH);
  ctx.log(`sqlite floor (after): ${Math.round(sqliteAfter.rate)} rows/s`);
  const sqliteFloor = { rate: (sqliteBefore.rate + sqliteAfter.rate) / 2 };

  const lower = Math.min(grpcFloor, sqliteFloor.rate);
  const lowerName = grpcFloor <= sqliteFloor.rate ? 'bare grpc-js count server' : 'bare better-sqlite3 inserts';
  return [
    figure.rate(NAME, `collector deviations/s (${AGENTS} agents)`, rate, 'deviations/s', `lower floor: ${lowerName}`, lower, 0.5,
      `${burst.deviations} deviations in ${burst.batches} batches of ${BATCH}, ${AGENTS} processes; collector used ${cpu.toFixed(2)} cores, RSS ${Math.round(mib(rss))} MiB`),
    figure.rate(NAME, 'vs bare grpc-js count server', rate, 'deviations/s', 'bare grpc-js deviations/s', grpcFloor, null,
      `${grpcBurst.deviations} deviations counted in ${Math.round(grpcBurst.ms)} ms`),
    figure.rate(NAME, 'vs bare better-sqlite3 inserts', rate, 'deviations/s', 'bare better-sqlite3 rows/s', sqliteFloor.rate, null,
      `${rows.length} rows, ${BATCH} per transaction, WAL, synchronous=FULL; mean of ${Math.round(sqliteBefore.rate)} before and ${Math.round(sqliteAfter.rate)} after the collector ran`),
    figure.info(NAME, 'batches per commit (group commit)', perCommit, 'batches', `${commits} transactions`),
    figure.info(NAME, 'batch ack latency p50', percentile(burst.latencies, 50), 'ms', `send → ack of a ${BATCH}-deviation batch, ${WINDOW} in flight per agent`),
    figure.info(NAME, 'batch ack latency p99', percentile(burst.latencies, 99), 'ms'),
  ];
}

export const scenario: Scenario = { name: NAME, title: 'Collector ingest', run };
