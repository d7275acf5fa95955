/**
 * Several sources in one agent process: Falco http_output POSTs and program_output on stdin.
 * When stdin closes and --exit-when-done is set, the agent sends what it has and exits 0.
 */
import test from 'ava';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { at, falcoLine } from '../helpers/falco.js';
import { eventually, getJson, spawnCli, spawnCollector } from '../helpers/processes.js';

const sh = (minute: number, pid: number) =>
  falcoLine({ time: at(minute), fields: { 'proc.pid': pid, 'proc.exepath': '/bin/sh', 'proc.name': 'sh', 'proc.cmdline': 'sh -c id', 'proc.pname': 'nginx', 'proc.pexepath': '/usr/sbin/nginx' } });

test('falco-http and stdin sources feed one agent', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'dw-sources-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const collector = await spawnCollector(t, join(dir, 'c.db'));
  const agent = spawnCli(
    t,
    ['agent', '--source', 'falco-http:127.0.0.1:0', '--source', 'stdin', '--collector', `127.0.0.1:${collector.grpcPort}`,
      '--node', 'node-1', '--state-dir', join(dir, 'agent'), '--learning-window', '30m', '--http-listen', '127.0.0.1:0'],
    { stdin: 'pipe' },
  );
  const rx = await agent.waitForLog((l) => l.msg === 'receiving Falco http_output');
  const url = `http://${rx.listen as string}/`;

  // Learn via stdin (program_output), then deviate via both.
  agent.child.stdin!.write(`${falcoLine({ time: at(0) })}\n${falcoLine({ time: at(31) })}\n${sh(32, 900)}\n`);
  const posted = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body: sh(33, 901) });
  t.is(posted.status, 200);
  const bad = await fetch(url, { method: 'POST', body: '{"output_fields":' });
  t.is(bad.status, 400);

  const alerts = await eventually(async () => {
    const page = await getJson<{ items: { summary: string; count: number }[] }>(`${collector.url}/api/v1/alerts`);
    return page.items[0]?.count === 2 ? page.items : undefined;
  }, 20_000, 'two shell deviations');
  t.deepEqual(alerts.map((a) => a.summary), ['/bin/sh -c id (parent nginx, root)']);
  t.is(await agent.stop(), 0);
  await collector.stop();
});

test('stdin ending with --exit-when-done: everything is delivered, then exit 0', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'dw-stdin-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const collector = await spawnCollector(t, join(dir, 'c.db'));
  const agent = spawnCli(
    t,
    ['agent', '--source', 'stdin', '--exit-when-done', '--collector', `127.0.0.1:${collector.grpcPort}`, '--node', 'node-1',
      '--state-dir', join(dir, 'agent'), '--learning-window', '30m', '--http-listen', '127.0.0.1:0'],
    { stdin: 'pipe' },
  );
  agent.child.stdin!.end(`${falcoLine({ time: at(0) })}\n${sh(40, 1)}\n${sh(41, 2)}\n${sh(42, 3)}`);
  t.is(await agent.exited, 0);
  const alerts = await getJson<{ items: { count: number }[] }>(`${collector.url}/api/v1/alerts`);
  t.is(alerts.items[0]?.count, 3, 'all three deviations were stored before the agent exited');
  await collector.stop();
});
