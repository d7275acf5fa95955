/**
 * Baseline review in a real collector: agents' deltas in over gRPC, review changes through the HTTP
 * API, and what the collector pushes back down the agents' streams.
 */
import test from 'ava';
import * as grpc from '@grpc/grpc-js';
import { type CollectorHandle } from '../../collector/main.js';
import type { BaselineSnapshot } from '../../core/baseline.js';
import { entryId, type Entry } from '../../core/entry.js';
import { agentService, snapshotToWire, type WireAgentMessage, type WireClusterBaseline, type WireCollectorMessage } from '../../proto/index.js';
import { withCollector } from '../helpers/collector.js';
import { T0, deltaOf, statsOf } from '../helpers/baseline-delta.js';
import { converse, deviationOf, sendDeviations } from '../helpers/ingest.js';
import { eventually } from '../helpers/processes.js';

const KEY = 'docker.io/library/nginx';
const ENC = encodeURIComponent(KEY);
const nginx: Entry = { type: 'process', exe: '/usr/sbin/nginx', parent: 'containerd-shim', user: 'root', args: '-g daemon off;' };
const shell: Entry = { type: 'process', exe: '/bin/sh', parent: 'nginx', user: 'root', args: '-c id' };
const dns: Entry = { type: 'network', direction: 'egress', protocol: 'udp', peer: 'cluster', port: 53 };

function delta(node: string, entries: Entry[], state: BaselineSnapshot['state'] = 'enforcing', version = 5): BaselineSnapshot {
  return deltaOf(KEY, entries.map((entry, i) => statsOf(entry, node, { firstSeen: T0 + i, lastSeen: T0 + 1000 + i, count: 10 + i })), { state, version, namespaces: ['shop'] });
}

async function api(c: CollectorHandle, method: string, path: string, body?: unknown) {
  const res = await fetch(`${c.url}${path}`, { method, headers: body === undefined ? {} : { 'content-type': 'application/json' }, body: body === undefined ? undefined : JSON.stringify(body) });
  return { status: res.status, body: (await res.json()) as any };
}

/** An agent's stream that stays open and records the cluster baselines it is pushed. */
function listen(c: CollectorHandle, node: string) {
  const { Client } = agentService();
  const client = new Client(`127.0.0.1:${c.grpcPort}`, grpc.credentials.createInsecure());
  const call = (client.Connect as () => grpc.ClientDuplexStream<WireAgentMessage, WireCollectorMessage>).call(client);
  const pushed: WireClusterBaseline[] = [];
  call.on('data', (m: WireCollectorMessage) => {
    if (m.baseline) pushed.push(m.baseline);
  });
  call.on('error', () => {});
  call.write({ hello: { node, agentVersion: 'test', sources: [], protocol: 1 } });
  return {
    pushed,
    close() {
      call.cancel();
      client.close();
    },
  };
}

