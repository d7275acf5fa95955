/**
 * Nothing silently lost (issue 15, item 6), on a real pipeline over a real agent state (SQLite in a
 * temp dir): events held for their container's image are handled or counted, by source and reason;
 * a source's saved position never moves past an event neither handled nor counted; event times far
 * from the wall clock or behind their stream are bounded and counted, and cannot close a learning
 * window, while a replay of recorded past hours works as it always did.
 */
import test from 'ava';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { createAttributor } from '../../agent/attribution/attributor.js';
import { createAgentMetrics } from '../../agent/metrics.js';
import { createPipeline, type PipelineOptions } from '../../agent/pipeline.js';
import { openAgentState } from '../../agent/state/index.js';
import { createBaselineEngine } from '../../core/baseline.js';
import type { ActivityEvent } from '../../core/event.js';
import { parseCidr } from '../../core/ip.js';

const HOUR = 3_600_000;
const YEAR = 365 * 24 * HOUR;

function setup(t: import('ava').ExecutionContext, options: Partial<PipelineOptions> = {}, now = () => Date.now()) {
  const dir = mkdtempSync(join(tmpdir(), 'dw-pipeline-'));
  const state = openAgentState(dir, 64 << 20);
  t.teardown(() => {
    state.close();
    rmSync(dir, { recursive: true, force: true });
  });
  const engine = createBaselineEngine({ learningWindowMs: HOUR, quietPeriodMs: 0 });
  const metrics = createAgentMetrics();
  const pipeline = createPipeline(
    { entryOptions: { clusterRanges: [parseCidr('10.0.0.0/8')] }, statsIntervalMs: 0, attributionWaitMs: 60_000, ...options },
    { engine, state, attributor: createAttributor(), metrics, logger: pino({ level: 'silent' }), now, onSpooled: () => {} },
  );
  const metric = async (name: string, labels: Record<string, string>) => {
    const m = (await metrics.registry.getSingleMetric(name)?.get())?.values ?? [];
    const v = m.find((x) => Object.entries(labels).every(([k, val]) => x.labels[k] === val));
    return v?.value ?? 0;
  };
  return { state, engine, metrics, pipeline, metric };
}

let pid = 1000;
function exec(time: number, container: string, image: string, exe = '/usr/bin/app'): ActivityEvent {
  return {
    time,
    node: 'node-1',
    source: 'file:a',
    container: { id: container, name: '', image: { repository: image, tag: '', digest: '' } },
    pod: null,
    kind: 'exec',
    process: { pid: pid++, exe, name: exe.slice(exe.lastIndexOf('/') + 1), args: [], parentExe: '', parentName: 'sh', uid: 0, user: '' },
    network: null,
  };
}

const T0 = Date.UTC(2026, 10, 23, 8);

test('the saved position waits for held events, moves once they are handled, and counts them at the end of input', async (t) => {
  const { pipeline, state, metric } = setup(t);
  pipeline.process({ events: [exec(T0, 'c1', 'docker.io/library/nginx')], position: { offset: 100 } }, 'file:a');
  pipeline.flush(false);
  t.deepEqual(state.loadPosition('file:a'), { offset: 100 });
  // c2's image is not known yet: its event waits, and so does every position from its batch on.
  pipeline.process({ events: [exec(T0 + 1_000, 'c2', '')], position: { offset: 200 } }, 'file:a');
  pipeline.process({ events: [exec(T0 + 2_000, 'c1', 'docker.io/library/nginx')], position: { offset: 300 } }, 'file:a');
  pipeline.flush(false);
  t.is(pipeline.held, 1);
  t.deepEqual(state.loadPosition('file:a'), { offset: 100 }, 'not past the held event');
  // Another source names c2's image: the held event is handled, file:a's position moves on.
  pipeline.process({ events: [exec(T0 + 3_000, 'c2', 'docker.io/library/redis')] }, 'http:b');
  pipeline.flush(false);
  t.is(pipeline.held, 0);
  t.deepEqual(state.loadPosition('file:a'), { offset: 300 });
  t.is(await metric('driftwatch_agent_events_observed_total', { source: 'file:a', verdict: 'learned' }), 3, 'the released event counts for the source that read it');
  t.is(await metric('driftwatch_agent_events_observed_total', { source: 'http:b', verdict: 'learned' }), 1);
  // Held at the end of a finite input: counted, and the position may then move past it.
  pipeline.process({ events: [exec(T0 + 4_000, 'c3', '')], position: { offset: 400 } }, 'file:a');
  pipeline.flush(false);
  t.deepEqual(state.loadPosition('file:a'), { offset: 300 });
  pipeline.endOfInput('file:a');
  pipeline.flush(false);
  t.is(pipeline.held, 0);
  t.is(await metric('driftwatch_agent_events_unattributed_total', { source: 'file:a', reason: 'end_of_input' }), 1);
  t.deepEqual(state.loadPosition('file:a'), { offset: 400 });
});

