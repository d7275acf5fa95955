/**
 * `npm run faults`: real collector and agent processes (the compiled CLI, plaintext loopback, fresh
 * SQLite files) driven through the faults the delivery guarantee is about, then a table:
 *
 *   fault | events sent | deviations expected | stored | dropped (counted) | lost | duplicated
 *
 * Then a hostile node's attacks on the agent stream and a hostile client's on the HTTP API, a row
 * each with what was refused and counted.
 *
 * `lost` is what was expected and neither stored nor counted as dropped by the spool's overflow
 * policy; `duplicated` is stored rows beyond one per distinct event (every deviating event has its
 * own pid). Exits 1 when anything is lost or duplicated, or a check of the fault itself fails (a
 * spool overflow that dropped a critical deviation, an agent that relearned after a crash).
 */
import { appendFileSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ExecutionContext } from 'ava';
import { at, falcoLine } from '../helpers/falco.js';
import { spawnCli, spawnCollector, type CliProcess } from '../helpers/processes.js';
import * as grpc from '@grpc/grpc-js';
import { ATTACKS, counter, type Target } from '../hostile/attacks.js';
import { FD_LIMIT, HTTP_ATTACKS, httpCounter, settleMetrics, type HttpTarget } from '../hostile/http-attacks.js';

/** spawnCli wants an ava context only to kill leftovers: this one kills them when a scenario ends. */
function scope() {
  const cleanups: (() => void | Promise<void>)[] = [];
  const t = { teardown: (fn: () => void | Promise<void>) => cleanups.push(fn) } as unknown as ExecutionContext;
  return { t, async close() {
    for (const fn of cleanups.reverse()) await fn();
  } };
}

interface Row {
  fault: string;
  sent: number;
  expected: number;
  stored: number;
  dropped: number;
  lost: number;
  duplicated: number;
  checks: string[];
  seconds: number;
}

const rows: Row[] = [];
let nextPid = 10_000;

/** Normal nginx behaviour during the first hour (learned), then `extra` normal events later (matched). */
function learning(): string[] {
  const lines: string[] = [];
  for (let m = 0; m < 60; m += 5) {
    lines.push(falcoLine({ time: at(m), fields: { 'proc.pid': 100 + m } }));
    lines.push(falcoLine({ time: at(m + 1), type: 'accept4', fields: { 'fd.name': `10.244.1.${m + 2}:4${m + 1000}->10.244.2.3:80`, 'proc.pid': 100 } }));
  }
  return lines;
}

/** `n` deviating events after the window: shells under nginx (critical), or in-cluster connects (low). Each has its own pid. */
function deviations(n: number, kind: 'shell' | 'cluster' | 'mixed' = 'shell', minute = 70): { lines: string[]; critical: number } {
  const lines: string[] = [];
  let critical = 0;
  for (let i = 0; i < n; i++) {
    const pid = nextPid++;
    const shell = kind === 'shell' || (kind === 'mixed' && i % 10 === 0);
    const time = at(minute + i / 1000);
    if (shell) {
      critical++;
      lines.push(falcoLine({ time, fields: { 'proc.pid': pid, 'proc.exepath': '/bin/sh', 'proc.name': 'sh', 'proc.cmdline': 'sh -c id', 'proc.pname': 'nginx', 'proc.pexepath': '/usr/sbin/nginx' } }));
    } else {
      lines.push(falcoLine({ time, type: 'connect', fields: { 'proc.pid': pid, 'fd.name': `10.244.2.3:${40000 + (i % 20000)}->10.244.9.${i % 250}:5432`, 'fd.l4proto': 'tcp' } }));
    }
  }
  return { lines, critical };
}

const text = (lines: string[]) => (lines.length === 0 ? '' : `${lines.join('\n')}\n`);

async function freePort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const port = (s.address() as { port: number }).port;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

