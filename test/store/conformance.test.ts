/**
 * The store conformance suite (issue 20): one contract, every test run against both stores, the
 * SQLite store on a real file (seen through asAsync) and the PostgreSQL store on a real server
 * (test/helpers/postgres.ts), each test on a fresh one. What is asserted is what a user of the API
 * observes: pages and cursors, ingest stored once per deviation, alerts grouped and moved with their
 * follow-up notifications, baselines merged from several nodes, reviewed and versioned, quarantine
 * recomputing what a node taught, the outbox, exceptions, nodes, retention and the audit log. Then,
 * on PostgreSQL only, two stores on one database (two replicas) racing: no entry lost, no batch
 * stored twice.
 */
import test, { type ExecutionContext } from 'ava';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { AlertPolicy, OutboxEntry } from '../../collector/alerting/alert.js';
import { asAsync, type AsyncStore } from '../../collector/store/async.js';
import { openPostgresStore } from '../../collector/store/postgres/index.js';
import { MIGRATIONS, SCHEMA_VERSION } from '../../collector/store/postgres/schema.js';
import { openSqliteStore } from '../../collector/store/sqlite/index.js';
import {
  CursorError,
  MAX_IMAGE_PLACES,
  MAX_IMAGE_PLACES_PER_NODE,
  MAX_NEW_VERSIONS_PER_NODE_HOUR,
  MAX_NEW_VERSIONS_PER_WRITE,
  MAX_VERSIONS_PER_REPOSITORY,
  MAX_VERSIONS_READ,
  type SbomRecord, type BaselineView, type IngestResult, type NodeRecord, type ReviewedEntry } from '../../collector/store/store.js';
import type { BaselineSnapshot } from '../../core/baseline.js';
import type { ContainerReport, ImageSighting, RunningContainer } from '../../core/inventory.js';
import { entryId, PUBLIC_PEER, type Entry } from '../../core/entry.js';
import { T0, deltaOf, statsOf } from '../helpers/baseline-delta.js';
import { deviationOf } from '../helpers/ingest.js';
import { usePostgres } from '../helpers/postgres.js';

type OpenStore = AsyncStore & { close(): Promise<void> };

const server = usePostgres(test);

/** Each store kind, opened fresh for one test and closed after it. */
const KINDS: Record<string, (t: ExecutionContext) => Promise<OpenStore>> = {
  sqlite: async (t) => {
    const dir = mkdtempSync(join(tmpdir(), 'dw-conformance-'));
    const store = asAsync(openSqliteStore(join(dir, 'collector.db'))) as OpenStore;
    t.teardown(async () => {
      await store.close();
      rmSync(dir, { recursive: true, force: true });
    });
    return store;
  },
  postgres: async (t) => {
    const store = await openPostgresStore(await server.database());
    t.teardown(() => store.close());
    return store;
  },
};

/** A contract test, run once per store kind; `open` gives more fresh stores of the same kind. */
function contract(title: string, fn: (t: ExecutionContext, store: OpenStore, open: () => Promise<OpenStore>) => Promise<void>): void {
  for (const [kind, open] of Object.entries(KINDS)) {
    test(`${kind}: ${title}`, async (t) => fn(t, await open(t), () => open(t)));
  }
}

const KEY = 'docker.io/library/nginx';
const nginx: Entry = { type: 'process', exe: '/usr/sbin/nginx', parent: 'containerd-shim', user: 'root', args: '-g daemon off;' };
const dns: Entry = { type: 'network', direction: 'egress', protocol: 'udp', peer: 'cluster', port: 53 };
const proc = (exe: string): Entry => ({ type: 'process', exe, parent: 'sh', user: 'root', args: '' });

function delta(node: string, version: number, entries: [Entry, number, number, string[]][], state: BaselineSnapshot['state'] = 'learning', key = KEY): BaselineSnapshot {
  return deltaOf(key, entries.map(([entry, count, last, examples]) => statsOf(entry, node, { firstSeen: T0 + last - 10, lastSeen: T0 + last, count, examples })), { state, version });
}

const policy = (notify: string[] = []): AlertPolicy => ({
  decide: (d) => ({ severity: d.event.kind === 'connect' ? 'high' : 'low', ruleId: 'test', ruleReason: 'test', team: 'shop', receivers: notify }),
  exceptionFor: () => '',
  notify: (alert, _at) => notify.map((sink) => ({ alert: alert.fingerprint, sink, action: alert.createdAt === _at && alert.count > 0 && alert.state === 'firing' ? 'fire' : 'again', body: '{}', state: 'pending' as const, lastError: '' })),
});

// ---- SBOMs (issue 22) ----

const curlPkg = { name: 'curl', version: '7.88.1-10+deb12u8', purl: 'pkg:deb/debian/curl@7.88.1-10+deb12u8?arch=amd64', type: 'deb' };
const bashPkg = { name: 'bash', version: '5.2.15-2+b7', purl: 'pkg:deb/debian/bash@5.2.15-2+b7?arch=amd64', type: 'deb' };
const sbomOf = (digest: string, importedAt: number, files: [string, number][], packages = [curlPkg, bashPkg]): SbomRecord => ({
  digest,
  repository: 'docker.io/library/debian',
  format: 'spdx',
  specVersion: 'SPDX-2.3',
  tool: 'syft-1.18.1',
  importedAt,
  importedBy: 'alice',
  filesListed: true,
  packages,
  files: new Map(files),
});

contract('sboms: stored per digest with owners; replaced whole; latest per repository; lookups bounded to what was asked', async (t, store) => {
  const d1 = `sha256:${'1'.repeat(64)}`;
  const d2 = `sha256:${'2'.repeat(64)}`;
  t.false(await store.putSbom(sbomOf(d1, T0, [['/usr/bin/curl', 0], ['/bin/bash', 1], ['/etc/motd', -1]])));
  t.deepEqual(await store.getSbom(d1), { digest: d1, repository: 'docker.io/library/debian', format: 'spdx', specVersion: 'SPDX-2.3', tool: 'syft-1.18.1', importedAt: T0, importedBy: 'alice', filesListed: true, packageCount: 2, fileCount: 3 });
  t.deepEqual(await store.sbomFiles(d1, ['/usr/bin/curl', '/etc/motd', '/tmp/x', '/usr/bin/curl']), [
    { path: '/usr/bin/curl', package: curlPkg },
    { path: '/etc/motd', package: null },
  ]);
  t.deepEqual(await store.sbomPackages(d1, 1), [curlPkg]);
  t.is(await store.getSbom(d2), null);
  t.false(await store.putSbom(sbomOf(d2, T0 + 10, [['/usr/bin/curl', 0]], [{ ...curlPkg, version: '8.5.0-2' }])));
  t.is((await store.latestSbom('docker.io/library/debian'))?.digest, d2);
  t.deepEqual((await store.listSboms('docker.io/library/debian')).map((s) => s.digest), [d2, d1]);
  t.is(await store.latestSbom('docker.io/library/nginx'), null);
  // A new import of d1 replaces its packages and files whole.
  t.true(await store.putSbom(sbomOf(d1, T0 + 20, [['/bin/bash', 0]], [bashPkg])));
  t.like(await store.getSbom(d1), { packageCount: 1, fileCount: 1, importedAt: T0 + 20 });
  t.deepEqual(await store.sbomFiles(d1, ['/usr/bin/curl', '/bin/bash']), [{ path: '/bin/bash', package: bashPkg }]);
  t.is((await store.latestSbom('docker.io/library/debian'))?.digest, d1);
  t.deepEqual(await store.sbomFiles(d2, ['/usr/bin/curl']), [{ path: '/usr/bin/curl', package: { ...curlPkg, version: '8.5.0-2' } }], 'the other digest untouched');
});

contract('sboms: a large file list goes in and is found', async (t, store) => {
  const files: [string, number][] = Array.from({ length: 20_000 }, (_, i) => [`/usr/lib/x/${i}.so`, i % 2]);
  await store.putSbom(sbomOf(`sha256:${'3'.repeat(64)}`, T0, files));
  t.like(await store.getSbom(`sha256:${'3'.repeat(64)}`), { fileCount: 20_000 });
  const found = await store.sbomFiles(`sha256:${'3'.repeat(64)}`, ['/usr/lib/x/19999.so', '/usr/lib/x/20000.so']);
  t.deepEqual(found, [{ path: '/usr/lib/x/19999.so', package: bashPkg }]);
});

// ---- audit ----

contract('audit: ids ascend, rows come back newest first, paged below an id', async (t, store) => {
  const ids: number[] = [];
  for (let i = 0; i < 5; i++) ids.push(await store.appendAudit({ time: T0 + i, actor: `u${i}`, role: 'admin', action: 'x.change', target: `t${i}`, before: '{"a": 1}', after: 'null' }));
  t.deepEqual([...ids].sort((a, b) => a - b), ids);
  const first = await store.listAudit(Number.MAX_SAFE_INTEGER, 2);
  t.deepEqual(first.map((r) => r.actor), ['u4', 'u3']);
  t.like(first[0], { id: ids[4], time: T0 + 4, role: 'admin', action: 'x.change', target: 't4', before: '{"a": 1}', after: 'null' }, 'the JSON text as given');
  const next = await store.listAudit(first[1]!.id, 10);
  t.deepEqual(next.map((r) => r.actor), ['u2', 'u1', 'u0']);
});

// ---- nodes ----

const nodeRecord = (node: string, lastContact: number): NodeRecord => ({
  node, agentVersion: '1.2.3', sources: ['falco', 'ebpf'], firstSeen: T0, lastContact, spooled: 3, spoolBytes: 4096, lagMs: 250, spoolDropped: 1, watermark: T0 + 5, silentSince: 0, stoppedAt: 0,
});

contract('nodes: saved, replaced, listed by name (bytewise), deleted once', async (t, store) => {
  await store.saveNodes([nodeRecord('node-b', T0 + 1), nodeRecord('Node-Z', T0 + 2), nodeRecord('node-a', T0 + 3)]);
  await store.saveNodes([{ ...nodeRecord('node-b', T0 + 9), sources: ['tetragon'], silentSince: T0 + 8 }]);
  const nodes = await store.listNodes();
  t.deepEqual(nodes.map((n) => n.node), ['Node-Z', 'node-a', 'node-b']);
  t.deepEqual(nodes[2], { ...nodeRecord('node-b', T0 + 9), sources: ['tetragon'], silentSince: T0 + 8 });
  t.true(await store.deleteNode('node-a'));
  t.false(await store.deleteNode('node-a'));
  t.deepEqual((await store.listNodes()).map((n) => n.node), ['Node-Z', 'node-b']);
});

contract('nodes: the latest contact of any save is kept; a save that heard from the node earlier does not move it back (the cluster view of several replicas)', async (t, store) => {
  // Replica A hears from node-x at T0 + 500; replica B last heard from it at T0 + 100 and judges it silent at T0 + 400.
  await store.saveNodes([{ ...nodeRecord('node-x', T0 + 500), firstSeen: T0 + 50, spooled: 7 }]);
  await store.saveNodes([{ ...nodeRecord('node-x', T0 + 100), firstSeen: T0 + 10, spooled: 99, silentSince: T0 + 400 }]);
  t.deepEqual((await store.listNodes())[0], { ...nodeRecord('node-x', T0 + 500), firstSeen: T0 + 10, spooled: 7 }, 'the newer contact and its record kept; not silent; first sight the earliest');
  await store.saveNodes([{ ...nodeRecord('node-x', T0 + 500), firstSeen: T0 + 50, silentSince: T0 + 900 }]);
  t.is((await store.listNodes())[0]!.silentSince, T0 + 900, 'the same contact, saved again later (marked silent): taken');
});

// ---- exceptions ----

