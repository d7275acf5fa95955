/**
 * The real records of fixtures/real/ read by a real agent process (file sources, a real collector on
 * loopback): every skipped record is counted by source and reason, events whose container image
 * never becomes known stay held (a gauge) and are not passed by the saved position, so a restarted
 * agent reads them again.
 */
import test from 'ava';
import { appendFileSync, copyFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { eventually, spawnCli, spawnCollector, type CliProcess } from '../helpers/processes.js';

const REAL = (name: string) => fileURLToPath(new URL(`../../../fixtures/real/${name}`, import.meta.url));

/** The value of one sample of the agent's /metrics, 0 when absent. */
async function sample(url: string, name: string, labels: Record<string, string>): Promise<number> {
  const text = await (await fetch(url)).text();
  for (const line of text.split('\n')) {
    if (!line.startsWith(`${name}{`) && !line.startsWith(`${name} `)) continue;
    if (Object.entries(labels).every(([k, v]) => line.includes(`${k}="${v}"`))) return Number(line.slice(line.lastIndexOf(' ') + 1));
  }
  return 0;
}

async function startAgent(t: import('ava').ExecutionContext, dir: string, grpcPort: number): Promise<CliProcess & { metrics: string }> {
  const agent = spawnCli(t, [
    'agent', '--source', `falco-file:${join(dir, 'falco.jsonl')}`, '--source', `tetragon-file:${join(dir, 'tetragon.jsonl')}`,
    '--source', `tetragon-file:${join(dir, 'docker.jsonl')}`,
    '--collector', `127.0.0.1:${grpcPort}`, '--node', 'node-1', '--state-dir', join(dir, 'agent'), '--cri-socket', 'none',
    '--learning-window', '30m', '--http-listen', '127.0.0.1:0',
  ]);
  const started = await agent.waitForLog((l) => l.msg === 'agent started');
  return Object.assign(agent, { metrics: `http://${started.http as string}/metrics` });
}

async function expect(t: import('ava').ExecutionContext, metrics: string, want: [string, Record<string, string>, number][], what: string): Promise<void> {
  // On a timeout the assertions below still run, so the failure names the counter that differs.
  await eventually(async () => {
    for (const [name, labels, n] of want) if ((await sample(metrics, name, labels)) !== n) return undefined;
    return true;
  }, 60_000, what).catch((err: unknown) => t.log((err as Error).message));
  for (const [name, labels, n] of want) t.is(await sample(metrics, name, labels), n, `${name} ${JSON.stringify(labels)}`);
}

test('real records in a real agent: skips counted by source and reason; unattributable events counted or held, and the saved position never passes a held one', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'dw-real-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  copyFileSync(REAL('falco.jsonl'), join(dir, 'falco.jsonl'));
  copyFileSync(REAL('tetragon.jsonl'), join(dir, 'tetragon.jsonl'));
  // Tetragon lines 14-15: a Docker container without a pod; no CRI here, so its image stays unknown
  // and nothing later in this file moves its clock: its events stay held.
  const tetragonLines = readFileSync(REAL('tetragon.jsonl'), 'utf8').split('\n');
  writeFileSync(join(dir, 'docker.jsonl'), `${tetragonLines[13]}\n${tetragonLines[14]}\n`);
  const falco = `falco-file:${join(dir, 'falco.jsonl')}`;
  const tetragon = `tetragon-file:${join(dir, 'tetragon.jsonl')}`;
  const docker = `tetragon-file:${join(dir, 'docker.jsonl')}`;
  const collector = await spawnCollector(t, join(dir, 'c.db'));

  const first = await startAgent(t, dir, collector.grpcPort);
  // What test/agent/real-records.test.ts says each line becomes, as the operator sees it.
  await expect(t, first.metrics, [
    ['driftwatch_agent_events_ignored_total', { source: falco, reason: 'other_source' }, 2],
    ['driftwatch_agent_events_ignored_total', { source: falco, reason: 'file_event' }, 1],
    ['driftwatch_agent_events_ignored_total', { source: falco, reason: 'event_type' }, 1],
    ['driftwatch_agent_events_ignored_total', { source: tetragon, reason: 'process_close' }, 1],
    ['driftwatch_agent_events_ignored_total', { source: tetragon, reason: 'process_exit' }, 1],
    ['driftwatch_agent_events_ignored_total', { source: tetragon, reason: 'kprobe_function' }, 1],
    ['driftwatch_agent_events_rejected_total', { source: tetragon, reason: 'bad_time' }, 1],
    ['driftwatch_agent_events_total', { source: falco, kind: 'exec' }, 6],
    ['driftwatch_agent_events_total', { source: falco, kind: 'connect' }, 2],
    ['driftwatch_agent_events_total', { source: tetragon, kind: 'listen' }, 2],
    // Falco line 1 (its image never resolved) and Tetragon lines 14-15 waited their attribution wait
    // in their own source's event time (later lines are years later), then were counted.
    ['driftwatch_agent_events_unattributed_total', { source: falco, reason: 'expired' }, 1],
    ['driftwatch_agent_events_unattributed_total', { source: tetragon, reason: 'expired' }, 2],
    ['driftwatch_agent_events_total', { source: docker, kind: 'exec' }, 1],
    ['driftwatch_agent_events_held', {}, 2],
  ], 'every record counted');
  t.is(await first.stop(), 0);

  // One more Falco line after the restart: the Falco file resumes after what was counted, while the
  // Docker file, whose events were still held at shutdown, is read again from its start.
  const falcoLines = readFileSync(REAL('falco.jsonl'), 'utf8').split('\n');
  appendFileSync(join(dir, 'falco.jsonl'), `${falcoLines[1]}\n`);
  const second = await startAgent(t, dir, collector.grpcPort);
  await expect(t, second.metrics, [
    ['driftwatch_agent_events_total', { source: falco, kind: 'exec' }, 1],
    ['driftwatch_agent_events_total', { source: docker, kind: 'exec' }, 1],
    ['driftwatch_agent_events_total', { source: docker, kind: 'connect' }, 1],
    ['driftwatch_agent_events_held', {}, 2],
  ], 'the new Falco line and the held Docker events read again');
  t.is(await sample(second.metrics, 'driftwatch_agent_events_ignored_total', { source: falco, reason: 'other_source' }), 0, 'the counted lines are not read again');
  t.is(await second.stop(), 0);
  await collector.stop();
});