test('review: lock, approve and remove entries, add one by hand; every change is a version with who and why; any two diff', async (t) => {
  const c = await withCollector(t);
  await converse(c.grpcPort, 'node-1', [{ batch: { batchId: 1, deviations: [], baselines: [snapshotToWire(delta('node-1', [nginx, shell]))] } }], 1);
  const view = (await api(c, 'GET', `/api/v1/baselines/${ENC}`)).body;
  t.like(view, { key: KEY, state: 'enforcing', version: 0, partial: false, nodes: ['node-1'] });
  t.deepEqual(view.entries.map((e: any) => [e.exe, e.status]), [['/bin/sh', 'learned'], ['/usr/sbin/nginx', 'learned']]);

  const approve = await api(c, 'POST', `/api/v1/baselines/${ENC}/entries/${encodeURIComponent(entryId(nginx))}/approve`, { reason: 'the server itself' });
  t.is(approve.status, 200);
  t.is(approve.body.version, 1);
  const remove = await api(c, 'POST', `/api/v1/baselines/${ENC}/entries/${encodeURIComponent(entryId(shell))}/remove`, { reason: 'learned during an incident' });
  t.is(remove.body.entries.find((e: any) => e.exe === '/bin/sh').status, 'removed');
  const add = await api(c, 'POST', `/api/v1/baselines/${ENC}/entries`, { entry: dns, reason: 'resolver' });
  t.is(add.status, 200);
  t.is((await api(c, 'POST', `/api/v1/baselines/${ENC}/entries`, { entry: dns })).status, 409, 'already there');
  const locked = await api(c, 'POST', `/api/v1/baselines/${ENC}/lock`, { reason: 'reviewed' });
  t.like(locked.body, { state: 'locked', version: 4 });
  t.is((await api(c, 'POST', `/api/v1/baselines/${ENC}/lock`, {})).status, 409);

  const versions = (await api(c, 'GET', `/api/v1/baselines/${ENC}/versions`)).body.items;
  t.deepEqual(
    versions.map((v: any) => [v.version, v.action, v.by, v.reason, v.state, v.entries, v.removed]),
    [
      [4, 'lock', 'anonymous', 'reviewed', 'locked', 2, 1],
      [3, 'add', 'anonymous', 'resolver', 'enforcing', 2, 1],
      [2, 'remove', 'anonymous', 'learned during an incident', 'enforcing', 1, 1],
      [1, 'approve', 'anonymous', 'the server itself', 'enforcing', 2, 0],
    ],
  );
  const diff = (await api(c, 'GET', `/api/v1/baselines/${ENC}/diff?from=1&to=4`)).body;
  t.deepEqual(diff.added.map((e: any) => e.summary), ['egress udp cluster:53']);
  t.deepEqual(diff.removed.map((e: any) => e.summary), ['/bin/sh -c id (parent nginx, root)']);
  t.is((await api(c, 'GET', `/api/v1/baselines/${ENC}/diff?from=0`)).body.added.length, 2, 'from nothing to now');
  t.is((await api(c, 'GET', `/api/v1/baselines/${ENC}/diff?from=9`)).status, 404);
  t.is((await api(c, 'GET', `/api/v1/baselines/${ENC}/diff?from=x`)).status, 400);

  const audit = (await api(c, 'GET', '/api/v1/audit')).body.items;
  t.deepEqual(audit[0], { ...audit[0], action: 'baseline.lock', target: KEY, before: { state: 'enforcing', version: 3 }, after: { state: 'locked', version: 4 } });
  const list = (await api(c, 'GET', '/api/v1/baselines?state=locked')).body.items;
  t.like(list[0], { key: KEY, state: 'locked', version: 4, processEntries: 2, networkEntries: 1, openAlerts: 0 });
  t.deepEqual((await api(c, 'GET', '/api/v1/baselines?state=learning')).body.items, []);

  t.is((await api(c, 'POST', `/api/v1/baselines/${encodeURIComponent('docker.io/x/none')}/lock`, {})).status, 404);
  t.is((await api(c, 'POST', `/api/v1/baselines/${ENC}/entries`, { entry: { type: 'process', exe: '/x', user: 'god' } })).status, 400);
  t.is((await api(c, 'POST', `/api/v1/baselines/${ENC}/explode`, {})).status, 404);
});

test('an entry a new image version brought during its grace period is flagged for review, then approved', async (t) => {
  const c = await withCollector(t);
  const d = delta('node-1', [nginx, dns]);
  d.entries[1]!.addedBy = '1.27.0';
  await converse(c.grpcPort, 'node-1', [{ batch: { batchId: 1, deviations: [], baselines: [snapshotToWire(d)] } }], 1);
  const view = (await api(c, 'GET', `/api/v1/baselines/${ENC}`)).body;
  t.deepEqual(view.entries.map((e: any) => [e.summary, e.status]).sort(), [
    ['/usr/sbin/nginx -g daemon off; (parent containerd-shim, root)', 'learned'],
    ['egress udp cluster:53', 'flagged'],
  ]);
  t.regex(view.entries.find((e: any) => e.status === 'flagged').statusReason, /^new in version 1\.27\.0\b/, 'the version that brought it, for the reviewer');
  const approved = await api(c, 'POST', `/api/v1/baselines/${ENC}/entries/${encodeURIComponent(entryId(dns))}/approve`, { reason: 'resolver of the new version' });
  t.like(approved.body.entries.find((e: any) => e.summary === 'egress udp cluster:53'), { status: 'approved', statusReason: 'resolver of the new version' });
});

test('removed stays removed: agents learning it again do not bring it back, and it alerts', async (t) => {
  const c = await withCollector(t);
  await converse(c.grpcPort, 'node-1', [{ batch: { batchId: 1, deviations: [], baselines: [snapshotToWire(delta('node-1', [nginx, shell]))] } }], 1);
  await api(c, 'POST', `/api/v1/baselines/${ENC}/entries/${encodeURIComponent(entryId(shell))}/remove`, { reason: 'no shells here' });
  // Another node learned the shell too; its delta arrives after the removal.
  await converse(c.grpcPort, 'node-2', [{ batch: { batchId: 1, deviations: [], baselines: [snapshotToWire(delta('node-2', [nginx, shell]))] } }], 1);
  const view = (await api(c, 'GET', `/api/v1/baselines/${ENC}`)).body;
  t.is(view.entries.find((e: any) => e.exe === '/bin/sh').status, 'removed');
  // A node that checks against an older copy sends the shell as a deviation: the collector alerts.
  const ack = await sendDeviations(c.grpcPort, [deviationOf({ i: 1, node: 'node-3' })]);
  t.is(ack?.stored, 1);
  t.is((await api(c, 'GET', '/api/v1/alerts')).body.items.length, 1);
  // While a known entry from another node is dropped as known.
  const known = await sendDeviations(c.grpcPort, [{ ...deviationOf({ i: 2, node: 'node-3', exe: '/usr/sbin/nginx', args: '-g daemon off;' }), entry: nginx }], 'node-3', 2);
  t.like(known, { stored: 0, duplicates: 0 });
});

