/**
 * The collector on PostgreSQL (issue 20), as ops would run it: `driftwatch collector --db-url-file`
 * as a child process against a real PostgreSQL, a real agent streaming to it. It learns the same
 * baselines and raises the same alerts as a collector on SQLite fed the same recorded stream; it
 * survives PostgreSQL restarting under a streaming agent (not ready meanwhile, nothing acknowledged
 * lost, nothing stored twice); its configuration errors name the settings, and the database
 * password is in none of its output.
 */
import test, { type ExecutionContext } from 'ava';
import { appendFileSync, copyFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { isDeepStrictEqual } from 'node:util';
import pg from 'pg';
import { DEMO_EVENTS } from '../../cli/demo.js';
import { at, falcoLine } from '../helpers/falco.js';
import { usePostgres } from '../helpers/postgres.js';
import { eventually, getJson, spawnCli, spawnCollector, type CliProcess } from '../helpers/processes.js';

// The restart test runs alone, first (serial): the other tests share this server.
const postgres = usePostgres(test);

function tempDir(t: ExecutionContext): string {
  const dir = mkdtempSync(join(tmpdir(), 'dw-pgwire-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** A URL file as a Secret would be mounted (mode 0600). */
function urlFile(dir: string, url: string): string {
  const file = join(dir, 'db-uri');
  writeFileSync(file, `${url}\n`, { mode: 0o600 });
  return file;
}

/** `driftwatch collector --db-url-file FILE` on ephemeral ports; resolves once it logged them. */
async function spawnPgCollector(t: ExecutionContext, file: string, extra: readonly string[] = []): Promise<CliProcess & { grpcPort: number; url: string; started: Record<string, unknown> }> {
  const p = spawnCli(t, ['collector', '--db-url-file', file, '--grpc-listen', '127.0.0.1:0', '--http-listen', '127.0.0.1:0', ...extra]);
  const started = await p.waitForLog((l) => l.msg === 'collector started', 120_000);
  return Object.assign(p, { grpcPort: started.grpcPort as number, url: `http://127.0.0.1:${started.httpPort as number}`, started });
}

function spawnAgent(t: ExecutionContext, events: string, grpcPort: number, stateDir: string, node = 'demo-node-1'): CliProcess {
  return spawnCli(t, [
    'agent', '--source', `falco-file:${events}`, '--collector', `127.0.0.1:${grpcPort}`,
    '--node', node, '--state-dir', stateDir, '--learning-window', '1h', '--http-listen', '127.0.0.1:0',
  ]);
}

/** The sum of a Prometheus counter's series in `text`. */
function counterSum(text: string, name: string): number {
  return [...text.matchAll(new RegExp(`^${name}(?:\\{[^}]*\\})? (\\d+(?:\\.\\d+)?)$`, 'gm'))].reduce((n, m) => n + Number(m[1]), 0);
}

interface AlertJson {
  id: string;
  state: string;
  image: string;
  kind: string;
  summary: string;
  reason: string;
  count: number;
  nodes: string[];
  pods: string[];
  severity: string;
  rule: unknown;
  firstSeen: string;
  lastSeen: string;
}

/** What on-call reads of an alert (not when the collector stored it, which differs run to run). */
const alertFacts = (a: AlertJson) => ({ id: a.id, state: a.state, image: a.image, kind: a.kind, summary: a.summary, reason: a.reason, count: a.count, nodes: a.nodes, pods: [...a.pods].sort(), severity: a.severity, rule: a.rule, firstSeen: a.firstSeen, lastSeen: a.lastSeen });

/**
 * What a baseline list shows, by key. Not `events`: it is the count in the agent's last snapshot the
 * collector merged; a snapshot goes out when an entry or the state changes, and one that only moves
 * the count waits for the agent's statsInterval (1 minute), so where the count stands depends on
 * where the agent's flushes fell in its reading of the file (seen: 152 against 255 for one key under
 * load, both right for their run). It is checked on its own: counted, never more than the events read.
 */
const baselineFacts = (b: Record<string, unknown>) => ({
  key: b.key, state: b.state, partial: b.partial, namespaces: b.namespaces, windowStart: b.windowStart, learnUntil: b.learnUntil, enforcingSince: b.enforcingSince,
  images: b.images, nodes: b.nodes, processEntries: b.processEntries, networkEntries: b.networkEntries, openAlerts: b.openAlerts,
});
const baselineEvents = async (url: string) => (await getJson<{ items: { events: number }[] }>(`${url}/api/v1/baselines`)).items.map((b) => b.events);

async function answers(url: string) {
  const alerts = (await getJson<{ items: AlertJson[] }>(`${url}/api/v1/alerts?limit=500`)).items.map(alertFacts).sort((a, b) => a.id.localeCompare(b.id));
  const baselines = (await getJson<{ items: Record<string, unknown>[] }>(`${url}/api/v1/baselines`)).items.map(baselineFacts).sort((a, b) => String(a.key).localeCompare(String(b.key)));
  return { alerts, baselines };
}

test('on PostgreSQL through --db-url-file, the recorded stream learns the same baselines and raises the same alerts as on SQLite', async (t) => {
  const dir = tempDir(t);
  const url = await postgres.database();
  const password = new URL(url).password;
  const lines = readFileSync(DEMO_EVENTS, 'utf8').split('\n').filter((l) => l !== '');
  const runs = await Promise.all(
    (['sqlite', 'postgres'] as const).map(async (kind) => {
      const events = join(dir, `${kind}.json`);
      copyFileSync(DEMO_EVENTS, events);
      const collector = kind === 'sqlite' ? await spawnCollector(t, join(dir, 'collector.db')) : await spawnPgCollector(t, urlFile(dir, url));
      const agent = spawnAgent(t, events, collector.grpcPort, join(dir, `agent-${kind}`));
      const started = await agent.waitForLog((l) => l.msg === 'agent started', 60_000);
      return { kind, collector, agent, metricsUrl: `http://${started.http as string}/metrics` };
    }),
  );
  // Each agent read every line and the collector stored every deviation it found; baselines settle
  // once the agents' snapshots (flushed every second) are merged.
  const settled = await Promise.all(
    runs.map(({ kind, collector, metricsUrl }) =>
      eventually(async () => {
        const metrics = await (await fetch(metricsUrl)).text();
        if (counterSum(metrics, 'driftwatch_agent_events_total') < lines.length) return undefined;
        const deviations = counterSum(metrics, 'driftwatch_agent_deviations_total');
        const a = await answers(collector.url);
        const stored = a.alerts.reduce((n, x) => n + x.count, 0);
        return deviations > 0 && stored === deviations && a.baselines.length > 0 && a.baselines.every((b) => b.state === 'enforcing') ? { deviations, ...a } : undefined;
      }, 120_000, `${kind}: every deviation stored, baselines enforcing`),
    ),
  );
  t.is(settled[1]!.deviations, settled[0]!.deviations, 'both agents found the same deviations');
  // The agents' last snapshots (event counts) may still be on their way: the answers are compared
  // once they agree, or, if they never do, as they last were.
  let last = settled;
  let lastError = '';
  await eventually(async () => {
    try {
      last = await Promise.all(runs.map(async (r, i) => ({ deviations: settled[i]!.deviations, ...(await answers(r.collector.url)) })));
    } catch (err) {
      lastError = (err as Error).message;
      return undefined;
    }
    return isDeepStrictEqual(last[0], last[1]) ? true : undefined;
  }, 30_000, 'the same answers from both').catch(() => undefined);
  t.is(lastError, '', 'every API call answered');
  const [sqlite, postgresRun] = last as [(typeof settled)[0], (typeof settled)[0]];
  t.true(sqlite.alerts.length >= 6, `the stream raises alerts (${sqlite.alerts.length})`);
  t.true(sqlite.alerts.some((a) => a.severity !== sqlite.alerts[0]!.severity), 'alerts of more than one severity');
  const problems = (c: CliProcess) => c.logs.filter((l) => (l.level as number) >= 40 && l.msg !== 'insecure: the agent stream is plaintext and agents are not authenticated; any client that reaches the gRPC port can send deviations as any node');
  t.deepEqual(postgresRun.baselines, sqlite.baselines, `the same baselines ${JSON.stringify(runs.map((r) => problems(r.collector)))}`);
  t.deepEqual(postgresRun.alerts, sqlite.alerts, 'the same alerts, with the same severities and counts');
  for (const r of runs) {
    const events = await baselineEvents(r.collector.url);
    t.true(events.every((n) => n > 0 && n <= lines.length), `${r.kind}: every baseline counted events, none more than were read (${events.join(', ')})`);
  }

  const pgCollector = runs[1]!.collector as CliProcess & { started: Record<string, unknown> };
  t.regex(String(pgCollector.started.db), /^postgresql:\/\/postgres@127\.0\.0\.1:\d+\/\w+$/, 'the start line names the database without its password');
  for (const r of runs) t.is(await r.agent.stop(), 0);
  for (const r of runs) t.is(await r.collector.stop(), 0);
  const output = `${JSON.stringify(pgCollector.logs)}${pgCollector.stderr}`;
  t.false(output.includes(password), 'the password is in none of the collector\'s output');
});

test.serial('PostgreSQL restarting under a streaming agent: not ready meanwhile, the collector stays up, nothing acknowledged lost, nothing stored twice', async (t) => {
  const dir = tempDir(t);
  const url = await postgres.database();
  const password = new URL(url).password;
  const server = postgres.server();
  const collector = await spawnPgCollector(t, urlFile(dir, url), ['--probe-listen', '127.0.0.1:0']);
  const probe = `http://127.0.0.1:${collector.started.probePort as number}/readyz`;
  t.is((await fetch(probe)).status, 200);

  // nginx learns for an hour of event time; then every event is a process it never ran, one deviation each.
  const events = join(dir, 'falco.json');
  const learning = Array.from({ length: 5 }, (_, i) => falcoLine({ time: at(i) }));
  writeFileSync(events, `${learning.join('\n')}\n`);
  const agent = spawnAgent(t, events, collector.grpcPort, join(dir, 'agent'), 'node-1');
  const agentStarted = await agent.waitForLog((l) => l.msg === 'agent started', 60_000);
  const metricsUrl = `http://${agentStarted.http as string}/metrics`;
  let written = 0;
  const append = (n: number) => {
    const chunk = Array.from({ length: n }, () => {
      const i = written++;
      return falcoLine({ time: at(90 + i / 100), fields: { 'proc.exepath': `/tmp/drift-${i}`, 'proc.name': `drift-${i}`, 'proc.cmdline': `drift-${i}`, 'proc.pid': 10_000 + i } });
    });
    appendFileSync(events, `${chunk.join('\n')}\n`);
  };
  const storedRows = async () => {
    const c = new pg.Client({ connectionString: url });
    await c.connect();
    try {
      return Number((await c.query<{ n: string }>('SELECT count(*) AS n FROM deviations')).rows[0]!.n);
    } finally {
      await c.end();
    }
  };

  // The agent streams steadily (10 deviations every 100 ms) while PostgreSQL stops and starts.
  let streaming = true;
  // Stops with the test, also when it fails (its directory is then removed).
  t.teardown(() => void (streaming = false));
  const appender = (async () => {
    while (streaming && written < 400) {
      append(10);
      await new Promise((r) => setTimeout(r, 100));
    }
  })();
  await eventually(async () => ((await storedRows()) >= 30 ? true : undefined), 60_000, 'the first deviations stored');
  await server.halt();
  const notReady = await eventually(async () => {
    const res = await fetch(probe);
    return res.status === 503 ? await res.text() : undefined;
  }, 60_000, '/readyz 503 while PostgreSQL is down');
  t.regex(notReady, /database/);
  await new Promise((r) => setTimeout(r, 1_000));
  await server.resume();
  await eventually(async () => ((await fetch(probe)).status === 200 ? true : undefined), 60_000, '/readyz 200 once PostgreSQL is back');
  streaming = false;
  await appender;
  append(100);

  const sent = await eventually(async () => {
    const metrics = await (await fetch(metricsUrl)).text();
    const deviations = counterSum(metrics, 'driftwatch_agent_deviations_total');
    const spooled = counterSum(metrics, 'driftwatch_agent_spool_records');
    return deviations === written && spooled === 0 && (await storedRows()) >= written ? deviations : undefined;
  }, 180_000, `all ${written} deviations found, sent and acknowledged`);
  t.is(sent, written);
  t.is(await storedRows(), written, 'every deviation the agent found is stored once');
  const alerts = (await getJson<{ items: AlertJson[] }>(`${collector.url}/api/v1/alerts?limit=500`)).items;
  t.is(alerts.reduce((n, a) => n + a.count, 0), written, 'no batch counted twice in the alerts');
  t.is(collector.child.exitCode, null, 'the collector is still running');
  t.true(collector.logs.some((l) => l.msg === 'the database does not answer: not ready'));
  t.true(collector.logs.some((l) => l.msg === 'the database answers again'));

  t.is(await agent.stop(), 0);
  t.is(await collector.stop(), 0);
  t.false(`${JSON.stringify(collector.logs)}${collector.stderr}`.includes(password), 'the password is in none of the collector\'s output');
});

test('configuration: one database only, each error naming the settings; a URL in db only without its password; the password never printed', async (t) => {
  const dir = tempDir(t);
  const url = await postgres.database();
  const password = new URL(url).password;
  const file = urlFile(dir, url);

  const both = spawnCli(t, ['collector', '--db', join(dir, 'c.db'), '--db-url-file', file, '--http-listen', '127.0.0.1:0', '--grpc-listen', '127.0.0.1:0']);
  t.is(await both.exited, 2);
  t.regex(both.stderr, /invalid configuration: .*\bdb and dbUrlFile\b/);

  const none = spawnCli(t, ['collector', '--http-listen', '127.0.0.1:0', '--grpc-listen', '127.0.0.1:0']);
  t.is(await none.exited, 2);
  t.regex(none.stderr, /invalid configuration: db: give the database: db .*dbUrlFile .*DRIFTWATCH_DB_URL/);

  // A URL on the command line is no flag at all.
  const flag = spawnCli(t, ['collector', '--db-url', url, '--http-listen', '127.0.0.1:0', '--grpc-listen', '127.0.0.1:0']);
  t.is(await flag.exited, 2);
  t.false(flag.stderr.includes(password));

  const missing = spawnCli(t, ['collector', '--db-url-file', join(dir, 'absent'), '--http-listen', '127.0.0.1:0', '--grpc-listen', '127.0.0.1:0']);
  t.is(await missing.exited, 2);
  t.regex(missing.stderr, /invalid configuration: dbUrlFile: cannot read dbUrlFile \(.*absent\): ENOENT/);

  // The environment's URL with a wrong password: refused by the server, the message names the database, not the password.
  const wrong = new URL(url);
  wrong.password = 'Wrong-Secret-4711';
  const refused = spawnCli(t, ['collector', '--http-listen', '127.0.0.1:0', '--grpc-listen', '127.0.0.1:0'], { env: { DRIFTWATCH_DB_URL: wrong.href } });
  t.is(await refused.exited, 1);
  t.regex(refused.stderr, /cannot open the PostgreSQL store at postgresql:\/\/postgres@127\.0\.0\.1:\d+\/\w+: password authentication failed/);
  t.false(`${JSON.stringify(refused.logs)}${refused.stderr}`.includes('Wrong-Secret-4711'));

  // Both the file and the environment: refused, naming both.
  const twice = spawnCli(t, ['collector', '--db-url-file', file, '--http-listen', '127.0.0.1:0', '--grpc-listen', '127.0.0.1:0'], { env: { DRIFTWATCH_DB_URL: url } });
  t.is(await twice.exited, 2);
  t.regex(twice.stderr, /dbUrlFile and DRIFTWATCH_DB_URL/);
  t.false(twice.stderr.includes(password));

  // db with a postgres:// URL: refused while it carries the password (the process list shows it), and
  // another scheme is no database; without the password (PGPASSWORD gives it), the collector runs on it.
  const inDb = spawnCli(t, ['collector', '--db', url, '--http-listen', '127.0.0.1:0', '--grpc-listen', '127.0.0.1:0']);
  t.is(await inDb.exited, 2);
  t.regex(inDb.stderr, /invalid configuration: db: the PostgreSQL URL in db carries a password.*PGPASSWORD.*dbUrlFile or DRIFTWATCH_DB_URL/);
  t.false(inDb.stderr.includes(password));
  const scheme = spawnCli(t, ['collector', '--db', 'mysql://dw@db.internal/dw', '--http-listen', '127.0.0.1:0', '--grpc-listen', '127.0.0.1:0']);
  t.is(await scheme.exited, 2);
  t.regex(scheme.stderr, /invalid configuration: db: db is a SQLite file or a postgres:\/\/… URL, not a mysql:\/\/ one/);
  const bare = new URL(url);
  bare.password = '';
  const viaDb = spawnCli(t, ['collector', '--db', bare.href, '--http-listen', '127.0.0.1:0', '--grpc-listen', '127.0.0.1:0'], { env: { PGPASSWORD: password } });
  const onDb = await viaDb.waitForLog((l) => l.msg === 'collector started', 120_000);
  t.regex(String(onDb.db), /^postgresql:\/\/postgres@127\.0\.0\.1:\d+\/\w+$/, 'on PostgreSQL, not a SQLite file named like a URL');
  t.is((await fetch(`http://127.0.0.1:${onDb.httpPort as number}/readyz`)).status, 200);
  t.is(await viaDb.stop(), 0);

  // The environment's URL, right: the collector starts and logs the database without the password.
  const good = spawnCli(t, ['collector', '--http-listen', '127.0.0.1:0', '--grpc-listen', '127.0.0.1:0'], { env: { DRIFTWATCH_DB_URL: url } });
  const started = await good.waitForLog((l) => l.msg === 'collector started', 120_000);
  t.regex(String(started.db), /^postgresql:\/\/postgres@127\.0\.0\.1:\d+\/\w+$/);
  t.deepEqual((await getJson<{ items: unknown[] }>(`http://127.0.0.1:${started.httpPort as number}/api/v1/alerts`)).items, [], 'its API answers from the (empty) database');
  t.is(await good.stop(), 0);
  t.false(`${JSON.stringify(good.logs)}${good.stderr}`.includes(password), 'the password is in none of its output');
});