contract('exceptions: added, listed newest first, revoked once, reminded', async (t, store) => {
  const e = (id: string, createdAt: number) => ({ id, key: 'docker.io/*', entry: '', namespace: 'shop', reason: 'known', owner: 'ops', createdBy: 'alice', createdAt, expiresAt: createdAt + 1000, revokedAt: 0, revokedBy: '', remindedAt: 0 });
  await store.addException(e('ex-1', T0));
  await store.addException(e('ex-2', T0 + 5));
  await store.addException(e('ex-0', T0 + 5));
  t.deepEqual((await store.listExceptions()).map((x) => x.id), ['ex-0', 'ex-2', 'ex-1']);
  t.deepEqual(await store.getException('ex-1'), e('ex-1', T0));
  t.is(await store.getException('nope'), null);
  t.like(await store.revokeException('ex-1', 'bob', T0 + 10), { revokedAt: T0 + 10, revokedBy: 'bob' });
  t.like(await store.revokeException('ex-1', 'carol', T0 + 20), { revokedAt: T0 + 10, revokedBy: 'bob' }, 'revoked once');
  t.is(await store.revokeException('nope', 'bob', T0), null);
  await store.markReminded('ex-2', T0 + 30);
  t.is((await store.getException('ex-2'))?.remindedAt, T0 + 30);
});

// ---- outbox ----

contract('outbox: due in order of time then arrival, held back until notBefore, settled, listed per alert newest first', async (t, store) => {
  const item = (alert: string, action: string, extra: Partial<OutboxEntry> = {}): OutboxEntry => ({ alert, sink: 'pd', action, body: `{"a":"${action}"}`, state: 'pending', lastError: '', ...extra });
  await store.enqueue([item('fp-1', 'fire'), item('fp-2', 'fire', { notBefore: T0 + 500 }), item('fp-1', 'note', { sink: 'slack' }), item('fp-1', 'skip', { state: 'skipped', lastError: 'muted' })], T0);
  await store.enqueue([item('fp-3', 'fire')], T0 + 100);
  t.is(await store.pendingDeliveries(), 4);
  t.is(await store.nextDueAt('pd'), T0);
  t.is(await store.nextDueAt('none'), null);
  const claim = (at: number, owner = 'replica-a') => store.claimDelivery('pd', at, owner, 60_000);
  const first = (await claim(T0 + 200))!;
  t.like(first, { alert: 'fp-1', action: 'fire', state: 'pending', attempts: 0, nextAt: T0, createdAt: T0, doneAt: 0, body: '{"a":"fire"}' });
  t.true(await store.settleDelivery(first.seq, 'replica-a', { state: 'pending', attempts: 1, nextAt: T0 + 1000, error: 'HTTP 503', at: T0 + 200 }));
  const second = (await claim(T0 + 200))!;
  t.like(second, { alert: 'fp-3' }, 'the retried one waits; the next due goes first');
  t.true(await store.settleDelivery(second.seq, 'replica-a', { state: 'delivered', attempts: 1, nextAt: T0 + 200, error: '', at: T0 + 210 }));
  t.is(await claim(T0 + 200), null, 'fp-2 is held back until its notBefore');
  const third = (await claim(T0 + 600))!;
  t.like(third, { alert: 'fp-2', nextAt: T0 + 500 });
  t.is(await store.nextDueAt('pd'), T0 + 1000, 'fp-2 is leased: the next free one is fp-1, due at T0 + 1000');
  const fourth = (await claim(T0 + 2000, 'replica-b'))!;
  t.like(fourth, { alert: 'fp-1', attempts: 1 }, 'fp-2 (due first) is leased to replica-a: replica-b gets the next one');
  t.is(await claim(T0 + 2000, 'replica-c'), null, 'both due ones are leased');
  t.is(await store.nextDueAt('pd'), T0 + 600 + 60_000, 'the first lease to end');
  t.false(await store.settleDelivery(third.seq, 'replica-b', { state: 'delivered', attempts: 1, nextAt: T0 + 500, error: '', at: T0 + 2000 }), 'only the holder settles');
  t.true(await store.renewDelivery(third.seq, 'replica-a', T0 + 200_000));
  t.false(await store.renewDelivery(third.seq, 'replica-b', T0 + 200_000));
  const taken = (await claim(T0 + 100_000, 'replica-c'))!;
  t.like(taken, { seq: fourth.seq, alert: 'fp-1' }, "replica-b's lease ended (its replica died): replica-c takes fp-1 over; fp-2's lease was renewed");
  t.false(await store.settleDelivery(fourth.seq, 'replica-b', { state: 'delivered', attempts: 2, nextAt: T0 + 1000, error: '', at: T0 + 100_001 }), "the stale owner's settle is refused");
  t.false(await store.renewDelivery(fourth.seq, 'replica-b', T0 + 300_000));
  t.is(await store.pendingDeliveries(), 3);
  const list = await store.deliveriesOf('fp-1');
  t.deepEqual(list.map((d) => [d.sink, d.action, d.state, d.lastError]), [['pd', 'skip', 'skipped', 'muted'], ['slack', 'note', 'pending', ''], ['pd', 'fire', 'pending', 'HTTP 503']]);
  t.is(list[0]!.doneAt, T0, 'a settled entry is done when written');
  t.like(list[2], { attempts: 1, nextAt: T0 + 1000 });
  t.like((await store.deliveriesOf('fp-3'))[0], { state: 'delivered', doneAt: T0 + 210 });
});

// ---- ingest and deviations ----

contract('ingest: the same batch twice is stored once; deviations paged newest first with cursors and filters', async (t, store) => {
  const batch = [1, 2, 3, 4, 5].map((i) => deviationOf({ node: 'node-1', i, exe: i % 2 === 0 ? '/usr/bin/curl' : '/bin/sh' }));
  const r1 = await store.ingest('node-1', batch, [], T0);
  t.like(r1, { stored: 5, duplicates: 0, known: 0 });
  t.is(r1.newAlerts.length, 2);
  const r2 = await store.ingest('node-1', batch, [], T0 + 1);
  t.like(r2, { stored: 0, duplicates: 5, newAlerts: [], updated: [] });
  // The same ids from another node are other deviations (ids are scoped by node).
  const other = deviationOf({ node: 'node-2', i: 1 });
  t.like(await store.ingest('node-2', [{ ...other, id: batch[0]!.id }], [], T0 + 2), { stored: 1 });
  t.is(await store.countDeviations(), 6);
  const seen: string[] = [];
  let cursor: string | undefined;
  let pages = 0;
  do {
    const page = await store.listDeviations({ limit: 4, cursor });
    seen.push(...page.items.map((d) => `${d.deviation.event.node}/${d.deviation.event.process?.pid}`));
    cursor = page.next ?? undefined;
    pages++;
  } while (cursor !== undefined);
  t.is(pages, 2);
  t.deepEqual(seen, ['node-2/101', 'node-1/105', 'node-1/104', 'node-1/103', 'node-1/102', 'node-1/101'], 'newest first, each once');
  const page = await store.listDeviations({ limit: 10, node: 'node-1' });
  t.is(page.items.length, 5);
  t.is(page.next, null);
  t.like(page.items[0], { receivedAt: T0, nodeQuarantined: false });
  t.deepEqual(page.items[0]!.deviation, batch[4]);
  const curl = page.items.find((d) => d.deviation.event.process?.exe === '/usr/bin/curl')!.fingerprint;
  t.is((await store.listDeviations({ limit: 10, fingerprint: curl })).items.length, 2);
  t.is((await store.listDeviations({ limit: 10, baselineKey: 'docker.io/library/redis' })).items.length, 0);
  await t.throwsAsync(store.listDeviations({ limit: 10, cursor: 'bm90LW91cnM' }), { instanceOf: CursorError });
});

contract('group commit: each batch in its own savepoint; a failing batch is rolled back alone and reported', async (t, store) => {
  const failing: AlertPolicy = {
    decide(d) {
      if (d.key === 'docker.io/library/broken') throw new Error('rule evaluation failed');
      return { severity: 'medium', ruleId: 'test', ruleReason: 'test', team: '', receivers: [] };
    },
    exceptionFor: () => '',
  };
  const bad = [deviationOf({ node: 'node-2', i: 3, exe: '/usr/bin/wget' }), deviationOf({ node: 'node-2', i: 4, image: 'docker.io/library/broken' })];
  const results = await store.ingestMany(
    [
      { node: 'node-1', deviations: [deviationOf({ node: 'node-1', i: 1 })], deltas: [] },
      { node: 'node-2', deviations: bad, deltas: [delta('node-2', 1, [[nginx, 1, 10, []]])] },
      { node: 'node-3', deviations: [deviationOf({ node: 'node-3', i: 5, image: 'docker.io/library/redis' })], deltas: [] },
    ],
    T0,
    failing,
  );
  t.is((results[0] as IngestResult).stored, 1);
  t.is((results[1] as Error).message, 'rule evaluation failed');
  t.is((results[2] as IngestResult).stored, 1);
  t.is(await store.countDeviations(), 2);
  t.is(await store.getBaseline(KEY), null, 'the failed batch\'s delta is gone too');
  const again = await store.ingestMany([{ node: 'node-2', deviations: bad, deltas: [delta('node-2', 1, [[nginx, 1, 10, []]])] }], T0);
  t.is((again[0] as IngestResult).stored, 2);
  t.is((await store.getBaseline(KEY))?.entries.length, 1);
});

contract('retention: old deviations, closed alerts and settled deliveries go, counted; open ones stay', async (t, store) => {
  await store.ingest('node-1', [deviationOf({ i: 1 }), deviationOf({ i: 2, exe: '/usr/bin/curl' })], [], T0);
  await store.ingest('node-1', [deviationOf({ i: 3, exe: '/usr/bin/wget' })], [], T0 + 10_000);
  const alerts = (await store.listAlerts({ limit: 10 })).items;
  const curl = alerts.find((a) => a.entry.type === 'process' && a.entry.exe === '/usr/bin/curl')!;
  await store.transitionAlert(curl.fingerprint, { to: 'resolved', by: 'alice', at: T0 + 1, comment: '' }, () => [{ alert: curl.fingerprint, sink: 'pd', action: 'resolve', body: '{}', state: 'delivered', lastError: '' }]);
  await store.enqueue([{ alert: 'x', sink: 'pd', action: 'fire', body: '{}', state: 'pending', lastError: '' }], T0);
  const late = Date.UTC(2027, 0, 1);
  t.deepEqual(await store.prune(T0 + 5_000, late), { deviations: 2, alerts: 1, deliveries: 1 });
  t.is(await store.countDeviations(), 1);
  t.deepEqual((await store.listAlerts({ limit: 10 })).items.map((a) => a.state).sort(), ['firing', 'firing']);
  t.is(await store.pendingDeliveries(), 1, 'pending deliveries stay');
  t.deepEqual(await store.prune(0, 0), { deviations: 0, alerts: 0, deliveries: 0 });
});

// ---- alerts ----

