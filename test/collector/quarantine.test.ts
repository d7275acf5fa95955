/**
 * Quarantine and drop-node recompute what a node taught (real SQLite files, then a real collector):
 * an entry two nodes taught keeps the stats of the one that remains — the same, field by field, as
 * a store only that node taught — an entry only the quarantined node taught goes, one security
 * approved stays and says which node's share was dropped; the key gets a new version that reaches a
 * connected agent's stream, and the audit log says what was recomputed. A store from before example
 * provenance was recorded narrows what it cannot attribute, and says so.
 */
import test, { type ExecutionContext } from 'ava';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import Database from 'better-sqlite3';
import pino from 'pino';
import { loadCollectorConfig, startCollector } from '../../collector/main.js';
import { openSqliteStore } from '../../collector/store/sqlite/index.js';
import type { BaselineView, ReviewedEntry } from '../../collector/store/store.js';
import type { BaselineSnapshot } from '../../core/baseline.js';
import { entryId, type Entry } from '../../core/entry.js';
import { snapshotToWire } from '../../proto/index.js';
import { T0, deltaOf, statsOf } from '../helpers/baseline-delta.js';
import { scriptedNode } from '../helpers/hostile-node.js';
import { converse } from '../helpers/ingest.js';

const KEY = 'docker.io/acme/shop';
const A = 'node-a';
const B = 'node-b';
const proc = (exe: string): Entry => ({ type: 'process', exe, parent: 'sh', user: 'root', args: '' });
const shared = proc('/usr/bin/app');
const onlyA = proc('/tmp/backdoor');
const approvedA = proc('/usr/bin/helper');
const onlyB = proc('/usr/bin/cron');

/** What each node teaches, in the order it sends it: A twice (absolute stats grow), B once. */
function deltasOf(node: string): BaselineSnapshot[] {
  if (node === A) {
    return [
      deltaOf(KEY, [
        statsOf(shared, A, { firstSeen: T0 + 100, lastSeen: T0 + 800, count: 30, examples: ['app --evil', 'app --x'] }),
        statsOf(onlyA, A, { firstSeen: T0 + 200, lastSeen: T0 + 200, count: 1, examples: ['/tmp/backdoor'] }),
        statsOf(approvedA, A, { firstSeen: T0 + 50, lastSeen: T0 + 60, count: 2 }),
      ], { version: 5, events: 90 }),
      deltaOf(KEY, [statsOf(shared, A, { firstSeen: T0 + 100, lastSeen: T0 + 900, count: 40, examples: [] })], { version: 6, events: 120 }),
    ];
  }
  return [
    deltaOf(KEY, [
      statsOf(shared, B, { firstSeen: T0 + 300, lastSeen: T0 + 500, count: 7, examples: ['app --x', 'app --serve'] }),
      statsOf(onlyB, B, { firstSeen: T0 + 10, lastSeen: T0 + 20, count: 4, examples: ['cron -f'] }),
    ], { version: 3, events: 11 }),
  ];
}

