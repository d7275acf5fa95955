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
import { createServer as createHttpServer } from 'node:http';
import { connect, createServer, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ExecutionContext } from 'ava';
import { at, falcoLine } from '../helpers/falco.js';
import { spawnCli, spawnCollector, type CliProcess } from '../helpers/processes.js';
import * as grpc from '@grpc/grpc-js';
import pg from 'pg';
import { startPostgres } from '../helpers/postgres.js';
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

// ---- several replicas on one PostgreSQL (issue 20) ----

/** A Service in front of replicas: each agent connection goes to the next live backend, round robin; `kill` takes one out. */
async function serviceProxy(backends: number[]) {
  const alive = new Set(backends);
  const open = new Map<number, Set<Socket>>(backends.map((b) => [b, new Set()]));
  let next = 0;
  const server = createServer((client) => {
    const live = backends.filter((b) => alive.has(b));
    if (live.length === 0) return client.destroy();
    const port = live[next++ % live.length]!;
    const upstream = connect(port, '127.0.0.1');
    open.get(port)!.add(client);
    const end = () => {
      open.get(port)!.delete(client);
      client.destroy();
      upstream.destroy();
    };
    client.on('error', end).on('close', end);
    upstream.on('error', end).on('close', end);
    client.pipe(upstream).pipe(client);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    port: (server.address() as { port: number }).port,
    connections: (backend: number) => open.get(backend)!.size,
    remove: (backend: number) => alive.delete(backend),
    close: () => new Promise<void>((r) => server.close(() => r())),
  };
}

/** A webhook receiver that answers each POST after `delayMs` and records it: answered, or its sender gone first. */
async function slowRecorder(delayMs: number) {
  const posts: { id: string; action: string; delivery: string; answered: boolean }[] = [];
  const server = createHttpServer((req, res) => {
    let body = '';
    req.setEncoding('utf8');
    req.on('data', (c: string) => (body += c));
    req.on('end', () => {
      let post = { id: '(not JSON)', action: '', delivery: String(req.headers['x-driftwatch-delivery'] ?? ''), answered: false };
      try {
        const b = JSON.parse(body) as { action: string; alert: { id: string } };
        post = { ...post, id: b.alert.id, action: b.action };
      } catch {
        // counted as not JSON
      }
      posts.push(post);
      setTimeout(() => {
        if (req.socket.destroyed) return;
        res.writeHead(200).end('ok', () => (post.answered = true));
      }, delayMs);
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    url: `http://127.0.0.1:${(server.address() as { port: number }).port}/hook`,
    posts,
    close: () => {
      server.closeAllConnections();
      return new Promise<void>((r) => server.close(() => r()));
    },
  };
}

await scenario('3 replicas on PostgreSQL, kill -9 of one mid-ingest', async (t, dir) => {
  const server = await startPostgres();
  t.teardown(() => server.stop());
  const url = await server.createDatabase();
  const urlFile = join(dir, 'db-uri');
  writeFileSync(urlFile, `${url}\n`, { mode: 0o600 });
  const hook = await slowRecorder(1_000);
  t.teardown(() => hook.close());
  // Storm control off for this row (each replica counts its own rate): every alert notifies.
  writeFileSync(
    join(dir, 'collector.yaml'),
    [
      'deliveryLease: 3s',
      'sinks:',
      '  - name: recorder',
      '    type: webhook',
      `    url: ${hook.url}`,
      '    timeout: 30s',
      'alerting:',
      '  storm:',
      '    perImage: { max: 100000, per: 5m }',
      '    global: { max: 100000, per: 5m }',
      '',
    ].join('\n'),
  );
  const replicas: (CliProcess & { grpcPort: number; url: string })[] = [];
  for (let i = 0; i < 3; i++) {
    const p = spawnCli(t, ['collector', '--db-url-file', urlFile, '--config', join(dir, 'collector.yaml'), '--grpc-listen', '127.0.0.1:0', '--http-listen', '127.0.0.1:0']);
    const started = await p.waitForLog((l) => l.msg === 'collector started', 120_000);
    replicas.push(Object.assign(p, { grpcPort: started.grpcPort as number, url: `http://127.0.0.1:${started.httpPort as number}` }));
  }
  const proxy = await serviceProxy(replicas.map((r) => r.grpcPort));
  t.teardown(() => proxy.close());
  const db = new pg.Client({ connectionString: url });
  await db.connect();
  t.teardown(() => db.end());

  // Three agents behind the Service, one per replica; each learns, then a burst of shells of 25 kinds (25 alerts).
  const agents: (CliProcess & { metricsUrl: string })[] = [];
  const files: string[] = [];
  for (const node of ['node-1', 'node-2', 'node-3']) {
    const events = join(dir, `${node}.json`);
    writeFileSync(events, text(learning()));
    files.push(events);
    const p = spawnCli(t, ['agent', '--source', `falco-file:${events}`, '--collector', `127.0.0.1:${proxy.port}`, '--node', node, '--state-dir', join(dir, node), '--learning-window', '1h', '--http-listen', '127.0.0.1:0']);
    const started = await p.waitForLog((l) => l.msg === 'agent started');
    agents.push(Object.assign(p, { metricsUrl: `http://${started.http as string}/metrics` }));
    await until(`${node} to connect`, async () => ((await agentMetric(agents.at(-1)!, /^driftwatch_agent_uplink_connected (\d+)/)) === 1 ? true : undefined));
  }
  const perAgent = 2_000;
  for (const events of files) {
    const lines: string[] = [];
    for (let i = 0; i < perAgent; i++) {
      const exe = `/usr/bin/tool-${i % 25}`;
      lines.push(falcoLine({ time: at(70 + i / 1000), fields: { 'proc.pid': nextPid++, 'proc.exepath': exe, 'proc.name': `tool-${i % 25}`, 'proc.cmdline': `tool-${i % 25} --x`, 'proc.pname': 'nginx', 'proc.pexepath': '/usr/sbin/nginx' } }));
    }
    appendFileSync(events, text(lines));
  }
  const total = perAgent * files.length;
  const pidOf = (r: CliProcess) => String(r.child.pid);
  // Kill, mid-ingest, a replica that has an agent and holds a delivery lease (an attempt in flight).
  const victim = await until('a replica mid-ingest with an agent and a delivery in flight', async () => {
    for (const r of replicas) {
      if (proxy.connections(r.grpcPort) === 0) continue;
      const leased = await db.query(`SELECT count(*)::int AS n FROM outbox WHERE state = 'pending' AND split_part(lease_owner, ':', 2) = $1 AND lease_until > $2`, [pidOf(r), Date.now()]);
      if ((leased.rows[0] as { n: number }).n > 0) return r;
    }
    return undefined;
  }, 60_000);
  const atKill = await storedCount(victim.url);
  proxy.remove(victim.grpcPort);
  await victim.stop('SIGKILL');
  const leasedByVictim = (await db.query(`SELECT seq FROM outbox WHERE state = 'pending' AND split_part(lease_owner, ':', 2) = $1`, [pidOf(victim)])).rows.map((r) => (r as { seq: number }).seq);
  const rest = replicas.filter((r) => r !== victim);
  const survivor = rest[0]!;
  await until(`${total} stored`, async () => ((await storedCount(survivor.url)) >= total ? true : undefined), 120_000);
  for (const a of agents) await until('an empty spool', async () => ((await agentMetric(a, /^driftwatch_agent_spool_records (\d+)/)) === 0 ? true : undefined), 60_000);
  // Every notification settled (the victim's leases taken over once they ended).
  const deliveries = await until('every notification settled', async () => {
    const { rows } = await db.query(`SELECT seq, alert, action, state FROM outbox`);
    const all = rows as { seq: number; alert: string; action: string; state: string }[];
    return all.length > 0 && all.every((d) => d.state !== 'pending') ? all : undefined;
  }, 120_000);
  const s = await storedRows(survivor.url);
  const checks = [`killed one of 3 replicas with ${atKill} of ${total} stored and ${leasedByVictim.length} deliveries leased by it`];
  if (atKill >= total) checks.push('WARNING: the kill came after ingest had finished');
  // At the recorder: each notification answered exactly once. A POST whose sender was killed before
  // the answer is not a delivery; its retry by another replica carries the same delivery id.
  const answered = new Map<string, number>();
  for (const p of hook.posts) if (p.answered) answered.set(`${p.id} ${p.action}`, (answered.get(`${p.id} ${p.action}`) ?? 0) + 1);
  const expected = deliveries.filter((d) => d.state === 'delivered').map((d) => `${d.alert} ${d.action}`);
  const twice = [...answered].filter(([, n]) => n > 1).length;
  const missing = expected.filter((k) => !answered.has(k)).length;
  const unasked = [...answered.keys()].filter((k) => !expected.includes(k)).length;
  const cut = hook.posts.filter((p) => !p.answered);
  checks.push(`notifications: ${expected.length} in the outbox, ${answered.size} answered at the recorder, ${twice} twice, ${missing} missing; ${cut.length} cut off by the kill and retried by another replica`);
  if (deliveries.some((d) => d.state !== 'delivered')) checks.push(`FAILED: deliveries not delivered: ${deliveries.filter((d) => d.state !== 'delivered').length}`);
  if (twice > 0 || missing > 0 || unasked > 0) checks.push(`FAILED: the recorder got ${twice} notifications twice, ${missing} never, ${unasked} not in the outbox`);
  if (cut.some((c) => !hook.posts.some((p) => p.answered && p.delivery === c.delivery))) checks.push('FAILED: a POST cut off by the kill was not delivered again under its delivery id');
  const takenOver = (await db.query(`SELECT count(*)::int AS n FROM outbox WHERE seq = ANY($1::bigint[]) AND state = 'delivered'`, [leasedByVictim])).rows[0] as { n: number };
  checks.push(`the victim's leased deliveries taken over after the lease: ${takenOver.n} of ${leasedByVictim.length}`);
  if (takenOver.n !== leasedByVictim.length) checks.push('FAILED: a delivery leased by the killed replica was not taken over');
  for (const a of agents) if ((await a.stop()) !== 0) checks.push('agent did not exit 0 on SIGTERM');
  for (const r of rest) if ((await r.stop()) !== 0) checks.push('FAILED: a surviving replica did not exit 0 on SIGTERM');
  return { sent: files.length * learning().length + total, expected: total, stored: s.rows, dropped: 0, rows: s.rows, distinct: s.distinct, checks };
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
