/**
 * Scenario 6 (agent part) — the agent's memory, as a real `driftwatch agent` process connected to a
 * real collector: idle with no baseline; with 2,000 enforcing baselines of 100 entries each restored
 * from its state dir; and after it has read a stream of events spread over those 2,000 baselines,
 * flushed their new counts to the collector and gone idle again (the peak while reading is noted).
 * Each phase logs where the RSS is: V8's spaces (used/committed) and the rest (SQLite, buffers).
 * The floor is an idle Node.js process that loads nothing.
 */
import { copyFileSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { seedAgentState } from '../lib/agent-state.js';
import { bareNodeRss } from '../lib/bare-node.js';
import { streamFile } from '../lib/data.js';
import { mib, peakRssOf, rssPartsOf, settledRssOf, sleep, waitFor } from '../lib/measure.js';
import { metricValue, spawnAgent, spawnCollector } from '../lib/procs.js';
import { figure, type Figure, type Scenario, type ScenarioContext } from '../lib/types.js';
import { cloneBaselines, cloneFile, growthBaselines, specs } from './growth-hot-path.js';

const NAME = 'memory';

/**
 * The agent's stats interval here (default 60 s): a baseline whose only change is counts is flushed
 * this long after its last write. Shorter than the default so that the flush of every baseline the
 * events touched falls inside the measurement every time; what it writes is the same.
 */
const STATS_INTERVAL_MS = 10_000;

/** The agent's V8 heap by space, from its /metrics: where RSS goes (live bytes vs room V8 keeps). */
async function heapOf(httpUrl: string): Promise<string> {
  const m = (name: string, label?: string) => metricValue(`${httpUrl}/metrics`, name, label);
  const parts: string[] = [`used ${Math.round(mib(await m('driftwatch_agent_nodejs_heap_size_used_bytes')))}`];
  for (const space of ['new', 'old', 'code', 'large_object']) {
    const total = await m('driftwatch_agent_nodejs_heap_space_size_total_bytes', `space="${space}"`);
    const used = await m('driftwatch_agent_nodejs_heap_space_size_used_bytes', `space="${space}"`);
    parts.push(`${space} ${Math.round(mib(used))}/${Math.round(mib(total))}`);
  }
  return `heap MiB (used/committed) ${parts.join(', ')}`;
}

/** The heap by space and where the rest of the RSS is. */
async function memoryOf(pid: number, httpUrl: string): Promise<string> {
  return `${rssPartsOf(pid)}; ${await heapOf(httpUrl)}`;
}

async function run(ctx: ScenarioContext): Promise<Figure[]> {
  const BASELINES = ctx.quick ? 200 : 2_000;
  const floor = await bareNodeRss();
  const learned = await growthBaselines(ctx);
  const images = learned.filter((b) => b.key !== '@host').length;
  const clones = Math.round(BASELINES / images);
  const check = streamFile(ctx.cacheDir, specs(ctx.quick).check);
  const events = cloneFile(check.path, clones);

  const collector = await spawnCollector(join(ctx.workDir, 'collector.db'));
  const settle = ctx.quick ? 700 : 3_000;
  // Idle RSS is the settled value, after V8 gave back the young generation a burst grew (see settledRssOf).
  const maxSettle = ctx.quick ? 2_000 : 45_000;

  // Idle, nothing learned yet.
  const idleDir = join(ctx.workDir, 'agent-idle');
  mkdirSync(idleDir, { recursive: true });
  writeFileSync(join(idleDir, 'falco.json'), '');
  const idle = await spawnAgent(['--source', `falco-file:${join(idleDir, 'falco.json')}`, '--collector', collector.target, '--node', 'node-1', '--state-dir', join(idleDir, 'state')]);
  await sleep(settle);
  const { rss: rssIdle } = await settledRssOf(idle.pid, maxSettle, ctx.quick ? 1_000 : 20_000);
  await idle.stop();

  // 2,000 baselines restored, idle; then the events.
  const dir = join(ctx.workDir, 'agent-2000');
  mkdirSync(dir, { recursive: true });
  const seeded = seedAgentState(join(dir, 'state'), cloneBaselines(learned, clones));
  const file = join(dir, 'falco.json');
  writeFileSync(file, '');
  const agent = await spawnAgent(['--source', `falco-file:${file}`, '--collector', collector.target, '--node', 'node-1', '--state-dir', join(dir, 'state'), '--stats-interval', `${STATS_INTERVAL_MS / 1000}s`]);
  const restored = agent.logs.find((l) => l.msg === 'restored baselines from the state dir')?.baselines as number | undefined;
  await sleep(settle);
  const restoredRss = await settledRssOf(agent.pid, maxSettle, ctx.quick ? 1_000 : 20_000);
  const rssRestored = restoredRss.rss;
  ctx.log(`restored, idle: ${await memoryOf(agent.pid, agent.httpUrl)}`);
  copyFileSync(events, file);
  await waitFor(async () => ((await metricValue(`${agent.httpUrl}/metrics`, 'driftwatch_agent_events_total')) >= check.events ? true : undefined), 120_000, 'the agent to read the events', 100);
  ctx.log(`after the events: ${await memoryOf(agent.pid, agent.httpUrl)}`);
  // The stats flush of every touched baseline is part of "after the events": wait for it to be due,
  // then for the spool to drain to the collector, before the RSS settles.
  await sleep(STATS_INTERVAL_MS + 2_000);
  await waitFor(async () => ((await metricValue(`${agent.httpUrl}/metrics`, 'driftwatch_agent_spool_records')) === 0 ? true : undefined), 60_000, 'the stats flush to reach the collector', 200);
  await sleep(settle);
  ctx.log(`after the stats flush: ${await memoryOf(agent.pid, agent.httpUrl)}`);
  const afterRss = await settledRssOf(agent.pid, maxSettle, ctx.quick ? 1_000 : 20_000);
  const rssAfter = afterRss.rss;
  ctx.log(`after the events, settled: ${await memoryOf(agent.pid, agent.httpUrl)}`);
  const peak = peakRssOf(agent.pid);
  await agent.stop();
  await collector.stop();
  ctx.log(`agent RSS: idle ${Math.round(mib(rssIdle))} MiB, ${restored} baselines ${Math.round(mib(rssRestored))} MiB, after ${check.events} events ${Math.round(mib(rssAfter))} MiB (peak ${Math.round(mib(peak))})`);
  const n = seeded - 1; // the host baseline is not an image's
  return [
    figure.cost(NAME, 'agent RSS idle, no baseline', mib(rssIdle), 'MiB', 'idle bare node RSS', mib(floor), null),
    figure.cost(NAME, `agent RSS idle, ${n} baselines × 100 entries`, mib(rssRestored), 'MiB', 'idle bare node RSS', mib(floor), ctx.quick ? null : 150, `${restored ?? '?'} baselines restored from the state dir; settled after ${Math.round(restoredRss.afterMs / 1000)} s (${Math.round(mib(restoredRss.first))} MiB ${settle / 1000} s after the restore)`),
    figure.cost(NAME, `agent RSS after ${check.events} events over ${n} baselines`, mib(rssAfter), 'MiB', 'idle bare node RSS', mib(floor), ctx.quick ? null : 150, `after the stats flush of every touched baseline reached the collector (--stats-interval ${STATS_INTERVAL_MS / 1000}s); peak (VmHWM, while reading) ${Math.round(mib(peak))} MiB; settled after ${Math.round(afterRss.afterMs / 1000)} s (${Math.round(mib(afterRss.first))} MiB at first)`),
  ];
}

export const scenario: Scenario = { name: 'agent-memory', title: 'Memory: agent', run };
