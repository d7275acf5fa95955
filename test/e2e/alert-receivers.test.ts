/**
 * Against the real receivers: a real Alertmanager (Debian's prometheus-alertmanager, a child process
 * with its own temp dir, on loopback, without gossip) checked through its own API, and `promtool
 * check metrics` over the /metrics of a real collector and a real agent. Each test is skipped, with
 * the reason, when its binary is not installed (.ci/run installs both).
 */
import test, { type ExecutionContext } from 'ava';
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DEMO_EVENTS } from '../../cli/demo.js';
import { deviationId } from '../../core/deviation.js';
import { withCollector } from '../helpers/collector.js';
import { deviationOf, sendDeviations } from '../helpers/ingest.js';
import { eventually, getJson, spawnCli, spawnCollector } from '../helpers/processes.js';

const ALERTMANAGER = process.env.DRIFTWATCH_ALERTMANAGER ?? 'prometheus-alertmanager';
const PROMTOOL = process.env.DRIFTWATCH_PROMTOOL ?? 'promtool';

/** Whether `bin` runs (`--version`); the reason when not. */
function missing(bin: string): string | null {
  const r = spawnSync(bin, ['--version'], { stdio: 'ignore' });
  return r.error ? `${bin} is not installed (${(r.error as NodeJS.ErrnoException).code ?? r.error.message})` : null;
}

async function freePort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((resolve) => s.listen(0, '127.0.0.1', resolve));
  const port = (s.address() as { port: number }).port;
  await new Promise<void>((resolve) => s.close(() => resolve()));
  return port;
}