contract('alerts: grouped by fingerprint, listed with filters and cursors, new ones notified in the same commit', async (t, store) => {
  const r = await store.ingest('node-1', [
    deviationOf({ i: 1 }), deviationOf({ i: 2 }), deviationOf({ i: 3, node: 'node-2' }),
    deviationOf({ i: 4, peer: '203.0.113.9' }), deviationOf({ i: 5, image: 'docker.io/library/redis', namespace: 'cache' }),
  ], [], T0, policy(['pd']));
  t.is(r.newAlerts.length, 3);
  t.deepEqual(r.notifications.map((n) => [n.sink, n.action]), [['pd', 'fire'], ['pd', 'fire'], ['pd', 'fire']]);
  t.is(await store.pendingDeliveries(), 3);
  const sh = r.newAlerts.find((a) => a.kind === 'exec' && a.image === KEY)!;
  t.like(sh, { count: 3, state: 'firing', severity: 'low', team: 'shop', namespace: 'shop', baselineKey: KEY, createdAt: T0 });
  t.deepEqual(sh.nodes, ['node-1', 'node-2']);
  t.deepEqual([...sh.pods].sort(), ['shop/web-0', 'shop/web-1', 'shop/web-2']);
  t.deepEqual(await store.getAlert(sh.fingerprint), sh);
  t.is(await store.getAlert('nope'), null);
  // A second batch grows the alert: its count, last seen and latest deviation.
  const grown = await store.ingest('node-3', [deviationOf({ i: 9, node: 'node-3' })], [], T0 + 5, policy(['pd']));
  t.deepEqual(grown.updated, [sh.fingerprint]);
  t.deepEqual(grown.notifications, []);
  t.like(await store.getAlert(sh.fingerprint), { count: 4, lastDeviationId: deviationOf({ i: 9, node: 'node-3' }).id, nodes: ['node-1', 'node-2', 'node-3'] });
  t.is((await store.listAlerts({ limit: 10, severity: 'high' })).items.length, 1);
  t.is((await store.listAlerts({ limit: 10, severity: 'low' })).items.length, 3);
  t.is((await store.listAlerts({ limit: 10, namespace: 'cache' })).items.length, 1);
  t.is((await store.listAlerts({ limit: 10, image: KEY, kind: 'exec' })).items.length, 1);
  const p1 = await store.listAlerts({ limit: 2 });
  const p2 = await store.listAlerts({ limit: 2, cursor: p1.next! });
  t.is(p2.next, null);
  t.deepEqual([...p1.items, ...p2.items].map((a) => a.fingerprint), r.newAlerts.map((a) => a.fingerprint).reverse(), 'newest first across pages');
});

contract('alerts: transitions allowed from their states, conflicts and unknown alerts refused, follow-ups committed with the change', async (t, store) => {
  await store.ingest('node-1', [deviationOf({ i: 1, exe: '/usr/bin/curl' })], [], T0);
  const fp = (await store.listAlerts({ limit: 1 })).items[0]!.fingerprint;
  const change = (to: 'acknowledged' | 'resolved' | 'accepted', at: number) => ({ to, by: 'alice', at, comment: 'c' });
  t.like(await store.transitionAlert('nope', change('resolved', T0)), { ok: false, reason: 'not-found' });
  await t.throwsAsync(store.transitionAlert(fp, change('resolved', T0 + 1), () => {
    throw new Error('the outbox is unwritable');
  }));
  t.is((await store.getAlert(fp))?.state, 'firing', 'not resolved without its notification');
  const ack = await store.transitionAlert(fp, change('acknowledged', T0 + 2), ({ before, after }) => [{ alert: fp, sink: 'pd', action: `${before.state}->${after.state}`, body: '{}', state: 'pending', lastError: '' }]);
  if (!ack.ok) return t.fail();
  t.like(ack.after, { state: 'acknowledged', stateBy: 'alice', stateAt: T0 + 2, stateComment: 'c' });
  t.deepEqual(ack.notifications.map((n) => n.action), ['firing->acknowledged']);
  t.like(await store.transitionAlert(fp, change('acknowledged', T0 + 3)), { ok: false, reason: 'conflict', alert: { state: 'acknowledged' } });
  t.true((await store.transitionAlert(fp, change('resolved', T0 + 4))).ok);
  t.deepEqual((await store.deliveriesOf(fp)).map((d) => d.action), ['firing->acknowledged']);
  // Its behaviour comes back: it fires again, reopened and notified.
  const back = await store.ingest('node-1', [deviationOf({ i: 2, exe: '/usr/bin/curl' })], [], T0 + 5, policy(['pd']));
  t.deepEqual(back.reopened.map((a) => [a.fingerprint, a.state, a.count]), [[fp, 'firing', 2]]);
  t.deepEqual(back.notifications.map((n) => n.alert), [fp]);
  t.is((await store.getAlert(fp))?.stateAt, T0 + 5);
});

contract('alerts: accepting adds the entry to the cluster baseline as security\'s own (a version); its deviations are known from then on', async (t, store) => {
  await store.ingest('node-1', [], [delta('node-1', 1, [[dns, 1, 10, []]], 'enforcing')], T0);
  const d1 = deviationOf({ i: 1, exe: '/usr/bin/curl' });
  await store.ingest('node-1', [d1], [], T0);
  const alert = (await store.listAlerts({ limit: 1 })).items[0]!;
  t.is((await store.listBaselines())[0]!.openAlerts, 1);
  const r = await store.transitionAlert(alert.fingerprint, { to: 'accepted', by: 'rita', at: T0 + 1, comment: '' });
  t.true(r.ok);
  const b = (await store.getBaseline(KEY))!;
  t.like(b.entries.find((e) => e.id === entryId(alert.entry)), { status: 'added', statusReason: 'accepted from an alert', count: 0 });
  t.is(b.version, 1);
  t.like((await store.listVersions(KEY))[0], { version: 1, action: 'accept', by: 'rita', reason: `accepted alert ${alert.fingerprint}` });
  t.is((await store.listBaselines())[0]!.openAlerts, 0);
  t.like(await store.ingest('node-2', [deviationOf({ node: 'node-2', i: 7, exe: '/usr/bin/curl' })], [], T0 + 2), { known: 1, stored: 0 });
});

// ---- baselines ----

contract('baselines: deltas from two nodes merge (counts summed, times widened, nodes and examples united); a resent or late delta changes nothing', async (t, store) => {
  await store.ingest('node-a', [], [delta('node-a', 2, [[nginx, 5, 100, ['nginx -g daemon off;']], [dns, 3, 50, ['-> 10.96.0.10:53']]])], T0);
  const fromB = delta('node-b', 4, [[nginx, 2, 300, ['nginx -g daemon off;', 'nginx -t']]]);
  await store.ingest('node-b', [], [fromB], T0);
  const a3 = delta('node-a', 3, [[nginx, 9, 200, []]]);
  await store.ingest('node-a', [], [a3], T0);
  await store.ingest('node-a', [], [a3], T0); // resent after a lost ack
  await store.ingest('node-b', [], [fromB], T0);
  await store.ingest('node-a', [], [delta('node-a', 2, [[nginx, 5, 100, ['late']]])], T0); // an older one, late
  const b = (await store.getBaseline(KEY))!;
  const n = b.entries.find((e) => e.id === entryId(nginx))!;
  t.like(n, { count: 11, firstSeen: T0 + 90, lastSeen: T0 + 300, status: 'learned' });
  t.deepEqual(n.nodes, ['node-a', 'node-b']);
  t.deepEqual(n.examples, ['nginx -g daemon off;', 'nginx -t', 'late']);
  t.deepEqual(b.nodes.map((x) => [x.node, x.version]), [['node-a', 3], ['node-b', 4]]);
  t.deepEqual(b.entries.map((e) => e.id), [entryId(nginx), entryId(dns)].sort());
  const [summary] = await store.listBaselines();
  t.like(summary, { key: KEY, state: 'learning', version: 0, processEntries: 1, networkEntries: 1, openAlerts: 0 });
  t.deepEqual(await store.clusterKeys(), [], 'still learning: nothing to send agents');
  t.is(await store.getBaseline('docker.io/none'), null);
  t.is(await store.clusterBaseline('docker.io/none'), null);
});

contract('baselines: review changes make versions; agents are told what to enforce; the cluster baseline drops what it knows', async (t, store) => {
  const r1 = await store.ingest('node-a', [], [delta('node-a', 1, [[nginx, 5, 100, []], [dns, 3, 50, []]], 'enforcing')], T0);
  t.deepEqual(r1.clusterChanged, [KEY]);
  t.deepEqual(await store.clusterKeys(), [KEY]);
  const at = T0 + 1000;
  t.like(await store.reviewBaseline('docker.io/none', { action: 'lock' }, 'rita', '', at), { ok: false, status: 404 });
  t.like(await store.reviewBaseline(KEY, { action: 'approve', entryId: entryId(nginx) }, 'rita', 'fine', at), { ok: true, version: 1 });
  t.like(await store.reviewBaseline(KEY, { action: 'remove', entryId: entryId(dns) }, 'rita', 'no dns', at + 1), { ok: true, version: 2 });
  t.like(await store.reviewBaseline(KEY, { action: 'remove', entryId: entryId(dns) }, 'rita', 'again', at + 1), { ok: false, status: 409 });
  t.like(await store.reviewBaseline(KEY, { action: 'approve', entryId: 'exec|nope' }, 'rita', '', at + 1), { ok: false, status: 404 });
  const wget = proc('/usr/bin/wget');
  t.like(await store.reviewBaseline(KEY, { action: 'add', entry: wget }, 'rita', 'needed', at + 2), { ok: true, version: 3 });
  t.like(await store.reviewBaseline(KEY, { action: 'lock' }, 'rita', 'freeze', at + 3), { ok: true, version: 4 });
  t.like(await store.reviewBaseline(KEY, { action: 'lock' }, 'rita', 'freeze', at + 3), { ok: false, status: 409 });
  // Locked: agents' deltas are refused.
  const refused = await store.ingest('node-b', [], [delta('node-b', 1, [[proc('/tmp/x'), 1, 10, []]], 'enforcing')], T0);
  t.deepEqual(refused.refused, { locked: 1 });
  const v = (await store.getBaseline(KEY))!;
  t.like(v, { state: 'locked', version: 4 });
  t.deepEqual(v.entries.map((e) => [e.id, e.status, e.statusReason]), [
    [entryId(nginx), 'approved', 'fine'],
    [entryId(wget), 'added', 'needed'],
    [entryId(dns), 'removed', 'no dns'],
  ].sort((a, b) => (a[0]! < b[0]! ? -1 : 1)));
  t.deepEqual(await store.clusterBaseline(KEY), { key: KEY, state: 'locked', relearn: false, version: 4, windowStart: T0, learnUntil: T0 + 3_600_000, entryIds: [entryId(nginx), entryId(wget)].sort(), removedIds: [entryId(dns)] });
  const versions = await store.listVersions(KEY);
  t.deepEqual(versions.map((x) => [x.version, x.action]), [[4, 'lock'], [3, 'add'], [2, 'remove'], [1, 'approve']]);
  t.deepEqual(await store.getVersion(KEY, 2), { key: KEY, version: 2, at: at + 1, by: 'rita', action: 'remove', reason: 'no dns', state: 'enforcing', entryIds: [entryId(nginx)], removedIds: [entryId(dns)] });
  t.is(await store.getVersion(KEY, 99), null);
  // Known entries are dropped from ingest; a removed one alerts.
  const known = await store.ingest('node-a', [deviationOf({ i: 1, exe: '/usr/bin/wget', args: '' })], [], T0);
  t.is(known.known + known.stored, 1);
  t.like(await store.reviewBaseline(KEY, { action: 'unlock' }, 'rita', '', at + 4), { ok: true, version: 5 });
  t.like(await store.reviewBaseline(KEY, { action: 'relearn' }, 'rita', 'rebuilt', at + 5), { ok: true, version: 6, after: { state: 'relearn' } });
  const relearnt = (await store.getBaseline(KEY))!;
  t.deepEqual(relearnt.entries.map((e) => e.status).sort(), ['added', 'approved', 'removed'], 'learned entries went; security\'s stay');
  t.deepEqual(relearnt.nodes, []);
  // The agents' fresh window ends the relearn.
  await store.ingest('node-a', [], [delta('node-a', 7, [[dns, 1, 10, []]], 'learning')], T0 + 5000);
  t.is((await store.getBaseline(KEY))!.state, 'learning');
  // An import is the desired state.
  const imp = await store.reviewBaseline('docker.io/new', { action: 'import', state: 'enforcing', entries: [nginx], removed: [dns] }, 'rita', 'imported', at + 6);
  if (!imp.ok) return t.fail(imp.message);
  t.like(imp, { before: null, version: 1, after: { state: 'enforcing' } });
  t.deepEqual(imp.after.entries.map((e) => [e.id, e.status]), [[entryId(nginx), 'added'], [entryId(dns), 'removed']].sort((a, b) => (a[0]! < b[0]! ? -1 : 1)));
  t.deepEqual((await store.listBaselines()).map((b) => [b.key, b.state, b.version]), [['docker.io/library/nginx', 'learning', 6], ['docker.io/new', 'enforcing', 1]]);
});

