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
import { openAgentState } from '../../agent/state.js';

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
