/**
 * The agent's real hot path, in this process: the falco-file source (read + split + parse +
 * normalize), executables resolved in their container's root (none of the recorded containers or
 * processes runs here: the misses and /proc reads an agent pays for events of processes gone),
 * attribution, key, entry, learn/check, and deviations committed to a real SQLite spool in a temp dir
 * — exactly what startAgent wires together, minus the uplink and HTTP server.
 */
import { closeSync, mkdtempSync, openSync, readSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { PerformanceObserver } from 'node:perf_hooks';
import { createBaselineEngine, snapshotOf, type BaselineSnapshot } from '../../core/baseline.js';
import { DEFAULT_CLUSTER_CIDRS, parseCidr } from '../../core/ip.js';
import { createAttributor } from '../../agent/attribution/attributor.js';
import { createExecutableResolver } from '../../agent/attribution/container-path.js';
import { createAgentMetrics } from '../../agent/metrics.js';
import { createPipeline } from '../../agent/pipeline.js';
import { falcoFileSource } from '../../agent/sources/falco-file.js';
import { openAgentState } from '../../agent/state/index.js';
import { createLogger } from '../../runtime/logger.js';

/** What one pass of a file through the pipeline did. */
export interface PipelinePass {
  /** Reading and processing every batch (the periodic 1 s flushes included). */
  ms: number;
  /** The final forced flush: every touched baseline persisted and spooled (what the 30 s stats interval does). */
  flushMs: number;
  /** Garbage collection pauses during `ms`. */
  gcMs: number;
  events: number;
  deviations: number;
  matched: number;
  learned: number;
  unattributed: number;
  rejected: number;
  baselines: number;
  snapshots?: BaselineSnapshot[];
}

const counterTotal = async (c: { get(): Promise<{ values: { value: number; labels: Partial<Record<string, string | number>> }[] }> }, label?: [string, string]) =>
  (await c.get()).values.filter((v) => !label || v.labels[label[0]] === label[1]).reduce((n, v) => n + v.value, 0);

/**
 * Run `path` through a fresh pipeline whose engine starts from `snapshots`. Times everything from
 * opening the source to the last batch committed and the final flush.
 */
export async function pipelinePass(
  workDir: string,
  path: string,
  snapshots: Iterable<BaselineSnapshot>,
  options: { learningWindowMs?: number; keepSnapshots?: boolean; node?: string; clone?: boolean; finalFlush?: boolean } = {},
): Promise<PipelinePass> {
  const dir = mkdtempSync(join(workDir, 'agent-state-'));
  const state = openAgentState(dir, 256 << 20);
  const engine = createBaselineEngine({ learningWindowMs: options.learningWindowMs ?? 3_600_000, keyMode: 'repository' });
  for (const s of snapshots) engine.restore(options.clone === false ? s : structuredClone(s));
  const metrics = createAgentMetrics();
  const logger = createLogger('bench-agent', 'silent');
  const pipeline = createPipeline(
    { entryOptions: { clusterRanges: DEFAULT_CLUSTER_CIDRS.map(parseCidr) }, statsIntervalMs: 30_000, attributionWaitMs: 60_000 },
    {
      engine,
      state,
      attributor: createAttributor(),
      executables: createExecutableResolver({}, { now: Date.now, count: (source, outcome, n) => metrics.exeResolutions.inc({ source, outcome }, n) }),
      metrics,
      logger,
      now: Date.now,
      onSpooled: () => {},
    },
  );
  let rejected = 0;
  const source = falcoFileSource.create(path, {
    node: options.node ?? 'node-1',
    logger,
    maxRecordBytes: 1 << 20,
    follow: false,
    savedPosition: undefined,
    rejected: () => {
      rejected++;
    },
  });
  const controller = new AbortController();
  let events = 0;
  // The agent flushes baselines every second; so does this pass.
  const flushTimer = setInterval(() => pipeline.flush(false), 1_000);
  // GC pauses that started inside the timed window (entries arrive asynchronously, some late).
  const gcPauses: { start: number; duration: number }[] = [];
  const gcObserver = new PerformanceObserver((list) => {
    for (const e of list.getEntries()) gcPauses.push({ start: e.startTime, duration: e.duration });
  });
  gcObserver.observe({ entryTypes: ['gc'] });
  const t0 = performance.now();
  let ms = 0;
  let flushMs = 0;
  try {
    for await (const batch of source.batches(controller.signal)) {
      events += batch.events.length;
      pipeline.process(batch, source.name);
    }
    ms = performance.now() - t0;
    // GC entries are delivered asynchronously: let them arrive.
    await new Promise((resolve) => setImmediate(resolve));
    gcObserver.disconnect();
    if (options.finalFlush !== false) pipeline.flush(true);
    flushMs = performance.now() - t0 - ms;
  } finally {
    clearInterval(flushTimer);
  }
  const gcMs = gcPauses.filter((p) => p.start >= t0 && p.start <= t0 + ms).reduce((n, p) => n + p.duration, 0);
  const result: PipelinePass = {
    ms,
    flushMs,
    gcMs,
    events,
    deviations: await counterTotal(metrics.verdicts, ['verdict', 'deviation']),
    matched: await counterTotal(metrics.verdicts, ['verdict', 'matched']),
    learned: await counterTotal(metrics.learned),
    unattributed: await counterTotal(metrics.unattributed),
    rejected,
    baselines: engine.size,
  };
  if (options.keepSnapshots) result.snapshots = [...engine.all()].map(snapshotOf);
  state.close();
  rmSync(dir, { recursive: true, force: true });
  return result;
}

/**
 * The floor: the same file read in the same 256 KiB chunks as the agent's file source, each chunk
 * decoded, `split('\n')`, and every complete line given to a bare `JSON.parse`, in this process.
 */
export function jsonParseFloor(path: string): { ms: number; lines: number } {
  const t0 = performance.now();
  const fd = openSync(path, 'r');
  const buf = Buffer.allocUnsafe(256 * 1024);
  let carry = '';
  let n = 0;
  let objects = 0;
  try {
    for (;;) {
      const got = readSync(fd, buf, 0, buf.length, null);
      if (got === 0) break;
      const parts = (carry + buf.toString('utf8', 0, got)).split('\n');
      carry = parts.pop() as string;
      for (const line of parts) {
        if (line === '') continue;
        const rec = JSON.parse(line) as Record<string, unknown>;
        if (rec.output_fields !== undefined) objects++;
        n++;
      }
    }
    if (carry !== '') {
      JSON.parse(carry);
      n++;
    }
  } finally {
    closeSync(fd);
  }
  const ms = performance.now() - t0;
  if (objects < 0) console.log(objects); // keep the parse observable
  return { ms, lines: n };
}