// ---- quarantine ----

const QKEY = 'docker.io/acme/shop';
const A = 'node-a';
const B = 'node-b';
const shared = proc('/usr/bin/app');
const onlyA = proc('/tmp/backdoor');
const approvedA = proc('/usr/bin/helper');
const onlyB = proc('/usr/bin/cron');

function deltasOf(node: string): BaselineSnapshot[] {
  if (node === A) {
    return [
      deltaOf(QKEY, [
        statsOf(shared, A, { firstSeen: T0 + 100, lastSeen: T0 + 800, count: 30, examples: ['app --evil', 'app --x'] }),
        statsOf(onlyA, A, { firstSeen: T0 + 200, lastSeen: T0 + 200, count: 1, examples: ['/tmp/backdoor'] }),
        statsOf(approvedA, A, { firstSeen: T0 + 50, lastSeen: T0 + 60, count: 2 }),
      ], { version: 5, events: 90 }),
      deltaOf(QKEY, [statsOf(shared, A, { firstSeen: T0 + 100, lastSeen: T0 + 900, count: 40, examples: [] })], { version: 6, events: 120 }),
    ];
  }
  return [
    deltaOf(QKEY, [
      statsOf(shared, B, { firstSeen: T0 + 300, lastSeen: T0 + 500, count: 7, examples: ['app --x', 'app --serve'] }),
      statsOf(onlyB, B, { firstSeen: T0 + 10, lastSeen: T0 + 20, count: 4, examples: ['cron -f'] }),
    ], { version: 3, events: 11 }),
  ];
}

const entryOf = (v: BaselineView | null, e: Entry): ReviewedEntry | undefined => v?.entries.find((x) => x.id === entryId(e));
const statsView = (e: ReviewedEntry | undefined) => e && { firstSeen: e.firstSeen, lastSeen: e.lastSeen, count: e.count, nodes: e.nodes, examples: e.examples };

contract('quarantine: a shared entry keeps the stats of the node that remains, as if only it had taught; what only the quarantined node taught goes; a version; its deltas refused, its deviations marked', async (t, store, open) => {
  const alone = await open();
  for (const d of deltasOf(B)) await alone.ingest(B, [], [d], T0);
  const expected = await alone.getBaseline(QKEY);
  const [a1, a2] = deltasOf(A) as [BaselineSnapshot, BaselineSnapshot];
  await store.ingest(A, [], [a1], T0);
  await store.ingest(B, [], deltasOf(B), T0);
  await store.ingest(A, [], [a2], T0);
  const before = await store.getBaseline(QKEY);
  t.like(statsView(entryOf(before, shared)), { count: 47, firstSeen: T0 + 100, lastSeen: T0 + 900, nodes: [A, B] });
  t.deepEqual(entryOf(before, shared)!.examples, ['app --evil', 'app --x', 'app --serve']);
  t.true((await store.reviewBaseline(QKEY, { action: 'approve', entryId: entryId(approvedA) }, 'rita', 'looked fine', T0 + 1000)).ok);
  const version = (await store.getBaseline(QKEY))!.version;
  await store.ingest(A, [deviationOf({ node: A, i: 1 })], [], T0);
  t.deepEqual(await store.quarantineNode(A, 'rita', 'found a backdoor', T0 + 2000), { keys: [QKEY], entriesRemoved: 1, entriesRecomputed: 2, entriesNarrowed: 0 });
  t.is(await store.quarantineNode(A, 'rita', 'again', T0 + 2001), null, 'already quarantined');
  const after = (await store.getBaseline(QKEY))!;
  t.deepEqual(statsView(entryOf(after, shared)), statsView(entryOf(expected, shared)));
  t.deepEqual(statsView(entryOf(after, onlyB)), statsView(entryOf(expected, onlyB)));
  t.deepEqual(entryOf(after, shared)!.droppedNodes, [A]);
  t.deepEqual(entryOf(after, onlyB)!.droppedNodes, []);
  t.is(entryOf(after, onlyA), undefined);
  t.like(entryOf(after, approvedA), { status: 'approved', count: 0, firstSeen: 0, lastSeen: 0, nodes: [], examples: [], droppedNodes: [A] });
  t.like(after, { events: expected!.events, windowStart: expected!.windowStart, version: version + 1 });
  t.deepEqual(after.nodes.map((n) => n.node), [B]);
  t.like((await store.listVersions(QKEY))[0], { version: version + 1, action: 'quarantine', by: 'rita', reason: `node ${A} quarantined: found a backdoor` });
  t.deepEqual((await store.clusterBaseline(QKEY))!.entryIds, [entryId(shared), entryId(approvedA), entryId(onlyB)].sort());
  // From now on: its deltas are refused, its deviations kept and marked.
  t.deepEqual((await store.ingest(A, [], [a1], T0 + 3000)).refused, { quarantined: 1 });
  t.is(entryOf(await store.getBaseline(QKEY), onlyA), undefined);
  t.deepEqual((await store.listDeviations({ limit: 10 })).items.map((d) => d.nodeQuarantined), [true]);
  t.deepEqual(await store.listQuarantined(), [{ node: A, by: 'rita', at: T0 + 2000, reason: 'found a backdoor' }]);
  t.true(await store.releaseNode(A));
  t.false(await store.releaseNode(A));
  t.deepEqual(await store.listQuarantined(), []);
  t.false((await store.listDeviations({ limit: 10 })).items[0]!.nodeQuarantined);
});

contract('drop-node: one key, the same recompute; a node that taught nothing is a 404; what the other node teaches next adds to what is left', async (t, store) => {
  for (const d of deltasOf(A)) await store.ingest(A, [], [d], T0);
  for (const d of deltasOf(B)) await store.ingest(B, [], [d], T0);
  const r = await store.reviewBaseline(QKEY, { action: 'drop-node', node: A }, 'rita', 'its certificate leaked', T0 + 2000);
  if (!r.ok) return t.fail(r.message);
  t.deepEqual(r.dropped, { entriesRemoved: 2, entriesRecomputed: 1, entriesNarrowed: 0 });
  t.deepEqual(statsView(entryOf(r.after, shared)), { firstSeen: T0 + 300, lastSeen: T0 + 500, count: 7, nodes: [B], examples: ['app --x', 'app --serve'] });
  t.deepEqual(r.after.entries.map((e) => e.id), [entryId(shared), entryId(onlyB)].sort());
  t.like(await store.reviewBaseline(QKEY, { action: 'drop-node', node: A }, 'rita', 'again', T0 + 2001), { ok: false, status: 404 });
  await store.ingest(B, [], [deltaOf(QKEY, [statsOf(shared, B, { firstSeen: T0 + 300, lastSeen: T0 + 600, count: 9, examples: ['app --more'] })], { version: 4 })], T0);
  t.like(statsView(entryOf(await store.getBaseline(QKEY), shared)), { count: 9, firstSeen: T0 + 300, lastSeen: T0 + 600, examples: ['app --x', 'app --serve', 'app --more'] });
});

contract('quarantine of a node that also taught an entry security added by hand: security\'s time kept where provable, narrowed and counted where not', async (t, store) => {
  t.true((await store.reviewBaseline(QKEY, { action: 'add', entry: shared }, 'rita', 'needed', T0 + 5000)).ok);
  for (const d of deltasOf(A)) await store.ingest(A, [], [d], T0);
  for (const d of deltasOf(B)) await store.ingest(B, [], [d], T0);
  const result = (await store.quarantineNode(A, 'rita', '', T0 + 6000))!;
  t.is(result.entriesNarrowed, 1);
  t.like(statsView(entryOf(await store.getBaseline(QKEY), shared)), { firstSeen: T0 + 300, lastSeen: T0 + 5000, count: 7, nodes: [B] });
});

// ---- job leases ----

contract('job leases: the first owner leads and renews; another leads only once the lease has expired; a resigned lease is free', async (t, store) => {
  t.true(await store.tryLead('digests', 'replica-a', 60_000, T0));
  t.false(await store.tryLead('digests', 'replica-b', 60_000, T0 + 1), 'a live lease is its owner\'s');
  t.true(await store.tryLead('retention', 'replica-b', 60_000, T0 + 1), 'each job has its own lease');
  t.true(await store.tryLead('digests', 'replica-a', 60_000, T0 + 30_000), 'renewed by its owner');
  t.false(await store.tryLead('digests', 'replica-b', 60_000, T0 + 89_000), 'the renewal holds until T0 + 90,000');
  t.true(await store.tryLead('digests', 'replica-b', 60_000, T0 + 90_001), 'expired: another replica takes over');
  t.false(await store.tryLead('digests', 'replica-a', 60_000, T0 + 90_002), 'the old leader does not lead any more');
  await store.resign('digests', 'replica-a');
  t.false(await store.tryLead('digests', 'replica-a', 60_000, T0 + 90_003), 'resigning a lease one does not hold changes nothing');
  await store.resign('digests', 'replica-b');
  t.true(await store.tryLead('digests', 'replica-a', 60_000, T0 + 90_004), 'resigned: free at once');
});

// ---- storm counts shared by replicas ----

contract('storm counts: each replica reads the others\' open windows summed, never its own; a new count replaces the old; ended windows go', async (t, store) => {
  const w = (scope: string, count: number, summarized = false) => ({ scope, start: T0, until: T0 + 300_000, count, summarized });
  t.deepEqual(await store.shareStorm('replica-a', [w('*', 3), w('docker.io/library/nginx', 3)], T0 + 1), []);
  t.deepEqual(await store.shareStorm('replica-b', [w('*', 2)], T0 + 2), [w('*', 3), w('docker.io/library/nginx', 3)]);
  await store.shareStorm('replica-c', [w('*', 4, true)], T0 + 3);
  t.deepEqual(await store.shareStorm('replica-a', [w('*', 5)], T0 + 4), [w('*', 6, true)], 'b and c summed; a summary sent by any is seen');
  t.deepEqual(await store.shareStorm('replica-b', [], T0 + 5), [w('*', 9, true), w('docker.io/library/nginx', 3)], "a's new count replaced its old one");
  t.deepEqual(await store.shareStorm('replica-b', [w('x', 1)], T0 + 300_000), [], 'windows that ended are forgotten, and not recorded');
});

// ---- image tickets ----

const REPO = 'docker.io/acme/shop';

