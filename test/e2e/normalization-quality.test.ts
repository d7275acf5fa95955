/**
 * The quality bar for normalization: after learning a workload, the same workload replayed with
 * fresh volatile values raises nothing, and each injected anomaly (a shell, a new binary, a binary
 * from /tmp, a new listening port, a new outbound peer) raises exactly one alert.
 * Runs the agent's real pipeline (parser, attribution, normalization, engine, SQLite spool).
 */
import test from 'ava';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { createAttributor } from '../../agent/attribution/attributor.js';
import { createAgentMetrics } from '../../agent/metrics.js';
import { createPipeline } from '../../agent/pipeline.js';
import { createFalcoLineDecoder } from '../../agent/sources/falco-lines.js';
import { openAgentState } from '../../agent/state/index.js';
import { createBaselineEngine } from '../../core/baseline.js';
import { describeEntry } from '../../core/entry.js';
import type { Deviation } from '../../core/deviation.js';
import { DEFAULT_CLUSTER_CIDRS, parseCidr } from '../../core/ip.js';
import { DEMO_ANOMALIES, falcoStreamLines } from '../../fixtures/falco-stream.js';
import { testSourceContext } from '../helpers/source-context.js';

const HOUR = 3_600_000;
const START = Date.UTC(2026, 10, 23, 8, 0, 0);

function setup(t: import('ava').ExecutionContext) {
  const dir = mkdtempSync(join(tmpdir(), 'dw-quality-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const state = openAgentState(dir, 256 << 20);
  t.teardown(() => state.close());
  const engine = createBaselineEngine({ learningWindowMs: 4 * HOUR });
  const pipeline = createPipeline(
    { entryOptions: { clusterRanges: DEFAULT_CLUSTER_CIDRS.map(parseCidr) }, statsIntervalMs: 30_000, attributionWaitMs: 60_000 },
    { engine, state, attributor: createAttributor(), metrics: createAgentMetrics(), logger: pino({ level: 'silent' }), now: Date.now, onSpooled: () => {} },
  );
  const ctx = testSourceContext();
  const feed = (lines: Iterable<string>) => {
    const decoder = createFalcoLineDecoder('test', ctx);
    let text = '';
    for (const line of lines) text += `${line}\n`;
    pipeline.process({ events: decoder.push(Buffer.from(text)) }, 'test');
  };
  const deviations = () => state.peek(0, 100_000, Number.MAX_SAFE_INTEGER).filter((r) => r.kind === 'deviation').map((r) => JSON.parse(r.body) as Deviation);
  return { feed, deviations, engine, ctx };
}

test('fresh values raise nothing; each injected anomaly raises exactly its alert', (t) => {
  const { feed, deviations, engine, ctx } = setup(t);
  // Learn four hours of seed 1.
  feed(falcoStreamLines({ seed: 1, startMs: START, durationMs: 4 * HOUR }));
  t.true([...engine.all()].every((b) => b.state === 'learning'));
  // The same workloads, later, with fresh container ids, pods, IPs, pids, ports and temp names.
  feed(falcoStreamLines({ seed: 2, startMs: START + 5 * HOUR, durationMs: 3 * HOUR }));
  t.true([...engine.all()].every((b) => b.state === 'enforcing'));
  t.deepEqual(deviations().map((d) => `${d.key}: ${describeEntry(d.entry)}`), [], 'normal traffic with fresh values raised deviations');

  // Seed 3 with the anomalies injected one hour in.
  feed(falcoStreamLines({ seed: 3, startMs: START + 9 * HOUR, durationMs: 3 * HOUR, anomaliesAtMs: START + 10 * HOUR }));
  const found = deviations();
  const kinds = found.map((d) => `${d.key} ${d.event.kind} ${d.event.kind === 'exec' ? d.event.process.exe : `${d.event.network?.remoteAddress || d.event.network?.localAddress}:${d.event.kind === 'connect' ? d.event.network?.remotePort : d.event.network?.localPort}`}`);
  const expected = DEMO_ANOMALIES.flatMap((a) => {
    const what = a.kind === 'exec' ? a.exe : `${a.remoteAddress ?? a.localAddress}:${a.port}`;
    return Array.from({ length: a.count }, () => `${a.image} ${a.kind} ${what}`);
  });
  t.deepEqual(kinds.sort(), expected.sort());
  t.deepEqual(ctx.rejects, []);
});
