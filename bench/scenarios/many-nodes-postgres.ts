/**
 * Many nodes on PostgreSQL (issue 20): 5,000 idle agent streams (the most nodes Kubernetes supports
 * in one cluster) spread evenly over 3 collector replicas on one PostgreSQL, with many-nodes'
 * simulated agents (each stream its own connection, Hello then a Heartbeat every 10 s like the agent;
 * up to 500 streams per process, each process on one replica). Reported per replica: RSS and CPU
 * while the streams idle, against the same replica's RSS and CPU with no stream (the floor, as in
 * many-nodes). Quick: 300 streams.
 */
import type { SimConfig } from '../children/sim-agent.js';
import { streamFile } from '../lib/data.js';
import { checkSpec } from '../lib/hot-path-data.js';
import { cpuShareOver, mib, rssOf, sleep, waitFor } from '../lib/measure.js';
import { spawnPostgresCollector, startDurablePostgres, urlFile } from '../lib/postgres-bench.js';
import { metricValue, type CollectorChild } from '../lib/procs.js';
import { startSims, type SimGroup } from '../lib/sims.js';
import { figure, type Figure, type Scenario, type ScenarioContext } from '../lib/types.js';

const NAME = 'many-nodes-postgres';
const REPLICAS = 3;
const PER_PROCESS = 500;

async function run(ctx: ScenarioContext): Promise<Figure[]> {
  const total = ctx.quick ? 300 : 5_000;
  const idleMs = ctx.quick ? 2_000 : 10_000;
  const pool = streamFile(ctx.cacheDir, checkSpec(ctx.quick));
  const server = await startDurablePostgres();
  const collectors: CollectorChild[] = [];
  let sims: SimGroup | undefined;
  try {
    const file = urlFile(ctx.workDir, await server.createDatabase());
    for (let r = 0; r < REPLICAS; r++) collectors.push(await spawnPostgresCollector(file));
    await sleep(ctx.quick ? 500 : 2_000);
    const cpuNone = await Promise.all(collectors.map((c) => cpuShareOver(c.pid, idleMs)));
    const rssNone = collectors.map((c) => rssOf(c.pid));
    ctx.log(`no streams: RSS ${rssNone.map((b) => Math.round(mib(b))).join(' / ')} MiB, CPU ${cpuNone.map((c) => c.toFixed(3)).join(' / ')} cores`);

    // Streams per replica (as even as the total allows), cut into processes of at most PER_PROCESS.
    const configs: SimConfig[] = [];
    let node = 0;
    const perReplica = collectors.map((_, r) => Math.floor(total / REPLICAS) + (r < total % REPLICAS ? 1 : 0));
    collectors.forEach((c, r) => {
      const processes = Math.ceil(perReplica[r]! / PER_PROCESS);
      for (let p = 0; p < processes; p++) {
        const n = Math.floor(perReplica[r]! / processes) + (p < perReplica[r]! % processes ? 1 : 0);
        configs.push({
          target: c.target,
          nodes: Array.from({ length: n }, () => `node-${++node}`),
          poolPath: pool.path,
          poolSize: 100,
          batchesPerStream: 0,
          batchSize: 1,
          window: 1,
          variants: 1,
          serialBase: configs.length * 10_000_000,
          heartbeatMs: 10_000,
          maxSendMs: 1_000,
          encodeStreams: 0,
        });
      }
    });
    const t0 = performance.now();
    sims = await startSims(configs, ctx.quick ? 60_000 : 180_000);
    const open = await waitFor(async () => {
      const n = await Promise.all(collectors.map((c) => metricValue(`${c.url}/metrics`, 'driftwatch_collector_agent_streams')));
      return n.every((v, r) => v >= perReplica[r]!) ? n : undefined;
    }, ctx.quick ? 30_000 : 120_000, 'every stream to be open', 200);
    const connectMs = performance.now() - t0;
    ctx.log(`${open.join(' + ')} streams open after ${Math.round(connectMs)} ms (${configs.length} processes)`);
    await sleep(ctx.quick ? 500 : 2_000);
    const cpuIdle = await Promise.all(collectors.map((c) => cpuShareOver(c.pid, idleMs)));
    const rssIdle = collectors.map((c) => rssOf(c.pid));
    ctx.log(`${total} idle streams: RSS ${rssIdle.map((b) => Math.round(mib(b))).join(' / ')} MiB, CPU ${cpuIdle.map((c) => c.toFixed(3)).join(' / ')} cores`);
    const stillOpen = await Promise.all(collectors.map((c) => metricValue(`${c.url}/metrics`, 'driftwatch_collector_agent_streams')));

    const figures: Figure[] = [];
    collectors.forEach((_, r) => {
      figures.push(
        figure.cost(NAME, `replica ${r + 1} RSS, ${perReplica[r]} of ${total} idle streams`, mib(rssIdle[r]!), 'MiB', 'RSS with no stream', mib(rssNone[r]!), null,
          r === 0 ? `${total} streams over ${REPLICAS} replicas on one PostgreSQL (fsync=on), open in ${(connectMs / 1000).toFixed(1)} s from ${configs.length} processes, one connection per stream; ${stillOpen.join(' + ')} still open after the idle measurement` : undefined),
        figure.info(NAME, `replica ${r + 1} CPU, ${perReplica[r]} idle streams`, cpuIdle[r]!, 'cores', `heartbeat every 10 s per stream; with no stream: ${cpuNone[r]!.toFixed(3)} cores; over ${idleMs / 1000} s`),
      );
    });
    return figures;
  } finally {
    await sims?.stop().catch(() => undefined);
    await Promise.all(collectors.map((c) => c.stop().catch(() => null)));
    await server.stop();
  }
}

export const scenario: Scenario = { name: NAME, title: 'Many nodes over 3 PostgreSQL replicas', run };
