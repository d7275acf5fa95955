/**
 * The collector's store on a real SQLite file: baseline deltas from several nodes merge into one
 * cluster-wide baseline, exactly and idempotently; stores of the previous schema are migrated.
 */
import test from 'ava';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import type { BaselineSnapshot } from '../../core/baseline.js';
import { entryId, type Entry } from '../../core/entry.js';
import { openSqliteStore } from '../../collector/store/sqlite/index.js';
import type { AlertPolicy, AlertTransition } from '../../collector/alerting/alert.js';
import type { IngestResult } from '../../collector/store/store.js';
import { T0, deltaOf, statsOf } from '../helpers/baseline-delta.js';
import { deviationOf } from '../helpers/ingest.js';

const KEY = 'docker.io/library/nginx';
const nginx: Entry = { type: 'process', exe: '/usr/sbin/nginx', parent: 'containerd-shim', user: 'root', args: '-g daemon off;' };
const dns: Entry = { type: 'network', direction: 'egress', protocol: 'udp', peer: 'cluster', port: 53 };

function dbPath(t: import('ava').ExecutionContext): string {
  const dir = mkdtempSync(join(tmpdir(), 'dw-store-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  return join(dir, 'collector.db');
}

function delta(node: string, version: number, entries: [Entry, number, number, string[]][], state: BaselineSnapshot['state'] = 'learning'): BaselineSnapshot {
  return deltaOf(KEY, entries.map(([entry, count, last, examples]) => statsOf(entry, node, { firstSeen: T0 + last - 10, lastSeen: T0 + last, count, examples })), { state, version });
}

test('deltas from several nodes merge: counts summed, times widened, nodes and examples united', (t) => {
  const store = openSqliteStore(dbPath(t));
  store.ingest('node-a', [], [delta('node-a', 2, [[nginx, 5, 100, ['nginx -g daemon off;']], [dns, 3, 50, ['-> 10.96.0.10:53']]])], T0);
  store.ingest('node-b', [], [delta('node-b', 4, [[nginx, 2, 300, ['nginx -g daemon off;']]])], T0);
  // node-a's counts grow: a delta carries absolute stats, so only the growth is added.
  store.ingest('node-a', [], [delta('node-a', 3, [[nginx, 9, 200, []]])], T0);
  const b = store.getBaseline(KEY)!;
  const n = b.entries.find((e) => e.id === entryId(nginx))!;
  t.is(n.count, 11);
  t.is(n.firstSeen, T0 + 90);
  t.is(n.lastSeen, T0 + 300);
  t.deepEqual(n.nodes, ['node-a', 'node-b']);
  t.deepEqual(n.examples, ['nginx -g daemon off;']);
  t.deepEqual(b.nodes.map((x) => [x.node, x.version]), [['node-a', 3], ['node-b', 4]]);
  const [summary] = store.listBaselines();
  t.is(summary!.processEntries, 1);
  t.is(summary!.networkEntries, 1);
  store.close();
});

test('a resent or late delta changes nothing', (t) => {
  const store = openSqliteStore(dbPath(t));
  const d1 = delta('node-a', 2, [[nginx, 5, 100, ['a']]]);
  const d2 = delta('node-a', 3, [[nginx, 8, 200, ['b']]]);
  store.ingest('node-a', [], [d1], T0);
  store.ingest('node-a', [], [d2], T0);
  store.ingest('node-a', [], [d2], T0); // resent after a lost ack
  store.ingest('node-a', [], [d1], T0); // an older one arriving late
  const b = store.getBaseline(KEY)!;
  t.is(b.entries[0]!.count, 8);
  t.is(b.entries[0]!.lastSeen, T0 + 200);
  t.deepEqual(b.entries[0]!.examples, ['a', 'b']);
  t.is(b.nodes[0]!.version, 3, 'the header of the newest version stays');
  store.close();
});

test('a store of the previous schema (one JSON snapshot per key and node) is migrated on open', (t) => {
  const path = dbPath(t);
  const old = new Database(path);
  old.exec(`CREATE TABLE baseline_snapshots (key TEXT NOT NULL, node TEXT NOT NULL, version INTEGER NOT NULL, received_at INTEGER NOT NULL,
      header TEXT NOT NULL, snapshot TEXT NOT NULL, PRIMARY KEY (key, node)) WITHOUT ROWID;
    CREATE TABLE baseline_entries (key TEXT NOT NULL, entry_id TEXT NOT NULL, type TEXT NOT NULL, PRIMARY KEY (key, entry_id)) WITHOUT ROWID;`);
  for (const [node, count] of [['node-a', 4], ['node-b', 6]] as const) {
    const s = delta(node, 7, [[nginx, count, 100, [`example from ${node}`]]], 'enforcing');
    const { entries: _e, ...header } = s;
    old.prepare(`INSERT INTO baseline_snapshots VALUES (?, ?, ?, ?, ?, ?)`).run(KEY, node, 7, T0, JSON.stringify(header), JSON.stringify(s));
    old.prepare(`INSERT OR IGNORE INTO baseline_entries VALUES (?, ?, ?)`).run(KEY, entryId(nginx), 'process');
  }
  old.close();
  const store = openSqliteStore(path);
  const b = store.getBaseline(KEY)!;
  t.is(b.state, 'enforcing');
  t.is(b.entries[0]!.count, 10);
  t.deepEqual(b.entries[0]!.nodes, ['node-a', 'node-b']);
  t.deepEqual(b.entries[0]!.examples, ['example from node-a', 'example from node-b']);
  store.close();
  const reopened = openSqliteStore(path);
  t.is(reopened.getBaseline(KEY)!.entries[0]!.count, 10, 'migrated once');
  reopened.close();
});

test('group commit: batches share one transaction, each in its own savepoint; a batch that fails is rolled back alone', (t) => {
  const store = openSqliteStore(dbPath(t));
  // A policy that fails on one image stands for anything that can throw mid-batch.
  const policy: AlertPolicy = {
    decide(d) {
      if (d.key === 'docker.io/library/broken') throw new Error('rule evaluation failed');
      return { severity: 'medium', ruleId: 'test', ruleReason: 'test', team: '', receivers: [] };
    },
    exceptionFor: () => '',
  };
  const good1 = [deviationOf({ node: 'node-1', i: 1 }), deviationOf({ node: 'node-1', i: 2, exe: '/usr/bin/curl' })];
  const bad = [deviationOf({ node: 'node-2', i: 3, exe: '/usr/bin/wget' }), deviationOf({ node: 'node-2', i: 4, image: 'docker.io/library/broken' })];
  const good2 = [deviationOf({ node: 'node-3', i: 5, image: 'docker.io/library/redis' })];
  const results = store.ingestMany(
    [
      { node: 'node-1', deviations: good1, deltas: [] },
      { node: 'node-2', deviations: bad, deltas: [delta('node-2', 1, [[nginx, 1, 10, []]])] },
      { node: 'node-3', deviations: good2, deltas: [] },
    ],
    T0,
    policy,
  );
  t.is((results[0] as IngestResult).stored, 2);
  t.true(results[1] instanceof Error);
  t.is((results[1] as Error).message, 'rule evaluation failed');
  t.is((results[2] as IngestResult).stored, 1);
  // Nothing of the failed batch stayed: not its first deviation, not its alert, not its delta.
  t.is(store.countDeviations(), 3);
  t.deepEqual(store.listAlerts({ limit: 10 }).items.map((a) => a.entry.type === 'process' && a.entry.exe).sort(), ['/bin/sh', '/usr/bin/curl', '/bin/sh'].sort());
  t.is(store.getBaseline(KEY), null);
  // Sent again once the cause is gone, the batch is stored whole.
  const again = store.ingestMany([{ node: 'node-2', deviations: bad, deltas: [delta('node-2', 1, [[nginx, 1, 10, []]])] }], T0, { ...policy, decide: () => ({ severity: 'low', ruleId: 'x', ruleReason: 'x', team: '', receivers: [] }) });
  t.is((again[0] as IngestResult).stored, 2);
  t.is(store.countDeviations(), 5);
  t.is(store.getBaseline(KEY)?.entries.length, 1);
  store.close();
});

test('a state change and its notifications commit together: when writing them fails, the alert keeps its state', (t) => {
  const store = openSqliteStore(dbPath(t));
  t.teardown(() => store.close());
  store.ingest('node-1', [deviationOf({ i: 1, exe: '/usr/bin/curl' })], [], T0);
  const [alert] = store.listAlerts({ limit: 1 }).items;
  const fp = alert!.fingerprint;
  const resolve = { to: 'resolved' as const, by: 'alice', at: T0 + 1, comment: 'fixed' };
  const note = (action: string) => ({ alert: fp, sink: 'pd', action, body: '{}', state: 'pending' as const, lastError: '' });
  t.throws(() =>
    store.transitionAlert(fp, resolve, () => {
      throw new Error('the outbox is unwritable');
    }),
  );
  t.is(store.getAlert(fp)?.state, 'firing', 'not resolved without its notification');
  t.deepEqual(store.deliveriesOf(fp), []);
  const done = store.transitionAlert(fp, resolve, ({ before, after }) => [note(`${before.state}->${after.state}`)]);
  t.true(done.ok);
  t.deepEqual(done.ok ? done.notifications.map((n) => n.action) : [], ['firing->resolved']);
  t.is(store.getAlert(fp)?.state, 'resolved');
  t.deepEqual(store.deliveriesOf(fp).map((d) => [d.sink, d.action, d.state]), [['pd', 'firing->resolved', 'pending']]);
});

test('open alerts per baseline follow every path: new, acknowledged, resolved, coming back, accepted, pruned; an older store gets the counts on open', (t) => {
  const path = dbPath(t);
  let store = openSqliteStore(path);
  const open = () => Object.fromEntries(store.listBaselines().filter((b) => b.openAlerts > 0).map((b) => [b.key, b.openAlerts]));
  const nginx = 'docker.io/library/nginx';
  const redis = 'docker.io/library/redis';
  // Baselines to list: one delta per image.
  store.ingest('node-1', [], [delta('node-1', 1, [[dns, 1, 10, []]]), { ...delta('node-1', 1, [[dns, 1, 10, []]]), key: redis }], T0);
  store.ingest('node-1', [deviationOf({ i: 1 }), deviationOf({ i: 2, exe: '/usr/bin/curl' }), deviationOf({ i: 3, image: redis })], [], T0);
  t.deepEqual(open(), { [nginx]: 2, [redis]: 1 });
  const [curl, sh] = store.listAlerts({ limit: 10, image: nginx }).items.sort((a, b) => (a.entry.type === 'process' && a.entry.exe === '/usr/bin/curl' ? -1 : 1));
  const change = (to: AlertTransition['to']) => ({ to, by: 'alice', at: T0 + 1, comment: '' });
  store.transitionAlert(curl!.fingerprint, change('acknowledged'));
  t.deepEqual(open(), { [nginx]: 2, [redis]: 1 }, 'acknowledged is still open');
  store.transitionAlert(curl!.fingerprint, change('resolved'));
  t.deepEqual(open(), { [nginx]: 1, [redis]: 1 });
  store.ingest('node-1', [deviationOf({ i: 4, exe: '/usr/bin/curl' })], [], T0 + 2);
  t.deepEqual(open(), { [nginx]: 2, [redis]: 1 }, 'a resolved alert whose behaviour came back is open again');
  store.transitionAlert(sh!.fingerprint, change('accepted'));
  t.deepEqual(open(), { [nginx]: 1, [redis]: 1 });
  store.close();
  // A store from before the counter: the table and its triggers are gone; opening it counts again.
  const raw = new Database(path);
  raw.exec('DROP TRIGGER alerts_open_insert; DROP TRIGGER alerts_open_update; DROP TRIGGER alerts_open_delete; DROP TABLE baseline_open_alerts');
  raw.close();
  store = openSqliteStore(path);
  t.deepEqual(open(), { [nginx]: 1, [redis]: 1 });
  // Pruning deletes closed alerts only: open counts do not move; resolved and pruned, they go.
  store.transitionAlert(curl!.fingerprint, change('resolved'));
  t.deepEqual(open(), { [redis]: 1 });
  const pruned = store.prune(0, T0 + 10_000_000_000_000);
  t.true(pruned.alerts >= 2);
  t.deepEqual(open(), { [redis]: 1 });
  store.close();
});