contract('image tickets: a claim creates the row; another owner waits while it is live and takes it after; only the holder records', async (t, store) => {
  const first = await store.claimImageTicket('gh', REPO, 'fp-1', 'replica-a', T0, 30_000);
  t.like(first, { ticket: { sink: 'gh', repository: REPO, ref: '', url: '', state: 'none', openAlerts: 0, opened: 0 }, alertOpen: false });
  t.is(await store.claimImageTicket('gh', REPO, 'fp-2', 'replica-b', T0 + 29_999, 30_000), null, 'the claim is live: replica b waits');
  t.truthy(await store.claimImageTicket('gh', REPO, 'fp-1', 'replica-a', T0 + 1, 30_000), 'the holder renews its own claim');
  t.truthy(await store.claimImageTicket('gh', 'docker.io/acme/other', 'fp-3', 'replica-b', T0, 30_000), 'another image is claimed apart');
  t.false(await store.recordImageTicket('gh', REPO, 'replica-b', { ref: '99', state: 'open', at: T0 + 2 }), 'not the holder: nothing written');
  t.true(await store.recordImageTicket('gh', REPO, 'replica-a', { ref: '7', url: 'https://github.example/acme/shop/issues/7', state: 'open', openedTicket: true, alertOpened: 'fp-1', at: T0 + 3 }));
  t.like(await store.getImageTicket('gh', REPO), { ref: '7', url: 'https://github.example/acme/shop/issues/7', state: 'open', openAlerts: 1, opened: 1, updatedAt: T0 + 3 });
  await store.releaseImageTicket('gh', REPO, 'replica-a');
  const second = await store.claimImageTicket('gh', REPO, 'fp-1', 'replica-b', T0 + 4, 30_000);
  t.like(second, { ticket: { ref: '7', state: 'open', openAlerts: 1 }, alertOpen: true }, 'released: replica b claims at once and sees the alert open');
  t.false(await store.recordImageTicket('gh', REPO, 'replica-a', { state: 'closed', at: T0 + 5 }), 'replica a released it: refused');
  const expired = await store.claimImageTicket('gh', REPO, 'fp-2', 'replica-a', T0 + 4 + 30_001, 30_000);
  t.like(expired, { ticket: { ref: '7' }, alertOpen: false }, 'replica b stopped renewing: replica a takes the row over after the lease');
  t.is(await store.getImageTicket('gl', REPO), null, 'tickets are per sink');
});

contract('image tickets: open alerts are counted once each; resolving them empties the set; the ticket survives reopening the row', async (t, store) => {
  t.truthy(await store.claimImageTicket('jira', REPO, 'fp-1', 'r', T0, 30_000));
  t.true(await store.recordImageTicket('jira', REPO, 'r', { ref: 'SEC-12', state: 'open', openedTicket: true, alertOpened: 'fp-1', at: T0 }));
  t.true(await store.recordImageTicket('jira', REPO, 'r', { alertOpened: 'fp-2', at: T0 + 1 }));
  t.true(await store.recordImageTicket('jira', REPO, 'r', { alertOpened: 'fp-2', at: T0 + 2 }), 'a redelivered trigger');
  t.is((await store.getImageTicket('jira', REPO))!.openAlerts, 2);
  t.true(await store.recordImageTicket('jira', REPO, 'r', { alertClosed: 'fp-1', at: T0 + 3 }));
  t.true(await store.recordImageTicket('jira', REPO, 'r', { alertClosed: 'fp-1', at: T0 + 4 }), 'a redelivered resolve changes nothing more');
  t.true(await store.recordImageTicket('jira', REPO, 'r', { alertClosed: 'fp-2', state: 'closed', at: T0 + 5 }));
  t.like(await store.getImageTicket('jira', REPO), { ref: 'SEC-12', state: 'closed', openAlerts: 0, opened: 1 });
  await store.releaseImageTicket('jira', REPO, 'r');
  const again = await store.claimImageTicket('jira', REPO, 'fp-1', 'r2', T0 + 6, 30_000);
  t.like(again, { ticket: { ref: 'SEC-12', state: 'closed', openAlerts: 0 }, alertOpen: false }, 'the ticket id stays with the image');
  t.true(await store.recordImageTicket('jira', REPO, 'r2', { ref: 'SEC-40', state: 'open', openedTicket: true, at: T0 + 7 }));
  t.like(await store.getImageTicket('jira', REPO), { ref: 'SEC-40', opened: 2 }, 'a replacement ticket is counted');
});

// ---- PostgreSQL: two replicas on one database ----

test('postgres, two replicas: concurrent merges of one key from both lose no entry; the same batch through both is stored once', async (t) => {
  const url = await server.database();
  const one = await openPostgresStore(url);
  const two = await openPostgresStore(url);
  t.teardown(() => Promise.all([one.close(), two.close()]));
  const K = 'docker.io/acme/race';
  // 8 nodes, each 5 deltas; each delta brings 3 entries of its own and grows one every node shares.
  const sharedEntry = proc('/usr/bin/shared');
  const runs: Promise<unknown>[] = [];
  for (let n = 0; n < 8; n++) {
    const node = `node-${n}`;
    const via = n % 2 === 0 ? one : two;
    runs.push((async () => {
      for (let v = 1; v <= 5; v++) {
        const own = [0, 1, 2].map((i) => statsOf(proc(`/opt/${node}/v${v}/bin${i}`), node, { firstSeen: T0 + v, lastSeen: T0 + v, count: 1, examples: [`${node} v${v} ${i}`] }));
        await via.ingest(node, [], [deltaOf(K, [statsOf(sharedEntry, node, { firstSeen: T0, lastSeen: T0 + v, count: v * 10, examples: [`${node} shared`] }), ...own], { version: v, state: 'learning' })], T0 + v);
      }
    })());
  }
  await Promise.all(runs);
  const b = (await one.getBaseline(K))!;
  t.is(b.entries.length, 1 + 8 * 5 * 3, 'every entry of every node');
  t.like(b.entries.find((e) => e.id === entryId(sharedEntry)), { count: 8 * 50, lastSeen: T0 + 5 });
  t.is(b.entries.find((e) => e.id === entryId(sharedEntry))!.nodes.length, 8);
  t.is(b.entries.find((e) => e.id === entryId(sharedEntry))!.examples.length, 5, 'examples bounded');
  t.is(b.nodes.length, 8);

  // One agent's batches replayed to the other replica at the same moment: each deviation stored once.
  const batches = [0, 1, 2, 3].map((j) => [0, 1, 2, 3, 4].map((i) => deviationOf({ node: 'node-9', i: j * 10 + i, exe: `/usr/bin/tool${i % 2}` })));
  const results = await Promise.all(batches.flatMap((batch) => [one.ingest('node-9', batch, [], T0), two.ingest('node-9', batch, [], T0)]));
  t.is(results.reduce((n, r) => n + r.stored, 0), 20);
  t.is(results.reduce((n, r) => n + r.duplicates, 0), 20);
  t.is(await two.countDeviations(), 20);
  const alerts = (await one.listAlerts({ limit: 10 })).items;
  t.is(alerts.length, 2, 'one alert per fingerprint');
  t.is(alerts.reduce((n, a) => n + a.count, 0), 20, 'each deviation counted once');
  t.is(results.reduce((n, r) => n + r.newAlerts.length, 0), 2, 'each alert created once');
});

test('postgres: the schema is versioned; a database of a newer revision is refused; reopening migrates nothing twice', async (t) => {
  const url = await server.database();
  const first = await openPostgresStore(url);
  await first.appendAudit({ time: T0, actor: 'a', role: 'admin', action: 'x', target: 't', before: '{}', after: '{}' });
  await first.close();
  const again = await openPostgresStore(url);
  t.is((await again.listAudit(Number.MAX_SAFE_INTEGER, 10)).length, 1, 'kept across opens');
  await again.close();
  const pg = (await import('pg')).default;
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  t.deepEqual((await client.query('SELECT version FROM schema_version ORDER BY version')).rows.map((r: { version: string }) => Number(r.version)), MIGRATIONS.map((m) => m.version));
  await client.query(`INSERT INTO schema_version (version, applied_at, description) VALUES (99, 0, 'from the future')`);
  await client.end();
  const err = await t.throwsAsync(openPostgresStore(url));
  t.true(err!.message.includes(`newer Driftwatch (schema 99; this one reads up to ${SCHEMA_VERSION})`), err!.message);
  t.notRegex(err!.message, /:[^@/]*@/, 'no password in the message');
});

test('postgres, two replicas: concurrent claims hand each notification to exactly one replica', async (t) => {
  const url = await server.database();
  const one = await openPostgresStore(url);
  const two = await openPostgresStore(url);
  t.teardown(() => Promise.all([one.close(), two.close()]));
  const N = 60;
  await one.enqueue(Array.from({ length: N }, (_, i): OutboxEntry => ({ alert: `fp-${i}`, sink: 'pd', action: 'trigger', body: '{}', state: 'pending', lastError: '' })), T0);
  // Four workers per replica, each claiming until nothing is left, settling what it claimed.
  const got = new Map<number, string[]>();
  const worker = async (store: OpenStore, owner: string) => {
    for (;;) {
      const item = await store.claimDelivery('pd', T0 + 10, owner, 60_000);
      if (!item) return;
      got.set(item.seq, [...(got.get(item.seq) ?? []), owner]);
      t.true(await store.settleDelivery(item.seq, owner, { state: 'delivered', attempts: 1, nextAt: T0, error: '', at: T0 + 20 }));
    }
  };
  await Promise.all([0, 1, 2, 3].flatMap((w) => [worker(one, `one-${w}`), worker(two, `two-${w}`)]));
  t.is(got.size, N, 'every notification claimed');
  t.deepEqual([...got.values()].filter((owners) => owners.length !== 1), [], 'none claimed twice');
  t.log(`claimed by replica one: ${[...got.values()].filter((o) => o[0]!.startsWith('one')).length}, two: ${[...got.values()].filter((o) => o[0]!.startsWith('two')).length}`);
  t.is(await two.pendingDeliveries(), 0);
});

test('postgres, two replicas: a replica that stops mid-delivery loses its notification when the lease ends; the other delivers it once', async (t) => {
  const url = await server.database();
  const one = await openPostgresStore(url);
  const two = await openPostgresStore(url);
  t.teardown(() => Promise.all([one.close(), two.close()]));
  await one.enqueue([{ alert: 'fp-1', sink: 'pd', action: 'trigger', body: '{}', state: 'pending', lastError: '' }], T0);
  const claimed = (await one.claimDelivery('pd', T0, 'replica-one', 30_000))!;
  t.truthy(claimed);
  t.is(await two.claimDelivery('pd', T0 + 29_999, 'replica-two', 30_000), null, 'the lease is live: replica two waits');
  t.is(await two.nextDueAt('pd'), T0 + 30_000, 'until the lease ends');
  const taken = (await two.claimDelivery('pd', T0 + 30_001, 'replica-two', 30_000))!;
  t.is(taken.seq, claimed.seq, 'replica one stopped settling: replica two takes it over');
  t.false(await one.settleDelivery(claimed.seq, 'replica-one', { state: 'delivered', attempts: 1, nextAt: T0, error: '', at: T0 + 30_002 }), 'replica one coming back late is refused');
  t.true(await two.settleDelivery(taken.seq, 'replica-two', { state: 'delivered', attempts: 1, nextAt: T0, error: '', at: T0 + 30_003 }));
  t.is(await one.claimDelivery('pd', T0 + 1_000_000, 'replica-one', 30_000), null, 'delivered once: nobody claims it again');
  t.like((await one.deliveriesOf('fp-1'))[0], { state: 'delivered', attempts: 1, doneAt: T0 + 30_003 });
});

test('postgres, two replicas: of two replicas asking at once, one leads a job; when it stops renewing, the other takes over', async (t) => {
  const url = await server.database();
  const one = await openPostgresStore(url);
  const two = await openPostgresStore(url);
  t.teardown(() => Promise.all([one.close(), two.close()]));
  for (let round = 0; round < 20; round++) {
    const job = `job-${round}`;
    const [a, b] = await Promise.all([one.tryLead(job, 'replica-one', 60_000, T0), two.tryLead(job, 'replica-two', 60_000, T0)]);
    t.is(Number(a) + Number(b), 1, `exactly one leads ${job}`);
  }
  t.true(await one.tryLead('retention', 'replica-one', 60_000, T0));
  t.true(await one.tryLead('retention', 'replica-one', 60_000, T0 + 50_000), 'renewed with its run');
  t.false(await two.tryLead('retention', 'replica-two', 60_000, T0 + 100_000));
  t.true(await two.tryLead('retention', 'replica-two', 60_000, T0 + 110_001), 'replica one died: its lease expired, replica two leads');
  t.false(await one.tryLead('retention', 'replica-one', 60_000, T0 + 110_002));
});

