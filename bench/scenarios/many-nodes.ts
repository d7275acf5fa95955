/**
 * Scenario 4 — many nodes: 1,000 concurrent agent streams (10 processes × 100 streams, each stream
 * its own connection, Hello then a Heartbeat every 10 s like the agent) held by one collector: its
 * RSS and CPU while they idle, against the same collector with no stream; then 100 of them burst at
 * once (a bad deploy) and the ingest rate is compared with bare better-sqlite3 inserts of the same rows.
 */
import { join } from 'node:path';
import type { SimConfig } from '../children/sim-agent.js';
import { streamFile } from '../lib/data.js';
import { eventPool, makeDeviation } from '../lib/deviations.js';
import { checkSpec } from '../lib/hot-path-data.js';
import { cpuShareOver, mib, rssOf, sleep, waitFor } from '../lib/measure.js';
import { metricValue, spawnCollector } from '../lib/procs.js';
import { startSims } from '../lib/sims.js';
import { rowOf, sqliteInsertFloor } from '../lib/sqlite-floor.js';
import { figure, type Figure, type Scenario, type ScenarioContext } from '../lib/types.js';

const NAME = 'many-nodes';
// Full: 10 processes × 100 streams, 10 of each bursting. Quick: 4 × 50, 5 of each.
// A bad deploy: deviations of 20 images × 5 new behaviours (at most 100 alerts), from every node.
const IMAGES = 20;
const VARIANTS = 5;
const POOL = 2_000;

async function run(ctx: ScenarioContext): Promise<Figure[]> {
  const PROCESSES = ctx.quick ? 4 : 10;
  const STREAMS_PER_PROCESS = ctx.quick ? 50 : 100;
  const BURSTING_PER_PROCESS = ctx.quick ? 5 : 10;
  const total = PROCESSES * STREAMS_PER_PROCESS;
  const bursting = PROCESSES * BURSTING_PER_PROCESS;
  const pool = streamFile(ctx.cacheDir, checkSpec(ctx.quick));
  const batchSize = ctx.quick ? 100 : 500;
  const batchesPerStream = ctx.quick ? 1 : 2;
  const idleMs = ctx.quick ? 1_000 : 10_000;
  const collector = await spawnCollector(join(ctx.workDir, 'collector.db'));
  const metrics = `${collector.url}/metrics`;

  // The same collector with no agent: the floor for its idle RSS and CPU.
  await sleep(ctx.quick ? 300 : 1_000);
  const cpuNone = await cpuShareOver(collector.pid, idleMs);
  const rssNone = rssOf(collector.pid);
  ctx.log(`no streams: RSS ${Math.round(mib(rssNone))} MiB, CPU ${cpuNone.toFixed(3)} cores`);

  const configs: SimConfig[] = Array.from({ length: PROCESSES }, (_, p) => ({
    target: collector.target,
    nodes: Array.from({ length: STREAMS_PER_PROCESS }, (_, s) => `node-${p * STREAMS_PER_PROCESS + s + 1}`),
    poolPath: pool.path,
    poolSize: POOL,
    poolImages: IMAGES,
    batchesPerStream,
    batchSize,
    window: 4,
    variants: VARIANTS,
    serialBase: p * 10_000_000,
    heartbeatMs: 10_000,
    maxSendMs: 60_000,
    encodeStreams: BURSTING_PER_PROCESS,
  }));
  const t0 = performance.now();
  const sims = await startSims(configs, 180_000);
  const streams = await waitFor(async () => {
    const n = await metricValue(metrics, 'driftwatch_collector_agent_streams');
    return n >= PROCESSES * STREAMS_PER_PROCESS ? n : undefined;
  }, 60_000, 'every stream to be open', 200);
  const connectMs = performance.now() - t0;
  ctx.log(`${streams} streams open after ${Math.round(connectMs)} ms`);
  await sleep(ctx.quick ? 300 : 1_000);
  const cpuIdle = await cpuShareOver(collector.pid, idleMs);
  const rssIdle = rssOf(collector.pid);
  ctx.log(`${streams} idle streams: RSS ${Math.round(mib(rssIdle))} MiB, CPU ${cpuIdle.toFixed(3)} cores`);

  const burst = await sims.burst(BURSTING_PER_PROCESS, 180_000);
  const rate = burst.deviations / (burst.ms / 1000);
  const rssBurst = rssOf(collector.pid);
  ctx.log(`burst: ${burst.deviations} deviations from ${bursting} agents in ${Math.round(burst.ms)} ms = ${Math.round(rate)}/s`);
  const stillOpen = await metricValue(metrics, 'driftwatch_collector_agent_streams');
  await sims.stop();
  await collector.stop();

  // Floor: the same rows through bare better-sqlite3.
  const events = eventPool(pool.path, POOL, IMAGES);
  const rows = [];
  const receivedAt = Date.now();
  for (let p = 0; p < PROCESSES; p++) {
    for (let s = 0; s < BURSTING_PER_PROCESS; s++) {
      const node = `node-${p * STREAMS_PER_PROCESS + s + 1}`;
      for (let k = 0; k < batchesPerStream * batchSize; k++) {
        const serial = p * 10_000_000 + s * batchesPerStream * batchSize + k;
        rows.push(rowOf(makeDeviation(events[serial % events.length]!, node, serial % VARIANTS, serial), receivedAt));
      }
    }
  }
  const floor = sqliteInsertFloor(ctx.workDir, rows, batchSize);
  ctx.log(`sqlite floor: ${Math.round(floor.rate)} rows/s`);

  return [
    figure.cost(NAME, `collector RSS, ${total} idle streams`, mib(rssIdle), 'MiB', 'RSS with no stream', mib(rssNone), null,
      `${streams} streams open in ${(connectMs / 1000).toFixed(1)} s (${PROCESSES} processes, one connection per stream)`),
    figure.info(NAME, `collector CPU, ${total} idle streams`, cpuIdle, 'cores', `heartbeat every 10 s per stream; with no stream: ${cpuNone.toFixed(3)} cores; over ${idleMs / 1000} s`),
    figure.rate(NAME, `burst ingest, ${bursting} of ${total} agents at once`, rate, 'deviations/s', 'bare better-sqlite3 rows/s', floor.rate, null,
      `${burst.deviations} deviations, ${batchesPerStream}×${batchSize} per agent; ${stillOpen} streams still open after; RSS after ${Math.round(mib(rssBurst))} MiB`),
  ];
}

export const scenario: Scenario = { name: NAME, title: 'Many nodes', run };