/** Start a real Alertmanager with a minimal config; resolves with its base URL once it is ready. */
async function startAlertmanager(t: ExecutionContext): Promise<string> {
  const dir = mkdtempSync(join(tmpdir(), 'dw-am-'));
  writeFileSync(join(dir, 'alertmanager.yml'), 'route:\n  receiver: blackhole\nreceivers:\n  - name: blackhole\n');
  const port = await freePort();
  const child = spawn(ALERTMANAGER, [`--config.file=${join(dir, 'alertmanager.yml')}`, `--storage.path=${join(dir, 'data')}`, `--web.listen-address=127.0.0.1:${port}`, '--cluster.listen-address=', '--log.level=warn'], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr!.setEncoding('utf8').on('data', (c: string) => (stderr = (stderr + c).slice(-4000)));
  t.teardown(async () => {
    if (child.exitCode === null) {
      child.kill('SIGTERM');
      await new Promise((resolve) => child.once('exit', resolve));
    }
    rmSync(dir, { recursive: true, force: true });
  });
  const url = `http://127.0.0.1:${port}`;
  await eventually(async () => {
    if (child.exitCode !== null) throw new Error(`alertmanager exited ${child.exitCode}: ${stderr}`);
    return (await fetch(`${url}/-/ready`).catch(() => null))?.ok ? true : undefined;
  }, 30_000, 'alertmanager ready');
  return url;
}

interface AmAlert {
  labels: Record<string, string>;
  annotations: Record<string, string>;
  startsAt: string;
  endsAt: string;
  status: { state: string };
}

/** Alertmanager's own view: its active alerts from Driftwatch, by alert_id. */
async function amActive(url: string): Promise<Map<string, AmAlert>> {
  const all = await getJson<AmAlert[]>(`${url}/api/v2/alerts?active=true&silenced=false&inhibited=false`);
  const now = Date.now();
  return new Map(all.filter((a) => a.status.state === 'active' && Date.parse(a.endsAt) > now).map((a) => [a.labels.alert_id as string, a]));
}

test('a real Alertmanager: alerts arrive, stay firing across re-sends, resolve when resolved; an event dated two hours ahead stops nothing', async (t) => {
  const why = missing(ALERTMANAGER);
  if (why) {
    t.log(`skipped: ${why}`);
    t.pass();
    return;
  }
  const am = await startAlertmanager(t);
  const c = await withCollector(t, { sinks: [{ name: 'am', type: 'alertmanager', url: am, retry: { maxAttempts: 2 } }], alerting: { alertmanagerResend: '1m' } });

  // No firingTimeout: Alertmanager 0.25 keeps the later of two explicit endsAt, so a firing post's
  // endsAt would outlive an earlier resolve (see firingTimeout in collector/sinks/alertmanager.ts).
  // A node whose clock is two hours ahead (or a forged event): the poisoned alert, and the newest.
  const poisoned = deviationOf({ i: 9, exe: '/usr/bin/clock-ahead' });
  poisoned.event.time = Date.now() + 2 * 3_600_000;
  poisoned.id = deviationId(poisoned.event, poisoned.key, poisoned.entry);
  await sendDeviations(c.grpcPort, [1, 2, 3].map((i) => deviationOf({ i, exe: `/usr/bin/tool-${i}` })));
  await sendDeviations(c.grpcPort, [poisoned], 'node-1', 2);
  await c.alerting.drain();

  const ids = ((await getJson<{ items: { id: string; process: { exe: string } }[] }>(`${c.url}/api/v1/alerts`)).items).map((a) => a.id);
  t.is(ids.length, 4);
  const arrived = await eventually(async () => {
    const active = await amActive(am);
    return ids.every((id) => active.has(id)) ? active : undefined;
  }, 30_000, 'the four alerts active in Alertmanager');
  for (const a of arrived.values()) t.true(Date.parse(a.startsAt) <= Date.now(), 'startsAt is never in the future');

  // Re-sends keep every one of them firing, the poisoned one included, with the same labels.
  for (let round = 0; round < 2; round++) {
    t.is(await c.alerting.resendToAlertmanager(), 4);
    const active = await amActive(am);
    t.deepEqual([...active.keys()].sort(), [...ids].sort());
    for (const id of ids) t.deepEqual(active.get(id)!.labels, arrived.get(id)!.labels);
  }

  // Resolved in Driftwatch: resolved in Alertmanager; the others stay firing through the next re-send.
  const [gone, ...rest] = ids as [string, ...string[]];
  t.is((await fetch(`${c.url}/api/v1/alerts/${gone}/resolve`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"comment":"fixed"}' })).status, 200);
  await c.alerting.drain();
  await eventually(async () => ((await amActive(am)).has(gone) ? undefined : true), 30_000, 'the resolved alert no longer active');
  await c.alerting.resendToAlertmanager();
  const after = await amActive(am);
  t.false(after.has(gone), 'a re-send of a resolved alert keeps it resolved');
  t.deepEqual([...after.keys()].sort(), [...rest].sort());
});

/** Lint `text` with `promtool check metrics`; returns its complaints ('' when clean). */
function promtoolProblems(text: string): string {
  const r = spawnSync(PROMTOOL, ['check', 'metrics'], { input: text, encoding: 'utf8' });
  return r.status === 0 ? '' : `${r.stdout}${r.stderr}`.trim() || `exit ${r.status}`;
}

test('promtool check metrics passes on the /metrics of a real collector and a real agent', async (t) => {
  const why = missing(PROMTOOL);
  if (why) {
    t.log(`skipped: ${why}`);
    t.pass();
    return;
  }
  t.not(promtoolProblems('# TYPE x_total gauge\nx_total 1\n'), '', 'the check can fail');
  const dir = mkdtempSync(join(tmpdir(), 'dw-promtool-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const events = join(dir, 'falco.json');
  writeFileSync(events, readFileSync(DEMO_EVENTS, 'utf8'));
  const collector = await spawnCollector(t, join(dir, 'collector.db'));
  const agent = spawnCli(t, ['agent', '--source', `falco-file:${events}`, '--collector', `127.0.0.1:${collector.grpcPort}`, '--node', 'promtool-node', '--state-dir', join(dir, 'agent'), '--learning-window', '1h', '--http-listen', '127.0.0.1:0']);
  const started = await agent.waitForLog((l) => l.msg === 'agent started');
  // Wait until the stream carried something, so labelled series exist on both sides.
  await eventually(async () => ((await getJson<{ items: unknown[] }>(`${collector.url}/api/v1/alerts`)).items.length > 0 ? true : undefined), 30_000, 'alerts from the agent');

  const agentMetrics = await (await fetch(`http://${started.http as string}/metrics`)).text();
  const collectorMetrics = await (await fetch(`${collector.url}/metrics`)).text();
  t.regex(agentMetrics, /^driftwatch_agent_event_time_watermark_timestamp_seconds \d/m);
  t.regex(collectorMetrics, /^driftwatch_collector_agent_last_contact_timestamp_seconds\{node="promtool-node"\} \d/m);
  t.is(promtoolProblems(agentMetrics), '', 'agent');
  t.is(promtoolProblems(collectorMetrics), '', 'collector');
});