test('postgres, two replicas: a node heard from by replica A is not made silent by replica B saving its older view', async (t) => {
  const url = await server.database();
  const one = await openPostgresStore(url);
  const two = await openPostgresStore(url);
  t.teardown(() => Promise.all([one.close(), two.close()]));
  await two.saveNodes([nodeRecord('node-x', T0 + 100)]);
  // Both at once: A saves a fresh contact; B, which last heard from it at T0 + 100, saves it silent.
  await Promise.all([one.saveNodes([{ ...nodeRecord('node-x', T0 + 60_000), spooled: 1 }]), two.saveNodes([{ ...nodeRecord('node-x', T0 + 100), silentSince: T0 + 50_000 }])]);
  for (const view of [one, two]) t.like((await view.listNodes())[0], { node: 'node-x', lastContact: T0 + 60_000, silentSince: 0, spooled: 1 }, 'the cluster view, read through either replica');
});

contract('ingest: deviations the cluster baseline knows, exactly or through a learned block or the public class on their port, are not news; the rest are stored', async (t, store) => {
  const block: Entry = { type: 'network', direction: 'egress', protocol: 'tcp', peer: '52.216.0.0/16', port: 443 };
  const anyPublic: Entry = { type: 'network', direction: 'egress', protocol: 'tcp', peer: PUBLIC_PEER, port: 8443 };
  const sh: Entry = { type: 'process', exe: '/bin/sh', parent: 'nginx', user: 'root', args: '-c id' };
  await store.ingest('node-a', [], [delta('node-a', 1, [[block, 5, 10, []], [anyPublic, 3, 10, []], [sh, 2, 10, []]])], T0);
  const r = await store.ingest(
    'node-a',
    [
      deviationOf({ i: 1 }), // /bin/sh -c id under nginx: known exactly
      deviationOf({ i: 2, peer: '52.216.10.7' }), // inside the block, its port
      deviationOf({ i: 3, peer: '52.217.1.1' }), // outside the block
      deviationOf({ i: 4, peer: '8.8.8.8', port: 8443 }), // any public peer on 8443
      deviationOf({ i: 5, peer: '8.8.8.8', port: 25 }), // a public peer on a port never learned
      deviationOf({ i: 6, exe: '/usr/bin/curl' }), // a new program
    ],
    [],
    T0 + 1,
  );
  t.like(r, { known: 3, stored: 3 });
  const stored = (await store.listDeviations({ limit: 10 })).items.map((d) => d.deviation.event.network?.remoteAddress ?? d.deviation.event.process.exe).sort();
  t.deepEqual(stored, ['/usr/bin/curl', '52.217.1.1', '8.8.8.8']);
});

contract('drift: a drift deviation is stored even when the cluster baseline knows its entry; entries keep where their executable came from, drift over image over unknown', async (t, store) => {
  const sh: Entry = { type: 'process', exe: '/bin/sh', parent: 'nginx', user: 'root', args: '-c id' };
  const jit = proc('/var/cache/jit/<hex>');
  const withOrigin = (d: BaselineSnapshot, origins: Record<string, BaselineSnapshot['entries'][number]['origin']>) => ({ ...d, entries: d.entries.map((e) => (origins[e.id] ? { ...e, origin: origins[e.id] } : e)) });
  await store.ingest('node-a', [], [withOrigin(delta('node-a', 1, [[sh, 2, 10, []], [jit, 1, 10, []], [nginx, 1, 10, []]]), { [entryId(sh)]: 'image', [entryId(jit)]: 'image' })], T0);
  // Node b saw the JIT stub written after start (its allow list let it through) and told nothing of sh; node c could not tell.
  await store.ingest('node-b', [], [withOrigin(delta('node-b', 1, [[sh, 1, 20, []], [jit, 1, 20, []]]), { [entryId(jit)]: 'upper-layer' })], T0 + 1);
  await store.ingest('node-c', [], [withOrigin(delta('node-c', 1, [[sh, 1, 30, []], [jit, 1, 30, []]]), { [entryId(sh)]: 'unknown', [entryId(jit)]: 'image' })], T0 + 2);
  const view = (await store.getBaseline(KEY))!;
  const originOf = (e: Entry) => view.entries.find((x) => x.id === entryId(e))?.origin;
  t.is(originOf(sh), 'image', 'unknown does not erase image');
  t.is(originOf(jit), 'upper-layer', 'once drift, the entry shows it, whatever image runs say later');
  t.is(originOf(nginx), undefined, 'no source told');
  const drift = { ...deviationOf({ i: 1 }), reason: 'drift' as const };
  drift.event.process.origin = 'memfd';
  const r = await store.ingest('node-a', [deviationOf({ i: 2 }), drift], [], T0 + 3);
  t.like(r, { known: 1, stored: 1 });
  const [stored] = (await store.listDeviations({ limit: 10 })).items;
  t.is(stored?.deviation.reason, 'drift');
  t.is(stored?.deviation.event.process.origin, 'memfd');
});

contract('drift allow list: reviewed like entries (a version each, conflicts refused), in the view and in what agents enforce, replaced by an import', async (t, store) => {
  await store.ingest('node-a', [], [delta('node-a', 1, [[nginx, 1, 10, []]])], T0);
  const allow = await store.reviewBaseline(KEY, { action: 'allow-drift', pattern: '/var/cache/jit/*' }, 'alice', 'JIT stubs', T0 + 1);
  t.like(allow, { ok: true, version: 1 });
  t.deepEqual((await store.getBaseline(KEY))?.driftAllowed, ['/var/cache/jit/*']);
  t.deepEqual((await store.clusterBaseline(KEY))?.driftAllowed, ['/var/cache/jit/*']);
  t.like(await store.reviewBaseline(KEY, { action: 'allow-drift', pattern: '/var/cache/jit/*' }, 'alice', '', T0 + 2), { ok: false, status: 409 });
  t.like(await store.reviewBaseline(KEY, { action: 'disallow-drift', pattern: '/opt/*' }, 'alice', '', T0 + 2), { ok: false, status: 409 });
  t.like(await store.reviewBaseline(KEY, { action: 'disallow-drift', pattern: '/var/cache/jit/*' }, 'bob', 'JIT off', T0 + 3), { ok: true, version: 2 });
  t.deepEqual((await store.getBaseline(KEY))?.driftAllowed, []);
  t.is((await store.clusterBaseline(KEY))?.driftAllowed, undefined);
  await store.reviewBaseline(KEY, { action: 'import', state: 'enforcing', entries: [nginx], removed: [], driftAllowed: ['plugin-*'] }, 'carol', 'import', T0 + 4);
  t.deepEqual((await store.getBaseline(KEY))?.driftAllowed, ['plugin-*']);
  t.deepEqual((await store.listVersions(KEY)).map((v) => v.action), ['import', 'disallow-drift', 'allow-drift'], 'newest first');
});

contract('alerts: in one batch, a resolved alert fires again and is notified, an open one only grows, a new one opens', async (t, store) => {
  await store.ingest('node-1', [deviationOf({ i: 1 }), deviationOf({ i: 2, exe: '/usr/bin/curl' })], [], T0, policy(['pd']));
  const before = (await store.listAlerts({ limit: 10 })).items;
  const sh = before.find((a) => a.entry.type === 'process' && a.entry.exe === '/bin/sh')!;
  const curl = before.find((a) => a.entry.type === 'process' && a.entry.exe === '/usr/bin/curl')!;
  t.like(await store.transitionAlert(sh.fingerprint, { to: 'resolved', by: 'alice', at: T0 + 1, comment: '' }), { ok: true });
  const r = await store.ingest('node-2', [deviationOf({ i: 5, node: 'node-2' }), deviationOf({ i: 6, node: 'node-2', exe: '/usr/bin/curl' }), deviationOf({ i: 7, node: 'node-2', exe: '/usr/bin/wget' })], [], T0 + 10, policy(['pd']));
  t.deepEqual(r.reopened.map((a) => a.fingerprint), [sh.fingerprint]);
  t.like(r.reopened[0], { state: 'firing', count: 2, lastSeen: deviationOf({ i: 5 }).event.time });
  t.deepEqual(r.reopened[0]!.nodes, ['node-1', 'node-2']);
  t.deepEqual(r.updated, [curl.fingerprint]);
  t.is(r.newAlerts.length, 1);
  t.deepEqual(r.notifications.map((n) => [n.alert, n.action]).sort(), [[sh.fingerprint, 'again'], [r.newAlerts[0]!.fingerprint, 'fire']].sort());
  t.like(await store.getAlert(curl.fingerprint), { state: 'firing', count: 2 });
  t.like(await store.getAlert(sh.fingerprint), { state: 'firing', stateBy: '', count: 2 });
});

// ---- images (issue 21) ----

const WINDOW = 180_000;
const NGINX = 'docker.io/library/nginx';
const SHOP = 'ghcr.io/acme/shop';
const digestOf = (n: number) => `sha256:${String(n).repeat(64).slice(0, 64)}`;
/** A container of `repository:tag@digest` in `namespace/pod`. */
const running = (id: string, repository: string, tag: string, digest: string, namespace = 'shop', pod = `${id}-pod`): RunningContainer => ({
  id,
  name: 'main',
  image: { repository, tag, digest },
  imageId: '',
  namespace,
  pod,
  workload: namespace === '' ? '' : `Deployment/${pod.split('-')[0]}`,
});
const report = (...containers: RunningContainer[]): ContainerReport => ({ source: 'cri', containers, truncated: false, total: containers.length });

contract('images: a digest recorded for the first time is told once, by the write that recorded it (reports and sightings alike)', async (t, store) => {
  const first = await store.recordContainerReport('node-a', report(running('c1', NGINX, '1.25', digestOf(1)), running('c2', NGINX, '1.25', digestOf(1), 'web'), running('c3', SHOP, 'v1', digestOf(3)), running('c4', SHOP, 'v0', '')), T0);
  t.deepEqual(first.newVersions.map((v) => `${v.repository}@${v.digest}`).sort(), [`${NGINX}@${digestOf(1)}`, `${SHOP}@${digestOf(3)}`], 'an unknown digest is no version');
  // Again, and under another tag: not new; a new digest is.
  const again = await store.recordContainerReport('node-b', report(running('c1', NGINX, 'latest', digestOf(1)), running('c2', NGINX, '1.26', digestOf(2))), T0 + 1_000);
  t.deepEqual(again.newVersions, [{ repository: NGINX, digest: digestOf(2) }]);
  // One digest under two tags in one write: told once. The same digest in another repository is that repository's.
  const sighted = await store.recordImageSightings([4, 4].map((n, i) => ({ repository: NGINX, tag: `t${i}`, digest: digestOf(n), node: 'node-a', namespace: 'shop', workload: '', pod: 'p', time: T0 + 2_000 })).concat([{ repository: SHOP, tag: 'x', digest: digestOf(2), node: 'node-a', namespace: 'shop', workload: '', pod: 'p', time: T0 + 2_000 }]));
  t.deepEqual(sighted.newVersions.map((v) => `${v.repository}@${v.digest}`).sort(), [`${NGINX}@${digestOf(4)}`, `${SHOP}@${digestOf(2)}`]);
  t.deepEqual(await store.recordImageSightings([{ repository: NGINX, tag: 't9', digest: digestOf(4), node: 'node-b', namespace: 'shop', workload: '', pod: 'q', time: T0 + 3_000 }]), { newVersions: [], bounded: {} });
  t.deepEqual(await store.recordImageSightings([]), { newVersions: [], bounded: {} });
});

