/**
 * The agent keeps what the collector has not acknowledged and resends it after the collector comes
 * back; the collector stores every deviation once. Real processes, real gRPC, real SQLite files.
 */
import test from 'ava';
import { appendFileSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { at, falcoLine } from '../helpers/falco.js';
import { eventually, getJson, spawnCli, spawnCollector } from '../helpers/processes.js';

/** Normal nginx behaviour during the first hour. */
function learningLines(): string {
  const lines: string[] = [];
  for (let m = 0; m < 60; m += 5) {
    lines.push(falcoLine({ time: at(m), fields: { 'proc.pid': 100 + m } }));
    lines.push(falcoLine({ time: at(m + 1), type: 'accept4', fields: { 'fd.name': `10.244.1.${m + 2}:4${m + 1000}->10.244.2.3:80`, 'proc.pid': 100 } }));
  }
  return `${lines.join('\n')}\n`;
}

/** `n` distinct deviating events starting at `minute`: shells spawned by nginx, and a new egress peer. */
function deviationLines(minute: number, n: number): string {
  const lines: string[] = [];
  for (let i = 0; i < n; i++) {
    const pid = 5000 + minute * 100 + i;
    lines.push(falcoLine({ time: at(minute + i / 10), fields: { 'proc.pid': pid, 'proc.exepath': '/bin/sh', 'proc.name': 'sh', 'proc.cmdline': 'sh -c id', 'proc.pname': 'nginx', 'proc.pexepath': '/usr/sbin/nginx' } }));
    lines.push(falcoLine({ time: at(minute + i / 10), type: 'connect', fields: { 'proc.pid': pid, 'fd.name': `10.244.2.3:${40000 + i}->203.0.113.50:4444`, 'fd.l4proto': 'tcp' } }));
  }
  return `${lines.join('\n')}\n`;
}

test('deviations made while the collector is down arrive once after it restarts', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'dw-resend-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const events = join(dir, 'falco.json');
  const db = join(dir, 'collector.db');
  writeFileSync(events, learningLines() + deviationLines(70, 5));

  let collector = await spawnCollector(t, db);
  const grpcPort = collector.grpcPort;
  const agent = spawnCli(t, ['agent', '--source', `falco-file:${events}`, '--collector', `127.0.0.1:${grpcPort}`, '--node', 'node-1', '--state-dir', join(dir, 'agent'), '--learning-window', '1h', '--http-listen', '127.0.0.1:0']);
  const started = await agent.waitForLog((l) => l.msg === 'agent started');
  const agentMetrics = `http://${started.http as string}/metrics`;

  const count = async (url: string) => (await getJson<{ items: { count: number }[] }>(`${url}/api/v1/alerts`)).items.reduce((n, a) => n + a.count, 0);
  await eventually(async () => ((await count(collector.url)) === 10 ? true : undefined), 20_000, '10 deviations stored');

  // Kill the collector hard, then keep producing deviations.
  await collector.stop('SIGKILL');
  appendFileSync(events, deviationLines(80, 20));
  await eventually(async () => {
    const text = await (await fetch(agentMetrics)).text();
    const m = /^driftwatch_agent_spool_records (\d+)/m.exec(text);
    return m && Number(m[1]) >= 40 ? true : undefined;
  }, 20_000, 'the agent to spool 40 deviations while the collector is down');

  collector = await spawnCollector(t, db, grpcPort);
  await eventually(async () => ((await count(collector.url)) === 50 ? true : undefined), 30_000, '50 deviations after the restart');

  // Exactly once: 50 distinct deviations in the store, grouped into the 2 fingerprints.
  const alerts = await getJson<{ items: { kind: string; summary: string; count: number }[] }>(`${collector.url}/api/v1/alerts`);
  t.deepEqual(
    alerts.items.map((a) => [a.kind, a.summary, a.count]).sort(),
    [
      ['connect', 'egress tcp 203.0.113.50:4444', 25],
      ['exec', '/bin/sh -c id (parent nginx, root)', 25],
    ],
  );
  const all = await getJson<{ items: { id: string }[] }>(`${collector.url}/api/v1/deviations?limit=1000`);
  t.is(all.items.length, 50);
  t.is(new Set(all.items.map((d) => d.id)).size, 50);

  // The spool drains once everything is acknowledged.
  await eventually(async () => {
    const text = await (await fetch(agentMetrics)).text();
    return /^driftwatch_agent_spool_records 0$/m.test(text) ? true : undefined;
  }, 20_000, 'an empty spool');
  t.is(await agent.stop(), 0);
  t.is(await collector.stop(), 0);
});
