/**
 * The hostile node: a collector with mTLS, and a node whose certificate is valid and whose agent
 * sends whatever its attacker likes (test/hostile/attacks.ts, one attack a test, in order). Each
 * attack is refused or cut and counted per node; then a real agent process still connects, gets its
 * cluster baselines (one of them larger than a gRPC message), and alerts; reads and reviews work;
 * and the attacker, quarantined, loses what it taught while its deviations stay, marked.
 */
import test from 'ava';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import pino from 'pino';
import { runNodes } from '../../cli/nodes.js';
import { loadCollectorConfig, startCollector, type CollectorHandle } from '../../collector/main.js';
import { entryId, type Entry } from '../../core/entry.js';
import { snapshotToWire } from '../../proto/index.js';
import { deltaOf, statsOf, T0 } from '../helpers/baseline-delta.js';
import { at, falcoLine } from '../helpers/falco.js';
import { deviationOf } from '../helpers/ingest.js';
import { makePki, type TestPki } from '../helpers/pki.js';
import { eventually, spawnCli } from '../helpers/processes.js';
import { ATTACKS, BIG, EVIL, GOOD, SHOP, api, asNode, counter, type Target } from './attacks.js';

interface Ctx {
  collector: CollectorHandle;
  pki: TestPki;
  target: Target;
  logs: string[];
  dir: string;
}

let ctx: Ctx;
// Hooks take no teardowns: the PKI's are run after every test.
const cleanups: (() => void)[] = [];

test.before(async () => {
  const pki = await makePki({ teardown: (fn: () => void) => cleanups.push(fn) } as never, [EVIL, GOOD, 'node-real']);
  const dir = mkdtempSync(join(tmpdir(), 'dw-hostile-'));
  const logs: string[] = [];
  const collector = await startCollector(
    loadCollectorConfig(
      // metricsInterval 0: every scrape renders afresh, since each attack reads its counters right before and after.
      { db: join(dir, 'c.db'), grpcListen: '127.0.0.1:0', httpListen: '127.0.0.1:0', metricsInterval: '0s', insecure: true, tlsCert: pki.collectorCert, tlsKey: pki.collectorKey, tlsCa: pki.ca },
      {},
    ),
    { logger: pino({ level: 'info' }, { write: (s: string) => logs.push(s.length > 512 ? `${s.slice(0, 512)}… (${s.length} chars)` : s) }) },
  );
  const target: Target = {
    grpcPort: collector.grpcPort,
    url: collector.url,
    headers: {},
    credentials: (node) => grpc.credentials.createSsl(pki.read(pki.ca), pki.read(pki.nodeKey(node)), pki.read(pki.nodeCert(node))),
  };
  ctx = { collector, pki, target, logs, dir };
});

test.after.always(async () => {
  await ctx?.collector.stop();
  if (ctx) rmSync(ctx.dir, { recursive: true, force: true });
  for (const fn of cleanups) fn();
});

for (const attack of ATTACKS) {
  test.serial(`attack: ${attack.name} → refused: ${attack.refused}`, async (t) => {
    const before = attack.counted ? await counter(ctx.target, attack.counted.metric, attack.counted.labels) : 0;
    const failed: string[] = [];
    await attack.run(ctx.target, (ok, what) => {
      if (!ok) failed.push(what);
    });
    t.deepEqual(failed, [], 'what the attack must not achieve');
    if (attack.counted) {
      const grown = (await counter(ctx.target, attack.counted.metric, attack.counted.labels)) - before;
      t.true(grown >= attack.counted.atLeast, `${attack.counted.metric}${JSON.stringify(attack.counted.labels)} grew by ${grown}, at least ${attack.counted.atLeast}`);
    }
    // After every attack another node still connects.
    await asNode(ctx.target, GOOD, [], async () => undefined);
  });
}

test.serial('a huge Hello never reaches the log whole', (t) => {
  const longest = Math.max(...ctx.logs.map((l) => Number(/… \((\d+) chars\)$/.exec(l)?.[1] ?? l.length)));
  t.true(longest < 16_384, `longest log line ${longest} characters`);
});

test.serial('after the attacks: a real agent connects, gets its cluster baselines (one in parts), and alerts', async (t) => {
  const dir = join(ctx.dir, 'agent');
  const events = join(ctx.dir, 'falco.json');
  const shell = { 'proc.pid': 4242, 'proc.exepath': '/bin/sh', 'proc.name': 'sh', 'proc.cmdline': 'sh -c id', 'proc.pname': 'nginx' };
  writeFileSync(events, `${[falcoLine({ time: at(0) }), falcoLine({ time: at(90), fields: shell })].join('\n')}\n`);
  const agent = spawnCli(
    t,
    ['agent', '--source', `falco-file:${events}`, '--collector', `localhost:${ctx.collector.grpcPort}`, '--node', 'node-real', '--state-dir', dir, '--learning-window', '1h', '--http-listen', '127.0.0.1:0',
      '--tls-ca', ctx.pki.ca, '--tls-cert', ctx.pki.nodeCert('node-real'), '--tls-key', ctx.pki.nodeKey('node-real')],
    { secure: true },
  );
  await agent.waitForLog((l) => l.msg === 'connected to collector', 30_000);
  const synced = await agent.waitForLog((l) => l.msg === 'cluster baselines received', 30_000);
  t.true(Number(synced.baselines) >= 2, `the agent holds the cluster's baselines (${String(synced.baselines)}), ${BIG} among them`);
  const alerts = await eventually(async () => {
    const r = await api(ctx.target, 'GET', '/api/v1/alerts?limit=100');
    const mine = r.body.items.filter((a: { nodes: string[] }) => a.nodes.includes('node-real'));
    return mine.length > 0 ? mine : undefined;
  }, 30_000, "the real agent's alert");
  t.true(alerts.length > 0);
  await agent.stop();
});