contract('images: a report says what runs now and where; a newer report replaces it, an older one changes nothing; versions keep first and last seen', async (t, store) => {
  t.true((await store.recordContainerReport('node-a', report(running('c1', NGINX, '1.25', digestOf(1)), running('c2', NGINX, '1.25', digestOf(1), 'web'), running('c3', SHOP, 'v1', digestOf(3))), T0)).stored);
  t.true((await store.recordContainerReport('node-a', report(running('c1', NGINX, '1.26', digestOf(2)), running('c3', SHOP, 'v1', digestOf(3))), T0 + 60_000)).stored);
  t.false((await store.recordContainerReport('node-a', report(running('c9', NGINX, '1.24', digestOf(9))), T0 + 30_000)).stored, 'a report older than the stored one (another replica was later) is refused');
  const now = { now: T0 + 61_000, staleAfterMs: WINDOW };
  const nginx = await store.getImage(NGINX, now);
  t.truthy(nginx);
  t.like(nginx, { repository: NGINX, firstSeen: T0, lastSeen: T0 + 60_000, running: true, containers: 1 });
  t.deepEqual(nginx!.namespaces, ['shop', 'web']);
  t.deepEqual(nginx!.versions.map((v) => [v.tag, v.digest, v.running, v.containers, v.firstSeen, v.lastSeen]), [
    ['1.26', digestOf(2), true, 1, T0 + 60_000, T0 + 60_000],
    ['1.25', digestOf(1), false, 0, T0, T0],
  ]);
  t.deepEqual(nginx!.versions[0]!.runningIn, [{ node: 'node-a', namespace: 'shop', workload: 'Deployment/c1', pod: 'c1-pod', firstSeen: T0 + 60_000, lastSeen: T0 + 60_000 }]);
  t.deepEqual(nginx!.versions[1]!.runningIn, [], 'the old version runs nowhere now');
  t.deepEqual(nginx!.versions[1]!.seenIn.map((p) => `${p.namespace}/${p.pod}@${p.node}`).sort(), ['shop/c1-pod@node-a', 'web/c2-pod@node-a'], 'where it ran is kept');
  t.is(await store.getImage('docker.io/library/none', now), null);
  t.deepEqual((await store.listImages({ limit: 10, ...now })).items.map((i) => i.repository), [NGINX, SHOP]);
  t.deepEqual(
    (await store.listImages({ limit: 10, ...now })).items.find((i) => i.repository === NGINX)?.versions.map((v) => v.tag),
    ['1.26', '1.25'],
  );
});

contract('images: running now counts only fresh reports of nodes neither silent nor quarantined', async (t, store) => {
  await store.recordContainerReport('node-a', report(running('a1', NGINX, '1.25', digestOf(1))), T0);
  await store.recordContainerReport('node-b', report(running('b1', NGINX, '1.25', digestOf(1), 'web')), T0 + 100_000);
  const at = (now: number) => ({ now, staleAfterMs: WINDOW });
  t.like(await store.getImage(NGINX, at(T0 + 150_000)), { running: true, containers: 2 });
  t.like(await store.getImage(NGINX, at(T0 + WINDOW + 50_000)), { running: true, containers: 1 }, 'node-a fell silent on reports: stale, no longer counted');
  t.like(await store.getImage(NGINX, at(T0 + WINDOW + 200_000)), { running: false, containers: 0 });
  // A quarantined node and a silent one do not speak for what runs.
  await store.recordContainerReport('node-a', report(running('a1', NGINX, '1.25', digestOf(1))), T0 + 200_000);
  await store.recordContainerReport('node-b', report(running('b1', NGINX, '1.25', digestOf(1), 'web')), T0 + 200_000);
  t.like(await store.getImage(NGINX, at(T0 + 201_000)), { containers: 2 });
  await store.quarantineNode('node-a', 'alice', 'compromised', T0 + 201_000);
  t.like(await store.getImage(NGINX, at(T0 + 202_000)), { containers: 1 });
  await store.saveNodes([{ ...nodeRecord('node-b', T0 + 200_000), silentSince: T0 + 202_000 }]);
  t.like(await store.getImage(NGINX, at(T0 + 203_000)), { running: false, containers: 0 });
  t.deepEqual(await store.runningImages({ ...at(T0 + 203_000), limit: 10 }), []);
});

contract('images: listed by repository with filters (namespace, prefix, running, seen since) and cursors; a bad cursor is refused', async (t, store) => {
  await store.recordContainerReport('node-a', report(running('c1', NGINX, '1.25', digestOf(1), 'web'), running('c2', SHOP, 'v1', digestOf(3), 'shop'), running('c3', 'ghcr.io/acme/cart', 'v2', digestOf(4), 'shop')), T0);
  await store.recordContainerReport('node-a', report(running('c2', SHOP, 'v1', digestOf(3), 'shop')), T0 + 60_000);
  const now = { now: T0 + 61_000, staleAfterMs: WINDOW };
  const names = async (q: Partial<Parameters<OpenStore['listImages']>[0]>) => (await store.listImages({ limit: 10, ...now, ...q })).items.map((i) => i.repository);
  t.deepEqual(await names({}), ['docker.io/library/nginx', 'ghcr.io/acme/cart', 'ghcr.io/acme/shop']);
  t.deepEqual(await names({ namespace: 'shop' }), ['ghcr.io/acme/cart', 'ghcr.io/acme/shop']);
  t.deepEqual(await names({ prefix: 'ghcr.io/acme/' }), ['ghcr.io/acme/cart', 'ghcr.io/acme/shop']);
  t.deepEqual(await names({ prefix: 'ghcr.io/acme/%' }), [], 'a prefix is a prefix, not a pattern');
  t.deepEqual(await names({ running: true }), ['ghcr.io/acme/shop']);
  t.deepEqual(await names({ running: false }), ['docker.io/library/nginx', 'ghcr.io/acme/cart']);
  t.deepEqual(await names({ seenSince: T0 + 1 }), ['ghcr.io/acme/shop']);
  const first = await store.listImages({ limit: 2, ...now });
  t.deepEqual(first.items.map((i) => i.repository), ['docker.io/library/nginx', 'ghcr.io/acme/cart']);
  t.truthy(first.next);
  const second = await store.listImages({ limit: 2, ...now, cursor: first.next! });
  t.deepEqual(second.items.map((i) => i.repository), ['ghcr.io/acme/shop']);
  t.is(second.next, null);
  await t.throwsAsync(() => store.listImages({ limit: 2, ...now, cursor: 'not-a-cursor' }), { instanceOf: CursorError });
});

contract('images: images of deviations are seen (first/last seen, places) without running; places per version are bounded', async (t, store) => {
  const sighting = (i: number, time: number): ImageSighting => ({ repository: SHOP, tag: 'v2', digest: digestOf(5), node: `node-${i % 8}`, namespace: 'shop', workload: '', pod: `shop-${i}`, time });
  await store.recordImageSightings([sighting(1, T0 + 5), sighting(1, T0 + 1), sighting(2, T0 + 9)]);
  const now = { now: T0 + 10, staleAfterMs: WINDOW };
  const shop = await store.getImage(SHOP, now);
  t.like(shop, { running: false, firstSeen: T0 + 1, lastSeen: T0 + 9 });
  t.deepEqual(shop!.versions[0]!.seenIn.map((p) => [p.pod, p.firstSeen, p.lastSeen]), [['shop-2', T0 + 9, T0 + 9], ['shop-1', T0 + 1, T0 + 5]]);
  await store.recordImageSightings(Array.from({ length: MAX_IMAGE_PLACES + 50 }, (_, i) => sighting(i + 10, T0 + 20)));
  await store.recordImageSightings(Array.from({ length: 20 }, (_, i) => sighting(i + 1_000, T0 + 30)));
  const bounded = await store.getImage(SHOP, now);
  t.is(bounded!.versions[0]!.seenIn.length, MAX_IMAGE_PLACES, 'at most MAX_IMAGE_PLACES places per version');
  t.is(bounded!.lastSeen, T0 + 30, 'a sighting past the bound still moves last seen');
  t.like(await store.getImage(SHOP, now).then((d) => d!.versions[0]!.seenIn.find((p) => p.pod === 'shop-1')), { lastSeen: T0 + 5 });
});

// ---- images: bounds on what hostile nodes can make the inventory keep ----

const HOUR = 3_600_000;
/** Sightings of `n` versions `tag-<from + i>` of `repository` by `node`, one place each. */
const versionsSeen = (repository: string, node: string, from: number, n: number, time: number): ImageSighting[] =>
  Array.from({ length: n }, (_, i) => ({ repository, tag: `t${from + i}`, digest: '', node, namespace: 'ns', workload: '', pod: `p${from + i}`, time }));

contract('images: a report of 10,000 new versions stores at most the per-write bound and says how many it dropped; the versions it lists that are known are still recorded', async (t, store) => {
  const EVIL = 'ghcr.io/evil/spray';
  await store.recordContainerReport('node-a', report(running('c0', NGINX, '1.25', digestOf(1))), T0);
  const spray = report(running('c0', NGINX, '1.25', digestOf(1)), ...Array.from({ length: 10_000 }, (_, i) => running(`s${i}`, EVIL, `v${i}`, `sha256:${i.toString(16).padStart(64, '0')}`, 'ns', `p${i}`)));
  const recorded = await store.recordContainerReport('node-a', spray, T0 + 60_000);
  t.true(recorded.stored);
  t.deepEqual(recorded.bounded, { write_versions: 10_000 - MAX_NEW_VERSIONS_PER_WRITE });
  t.is(recorded.newVersions.length, MAX_NEW_VERSIONS_PER_WRITE, 'only the versions stored are told new');
  const now = { now: T0 + 60_000, staleAfterMs: WINDOW };
  t.like(await store.getImage(EVIL, now), { versionCount: MAX_NEW_VERSIONS_PER_WRITE, versionsTruncated: false });
  t.like(await store.getImage(NGINX, now), { lastSeen: T0 + 60_000, running: true }, 'the known version of the report is recorded as seen');
  const scanned = (await store.runningImages({ ...now, limit: 20_000 })).filter((v) => v.repository === EVIL);
  t.is(scanned.length, 10_000, 'the running set for scanners is the report, whole');
});

contract('images: a node adds at most its hourly bound of new versions; the next hour, and other nodes, may add more', async (t, store) => {
  const at = T0 - (T0 % HOUR);
  let added = 0;
  for (let i = 0; added < MAX_NEW_VERSIONS_PER_NODE_HOUR; i++) {
    const r = await store.recordImageSightings(versionsSeen(`ghcr.io/evil/r${i}`, 'node-a', 0, MAX_NEW_VERSIONS_PER_WRITE, at + i), at + i);
    t.deepEqual(r.bounded, {});
    added += MAX_NEW_VERSIONS_PER_WRITE;
  }
  const over = await store.recordImageSightings([...versionsSeen('ghcr.io/evil/over', 'node-a', 0, 10, at + 100), ...versionsSeen('ghcr.io/acme/api', 'node-b', 0, 1, at + 100)], at + 100);
  t.deepEqual(over.bounded, { node_versions: 10 }, "node-a's hour is spent; node-b's is not");
  t.is(await store.getImage('ghcr.io/evil/over', { now: at + 100, staleAfterMs: WINDOW }), null);
  t.truthy(await store.getImage('ghcr.io/acme/api', { now: at + 100, staleAfterMs: WINDOW }));
  t.deepEqual((await store.recordImageSightings(versionsSeen('ghcr.io/evil/over', 'node-a', 0, 10, at + HOUR), at + HOUR)).bounded, {}, 'a new hour');
  // Versions already known are recorded whatever the node's hour says.
  const known = await store.recordImageSightings(versionsSeen('ghcr.io/evil/r0', 'node-a', 0, 5, at + 100), at + 100);
  t.deepEqual(known.bounded, {});
});