async function until<T>(what: string, check: () => Promise<T | undefined>, timeoutMs = 30_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await check().catch(() => undefined);
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** Deviations stored so far, by the sum of alert counts (cheap while waiting). */
async function storedCount(url: string): Promise<number> {
  const res = await fetch(`${url}/api/v1/alerts?limit=1000`);
  const body = (await res.json()) as { items: { count: number }[] };
  return body.items.reduce((n, a) => n + a.count, 0);
}

/** Every stored deviation: rows, and distinct (node, pid, time) events among them. */
async function storedRows(url: string): Promise<{ rows: number; distinct: number; critical: number }> {
  let cursor: string | null = null;
  let rows = 0;
  let critical = 0;
  const seen = new Set<string>();
  do {
    const res = await fetch(`${url}/api/v1/deviations?limit=1000${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`);
    const page = (await res.json()) as { items: { node: string; time: string; kind: string; process: { pid: number } }[]; next: string | null };
    for (const d of page.items) {
      rows++;
      if (d.kind === 'exec') critical++;
      seen.add(`${d.node}/${d.process.pid}/${d.time}`);
    }
    cursor = page.next;
  } while (cursor);
  return { rows, distinct: seen.size, critical };
}

async function agentMetric(agent: { metricsUrl: string }, re: RegExp): Promise<number> {
  const body = await (await fetch(agent.metricsUrl)).text();
  let sum = 0;
  for (const m of body.matchAll(new RegExp(re.source, 'gm'))) sum += Number(m[1]);
  return sum;
}

async function startAgent(t: ExecutionContext, dir: string, events: string, port: number, extra: string[] = []): Promise<CliProcess & { metricsUrl: string }> {
  const p = spawnCli(t, ['agent', '--source', `falco-file:${events}`, '--collector', `127.0.0.1:${port}`, '--node', 'node-1', '--state-dir', join(dir, 'agent'), '--learning-window', '1h', '--http-listen', '127.0.0.1:0', ...extra]);
  const started = await p.waitForLog((l) => l.msg === 'agent started');
  return Object.assign(p, { metricsUrl: `http://${started.http as string}/metrics` });
}

async function scenario(fault: string, run: (t: ExecutionContext, dir: string) => Promise<Omit<Row, 'fault' | 'seconds' | 'lost' | 'duplicated'> & { rows: number; distinct: number }>): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'dw-faults-'));
  const s = scope();
  const start = performance.now();
  try {
    const r = await run(s.t, dir);
    rows.push({
      fault,
      sent: r.sent,
      expected: r.expected,
      stored: r.stored,
      dropped: r.dropped,
      lost: Math.max(0, r.expected - r.distinct - r.dropped),
      duplicated: r.rows - r.distinct,
      checks: r.checks,
      seconds: (performance.now() - start) / 1000,
    });
  } catch (err) {
    rows.push({ fault, sent: 0, expected: 0, stored: 0, dropped: 0, lost: 0, duplicated: 0, checks: [`FAILED: ${(err as Error).message}`], seconds: (performance.now() - start) / 1000 });
  } finally {
    await s.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

// ---- the faults ----

await scenario('collector down for a while, then back', async (t, dir) => {
  const events = join(dir, 'falco.json');
  const db = join(dir, 'c.db');
  const learn = learning();
  const before = deviations(50);
  writeFileSync(events, text([...learn, ...before.lines]));
  let collector = await spawnCollector(t, db);
  const port = collector.grpcPort;
  const agent = await startAgent(t, dir, events, port);
  await until('50 stored', async () => ((await storedCount(collector.url)) === 50 ? true : undefined));
  await collector.stop('SIGTERM');
  const during = deviations(500, 'shell', 80);
  appendFileSync(events, text(during.lines));
  await until('500 spooled', async () => ((await agentMetric(agent, /^driftwatch_agent_spool_records (\d+)/)) >= 500 ? true : undefined));
  await new Promise((r) => setTimeout(r, 3_000)); // down for a while: the agent keeps retrying with backoff
  collector = await spawnCollector(t, db, port);
  await until('550 stored', async () => ((await storedCount(collector.url)) >= 550 ? true : undefined));
  await until('an empty spool', async () => ((await agentMetric(agent, /^driftwatch_agent_spool_records (\d+)/)) === 0 ? true : undefined));
  const s = await storedRows(collector.url);
  const checks: string[] = [];
  if ((await agent.stop()) !== 0) checks.push('agent did not exit 0 on SIGTERM');
  if ((await collector.stop()) !== 0) checks.push('collector did not exit 0 on SIGTERM');
  return { sent: learn.length + 550, expected: 550, stored: s.rows, dropped: 0, rows: s.rows, distinct: s.distinct, checks };
});

await scenario('collector kill -9 mid-ingest, restart', async (t, dir) => {
  const events = join(dir, 'falco.json');
  const db = join(dir, 'c.db');
  const learn = learning();
  writeFileSync(events, text(learn));
  let collector = await spawnCollector(t, db);
  const port = collector.grpcPort;
  const agent = await startAgent(t, dir, events, port);
  await until('the agent to connect', async () => ((await agentMetric(agent, /^driftwatch_agent_uplink_connected (\d+)/)) === 1 ? true : undefined));
  const burst = deviations(6000);
  appendFileSync(events, text(burst.lines));
  const atKill = await until('ingest under way', async () => {
    const n = await storedCount(collector.url);
    return n > 0 ? n : undefined;
  });
  await collector.stop('SIGKILL');
  collector = await spawnCollector(t, db, port);
  await until('6000 stored', async () => ((await storedCount(collector.url)) >= 6000 ? true : undefined), 60_000);
  await until('an empty spool', async () => ((await agentMetric(agent, /^driftwatch_agent_spool_records (\d+)/)) === 0 ? true : undefined));
  const s = await storedRows(collector.url);
  const checks = [`killed with ${atKill} of 6000 stored`];
  if (atKill >= 6000) checks.push('WARNING: the kill came after ingest had finished');
  await agent.stop();
  await collector.stop();
  return { sent: learn.length + 6000, expected: 6000, stored: s.rows, dropped: 0, rows: s.rows, distinct: s.distinct, checks };
});

await scenario('agent kill -9 mid-stream, restart', async (t, dir) => {
  const events = join(dir, 'falco.json');
  const db = join(dir, 'c.db');
  const learn = learning();
  writeFileSync(events, text(learn));
  const collector = await spawnCollector(t, db);
  let agent = await startAgent(t, dir, events, collector.grpcPort);
  await until('the agent to connect', async () => ((await agentMetric(agent, /^driftwatch_agent_uplink_connected (\d+)/)) === 1 ? true : undefined));
  await new Promise((r) => setTimeout(r, 1_200)); // the once-a-second flush persists the learned baseline
  const first = deviations(3000, 'shell', 70);
  appendFileSync(events, text(first.lines));
  const atKill = await until('deviations flowing', async () => {
    const n = await storedCount(collector.url);
    return n > 0 ? n : undefined;
  });
  await agent.stop('SIGKILL');
  // The workload goes on while the agent is down: more shells, and normal nginx behaviour (must match: no relearning).
  const later = deviations(1000, 'shell', 90);
  const normal = [falcoLine({ time: at(95), fields: { 'proc.pid': 99_999 } })];
  appendFileSync(events, text([...later.lines, ...normal]));
  agent = await startAgent(t, dir, events, collector.grpcPort);
  const restored = await agent.waitForLog((l) => l.msg === 'restored baselines from the state dir', 10_000).catch(() => null);
  await until('4000 stored', async () => ((await storedCount(collector.url)) >= 4000 ? true : undefined), 60_000);
  await until('an empty spool', async () => ((await agentMetric(agent, /^driftwatch_agent_spool_records (\d+)/)) === 0 ? true : undefined));
  await new Promise((r) => setTimeout(r, 500));
  const s = await storedRows(collector.url);
  const checks = [`killed with ${atKill} of 3000 stored`];
  if (!restored) checks.push('FAILED: the restarted agent did not restore its baselines');
  const alerts = (await (await fetch(`${collector.url}/api/v1/alerts`)).json()) as { items: { summary: string }[] };
  if (alerts.items.length !== 1) checks.push(`FAILED: expected only the shell alert, got ${alerts.items.map((a) => a.summary).join('; ')} (relearned?)`);
  await agent.stop();
  await collector.stop();
  return { sent: learn.length + 4000 + normal.length, expected: 4000, stored: s.rows, dropped: 0, rows: s.rows, distinct: s.distinct, checks };
});

await scenario('spool full (1 MiB) while the collector is down', async (t, dir) => {
  const events = join(dir, 'falco.json');
  const db = join(dir, 'c.db');
  const learn = learning();
  const burst = deviations(4000, 'mixed');
  writeFileSync(events, text([...learn, ...burst.lines]));
  const port = await freePort();
  const agent = await startAgent(t, dir, events, port, ['--max-spool-bytes', String(1 << 20)]);
  await until('every deviation found', async () => ((await agentMetric(agent, /^driftwatch_agent_deviations_total\{[^}]*\} (\d+)/)) >= 4000 ? true : undefined));
  await new Promise((r) => setTimeout(r, 300));
  const dropped = await agentMetric(agent, /^driftwatch_agent_spool_evicted_total\{[^}]*\} (\d+)/);
  const droppedLow = await agentMetric(agent, /^driftwatch_agent_spool_evicted_total\{severity="low"\} (\d+)/);
  const collector = await spawnCollector(t, db, port);
  await until('an empty spool', async () => ((await agentMetric(agent, /^driftwatch_agent_spool_records (\d+)/)) === 0 ? true : undefined), 30_000);
  await new Promise((r) => setTimeout(r, 300));
  const s = await storedRows(collector.url);
  const checks = [`dropped ${dropped} (low: ${droppedLow}); kept all ${burst.critical} critical: ${s.critical === burst.critical ? 'yes' : 'NO'}`];
  if (s.critical !== burst.critical) checks.push('FAILED: a critical deviation was dropped while lower ones were spooled');
  if (dropped !== droppedLow) checks.push('FAILED: something other than low severity was dropped');
  if (dropped === 0) checks.push('FAILED: the spool never filled');
  await agent.stop();
  await collector.stop();
  return { sent: learn.length + 4000, expected: 4000, stored: s.rows, dropped, rows: s.rows, distinct: s.distinct, checks };
});

