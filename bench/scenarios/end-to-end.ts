/**
 * Scenario 2 — agent to collector, end to end, with real processes: `driftwatch agent` reading a
 * Falco file (its state dir holding enforcing baselines) and streaming deviations over gRPC to
 * `driftwatch collector`, which commits them and serves them on its API.
 *
 * - throughput: the agent reads a whole file to its end (--exit-when-done): events/s against the
 *   split + JSON.parse floor of the same file; and a deviation storm (every event deviating):
 *   deviations/s committed by the collector against bare better-sqlite3 inserts of the same rows;
 * - latency: the agent follows a file to which this process appends 4,000 normal events and 1,000
 *   deviations a second (8 fingerprints) for 34 s, which includes the agent's periodic (30 s)
 *   baseline-statistics flush; for each deviation, the time from its line being written to the
 *   collector's API (GET /api/v1/alerts, polled every 10 ms) counting it in its alert.
 */
import { closeSync, mkdirSync, openSync, readFileSync, writeFileSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { baselineKey, type BaselineSnapshot } from '../../core/baseline.js';
import { entryId, entryOf, fingerprint } from '../../core/entry.js';
import { DEFAULT_CLUSTER_CIDRS, parseCidr } from '../../core/ip.js';
import { parseFalcoLine } from '../../agent/sources/falco-event.js';
import { isRejected } from '../../agent/sources/record.js';
import { falcoStreamLines } from '../../fixtures/falco-stream.js';
import { seedAgentState } from '../lib/agent-state.js';
import { deviatingVariant } from '../lib/data.js';
import { checkSpec, hotPathInputs } from '../lib/hot-path-data.js';
import { cpuSecondsOf, median, percentile, sleep, waitFor } from '../lib/measure.js';
import { jsonParseFloor } from '../lib/pipeline.js';
import { getJson, metricValue, spawnAgent, spawnCollector, type CollectorChild } from '../lib/procs.js';
import { sqliteInsertFloor, type DeviationRow } from '../lib/sqlite-floor.js';
import { figure, type Figure, type Scenario, type ScenarioContext } from '../lib/types.js';

const NAME = 'end-to-end';
const NODE = 'node-1';

/** Poll the collector's stored-deviation counter; resolves with when it last changed once it is stable. */
async function whenAllStored(collector: CollectorChild, agentExited: Promise<unknown>, timeoutMs: number): Promise<{ stored: number; at: number }> {
  let last = -1;
  let at = performance.now();
  let exited = false;
  void agentExited.then(() => (exited = true));
  const deadline = performance.now() + timeoutMs;
  for (;;) {
    const n = await metricValue(`${collector.url}/metrics`, 'driftwatch_collector_deviations_total', 'outcome="stored"');
    const t = performance.now();
    if (n !== last) {
      last = n;
      at = t;
    } else if (exited && t - at > 300) {
      return { stored: last, at };
    }
    if (t > deadline) throw new Error(`deviations still arriving after ${timeoutMs} ms`);
    await sleep(20);
  }
}

/** Run an agent over `file` to its end; returns events/s (by the agent's own log times) and deviations/s. */
async function throughput(ctx: ScenarioContext, label: string, file: string, snapshots: readonly BaselineSnapshot[], events: number) {
  const dir = join(ctx.workDir, `e2e-${label}`);
  mkdirSync(dir, { recursive: true });
  const stateDir = join(dir, 'agent');
  seedAgentState(stateDir, snapshots);
  const collector = await spawnCollector(join(dir, 'collector.db'));
  const agent = await spawnAgent(['--source', `falco-file:${file}`, '--collector', collector.target, '--node', NODE, '--state-dir', stateDir, '--exit-when-done', '--drain-timeout', '60s']);
  const t0 = agent.startedAt;
  const ended = await agent.waitForLog((l) => l.msg === 'source ended', 300_000);
  const readMs = Date.parse(ended.time as string) - agent.startedLogTime;
  const agentCpu = cpuSecondsOf(agent.pid);
  const all = await whenAllStored(collector, agent.exited, 300_000);
  const code = await agent.exited;
  if (code !== 0) throw new Error(`agent exited with ${code}: ${agent.stderr.slice(-500)}`);
  await collector.stop();
  return { collector, dir, readMs, eventsPerSec: events / (Math.max(1, readMs) / 1000), deviations: all.stored, deviationsPerSec: all.stored / ((all.at - t0) / 1000), allMs: all.at - t0, agentCpu };
}

/** A deviation storm: the deviating variant of each of the first `maxLines` lines of `src` (host lines are skipped). */
function stormFile(src: string, out: string, maxLines: number): { events: number; injected: number } {
  const lines = readFileSync(src, 'utf8').split('\n').filter((l) => l !== '').slice(0, maxLines);
  const outLines: string[] = [];
  for (let i = 0; i < lines.length; i++) {
    const v = deviatingVariant(lines[i] as string, 1_000_000 + i);
    if (v) outLines.push(v);
  }
  writeFileSync(out, `${outLines.join('\n')}\n`);
  return { events: outLines.length, injected: outLines.length };
}

async function run(ctx: ScenarioContext): Promise<Figure[]> {
  const { check, baselines } = await hotPathInputs(ctx);
  const figures: Figure[] = [];

  // ---- throughput on the realistic file (0.1% deviating)
  const floorRates: number[] = [];
  for (let i = 0; i < (ctx.quick ? 1 : 3); i++) {
    const f = jsonParseFloor(check.path);
    floorRates.push(f.lines / (f.ms / 1000));
  }
  const real = await throughput(ctx, 'realistic', check.path, baselines, check.events);
  ctx.log(`realistic file: ${check.events} events read in ${real.readMs} ms (${Math.round(real.eventsPerSec)}/s), ${real.deviations} deviations stored`);
  figures.push(
    figure.rate(NAME, 'agent process events/s (file to end)', real.eventsPerSec, 'events/s', 'split + JSON.parse events/s', median(floorRates), null,
      `${check.events} events, ${real.deviations} deviations stored; agent CPU ${real.agentCpu.toFixed(1)} s`),
  );

  // ---- deviation storm: every event deviating (a bad deploy on this node)
  const storm = join(ctx.workDir, 'storm.jsonl');
  const s = stormFile(check.path, storm, ctx.quick ? 4_000 : 30_000);
  const st = await throughput(ctx, 'storm', storm, baselines, s.events);
  const db = new Database(join(st.dir, 'collector.db'), { readonly: true });
  const rows = db.prepare('SELECT id, fingerprint, baseline_key, kind, time, received_at, node, body FROM deviations ORDER BY seq').raw().all() as DeviationRow[];
  db.close();
  const sqliteFloor = sqliteInsertFloor(ctx.workDir, rows, 500);
  ctx.log(`storm: ${st.deviations} deviations stored in ${Math.round(st.allMs)} ms (${Math.round(st.deviationsPerSec)}/s); bare sqlite ${Math.round(sqliteFloor.rate)} rows/s`);
  figures.push(
    figure.rate(NAME, 'deviation storm: deviations/s committed', st.deviationsPerSec, 'deviations/s', 'bare better-sqlite3 rows/s', sqliteFloor.rate, null,
      `${s.events} events, every one deviating; ${st.deviations} stored; the agent read the file in ${st.readMs} ms, the collector had them all ${Math.round(st.allMs)} ms after the agent started`),
  );

  // ---- latency at a steady 1,000 deviations/s
  figures.push(...(await latency(ctx, baselines)));
  return figures;
}

async function latency(ctx: ScenarioContext, baselines: readonly BaselineSnapshot[]): Promise<Figure[]> {
  const dir = join(ctx.workDir, 'e2e-latency');
  mkdirSync(dir, { recursive: true });
  const stateDir = join(dir, 'agent');
  seedAgentState(stateDir, baselines);
  const enforcing = new Set(baselines.filter((b) => b.state === 'enforcing').map((b) => b.key));

  // Normal lines: the check stream without injected deviations; deviation templates: exec lines of enforcing images.
  const normal: string[] = [];
  for (const line of falcoStreamLines({ ...checkSpec(ctx.quick), deviateEvery: undefined } as Parameters<typeof falcoStreamLines>[0])) {
    normal.push(line);
    if (normal.length >= 20_000) break;
  }
  const clusterRanges = { clusterRanges: DEFAULT_CLUSTER_CIDRS.map(parseCidr) };
  const templates: { line: string; fp: string }[] = [];
  const seenKeys = new Set<string>();
  for (const line of normal) {
    if (templates.length >= 8) break;
    if (!line.includes('"evt.type":"execve"')) continue;
    const variant = deviatingVariant(line, templates.length * 5);
    if (!variant) continue;
    const ev = parseFalcoLine(variant, { node: NODE, source: 'x' });
    if (isRejected(ev)) continue;
    const key = baselineKey(ev, 'repository');
    if (!key || !enforcing.has(key) || seenKeys.has(key)) continue;
    const entry = entryOf(ev, clusterRanges);
    if (!entry) continue;
    seenKeys.add(key);
    templates.push({ line: variant, fp: fingerprint(key, entryId(entry)) });
  }
  if (templates.length === 0) throw new Error('no deviation template found');

  const file = join(dir, 'falco.json');
  writeFileSync(file, '');
  const collector = await spawnCollector(join(dir, 'collector.db'));
  // Statistics flushes every 10 s (default 60 s), so the run includes several of them.
  const agent = await spawnAgent(['--source', `falco-file:${file}`, '--collector', collector.target, '--node', NODE, '--state-dir', stateDir, '--stats-interval', '10s']);
  await waitFor(async () => ((await metricValue(`${agent.httpUrl}/metrics`, 'driftwatch_agent_uplink_connected')) === 1 ? true : undefined), 20_000, 'the agent to connect');

  const TICK_MS = 10;
  const DEV_PER_TICK = 10; // 1,000 deviations/s
  const NORMAL_PER_TICK = 40; // 4,000 normal events/s
  const warmMs = ctx.quick ? 500 : 2_000;
  // Full: long enough to include three of the agent's baseline-statistics flushes.
  const runMs = ctx.quick ? 2_000 : 32_000;
  const written = new Map<string, number[]>(templates.map((t) => [t.fp, []]));
  const countedFrom = new Map<string, number>(); // emissions before the warm-up ended are not counted
  const seen = new Map<string, number>(templates.map((t) => [t.fp, 0]));
  const latencies: number[] = [];
  const apiMs: number[] = [];
  let pid = 5_000_000;
  let normalIdx = 0;
  let writing = true;
  let stopAt = Infinity;
  let start = Infinity;
  const worstBySecond = new Map<number, number>();

  // Poller: the alerts list, every 10 ms, one request at a time.
  const poller = (async () => {
    while (writing || [...written].some(([fp, w]) => (seen.get(fp) as number) < w.length)) {
      const t0 = performance.now();
      const page = await getJson<{ items: { id: string; count: number }[] }>(`${collector.url}/api/v1/alerts?limit=50`);
      const at = performance.now();
      apiMs.push(at - t0);
      for (const a of page.items) {
        const w = written.get(a.id);
        if (!w) continue;
        const before = seen.get(a.id) as number;
        const from = countedFrom.get(a.id) ?? Infinity;
        for (let k = before; k < Math.min(a.count, w.length); k++) {
          if (k < from) continue;
          const l = at - (w[k] as number);
          latencies.push(l);
          const sec = Math.floor(((w[k] as number) - start) / 1000);
          worstBySecond.set(sec, Math.max(worstBySecond.get(sec) ?? 0, l));
        }
        if (a.count > before) seen.set(a.id, a.count);
      }
      if (!writing && at - stopAt > 30_000) throw new Error('deviations not visible 30 s after the last write');
      await sleep(Math.max(0, 10 - (performance.now() - t0)));
    }
  })();

  const fd = openSync(file, 'a');
  start = performance.now();
  const cpuAgent0 = cpuSecondsOf(agent.pid);
  const cpuCollector0 = cpuSecondsOf(collector.pid);
  let ticks = 0;
  let devWritten = 0;
  let normalWritten = 0;
  while (performance.now() - start < warmMs + runMs) {
    const due = Math.floor((performance.now() - start) / TICK_MS) + 1;
    const parts: string[] = [];
    const emitted: { fp: string }[] = [];
    for (; ticks < due; ticks++) {
      for (let i = 0; i < NORMAL_PER_TICK; i++) {
        parts.push(normal[normalIdx % normal.length] as string);
        normalIdx++;
        normalWritten++;
      }
      for (let i = 0; i < DEV_PER_TICK; i++) {
        const t = templates[(ticks * DEV_PER_TICK + i) % templates.length]!;
        parts.push(t.line.replace(/"proc\.pid":\d+/, `"proc.pid":${pid++}`));
        emitted.push({ fp: t.fp });
        devWritten++;
      }
    }
    writeSync(fd, `${parts.join('\n')}\n`);
    const at = performance.now();
    const counting = at - start >= warmMs;
    for (const e of emitted) {
      const w = written.get(e.fp) as number[];
      if (counting && !countedFrom.has(e.fp)) countedFrom.set(e.fp, w.length);
      w.push(at);
    }
    await sleep(Math.max(0, start + ticks * TICK_MS - performance.now()));
  }
  const elapsed = (performance.now() - start) / 1000;
  const cpuAgent = (cpuSecondsOf(agent.pid) - cpuAgent0) / elapsed;
  const cpuCollector = (cpuSecondsOf(collector.pid) - cpuCollector0) / elapsed;
  stopAt = performance.now();
  writing = false;
  closeSync(fd);
  await poller;
  // Where slow moments came from: batches the agent took long to process, commits the collector
  // took long to make durable (fsync), read from their own histograms.
  const slow = async (url: string, name: string, le: string) =>
    (await metricValue(url, `${name}_count`)) - (await metricValue(url, `${name}_bucket`, `le="${le}"`));
  const stalls =
    `collector commits > 0.25 s: ${await slow(`${collector.url}/metrics`, 'driftwatch_collector_batch_commit_seconds', '0.25')}, > 1 s: ${await slow(`${collector.url}/metrics`, 'driftwatch_collector_batch_commit_seconds', '1')}; ` +
    `agent batches > 0.5 s: ${await slow(`${agent.httpUrl}/metrics`, 'driftwatch_agent_batch_duration_seconds', '0.5')}; ` +
    // Longest event-loop block of each process during the run (prom-client resets it per scrape).
    `longest event-loop block: collector ${(await metricValue(`${collector.url}/metrics`, 'driftwatch_collector_nodejs_eventloop_lag_max_seconds')).toFixed(2)} s, ` +
    `agent ${(await metricValue(`${agent.httpUrl}/metrics`, 'driftwatch_agent_nodejs_eventloop_lag_max_seconds')).toFixed(2)} s`;
  ctx.log(stalls);
  // Anything either process said about its stream (disconnects, reconnects) during the run.
  for (const [who, p] of [['agent', agent], ['collector', collector]] as const) {
    for (const l of p.logs) if (l.level !== 30 || /connect|stream|closing/i.test(String(l.msg))) ctx.log(`${who} log: ${JSON.stringify(l).slice(0, 300)}`);
  }
  await agent.stop();
  await collector.stop();

  const p50 = percentile(latencies, 50);
  const p99 = percentile(latencies, 99);
  const api = median(apiMs);
  ctx.log(`worst latency by second of writing: ${[...worstBySecond].sort((a, b) => a[0] - b[0]).map(([sec, ms]) => `${sec}s:${Math.round(ms)}`).join(' ')}`);
  ctx.log(`latency: ${latencies.length} deviations, p50 ${p50.toFixed(1)} ms, p99 ${p99.toFixed(1)} ms (API round trip ${api.toFixed(1)} ms)`);
  const note = `${devWritten} deviations (${(devWritten / elapsed).toFixed(0)}/s) among ${devWritten + normalWritten} events (${((devWritten + normalWritten) / elapsed).toFixed(0)}/s) over ${elapsed.toFixed(1)} s; ${latencies.length} measured after ${warmMs / 1000} s warm-up; agent ${cpuAgent.toFixed(2)} cores, collector ${cpuCollector.toFixed(2)} cores`;
  return [
    figure.cost(NAME, 'event → alert visible in API, p50', p50, 'ms', 'API round trip p50', api, null, note),
    figure.cost(NAME, 'event → alert visible in API, p99', p99, 'ms', 'API round trip p50', api, 250, `API polled every 10 ms; ${stalls}`),
  ];
}

export const scenario: Scenario = { name: NAME, title: 'Agent to collector, end to end', run };