test.serial('after the attacks: reads and reviews work (list, export, relearn, remove, import)', async (t) => {
  const list = await api(ctx.target, 'GET', '/api/v1/baselines');
  t.is(list.status, 200);
  const exported = await api(ctx.target, 'GET', `/api/v1/baselines/${encodeURIComponent(SHOP)}/export`);
  t.is(exported.status, 200);
  const b = await api(ctx.target, 'GET', `/api/v1/baselines/${encodeURIComponent(SHOP)}`);
  const first = b.body.entries[0];
  t.is((await api(ctx.target, 'POST', `/api/v1/baselines/${encodeURIComponent(SHOP)}/entries/${encodeURIComponent(first.id)}/remove`, { reason: 'review' })).status, 200);
  t.is((await api(ctx.target, 'POST', `/api/v1/baselines/${encodeURIComponent(SHOP)}/relearn`, { reason: 'after the attack' })).status, 200);
  const imported = await fetch(`${ctx.collector.url}/api/v1/baselines/import`, { method: 'POST', headers: { 'content-type': 'application/yaml' }, body: exported.body as string });
  t.is(imported.status, 200, await imported.clone().text());
});

test.serial('quarantine: the node loses what only it taught, keeps its deviations (marked), and is refused from then on', async (t) => {
  const KEY = 'docker.io/acme/quarantine';
  const mineOnly: Entry = { type: 'process', exe: '/tmp/backdoor', parent: 'sh', user: 'root', args: '' };
  const shared: Entry = { type: 'process', exe: '/usr/bin/app', parent: 'sh', user: 'root', args: '' };
  const seen = { firstSeen: T0, lastSeen: T0, count: 1 };
  let id = 9000;
  await asNode(ctx.target, EVIL, [KEY], (n) => n.batch({ batchId: id++, deviations: [], baselines: [snapshotToWire(deltaOf(KEY, [statsOf(mineOnly, EVIL, seen), statsOf(shared, EVIL, seen)]))] }));
  await asNode(ctx.target, GOOD, [KEY], (n) => n.batch({ batchId: id++, deviations: [], baselines: [snapshotToWire(deltaOf(KEY, [statsOf(shared, GOOD, seen)]))] }));

  // A reviewer sees which nodes taught each entry.
  const out: string[] = [];
  const io = { out: (s: string) => out.push(s), err: (s: string) => out.push(s) };
  t.is(await runNodes(['taught', KEY, EVIL, '--url', ctx.collector.url], {}, io), 0);
  t.regex(out.join('\n'), /\/tmp\/backdoor/);
  const b = await api(ctx.target, 'GET', `/api/v1/baselines/${encodeURIComponent(KEY)}`);
  t.deepEqual(b.body.entries.find((e: { id: string }) => e.id === entryId(shared)).nodes, [EVIL, GOOD]);

  out.length = 0;
  t.is(await runNodes(['quarantine', EVIL, '--reason', 'found a backdoor', '--url', ctx.collector.url], {}, io), 0, out.join('\n'));
  t.regex(out.join('\n'), /node-evil is quarantined/);
  const after = await api(ctx.target, 'GET', `/api/v1/baselines/${encodeURIComponent(KEY)}`);
  t.deepEqual(after.body.entries.map((e: { id: string; nodes: string[] }) => [e.id, e.nodes]), [[entryId(shared), [GOOD]]], 'only what node-good taught is left');
  const devs = await api(ctx.target, 'GET', `/api/v1/deviations?node=${EVIL}&limit=5`);
  t.true(devs.body.items.length > 0 && devs.body.items.every((d: { nodeQuarantined: boolean }) => d.nodeQuarantined), 'its deviations stay, marked');
  const nodes = await api(ctx.target, 'GET', `/api/v1/nodes/${EVIL}`);
  t.true(nodes.body.quarantined);

  const before = await counter(ctx.target, 'driftwatch_collector_agent_records_refused_total', { node: EVIL, reason: 'quarantined' });
  await asNode(ctx.target, EVIL, [KEY], (n) => n.batch({ batchId: id++, deviations: [], baselines: [snapshotToWire(deltaOf(KEY, [statsOf(mineOnly, EVIL, { ...seen, count: 5 })], { version: 6 }))] }));
  t.is(await counter(ctx.target, 'driftwatch_collector_agent_records_refused_total', { node: EVIL, reason: 'quarantined' }), before + 1, 'its next delta is refused and counted');
  t.false((await api(ctx.target, 'GET', `/api/v1/baselines/${encodeURIComponent(KEY)}`)).body.entries.some((e: { id: string }) => e.id === entryId(mineOnly)));
  // Its deviations are still taken (kept for the investigation).
  const ack = await asNode(ctx.target, EVIL, [], (n) => n.batch({ batchId: id++, deviations: [], baselines: [] }));
  t.is(ack.rejected, 0);
  void deviationOf;
});
