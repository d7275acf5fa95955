/**
 * Drift on a real pipeline over a real agent state (SQLite in a temp dir): a binary that is not from
 * the image deviates in every state, learning included, with its own reason and the critical
 * severity; the key's drift allow list (pushed by the collector) lets one through, learned with its
 * origin; an entry learned from the image still alerts when the same path runs from memory later.
 */
import test from 'ava';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { createAttributor } from '../../agent/attribution/attributor.js';
import { createAgentMetrics } from '../../agent/metrics.js';
import { createPipeline } from '../../agent/pipeline.js';
import { openAgentState } from '../../agent/state/index.js';
import { createBaselineEngine, driftAllowedFor, type BaselineSnapshot } from '../../core/baseline.js';
import type { ActivityEvent, ExecutableOrigin } from '../../core/event.js';
import { parseCidr } from '../../core/ip.js';
import { deviationFingerprint, type Deviation } from '../../core/deviation.js';
import { classify, NO_FACTS } from '../../core/severity.js';

const HOUR = 3_600_000;
const T0 = Date.UTC(2026, 10, 23, 8);
const IMAGE = 'docker.io/acme/api';

function setup(t: import('ava').ExecutionContext, now = T0 + 3 * HOUR) {
  const dir = mkdtempSync(join(tmpdir(), 'dw-drift-'));
  const state = openAgentState(dir, 64 << 20);
  t.teardown(() => {
    state.close();
    rmSync(dir, { recursive: true, force: true });
  });
  const engine = createBaselineEngine({ learningWindowMs: HOUR, quietPeriodMs: 0 });
  const pipeline = createPipeline(
    { entryOptions: { clusterRanges: [parseCidr('10.0.0.0/8')] }, statsIntervalMs: 0, attributionWaitMs: 60_000 },
    { engine, state, attributor: createAttributor(), metrics: createAgentMetrics(), logger: pino({ level: 'silent' }), now: () => now, onSpooled: () => {} },
  );
  /** The deviations spooled so far: reason, executable, the severity the built-in table gives, origin. */
  const spooled = () =>
    state
      .peek(0, 1_000, 64 << 20)
      .filter((r) => r.kind === 'deviation')
      .map((r) => JSON.parse(r.body) as Deviation)
      .map((d) => [d.reason, d.entry.type === 'process' ? d.entry.exe : '', classify({ kind: d.event.kind, reason: d.reason, entry: d.entry, exe: d.event.process.exe, baseline: NO_FACTS }).severity, d.event.process.origin]);
  return { state, engine, pipeline, spooled };
}

let pid = 1000;
function exec(time: number, exe: string, origin?: ExecutableOrigin): ActivityEvent {
  return {
    time,
    node: 'node-1',
    source: 'file:a',
    container: { id: 'c1', name: 'api', image: { repository: IMAGE, tag: '1.0', digest: '' } },
    pod: null,
    kind: 'exec',
    process: { pid: pid++, exe, name: exe.slice(exe.lastIndexOf('/') + 1), args: [], parentExe: '/bin/sh', parentName: 'sh', uid: 1000, user: '', ...(origin ? { origin } : {}) },
    network: null,
  };
}

test('while learning, a binary written after start deviates as drift (critical) and is not learned; the image\'s binaries are learned with their origin', (t) => {
  const { engine, pipeline, spooled } = setup(t);
  pipeline.process({ events: [exec(T0, '/usr/bin/api', 'image'), exec(T0 + 1_000, '/tmp/kworker', 'upper-layer'), exec(T0 + 2_000, '/proc/self/fd/3', 'memfd'), exec(T0 + 3_000, '/usr/bin/helper')] }, 'file:a');
  pipeline.flush(true);
  const b = engine.get(IMAGE)!;
  t.is(b.state, 'learning');
  t.deepEqual([...b.entries.keys()].sort(), ['exec|/usr/bin/api|sh|user|', 'exec|/usr/bin/helper|sh|user|']);
  t.is(b.entries.get('exec|/usr/bin/api|sh|user|')?.origin, 'image');
  t.is(b.entries.get('exec|/usr/bin/helper|sh|user|')?.origin, undefined, 'no source told: no origin claimed');
  t.deepEqual(spooled(), [
    ['drift', '/tmp/kworker', 'critical', 'upper-layer'],
    ['drift', '/proc/self/fd/<n>', 'critical', 'memfd'],
  ]);
});