test('a busybox applet entry travels whole: its id is recomputed with the applet and accepted, and another node\'s deviation of it is known', async (t) => {
  const c = await withCollector(t);
  const wget: Entry = { type: 'process', exe: '/bin/busybox', applet: 'wget', parent: 'sh', user: 'user', args: '-q -O- http://<ip>/healthz' };
  const sh: Entry = { type: 'process', exe: '/bin/busybox', applet: 'sh', parent: 'containerd-shim', user: 'user', args: '/entrypoint.sh' };
  const { replies } = await converse(c.grpcPort, 'node-1', [{ batch: { batchId: 1, deviations: [], baselines: [snapshotToWire(delta('node-1', [wget, sh]))] } }], 1);
  t.is(replies.find((r) => r.ack)?.ack?.rejected ?? 0, 0, 'no entry refused as a mismatched id');
  const view = (await api(c, 'GET', `/api/v1/baselines/${ENC}`)).body;
  t.deepEqual(view.entries.filter((e: any) => e.exe === '/bin/busybox').map((e: any) => e.id).sort(), [entryId(sh), entryId(wget)].sort());
  const known = await sendDeviations(c.grpcPort, [{ ...deviationOf({ i: 1, node: 'node-2', exe: '/bin/busybox', args: '-q -O- http://<ip>/healthz' }), entry: wget }], 'node-2', 1);
  t.like(known, { stored: 0, duplicates: 0 });
});

test('push-down: a connecting agent gets the cluster baselines; review changes reach every connected agent', async (t) => {
  const c = await withCollector(t);
  // Still learning on node-1: nothing is pushed for it.
  await converse(c.grpcPort, 'node-1', [{ batch: { batchId: 1, deviations: [], baselines: [snapshotToWire(delta('node-1', [nginx], 'learning'))] } }], 1);
  const early = listen(c, 'node-2');
  t.teardown(() => early.close());
  await new Promise((r) => setTimeout(r, 300));
  t.deepEqual(early.pushed, [], 'learning baselines stay local');

  // node-1's window closes: every connected agent hears it, with the cluster's entries.
  await converse(c.grpcPort, 'node-1', [{ batch: { batchId: 2, deviations: [], baselines: [snapshotToWire(delta('node-1', [nginx, dns], 'enforcing', 6))] } }], 1);
  const first = await eventually(() => early.pushed.find((p) => p.state === 'enforcing'));
  t.like(first, { key: KEY, relearn: false, windowStartMs: T0, learnUntilMs: T0 + 3_600_000 });
  t.deepEqual([...first.entryIds].sort(), [entryId(dns), entryId(nginx)].sort());

  // A node connecting now starts from the cluster's baseline.
  const late = listen(c, 'node-3');
  t.teardown(() => late.close());
  const initial = await eventually(() => late.pushed[0]);
  t.like(initial, { key: KEY, state: 'enforcing' });

  await api(c, 'POST', `/api/v1/baselines/${ENC}/entries/${encodeURIComponent(entryId(dns))}/remove`, { reason: 'no DNS' });
  const removal = await eventually(() => late.pushed.find((p) => p.removedIds.length > 0));
  t.deepEqual(removal.removedIds, [entryId(dns)]);
  t.deepEqual(removal.entryIds, [entryId(nginx)]);
  await api(c, 'POST', `/api/v1/baselines/${ENC}/lock`, {});
  t.like(await eventually(() => early.pushed.find((p) => p.state === 'locked')), { version: 2 });
  await api(c, 'POST', `/api/v1/baselines/${ENC}/unlock`, {});
  const relearn = await api(c, 'POST', `/api/v1/baselines/${ENC}/relearn`, { reason: 'new release' });
  t.like(relearn.body, { state: 'relearn' });
  t.deepEqual(relearn.body.entries.map((e: any) => [e.summary, e.status]), [['egress udp cluster:53', 'removed']], 'learned entries go, removed ones stay');
  const pushedRelearn = await eventually(() => late.pushed.find((p) => p.relearn));
  t.like(pushedRelearn, { state: 'learning', entryIds: [], removedIds: [entryId(dns)] });
  // The agents' fresh window ends the relearn state.
  await converse(c.grpcPort, 'node-1', [{ batch: { batchId: 3, deviations: [], baselines: [snapshotToWire(delta('node-1', [nginx], 'learning', 9))] } }], 1);
  t.is((await api(c, 'GET', `/api/v1/baselines/${ENC}`)).body.state, 'learning');
  t.regex(await (await fetch(`${c.url}/metrics`)).text(), /driftwatch_collector_cluster_baselines_pushed_total [1-9]/);
});

