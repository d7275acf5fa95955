/**
 * The hostile client: a collector process with API tokens, a probe listener and 1,536 descriptors,
 * and a client that floods, hangs on, guesses, oversizes and hogs (test/hostile/http-attacks.ts, one attack a test,
 * in order). Each is refused or cut and counted, /livez on the probe port answers within a
 * generous deadline throughout, and valid tokens keep working.
 */
import test from 'ava';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ExecutionContext } from 'ava';
import { probeWhile, storm, summarize } from '../helpers/http-storm.js';
import { spawnCli, spawnCollector, type CliProcess } from '../helpers/processes.js';
import { FD_LIMIT, HTTP_ATTACKS, PROBE_DEADLINE_MS, httpCounter, settleMetrics, type HttpTarget } from './http-attacks.js';

const VIEWER = 'viewer-token-0123456789abcdef';
const REVIEWER = 'reviewer-token-0123456789abcdef';

let collector: CliProcess & { grpcPort: number };
let target: HttpTarget;
const dir = mkdtempSync(join(tmpdir(), 'dw-hostile-http-'));
const cleanups: (() => void | Promise<void>)[] = [];

test.before(async () => {
  const tokens = join(dir, 'tokens.yaml');
  writeFileSync(tokens, `tokens:\n  - name: viewer-user\n    role: viewer\n    token: ${VIEWER}\n  - name: reviewer-user\n    role: reviewer\n    token: ${REVIEWER}\n`);
  const scope = { teardown: (fn: () => void) => cleanups.push(fn) } as unknown as ExecutionContext;
  const c = await spawnCollector(scope, join(dir, 'c.db'), 0, ['--api-tokens-file', tokens, '--probe-listen', '127.0.0.1:0'], { fdLimit: FD_LIMIT });
  collector = c;
  target = {
    url: c.url,
    probeUrl: c.probeUrl as string,
    port: Number(new URL(c.url).port),
    headers: {},
    viewer: VIEWER,
    reviewer: REVIEWER,
    feedSlotsPerToken: 16,
    connectionsPerAddress: 256,
    stormMs: 3_000,
  };
});

test.after.always(async () => {
  if (collector) await collector.stop();
  for (const fn of cleanups) await fn();
  rmSync(dir, { recursive: true, force: true });
});

for (const attack of HTTP_ATTACKS) {
  test.serial(`attack: ${attack.name} → refused: ${attack.refused}`, async (t) => {
    const before = await httpCounter(target, attack.counted.metric, attack.counted.labels);
    const failed: string[] = [];
    await attack.run(target, (ok, what) => {
      if (!ok) failed.push(what);
    }, (what) => t.log(what));
    await settleMetrics();
    t.deepEqual(failed, [], 'what the attack must not achieve');
    const grown = (await httpCounter(target, attack.counted.metric, attack.counted.labels)) - before;
    t.true(grown >= attack.counted.atLeast, `${attack.counted.metric}${JSON.stringify(attack.counted.labels)} grew by ${grown}, at least ${attack.counted.atLeast}`);
  });
}

test.serial('the agent too: /livez on a port of its own answers while its /metrics is flooded; one address holds at most 16 connections', async (t) => {
  const agentDir = join(dir, 'agent');
  const events = join(dir, 'falco.json');
  writeFileSync(events, '');
  const agent = spawnCli(t, ['agent', '--source', `falco-file:${events}`, '--collector', `127.0.0.1:${collector.grpcPort}`, '--node', 'node-probe', '--state-dir', agentDir, '--http-listen', '127.0.0.1:0', '--probe-listen', '127.0.0.1:0', '--cluster-sync-timeout', '0']);
  const started = await agent.waitForLog((l) => l.msg === 'agent started');
  const metricsPort = Number(String(started.http).split(':').at(-1));
  const probeUrl = `http://${String(started.probes)}`;
  const flood = storm({ port: metricsPort, path: '/metrics', inFlight: 400, durationMs: 2_000, processes: 1 });
  const probes = await probeWhile(`${probeUrl}/livez`, flood);
  const result = await flood;
  t.log(`agent /livez on its probe port: ${summarize(probes).text}; storm ${JSON.stringify(result.byOutcome)}`);
  t.true(probes.length >= 5 && probes.every((p) => p.outcome === '200' && p.ms < PROBE_DEADLINE_MS), summarize(probes).text);
  t.true((result.byOutcome['200'] ?? 0) > 0, 'the scrapes within the bound were served');
  t.is((await fetch(`${probeUrl}/readyz`)).status, 200);
  t.is((await fetch(`${probeUrl}/metrics`)).status, 404);
  const text = await (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text();
  const dropped = Number(/^driftwatch_agent_http_connections_dropped_total\{listener="metrics",reason="per_address"\} (\d+)$/m.exec(text)?.[1] ?? 0);
  t.true(dropped > 0, `connections past 16 from one address were closed at accept and counted (${dropped})`);
  t.is(await agent.stop(), 0);
});

test.serial('the probe port serves probes only, and the collector stops cleanly after the attacks', async (t) => {
  const missing = await fetch(`${target.probeUrl}/metrics`);
  t.is(missing.status, 404, 'no /metrics on the probe port: a scrape storm cannot follow the kubelet there');
  t.is((await fetch(`${target.probeUrl}/api/v1/alerts`)).status, 404);
  t.is((await fetch(`${target.probeUrl}/livez`, { method: 'POST' })).status, 405);
  t.is(await collector.stop('SIGTERM'), 0);
});