await scenario('SIGTERM: collector mid-ingest, then agent', async (t, dir) => {
  const events = join(dir, 'falco.json');
  const db = join(dir, 'c.db');
  const learn = learning();
  writeFileSync(events, text(learn));
  let collector = await spawnCollector(t, db);
  const port = collector.grpcPort;
  const agent = await startAgent(t, dir, events, port);
  await until('the agent to connect', async () => ((await agentMetric(agent, /^driftwatch_agent_uplink_connected (\d+)/)) === 1 ? true : undefined));
  const burst = deviations(6000);
  appendFileSync(events, text(burst.lines));
  const atStop = await until('ingest under way', async () => {
    const n = await storedCount(collector.url);
    return n > 0 ? n : undefined;
  });
  const checks = [`collector stopped with ${atStop} of 6000 stored`];
  if ((await collector.stop('SIGTERM')) !== 0) checks.push('FAILED: the collector did not exit 0 on SIGTERM');
  collector = await spawnCollector(t, db, port);
  await until('6000 stored', async () => ((await storedCount(collector.url)) >= 6000 ? true : undefined), 60_000);
  // SIGTERM the agent: it drains (nothing left), says goodbye, exits 0; the collector shows it stopped.
  if ((await agent.stop('SIGTERM')) !== 0) checks.push('FAILED: the agent did not exit 0 on SIGTERM');
  const nodes = (await (await fetch(`${collector.url}/api/v1/nodes`)).json()) as { items: { node: string; stopped: boolean; spooled: number }[] };
  if (!nodes.items[0]?.stopped) checks.push('FAILED: the collector did not see the goodbye');
  const s = await storedRows(collector.url);
  await collector.stop();
  return { sent: learn.length + 6000, expected: 6000, stored: s.rows, dropped: 0, rows: s.rows, distinct: s.distinct, checks };
});