test('policy as code: export from one collector, import into another, export again: the same document; NetworkPolicy and Falco rules download', async (t) => {
  const a = await withCollector(t);
  const peer: Entry = { type: 'network', direction: 'egress', protocol: 'tcp', peer: '203.0.113.50', port: 443 };
  await converse(a.grpcPort, 'node-1', [{ batch: { batchId: 1, deviations: [], baselines: [snapshotToWire(delta('node-1', [nginx, shell, dns, peer]))] } }], 1);
  await api(a, 'POST', `/api/v1/baselines/${ENC}/entries/${encodeURIComponent(entryId(shell))}/remove`, { reason: 'no shells' });
  await api(a, 'POST', `/api/v1/baselines/${ENC}/lock`, { reason: 'reviewed' });
  const exported = await fetch(`${a.url}/api/v1/baselines/${ENC}/export`);
  t.is(exported.status, 200);
  t.regex(exported.headers.get('content-disposition') ?? '', /^attachment; filename="docker-io-library-nginx-[0-9a-f]{8}\.yaml"$/);
  const yamlText = await exported.text();
  t.regex(yamlText, /kind: Baseline/);
  t.regex(yamlText, /state: locked/);

  // Import into a collector that has never seen this image: the document is the desired state.
  const b = await withCollector(t);
  const imported = await fetch(`${b.url}/api/v1/baselines/import`, { method: 'POST', headers: { 'content-type': 'application/yaml' }, body: yamlText });
  t.is(imported.status, 200);
  t.deepEqual(((await imported.json()) as any).applied, [{ key: KEY, version: 1, state: 'locked', added: 3, removed: 0 }]);
  const view = (await api(b, 'GET', `/api/v1/baselines/${ENC}`)).body;
  t.deepEqual(view.entries.map((e: any) => [e.summary, e.status]).sort(), [
    ['/bin/sh -c id (parent nginx, root)', 'removed'],
    ['/usr/sbin/nginx -g daemon off; (parent containerd-shim, root)', 'added'],
    ['egress tcp 203.0.113.50:443', 'added'],
    ['egress udp cluster:53', 'added'],
  ]);
  t.is(await (await fetch(`${b.url}/api/v1/baselines/${ENC}/export`)).text(), yamlText, 'round trip exact');
  // Its agents enforce it from their first connect.
  const agentB = listen(b, 'node-9');
  t.teardown(() => agentB.close());
  t.like(await eventually(() => agentB.pushed[0]), { key: KEY, state: 'locked', removedIds: [entryId(shell)] });
  // The shell stays removed: it alerts there too.
  t.is((await sendDeviations(b.grpcPort, [deviationOf({ i: 1, node: 'node-9' })]))?.stored, 1);

  const policy = await fetch(`${a.url}/api/v1/baselines/${ENC}/export?format=networkpolicy&selector=app=web`);
  t.is(policy.status, 200);
  const policyText = await policy.text();
  t.regex(policyText, /kind: NetworkPolicy/);
  t.regex(policyText, /203\.0\.113\.50\/32/);
  t.is((await fetch(`${a.url}/api/v1/baselines/${ENC}/export?format=networkpolicy`)).status, 400, 'a selector is needed');
  const falco = await (await fetch(`${a.url}/api/v1/baselines/${ENC}/export?format=falco`)).text();
  t.regex(falco, /- rule: /);
  t.regex(falco, /priority: CRITICAL/, 'locked: critical');

  const bad = await fetch(`${b.url}/api/v1/baselines/import`, { method: 'POST', headers: { 'content-type': 'application/yaml' }, body: yamlText.replace('user: root', 'user: god') });
  t.is(bad.status, 400);
  t.regex(((await bad.json()) as any).error.message, /spec\.processes\.\d+\.user/);
  t.is((await fetch(`${b.url}/api/v1/baselines/import`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{}' })).status, 415);
});