test('the key\'s drift allow list (pushed by the collector) lets a JIT cache through: learned with its origin, no alert; other drift still alerts', (t) => {
  const { state, pipeline, spooled } = setup(t);
  pipeline.applyCluster({ key: IMAGE, state: 'learning', relearn: false, version: 1, windowStart: 0, learnUntil: 0, entryIds: [], removedIds: [], driftAllowed: ['/var/cache/jit/*'] });
  pipeline.process({ events: [exec(T0, '/var/cache/jit/stub-1', 'upper-layer'), exec(T0 + 1_000, '/tmp/payload', 'upper-layer')] }, 'file:a');
  pipeline.flush(true);
  t.deepEqual(spooled(), [['drift', '/tmp/payload', 'critical', 'upper-layer']]);
  // The delta queued for the collector carries the entry's origin.
  const delta = state.peek(0, 1_000, 64 << 20).filter((r) => r.kind === 'baseline').map((r) => JSON.parse(r.body) as BaselineSnapshot).find((d) => d.key === IMAGE)!;
  const jit = delta.entries.find((e) => e.entry.type === 'process' && e.entry.exe.startsWith('/var/cache/jit/'));
  t.is(jit?.origin, 'upper-layer', 'the entry shows that it did not come from the image');
  t.is(state.loadClusterBaselines()[0]?.driftAllowed?.[0], '/var/cache/jit/*', 'kept for a restart');
});

test('under an enforcing baseline, a known path run from memory or a deleted file is drift, not a match', (t) => {
  const { engine, pipeline, spooled } = setup(t);
  pipeline.process({ events: [exec(T0, '/usr/bin/api', 'image')] }, 'file:a');
  pipeline.process({ events: [exec(T0 + 2 * HOUR, '/usr/bin/api', 'image'), exec(T0 + 2 * HOUR + 1, '/usr/bin/api', 'deleted'), exec(T0 + 2 * HOUR + 2, '/usr/bin/api', 'unknown')] }, 'file:a');
  pipeline.flush(true);
  t.is(engine.get(IMAGE)?.state, 'enforcing');
  t.deepEqual(spooled(), [['drift', '/usr/bin/api', 'critical', 'deleted']], 'the image run and the unknown one match');
});

test('driftAllowedFor: path globs against the path as run and as normalized, basename globs without a slash', (t) => {
  t.true(driftAllowedFor(['/var/cache/jit/*'], '/var/cache/jit/a1b2', '/var/cache/jit/<hex>'));
  t.true(driftAllowedFor(['/var/cache/jit/<hex>'], '/var/cache/jit/a1b2c3d4e5f6', '/var/cache/jit/<hex>'));
  t.true(driftAllowedFor(['plugin-*'], '/opt/app/plugins/plugin-x (deleted)', '/opt/app/plugins/plugin-x'));
  t.false(driftAllowedFor(['/var/cache/jit/*'], '/tmp/x', '/tmp/x'));
  t.false(driftAllowedFor(null, '/tmp/x', '/tmp/x'));
  t.false(driftAllowedFor([], '/tmp/x', '/tmp/x'));
});

test('a drift alert is its own: its fingerprint differs from that of a plain deviation of the same entry', (t) => {
  const entry = { type: 'process' as const, exe: '/usr/bin/api', parent: 'sh', user: 'user' as const, args: '' };
  t.not(deviationFingerprint({ key: IMAGE, entry, reason: 'drift' }), deviationFingerprint({ key: IMAGE, entry, reason: 'new-executable' }));
  t.is(deviationFingerprint({ key: IMAGE, entry, reason: 'new-parent' }), deviationFingerprint({ key: IMAGE, entry }), 'other reasons group by key and entry, as before');
});