contract('images: a repository keeps at most its bound of versions, forgetting the oldest no report lists; a read returns the last seen ones with the total', async (t, store) => {
  const REPO = 'ghcr.io/acme/builds';
  // Filled by several nodes (each within its hour), the oldest version running on node-r.
  await store.recordContainerReport('node-r', report(running('r1', REPO, 't0', '')), T0);
  for (let i = 0; i * MAX_NEW_VERSIONS_PER_WRITE < MAX_VERSIONS_PER_REPOSITORY; i++) {
    const from = i * MAX_NEW_VERSIONS_PER_WRITE + 1;
    const seen = versionsSeen(REPO, `node-${i}`, from, Math.min(MAX_NEW_VERSIONS_PER_WRITE, MAX_VERSIONS_PER_REPOSITORY - from), T0 + from);
    t.deepEqual((await store.recordImageSightings(seen, T0)).bounded, {});
  }
  const now = { now: T0 + 1_000, staleAfterMs: WINDOW };
  t.like(await store.getImage(REPO, now), { versionCount: MAX_VERSIONS_PER_REPOSITORY });
  const more = await store.recordImageSightings(versionsSeen(REPO, 'node-x', 5_000, 10, T0 + 5_000), T0);
  t.deepEqual(more.bounded, { repository_evicted: 10 });
  const image = (await store.getImage(REPO, now))!;
  t.is(image.versionCount, MAX_VERSIONS_PER_REPOSITORY);
  t.true(image.versionsTruncated);
  t.is(image.versions.length, MAX_VERSIONS_READ, 'a read returns the bound, not every version');
  t.deepEqual(image.versions.slice(0, 10).map((v) => v.tag), Array.from({ length: 10 }, (_, i) => `t${5_000 + i}`), 'the most recently seen first');
  t.is(image.firstSeen, T0, 'first seen over every version, not only those listed');
  // The running version stays; the oldest idle ones (of those last seen at T0 + 1: t1, t10, t100…t107) went.
  t.false(image.versions.some((v) => v.tag === 't1'));
  const list = (await store.listImages({ ...now, limit: 10, prefix: REPO })).items[0]!;
  t.like(list, { versionCount: MAX_VERSIONS_PER_REPOSITORY, versionsTruncated: true });
  t.is(list.versions.length, MAX_VERSIONS_READ);
  t.true(image.versions.find((v) => v.tag === 't0')?.running, 't0 runs on node-r: kept, and listed however old');
  const back = await store.recordContainerReport('node-r', report(running('r1', REPO, 't0', ''), running('r2', REPO, 't1', '')), T0 + 2_000);
  t.deepEqual(back.bounded, { repository_evicted: 1 }, 'a forgotten version that runs again comes back, in place of the oldest idle one');
  const again = (await store.getImage(REPO, { now: T0 + 2_000, staleAfterMs: WINDOW }))!;
  t.is(again.versionCount, MAX_VERSIONS_PER_REPOSITORY);
  t.true(again.versions.some((v) => v.tag === 't1' && v.running));
});

contract('images: one node holds at most its share of a version\'s places, so another node still finds room', async (t, store) => {
  const place = (node: string, i: number): ImageSighting => ({ repository: SHOP, tag: 'v1', digest: digestOf(3), node, namespace: `fake-${i}`, workload: '', pod: `pod-${i}`, time: T0 });
  await store.recordImageSightings(Array.from({ length: MAX_IMAGE_PLACES }, (_, i) => place('node-evil', i)));
  await store.recordImageSightings(Array.from({ length: 50 }, (_, i) => place('node-evil', 1_000 + i)), T0 + 1);
  await store.recordImageSightings([place('node-real', 0)], T0 + 2);
  const seen = (await store.getImage(SHOP, { now: T0, staleAfterMs: WINDOW }))!.versions[0]!.seenIn;
  t.is(seen.filter((p) => p.node === 'node-evil').length, MAX_IMAGE_PLACES_PER_NODE);
  t.is(seen.filter((p) => p.node === 'node-real').length, 1, 'the real node finds room');
});

contract('images: the running set for scanners lists each running version with digest, namespaces and nodes; retention forgets what was not seen since', async (t, store) => {
  await store.recordContainerReport('node-a', report(running('a1', NGINX, '1.25', digestOf(1), 'web'), running('a2', NGINX, '1.25', digestOf(1), 'shop')), T0);
  await store.recordContainerReport('node-b', report(running('b1', NGINX, '1.25', digestOf(1), 'web'), running('b2', SHOP, 'v1', digestOf(3))), T0);
  await store.recordImageSightings([{ repository: 'docker.io/library/old', tag: '1', digest: '', node: 'node-a', namespace: 'x', workload: '', pod: 'p', time: T0 - 1_000 }]);
  const set = await store.runningImages({ now: T0 + 1, staleAfterMs: WINDOW, limit: 10 });
  t.deepEqual(set, [
    { repository: NGINX, tag: '1.25', digest: digestOf(1), containers: 3, namespaces: ['shop', 'web'], nodes: ['node-a', 'node-b'] },
    { repository: SHOP, tag: 'v1', digest: digestOf(3), containers: 1, namespaces: ['shop'], nodes: ['node-b'] },
  ]);
  t.is((await store.runningImages({ now: T0 + 1, staleAfterMs: WINDOW, limit: 1 })).length, 1);
  t.is(await store.pruneImages(T0 - 1), 1);
  t.is(await store.getImage('docker.io/library/old', { now: T0, staleAfterMs: WINDOW }), null);
  t.truthy(await store.getImage(NGINX, { now: T0, staleAfterMs: WINDOW }));
});

test('postgres, two replicas: reports of one node through both at once leave the newest report, whole', async (t) => {
  const url = await server.database();
  const [a, b] = [await openPostgresStore(url), await openPostgresStore(url)];
  t.teardown(async () => {
    await a.close();
    await b.close();
  });
  const many = (n: number, tag: string) => report(...Array.from({ length: 200 }, (_, i) => running(`c${i}`, NGINX, tag, digestOf(n), 'shop', `p${i}`)));
  const results = await Promise.all(Array.from({ length: 10 }, (_, i) => (i % 2 === 0 ? a : b).recordContainerReport('node-a', many(i % 9 + 1, `t${i}`), T0 + i * 1_000)));
  t.true(results[0] !== undefined);
  const image = await a.getImage(NGINX, { now: T0 + 10_000, staleAfterMs: WINDOW });
  const live = image!.versions.filter((v) => v.running);
  t.deepEqual(live.map((v) => [v.tag, v.containers]), [['t9', 200]], 'the newest report, with all its containers and nothing of another');
  t.is(image!.versions.length, results.filter((r) => r.stored).length, 'every report that was taken recorded its version');
  const told = results.flatMap((r) => r.newVersions.map((v) => v.digest));
  t.deepEqual([...told].sort(), [...new Set(image!.versions.map((v) => v.digest))].sort(), 'each digest told new once, by one replica');
});

test('postgres, two replicas: of two replicas claiming one image\'s ticket at once, exactly one gets it', async (t) => {
  const url = await server.database();
  const one = await openPostgresStore(url);
  const two = await openPostgresStore(url);
  t.teardown(() => Promise.all([one.close(), two.close()]));
  for (let round = 0; round < 10; round++) {
    const repo = `docker.io/acme/race-${round}`;
    const got = await Promise.all([one.claimImageTicket('gh', repo, 'fp-a', 'replica-one', T0, 60_000), two.claimImageTicket('gh', repo, 'fp-b', 'replica-two', T0, 60_000)]);
    t.is(got.filter((g) => g !== null).length, 1, `round ${round}: one claim`);
  }
});

contract('group commit: batch after batch of one group grow, reopen and open alerts as separate commits would, each batch told its own part', async (t, store) => {
  await store.ingest('node-1', [deviationOf({ i: 1 }), deviationOf({ i: 2, exe: '/usr/bin/curl' })], [], T0, policy(['pd']));
  const before = (await store.listAlerts({ limit: 10 })).items;
  const sh = before.find((a) => a.entry.type === 'process' && a.entry.exe === '/bin/sh')!;
  const curl = before.find((a) => a.entry.type === 'process' && a.entry.exe === '/usr/bin/curl')!;
  t.like(await store.transitionAlert(sh.fingerprint, { to: 'resolved', by: 'alice', at: T0 + 1, comment: '' }), { ok: true });
  const results = await store.ingestMany(
    [
      // sh fires again (resolved), curl grows with an older deviation, wget opens.
      { node: 'node-2', deviations: [deviationOf({ i: 9, node: 'node-2' }), deviationOf({ i: 0, node: 'node-2', exe: '/usr/bin/curl' }), deviationOf({ i: 7, node: 'node-2', exe: '/usr/bin/wget' })], deltas: [] },
      // sh, curl and wget (opened by the batch before) grow; sh's deviation here is older than batch one's.
      { node: 'node-3', deviations: [deviationOf({ i: 8, node: 'node-3' }), deviationOf({ i: 4, node: 'node-3', exe: '/usr/bin/curl' }), deviationOf({ i: 3, node: 'node-3', exe: '/usr/bin/wget' }), deviationOf({ i: 2, node: 'node-3', exe: '/usr/bin/wget' })], deltas: [] },
      // A replay of one deviation of batch one: a duplicate.
      { node: 'node-2', deviations: [deviationOf({ i: 9, node: 'node-2' })], deltas: [] },
    ],
    T0 + 10,
    policy(['pd']),
  );
  const [one, two, three] = results as IngestResult[];
  t.like(one, { stored: 3, duplicates: 0, updated: [curl.fingerprint] });
  t.deepEqual(one!.reopened.map((a) => [a.fingerprint, a.state, a.count, a.nodes]), [[sh.fingerprint, 'firing', 2, ['node-1', 'node-2']]]);
  t.deepEqual(one!.newAlerts.map((a) => [a.entry.type === 'process' && a.entry.exe, a.count]), [['/usr/bin/wget', 1]]);
  const wget = one!.newAlerts[0]!.fingerprint;
  t.deepEqual(one!.notifications.map((n) => [n.alert, n.action]), [[sh.fingerprint, 'again'], [wget, 'fire']], 'in the order of the batch');
  t.like(two, { stored: 4, duplicates: 0, newAlerts: [], reopened: [], notifications: [] });
  t.deepEqual([...two!.updated].sort(), [sh.fingerprint, curl.fingerprint, wget].sort());
  t.like(three, { stored: 0, duplicates: 1, updated: [], newAlerts: [] });
  t.like(await store.getAlert(sh.fingerprint), { state: 'firing', stateBy: '', count: 3, firstSeen: deviationOf({ i: 1 }).event.time, lastSeen: deviationOf({ i: 9 }).event.time, nodes: ['node-1', 'node-2', 'node-3'] });
  t.like(await store.getAlert(curl.fingerprint), { state: 'firing', count: 3, firstSeen: deviationOf({ i: 0 }).event.time, lastSeen: deviationOf({ i: 4 }).event.time, nodes: ['node-1', 'node-2', 'node-3'] });
  t.like(await store.getAlert(wget), { count: 3, firstSeen: deviationOf({ i: 2 }).event.time, lastSeen: deviationOf({ i: 7 }).event.time, nodes: ['node-2', 'node-3'] });
  // The latest deviation of each alert is the one with the greatest time, whichever batch brought it.
  t.is((await store.getAlert(sh.fingerprint))!.lastDeviationId, deviationOf({ i: 9, node: 'node-2' }).id);
  t.is((await store.getAlert(curl.fingerprint))!.lastDeviationId, deviationOf({ i: 4, node: 'node-3', exe: '/usr/bin/curl' }).id);
  t.is((await store.getAlert(wget))!.lastDeviationId, deviationOf({ i: 7, node: 'node-2', exe: '/usr/bin/wget' }).id);
});
