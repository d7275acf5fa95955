/**
 * An agent that restarts resumes from its state dir: the file source continues at its saved
 * position (nothing re-read, nothing re-sent) and the baselines stay enforcing (no relearning).
 */
import test from 'ava';
import { appendFileSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { at, falcoLine } from '../helpers/falco.js';
import { eventually, getJson, spawnCli, spawnCollector } from '../helpers/processes.js';

const sh = (minute: number, pid: number) =>
  falcoLine({ time: at(minute), fields: { 'proc.pid': pid, 'proc.exepath': '/bin/sh', 'proc.name': 'sh', 'proc.cmdline': 'sh -c id', 'proc.pname': 'nginx', 'proc.pexepath': '/usr/sbin/nginx' } });

test('a restarted agent resumes its file and its baselines', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'dw-restart-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const events = join(dir, 'falco.json');
  writeFileSync(events, `${falcoLine({ time: at(0) })}\n${falcoLine({ time: at(20) })}\n${falcoLine({ time: at(61) })}\n${sh(62, 1)}\n`);
  const collector = await spawnCollector(t, join(dir, 'c.db'));
  const args = ['agent', '--source', `falco-file:${events}`, '--collector', `127.0.0.1:${collector.grpcPort}`, '--node', 'node-1', '--state-dir', join(dir, 'agent'), '--learning-window', '1h', '--http-listen', '127.0.0.1:0'];
  const count = async () => (await getJson<{ items: { count: number }[] }>(`${collector.url}/api/v1/deviations?limit=1000`)).items.length;

  const first = spawnCli(t, args);
  await eventually(async () => ((await count()) === 1 ? true : undefined), 20_000, 'the first deviation');
  // Let the once-a-second flush persist the position with the baselines, then stop cleanly.
  await new Promise((r) => setTimeout(r, 1_200));
  t.is(await first.stop(), 0);

  // While it is down, the workload keeps going; a shell and a normal nginx exec are appended.
  appendFileSync(events, `${sh(70, 2)}\n${falcoLine({ time: at(71), fields: { 'proc.pid': 77 } })}\n`);
  const second = spawnCli(t, args);
  const restored = await second.waitForLog((l) => l.msg === 'restored baselines from the state dir');
  t.is(restored.baselines, 1);
  await second.waitForLog((l) => l.msg === 'resuming from saved position');
  await eventually(async () => ((await count()) === 2 ? true : undefined), 20_000, 'the second deviation');
  // Give a re-read (if there were one) time to show up as an extra deviation or a duplicate.
  await new Promise((r) => setTimeout(r, 1_000));
  t.is(await count(), 2);
  const metrics = await (await fetch(`${collector.url}/metrics`)).text();
  t.notRegex(metrics, /driftwatch_collector_deviations_total\{outcome="duplicate"\}/, 'nothing was sent twice');
  // The normal exec after the restart matched the restored, enforcing baseline: only the shell deviated.
  const alerts = await getJson<{ items: { summary: string; count: number }[] }>(`${collector.url}/api/v1/alerts`);
  t.deepEqual(alerts.items.map((a) => [a.summary, a.count]), [['/bin/sh -c id (parent nginx, root)', 2]]);
  t.is(await second.stop(), 0);
  await collector.stop();
});