function dbDir(t: ExecutionContext): string {
  const dir = mkdtempSync(join(tmpdir(), 'dw-quarantine-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

const entryOf = (v: BaselineView | null, e: Entry): ReviewedEntry | undefined => v?.entries.find((x) => x.id === entryId(e));
/** The stats of an entry as a reviewer reads them. */
const statsView = (e: ReviewedEntry | undefined) => e && { firstSeen: e.firstSeen, lastSeen: e.lastSeen, count: e.count, nodes: e.nodes, examples: e.examples };

test('quarantine: a shared entry keeps the stats of the node that remains, exactly as if only it had taught; what only the quarantined node taught goes; a new version', (t) => {
  const dir = dbDir(t);
  // The reference: a store only node-b taught.
  const alone = openSqliteStore(join(dir, 'b-alone.db'));
  for (const d of deltasOf(B)) alone.ingest(B, [], [d], T0);
  const expected = alone.getBaseline(KEY);
  alone.close();

  const path = join(dir, 'both.db');
  const store = openSqliteStore(path);
  // Interleaved, as two agents' batches arrive.
  const [a1, a2] = deltasOf(A) as [BaselineSnapshot, BaselineSnapshot];
  store.ingest(A, [], [a1], T0);
  store.ingest(B, [], deltasOf(B), T0);
  store.ingest(A, [], [a2], T0);
  const before = store.getBaseline(KEY);
  t.like(statsView(entryOf(before, shared)), { count: 47, firstSeen: T0 + 100, lastSeen: T0 + 900, nodes: [A, B] }, 'both nodes count before');
  t.deepEqual(entryOf(before, shared)!.examples, ['app --evil', 'app --x', 'app --serve']);
  t.true(store.reviewBaseline(KEY, { action: 'approve', entryId: entryId(approvedA) }, 'rita', 'looked fine', T0 + 1000).ok);
  const version = store.getBaseline(KEY)!.version;

  const result = store.quarantineNode(A, 'rita', 'found a backdoor', T0 + 2000);
  t.deepEqual(result, { keys: [KEY], entriesRemoved: 1, entriesRecomputed: 2, entriesNarrowed: 0 });
  store.close();

  // Reopened from the file: what stays is what node-b taught, field by field.
  const reopened = openSqliteStore(path);
  t.teardown(() => reopened.close());
  const after = reopened.getBaseline(KEY)!;
  t.deepEqual(statsView(entryOf(after, shared)), statsView(entryOf(expected, shared)), 'the shared entry: node-b alone');
  t.deepEqual(statsView(entryOf(after, onlyB)), statsView(entryOf(expected, onlyB)));
  t.deepEqual(entryOf(after, shared)!.droppedNodes, [A], 'it says whose share was dropped');
  t.deepEqual(entryOf(after, onlyB)!.droppedNodes, []);
  t.is(entryOf(after, onlyA), undefined, 'what only node-a taught is gone');
  // Approved by security: it stays, with nothing of node-a's left, and says node-a taught it.
  t.like(entryOf(after, approvedA), { status: 'approved', count: 0, firstSeen: 0, lastSeen: 0, nodes: [], examples: [], droppedNodes: [A] });
  // The header is node-b's alone too.
  t.like(after, { events: expected!.events, windowStart: expected!.windowStart });
  t.deepEqual(after.nodes.map((n) => n.node), [B]);
  t.is(after.version, version + 1);
  t.like(reopened.listVersions(KEY)[0], { version: version + 1, action: 'quarantine', by: 'rita', reason: `node ${A} quarantined: found a backdoor` });
  const cluster = reopened.clusterBaseline(KEY)!;
  t.deepEqual(cluster.entryIds, [entryId(shared), entryId(approvedA), entryId(onlyB)].sort(), 'agents are told to enforce without it');
  t.is(cluster.version, version + 1);
});

test('drop-node: one key, the same recompute; a node that taught the key nothing is a 404; the other node teaching more adds to what is left', (t) => {
  const store = openSqliteStore(join(dbDir(t), 'c.db'));
  t.teardown(() => store.close());
  for (const d of deltasOf(A)) store.ingest(A, [], [d], T0);
  for (const d of deltasOf(B)) store.ingest(B, [], [d], T0);
  const r = store.reviewBaseline(KEY, { action: 'drop-node', node: A }, 'rita', 'its certificate leaked', T0 + 2000);
  if (!r.ok) return t.fail(r.message);
  t.deepEqual(r.dropped, { entriesRemoved: 2, entriesRecomputed: 1, entriesNarrowed: 0 });
  t.deepEqual(statsView(entryOf(r.after, shared)), { firstSeen: T0 + 300, lastSeen: T0 + 500, count: 7, nodes: [B], examples: ['app --x', 'app --serve'] });
  t.deepEqual(r.after.entries.map((e) => e.id), [entryId(shared), entryId(onlyB)].sort(), 'entries only node-a taught (none approved) went');
  t.like(store.reviewBaseline(KEY, { action: 'drop-node', node: A }, 'rita', 'again', T0 + 2001), { ok: false, status: 404 });
  // node-b's next delta (absolute stats) grows from what is left, not from node-a's share.
  store.ingest(B, [], [deltaOf(KEY, [statsOf(shared, B, { firstSeen: T0 + 300, lastSeen: T0 + 600, count: 9, examples: ['app --more'] })], { version: 4 })], T0);
  t.like(statsView(entryOf(store.getBaseline(KEY), shared)), { count: 9, firstSeen: T0 + 300, lastSeen: T0 + 600, examples: ['app --x', 'app --serve', 'app --more'] });
});

test('an entry security added by hand that a quarantined node also taught keeps security\'s own time where it is provable, narrowed where not', (t) => {
  const store = openSqliteStore(join(dbDir(t), 'c.db'));
  t.teardown(() => store.close());
  // Added by hand after node-a's last sighting and after node-b's: security's time is provably its own.
  t.true(store.reviewBaseline(KEY, { action: 'add', entry: shared }, 'rita', 'needed', T0 + 5000).ok);
  for (const d of deltasOf(A)) store.ingest(A, [], [d], T0);
  for (const d of deltasOf(B)) store.ingest(B, [], [d], T0);
  const result = store.quarantineNode(A, 'rita', '', T0 + 6000)!;
  t.is(result.entriesNarrowed, 1, "security's first seen hides behind node-a's: narrowed and counted");
  t.like(statsView(entryOf(store.getBaseline(KEY), shared)), { firstSeen: T0 + 300, lastSeen: T0 + 5000, count: 7, nodes: [B] });
});

test('a store from before example provenance: opened, the columns are added; a node whose examples were not recorded loses all it cannot prove, counted and logged', (t) => {
  const dir = dbDir(t);
  const path = join(dir, 'old.db');
  const first = openSqliteStore(path);
  for (const d of deltasOf(A)) first.ingest(A, [], [d], T0);
  for (const d of deltasOf(B)) first.ingest(B, [], [d], T0);
  first.close();
  // As the previous version wrote it: no example provenance, no dropped nodes.
  const raw = new Database(path);
  raw.exec(`ALTER TABLE baseline_entry_nodes DROP COLUMN example_keys; ALTER TABLE baseline_entries DROP COLUMN dropped_nodes;`);
  raw.close();
  const warnings: { fields: Record<string, unknown>; message: string }[] = [];
  const store = openSqliteStore(path, { logger: { warn: (fields, message) => warnings.push({ fields, message }) } });
  t.teardown(() => store.close());
  t.deepEqual(entryOf(store.getBaseline(KEY), shared)!.droppedNodes, []);
  const result = store.quarantineNode(A, 'rita', 'old store', T0 + 2000)!;
  t.is(result.entriesNarrowed, 1);
  const e = entryOf(store.getBaseline(KEY), shared)!;
  t.deepEqual(e.examples, [], "node-b's examples cannot be told from node-a's: none is kept");
  t.like(e, { count: 7, firstSeen: T0 + 300, lastSeen: T0 + 500, droppedNodes: [A] }, 'counts and times are exact without it');
  t.like(warnings[0], { fields: { key: KEY, entryId: entryId(shared), node: A, narrowed: ['examples'] } });
});

test('through the API: the quarantine is audited with what it recomputed, and a connected agent is pushed the new version without the entry', async (t) => {
  const dir = dbDir(t);
  const c = await startCollector(loadCollectorConfig({ db: join(dir, 'c.db'), grpcListen: '127.0.0.1:0', httpListen: '127.0.0.1:0', insecure: true }, {}), { logger: pino({ level: 'silent' }) });
  t.teardown(() => c.stop());
  for (const [i, d] of deltasOf(A).entries()) await converse(c.grpcPort, A, [{ batch: { batchId: i + 1, deviations: [], baselines: [snapshotToWire(d)] } }], 1);
  await converse(c.grpcPort, B, deltasOf(B).map((d, i) => ({ batch: { batchId: i + 1, deviations: [], baselines: [snapshotToWire(d)] } })), 1);
  const agent = scriptedNode(c.grpcPort, grpc.credentials.createInsecure(), 'node-c');
  t.teardown(() => agent.close());
  await agent.welcomed;
  await agent.until(() => agent.baselines.get(KEY)?.entryIds.includes(entryId(onlyA)) === true);
  const before = agent.baselines.get(KEY)!.version;

  const res = await fetch(`${c.url}/api/v1/nodes/${A}/quarantine`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ reason: 'found a backdoor' }) });
  t.is(res.status, 200);
  t.deepEqual(await res.json(), { node: A, quarantined: true, keys: [KEY], entriesRemoved: 2, entriesRecomputed: 1, entriesNarrowed: 0 });
  await agent.until(() => (agent.baselines.get(KEY)?.version ?? 0) > before);
  const pushed = agent.baselines.get(KEY)!;
  t.deepEqual(pushed.entryIds, [entryId(shared), entryId(onlyB)].sort(), 'node-a\'s entries left the agent\'s copy');
  t.is(pushed.version, before + 1);

  const audit = (await (await fetch(`${c.url}/api/v1/audit?limit=5`)).json()) as { items: { action: string; target: string; after: any }[] };
  t.like(audit.items[0], { action: 'node.quarantine', target: A, after: { quarantined: true, keys: 1, entriesRemoved: 2, entriesRecomputed: 1, entriesNarrowed: 0 } });
  const b = (await (await fetch(`${c.url}/api/v1/baselines/${encodeURIComponent(KEY)}`)).json()) as { entries: { id: string; count: number; nodes: string[]; droppedNodes: string[]; examples: string[] }[] };
  t.like(b.entries.find((e) => e.id === entryId(shared)), { count: 7, nodes: [B], droppedNodes: [A], examples: ['app --x', 'app --serve'] });

  // A reviewer's drop of one node's share is audited the same way.
  const drop = await fetch(`${c.url}/api/v1/baselines/${encodeURIComponent(KEY)}/nodes/${B}/drop`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ reason: 'rebuilt' }) });
  t.is(drop.status, 200);
  await agent.until(() => agent.baselines.get(KEY)?.version === before + 2);
  t.deepEqual(agent.baselines.get(KEY)!.entryIds, []);
  const audit2 = (await (await fetch(`${c.url}/api/v1/audit?limit=1`)).json()) as { items: { action: string; after: any }[] };
  t.like(audit2.items[0], { action: 'baseline.drop-node', after: { version: before + 2, entriesRemoved: 2, entriesRecomputed: 0, entriesNarrowed: 0 } });
});