test('at shutdown held events are counted and the position stays before them (a file source re-reads them)', async (t) => {
  const { pipeline, state, metric } = setup(t);
  pipeline.process({ events: [exec(T0, 'c1', 'docker.io/library/nginx')], position: 10 }, 'file:a');
  pipeline.process({ events: [exec(T0 + 1, 'c9', ''), exec(T0 + 2, 'c9', '')], position: 20 }, 'file:a');
  pipeline.process({ events: [exec(T0 + 3, 'c1', 'docker.io/library/nginx')], position: 30 }, 'file:a');
  pipeline.flush(true);
  t.is(await metric('driftwatch_agent_events_unattributed_total', { source: 'file:a', reason: 'shutdown' }), 2);
  t.is(state.loadPosition('file:a'), 10);
});

test('held events that wait longer than the attribution wait are counted as expired, and release the position', async (t) => {
  const { pipeline, state, metric } = setup(t);
  pipeline.process({ events: [exec(T0, 'c7', '')], position: 1 }, 'file:a');
  pipeline.process({ events: [exec(T0 + 30_000, 'c1', 'docker.io/library/nginx')], position: 2 }, 'file:a');
  pipeline.flush(false);
  t.is(state.loadPosition('file:a'), undefined);
  pipeline.process({ events: [exec(T0 + 61_000, 'c1', 'docker.io/library/nginx')], position: 3 }, 'file:a');
  pipeline.flush(false);
  t.is(await metric('driftwatch_agent_events_unattributed_total', { source: 'file:a', reason: 'expired' }), 1);
  t.is(state.loadPosition('file:a'), 3);
});

test('events of one container held by two sources expire each by their own source\'s clock, whichever source read it first', async (t) => {
  const { pipeline, state, metric } = setup(t);
  // file:b reads c7 first and its clock never moves on (a short file); file:a holds c7 too, then its clock passes the wait.
  pipeline.process({ events: [exec(T0, 'c7', '')], position: 1 }, 'file:b');
  pipeline.process({ events: [exec(T0, 'c7', '')], position: 1 }, 'file:a');
  pipeline.process({ events: [exec(T0 + 61_000, 'c1', 'docker.io/library/nginx')], position: 2 }, 'file:a');
  pipeline.flush(false);
  t.is(await metric('driftwatch_agent_events_unattributed_total', { source: 'file:a', reason: 'expired' }), 1, "file:a's event expired by file:a's clock");
  t.is(pipeline.held, 1, "file:b's event still waits: its own clock has not passed the wait");
  t.is(state.loadPosition('file:a'), 2);
});

test('an event years ahead of the wall clock is clamped and counted: it does not close the learning window', async (t) => {
  const now = T0 + 10 * 60_000;
  const { pipeline, engine, metric } = setup(t, {}, () => now);
  pipeline.process({ events: [exec(T0, 'c1', 'docker.io/library/nginx', '/usr/sbin/nginx')] }, 'file:a');
  pipeline.process({ events: [exec(T0 + 5 * YEAR, 'c1', 'docker.io/library/nginx', '/bin/sh')] }, 'file:a');
  const b = engine.get('docker.io/library/nginx');
  t.is(b?.state, 'learning', 'still learning');
  t.is(await metric('driftwatch_agent_events_time_clamped_total', { source: 'file:a', reason: 'future' }), 1);
  t.is(pipeline.watermark, T0, 'the watermark did not jump');
  // The clamped event was still learned (not dropped): the shell is in the baseline.
  t.is(await metric('driftwatch_agent_events_observed_total', { source: 'file:a', verdict: 'learned' }), 2);
});

test('an event far behind its stream, or before its key’s window, is moved to the bound and counted', async (t) => {
  const { pipeline, engine, metric } = setup(t, {}, () => T0 + 10 * HOUR);
  pipeline.process({ events: [exec(T0 + 2 * HOUR, 'c1', 'docker.io/library/nginx')] }, 'file:a');
  const windowStart = engine.get('docker.io/library/nginx')?.windowStart;
  pipeline.process({ events: [exec(T0 - YEAR, 'c1', 'docker.io/library/nginx', '/bin/old')] }, 'file:a');
  t.is(await metric('driftwatch_agent_events_time_clamped_total', { source: 'file:a', reason: 'past' }), 1);
  // 30 minutes behind the stream is within its lag, but before the key's window began.
  pipeline.process({ events: [exec(T0 + 2 * HOUR - 30 * 60_000, 'c1', 'docker.io/library/nginx', '/bin/early')] }, 'file:a');
  t.is(await metric('driftwatch_agent_events_time_clamped_total', { source: 'file:a', reason: 'before_window' }), 1);
  const b = engine.get('docker.io/library/nginx');
  t.is(b?.windowStart, windowStart, 'the window did not move into the past');
  for (const e of b?.entries.values() ?? []) t.true(e.firstSeen >= (windowStart ?? 0), 'no entry seen before the window');
});

test('a replay of recorded hours from years ago is judged against its own clock: nothing clamped, the window closes on its own time', async (t) => {
  const past = Date.UTC(2021, 0, 14, 8);
  const { pipeline, engine, metric } = setup(t, {}, () => Date.now());
  for (let i = 0; i <= 120; i++) pipeline.process({ events: [exec(past + i * 60_000, 'c1', 'docker.io/library/nginx')] }, 'file:replay');
  t.is(engine.get('docker.io/library/nginx')?.state, 'enforcing', 'two recorded hours close a one-hour window');
  for (const reason of ['future', 'past', 'before_window']) t.is(await metric('driftwatch_agent_events_time_clamped_total', { source: 'file:replay', reason }), 0);
});