// ---- a hostile node: each attack a row, what was refused and counted (test/hostile/attacks.ts) ----

{
  const dir = mkdtempSync(join(tmpdir(), 'dw-faults-hostile-'));
  const s = scope();
  try {
    // Every scrape renders afresh: each attack reads its counters right before and after.
    const collector = await spawnCollector(s.t, join(dir, 'c.db'), 0, ['--metrics-interval', '0s']);
    const target: Target = { grpcPort: collector.grpcPort, url: collector.url, headers: {}, credentials: () => grpc.credentials.createInsecure() };
    for (const attack of ATTACKS) {
      const start = performance.now();
      const checks: string[] = [`refused: ${attack.refused}`];
      try {
        const before = attack.counted ? await counter(target, attack.counted.metric, attack.counted.labels) : 0;
        await attack.run(target, (ok, what) => {
          if (!ok) checks.push(`FAILED: ${what}`);
        });
        if (attack.counted) {
          const grown = (await counter(target, attack.counted.metric, attack.counted.labels)) - before;
          const labels = Object.entries(attack.counted.labels).map(([k, v]) => `${k}="${v}"`).join(',');
          checks.push(`${grown >= attack.counted.atLeast ? 'counted' : 'FAILED: not counted'}: ${attack.counted.metric}{${labels}} +${grown}`);
        }
      } catch (err) {
        checks.push(`FAILED: ${(err as Error).message}`);
      }
      rows.push({ fault: `hostile node: ${attack.name}`, sent: 0, expected: 0, stored: 0, dropped: 0, lost: 0, duplicated: 0, checks, seconds: (performance.now() - start) / 1000 });
    }
    // Then a real agent on another node still learns, gets the cluster's baselines, and alerts.
    const start = performance.now();
    const events = join(dir, 'falco.json');
    const learn = learning();
    const after = deviations(20);
    writeFileSync(events, text([...learn, ...after.lines]));
    const agent = await startAgent(s.t, dir, events, collector.grpcPort);
    const checks: string[] = [];
    await until('20 alerts from the real agent', async () => {
      const r = (await (await fetch(`${collector.url}/api/v1/deviations?node=node-1&limit=100`)).json()) as { items: unknown[] };
      return r.items.length >= 20 ? true : undefined;
    }, 60_000).catch((err: Error) => checks.push(`FAILED: ${err.message}`));
    if (!agent.logs.some((l) => l.msg === 'cluster baselines received')) checks.push('FAILED: the agent did not receive the cluster baselines');
    const stored = ((await (await fetch(`${collector.url}/api/v1/deviations?node=node-1&limit=100`)).json()) as { items: unknown[] }).items.length;
    rows.push({ fault: 'hostile node: then a real agent still alerts', sent: learn.length + 20, expected: 20, stored, dropped: 0, lost: Math.max(0, 20 - stored), duplicated: Math.max(0, stored - 20), checks, seconds: (performance.now() - start) / 1000 });
    await agent.stop();
    await collector.stop();
  } finally {
    await s.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

// ---- a hostile HTTP client: each attack a row, what was refused and counted (test/hostile/http-attacks.ts) ----

{
  const dir = mkdtempSync(join(tmpdir(), 'dw-faults-http-'));
  const s = scope();
  try {
    const tokens = join(dir, 'tokens.yaml');
    writeFileSync(tokens, 'tokens:\n  - name: viewer-user\n    role: viewer\n    token: viewer-token-0123456789abcdef\n  - name: reviewer-user\n    role: reviewer\n    token: reviewer-token-0123456789abcdef\n');
    const collector = await spawnCollector(s.t, join(dir, 'c.db'), 0, ['--api-tokens-file', tokens, '--probe-listen', '127.0.0.1:0'], { fdLimit: FD_LIMIT });
    const target: HttpTarget = {
      url: collector.url,
      probeUrl: collector.probeUrl as string,
      port: Number(new URL(collector.url).port),
      headers: {},
      viewer: 'viewer-token-0123456789abcdef',
      reviewer: 'reviewer-token-0123456789abcdef',
      feedSlotsPerToken: 16,
      connectionsPerAddress: 256,
      stormMs: 15_000,
    };
    for (const attack of HTTP_ATTACKS) {
      const start = performance.now();
      const checks: string[] = [`refused: ${attack.refused}`];
      try {
        const before = await httpCounter(target, attack.counted.metric, attack.counted.labels);
        await attack.run(target, (ok, what) => {
          if (!ok) checks.push(`FAILED: ${what}`);
        }, (what) => checks.push(what));
        await settleMetrics();
        const grown = (await httpCounter(target, attack.counted.metric, attack.counted.labels)) - before;
        const labels = Object.entries(attack.counted.labels).map(([k, v]) => `${k}="${v}"`).join(',');
        checks.push(`${grown >= attack.counted.atLeast ? 'counted' : 'FAILED: not counted'}: ${attack.counted.metric}{${labels}} +${grown}`);
      } catch (err) {
        checks.push(`FAILED: ${(err as Error).message}`);
      }
      rows.push({ fault: `hostile client: ${attack.name}`, sent: 0, expected: 0, stored: 0, dropped: 0, lost: 0, duplicated: 0, checks, seconds: (performance.now() - start) / 1000 });
    }
    if ((await collector.stop()) !== 0) rows.push({ fault: 'hostile client: then SIGTERM', sent: 0, expected: 0, stored: 0, dropped: 0, lost: 0, duplicated: 0, checks: ['FAILED: the collector did not exit 0'], seconds: 0 });
  } finally {
    await s.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

// ---- the table ----

const header = ['fault', 'events sent', 'deviations expected', 'stored', 'dropped (counted)', 'lost', 'duplicated', 'seconds'];
const table = rows.map((r) => [r.fault, String(r.sent), String(r.expected), String(r.stored), String(r.dropped), String(r.lost), String(r.duplicated), r.seconds.toFixed(1)]);
const widths = header.map((h, i) => Math.max(h.length, ...table.map((row) => (row[i] as string).length)));
const line = (cells: string[]) => `| ${cells.map((c, i) => (i === 0 ? c.padEnd(widths[i] as number) : c.padStart(widths[i] as number))).join(' | ')} |`;
console.log(line(header));
console.log(`|${widths.map((w, i) => (i === 0 ? `:${'-'.repeat(w + 1)}` : `${'-'.repeat(w + 1)}:`)).join('|')}|`);
for (const row of table) console.log(line(row));
console.log('');
for (const r of rows) for (const c of r.checks) console.log(`${r.fault}: ${c}`);
const failed = rows.filter((r) => r.lost > 0 || r.duplicated > 0 || r.checks.some((c) => c.startsWith('FAILED')));
if (failed.length > 0) {
  console.log(`\nFAILED: ${failed.map((r) => r.fault).join('; ')}`);
  process.exit(1);
}
console.log('\nnothing acknowledged was lost, nothing was stored twice; every drop was counted');
process.exit(0);
