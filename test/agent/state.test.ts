/**
 * The agent's state dir (a real SQLite file): baselines persisted as deltas row by row, examples
 * kept there and not in memory, one queued delta per baseline, and state dirs of the previous schema.
 */
import test from 'ava';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { createBaselineEngine, takeDelta, type BaselineSnapshot } from '../../core/baseline.js';
import { entryId, type Entry } from '../../core/entry.js';
import { openAgentState, type SpoolDeviation } from '../../agent/state/index.js';
import type { Deviation } from '../../core/deviation.js';
import type { ActivityEvent } from '../../core/event.js';
import type { Severity } from '../../core/severity.js';

const T0 = Date.UTC(2026, 10, 23, 8, 0, 0);

function tempDir(t: import('ava').ExecutionContext): string {
  const dir = mkdtempSync(join(tmpdir(), 'dw-state-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

const sh: Entry = { type: 'process', exe: '/bin/sh', parent: 'nginx', user: 'root', args: '-c <rand>' };
const nginx: Entry = { type: 'process', exe: '/usr/sbin/nginx', parent: 'containerd-shim', user: 'root', args: '-g daemon off;' };

function delta(version: number, entries: { entry: Entry; count: number; last: number; examples: string[] }[]): BaselineSnapshot {
  return {
    key: 'docker.io/library/nginx',
    state: 'learning',
    version,
    windowStart: T0,
    learnUntil: T0 + 3_600_000,
    enforcingSince: 0,
    events: version * 10,
    overflow: 0,
    images: [{ repository: 'docker.io/library/nginx', tag: '1.25', digest: '' }],
    entries: entries.map((e) => ({ id: entryId(e.entry), entry: e.entry, firstSeen: T0, lastSeen: e.last, count: e.count, nodes: ['node-1'], examples: e.examples })),
  };
}

test('deltas build up the baseline row by row; examples accumulate in the state, bounded', (t) => {
  const dir = tempDir(t);
  const state = openAgentState(dir, 1 << 20);
  state.commit({ deltas: [delta(2, [{ entry: nginx, count: 1, last: T0, examples: ['nginx -g daemon off;'] }, { entry: sh, count: 1, last: T0, examples: ['sh -c a'] }])] });
  state.commit({ deltas: [delta(3, [{ entry: sh, count: 4, last: T0 + 5, examples: ['sh -c b', 'sh -c a'] }])] });
  state.commit({ deltas: [delta(4, [{ entry: sh, count: 8, last: T0 + 9, examples: ['sh -c c', 'sh -c d'] }])] });
  // A delta applied late (older stats) changes nothing.
  state.commit({ deltas: [delta(3, [{ entry: sh, count: 4, last: T0 + 5, examples: [] }])] });
  state.close();

  const again = openAgentState(dir, 1 << 20);
  const b = again.readBaseline('docker.io/library/nginx')!;
  t.is(b.entries.length, 2);
  const shStats = b.entries.find((e) => e.id === entryId(sh))!;
  t.is(shStats.count, 8);
  t.is(shStats.lastSeen, T0 + 9);
  t.deepEqual(shStats.examples, ['sh -c a', 'sh -c b', 'sh -c c'], 'united, repeats dropped, at most three');
  const [restored] = [...again.loadBaselines()].map((r) => ({ ...r, entries: [...r.entries] }));
  t.is(restored!.entries.find((e) => e.id === entryId(sh))!.examples, 3, 'a restore only counts examples');
  again.close();
});

test('one queued delta per baseline: a newer one merges into the one not yet acknowledged', (t) => {
  const state = openAgentState(tempDir(t), 1 << 20);
  state.commit({ deltas: [delta(2, [{ entry: nginx, count: 1, last: T0, examples: ['nginx'] }])] });
  const [sent] = state.peek(0, 10, 1 << 20);
  state.commit({ deltas: [delta(3, [{ entry: sh, count: 2, last: T0 + 1, examples: ['sh -c a'] }])] });
  const queued = state.peek(0, 10, 1 << 20);
  t.is(queued.length, 1);
  t.true(queued[0]!.seq > sent!.seq, 'the merged record has a new seq, so an ack of the old one removes nothing');
  const body = JSON.parse(queued[0]!.body) as BaselineSnapshot;
  t.is(body.version, 3);
  t.deepEqual(body.entries.map((e) => e.id).sort(), [entryId(nginx), entryId(sh)].sort(), 'the entries of both deltas');
  state.remove([sent!.seq]);
  t.is(state.spoolCount(), 1);
  t.is(state.spoolBytes(), queued[0]!.bytes);
  state.close();
});

test('an engine restored from the state matches what it learned and keeps counting', (t) => {
  const dir = tempDir(t);
  const engine = createBaselineEngine({ learningWindowMs: 60_000, quietPeriodMs: 0 });
  const state = openAgentState(dir, 1 << 20);
  const ev = (time: number, exe: string) => ({
    time, node: 'node-1', source: 't', container: { id: 'c', name: 'c', image: { repository: 'docker.io/library/nginx', tag: '1', digest: '' } }, pod: null,
    kind: 'exec' as const, process: { pid: 1, exe, name: 'x', args: [], parentExe: '', parentName: 'p', uid: 0, user: 'root' }, network: null,
  });
  const entryOfExe = (exe: string): Entry => ({ type: 'process', exe, parent: 'p', user: 'root', args: '' });
  for (const [i, exe] of ['/a', '/b', '/a'].entries()) engine.observe(ev(T0 + i, exe), 'docker.io/library/nginx', entryOfExe(exe), entryId(entryOfExe(exe)));
  state.commit({ deltas: [takeDelta(engine.get('docker.io/library/nginx')!)] });
  state.close();

  const reopened = openAgentState(dir, 1 << 20);
  const fresh = createBaselineEngine({ learningWindowMs: 60_000, quietPeriodMs: 0 });
  for (const r of reopened.loadBaselines()) fresh.restore(r);
  const b = fresh.get('docker.io/library/nginx')!;
  t.is(b.entries.get(entryId(entryOfExe('/a')))!.count, 2);
  t.is(fresh.observe(ev(T0 + 70_000, '/a'), b.key, entryOfExe('/a'), entryId(entryOfExe('/a'))).verdict, 'matched');
  t.is(fresh.observe(ev(T0 + 70_001, '/c'), b.key, entryOfExe('/c'), entryId(entryOfExe('/c'))).verdict, 'deviation');
  reopened.close();
});

test('a state dir of the previous schema (one JSON snapshot per baseline) is migrated on open', (t) => {
  const dir = tempDir(t);
  const old = new Database(join(dir, 'agent.db'));
  old.exec(`CREATE TABLE baselines (key TEXT PRIMARY KEY, snapshot TEXT NOT NULL);
    CREATE TABLE spool (seq INTEGER PRIMARY KEY AUTOINCREMENT, kind TEXT NOT NULL, ref TEXT NOT NULL, body TEXT NOT NULL, bytes INTEGER NOT NULL);
    CREATE UNIQUE INDEX spool_ref ON spool(kind, ref);
    CREATE TABLE positions (source TEXT PRIMARY KEY, position TEXT NOT NULL);`);
  const snap = delta(5, [{ entry: nginx, count: 7, last: T0 + 3, examples: ['nginx -g daemon off;'] }]);
  old.prepare(`INSERT INTO baselines VALUES (?, ?)`).run(snap.key, JSON.stringify(snap));
  old.prepare(`INSERT INTO positions VALUES (?, ?)`).run('falco-file:/x', JSON.stringify({ offset: 42 }));
  old.close();

  const state = openAgentState(dir, 1 << 20);
  const b = state.readBaseline(snap.key)!;
  t.is(b.version, 5);
  t.deepEqual(b.entries.map((e) => [e.id, e.count, e.examples]), [[entryId(nginx), 7, ['nginx -g daemon off;']]]);
  t.deepEqual(state.loadPosition('falco-file:/x'), { offset: 42 });
  state.close();
});

/** A deviation of `exe` at second `i`, padded to about `pad` bytes of JSON. */
function spoolDeviation(i: number, severity: Severity, pad = 900): SpoolDeviation {
  const entry: Entry = { type: 'process', exe: `/bin/x${i}`, parent: 'nginx', user: 'root', args: 'p'.repeat(pad) };
  const event: ActivityEvent = {
    time: T0 + i * 1000,
    node: 'node-1',
    source: 'test',
    container: { id: 'c1', name: 'web', image: { repository: 'docker.io/library/nginx', tag: '1', digest: '' } },
    pod: null,
    kind: 'exec',
    process: { pid: i, exe: `/bin/x${i}`, name: 'x', args: [], parentExe: '/usr/sbin/nginx', parentName: 'nginx', uid: 0, user: 'root' },
    network: null,
  };
  return { deviation: { id: `d${i}`, key: 'docker.io/library/nginx', baselineVersion: 1, entry, reason: 'new-executable', explanation: '', nearest: [], event }, severity };
}

test('a full spool drops the lowest severity first, oldest first among equals, counted by severity; deltas stay', (t) => {
  const dir = tempDir(t);
  const state = openAgentState(dir, 12_000);
  // 4 low, 3 medium, 3 critical (about 1.3 KB each), and a baseline delta: over the bound.
  const sev: Severity[] = ['low', 'critical', 'medium', 'low', 'critical', 'low', 'medium', 'critical', 'medium', 'low'];
  state.commit({ deltas: [delta(2, [{ entry: nginx, count: 1, last: T0, examples: ['nginx'] }])] });
  const first = state.commit({ deviations: sev.slice(0, 5).map((s, i) => spoolDeviation(i, s)) });
  t.is(first.evicted, 0);
  const second = state.commit({ deviations: sev.slice(5).map((s, i) => spoolDeviation(i + 5, s)) });
  t.true(second.evicted > 0);
  t.true(state.spoolBytes() <= 12_000);
  const kept = state.peek(0, 100, 1 << 20);
  t.is(kept.filter((r) => r.kind === 'baseline').length, 1, 'the baseline delta is never dropped');
  const keptIds = kept.filter((r) => r.kind === 'deviation').map((r) => (JSON.parse(r.body) as Deviation).id);
  const dropped = sev.map((_, i) => `d${i}`).filter((id) => !keptIds.includes(id));
  // Lows go first, oldest first; only when no low is left does a medium go.
  const lows = ['d0', 'd3', 'd5', 'd9'];
  const expected = [...lows, 'd2', 'd6', 'd8'].slice(0, second.evicted);
  t.deepEqual(dropped.sort(), expected.sort());
  t.deepEqual(second.evictedBySeverity, second.evicted <= 4 ? { low: second.evicted } : { low: 4, medium: second.evicted - 4 });
  t.true(keptIds.includes('d1') && keptIds.includes('d4') && keptIds.includes('d7'), 'every critical is kept');
  t.is(state.spoolCount(), kept.length);
  state.close();

  // The byte count is right after a reopen (it is summed from the rows).
  const again = openAgentState(dir, 12_000);
  t.is(again.spoolBytes(), kept.reduce((n, r) => n + r.bytes, 0));
  again.close();
});

test('the oldest spooled record gives the lag; an empty spool has none', (t) => {
  let now = T0;
  const state = openAgentState(tempDir(t), 1 << 20, () => now);
  t.is(state.oldestSpooledAt(), null);
  state.commit({ deviations: [spoolDeviation(1, 'high', 10)] });
  now += 5_000;
  state.commit({ deviations: [spoolDeviation(2, 'high', 10)] });
  t.is(state.oldestSpooledAt(), T0);
  const [oldest] = state.peek(0, 1, 1 << 20);
  state.remove([oldest!.seq]);
  t.is(state.oldestSpooledAt(), T0 + 5_000);
  state.close();
});

test('a spool of schema 2 (no severity, no spool time) is migrated: its deviations count as medium', (t) => {
  const dir = tempDir(t);
  const old = new Database(join(dir, 'agent.db'));
  old.exec(`CREATE TABLE spool (seq INTEGER PRIMARY KEY AUTOINCREMENT, kind TEXT NOT NULL, ref TEXT NOT NULL, body TEXT NOT NULL, bytes INTEGER NOT NULL);
    CREATE UNIQUE INDEX spool_ref ON spool(kind, ref);
    CREATE TABLE baselines (key TEXT PRIMARY KEY, header TEXT NOT NULL);
    PRAGMA user_version = 2;`);
  const body = JSON.stringify(spoolDeviation(1, 'low', 5000).deviation);
  old.prepare(`INSERT INTO spool (kind, ref, body, bytes) VALUES ('deviation', 'd1', ?, ?)`).run(body, Buffer.byteLength(body));
  old.close();
  const state = openAgentState(dir, 8_000, () => T0);
  t.is(state.oldestSpooledAt(), T0);
  // A low one arrives: it goes before the migrated (medium) one.
  const r = state.commit({ deviations: [spoolDeviation(2, 'low', 5000)] });
  t.deepEqual(r.evictedBySeverity, { low: 1 });
  t.deepEqual(state.peek(0, 10, 1 << 20).map((x) => (JSON.parse(x.body) as Deviation).id), ['d1']);
  state.close();
});
