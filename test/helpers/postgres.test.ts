/**
 * The throwaway PostgreSQL of test/helpers/postgres.ts, and the two server features several
 * collector replicas will rely on (issue 20): LISTEN/NOTIFY between connections, delivered on
 * commit only, and FOR UPDATE SKIP LOCKED leases that a killed holder gives up.
 */
import test from 'ava';
import { spawn } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { childPids, postgresBinDir, processAlive, startPostgres, usePostgres, PostgresHarnessError } from './postgres.js';

const server = usePostgres(test);

async function connect(t: { teardown(fn: () => unknown): void }, url: string): Promise<pg.Client> {
  const client = new pg.Client({ connectionString: url });
  // A server-side termination is an error event on an idle client; the tests that cause one expect it.
  client.on('error', () => undefined);
  await client.connect();
  t.teardown(() => client.end().catch(() => undefined));
  return client;
}

/** Directories of throwaway servers that this process owns. */
function ownDirs(): string[] {
  return readdirSync(tmpdir()).filter((name) => {
    if (!name.startsWith('dw-pg-')) return false;
    try {
      return (JSON.parse(readFileSync(join(tmpdir(), name, 'owner.json'), 'utf8')) as { pid: number }).pid === process.pid;
    } catch {
      return false;
    }
  });
}

test('a query over loopback TCP with the URL\'s password; a wrong password is refused', async (t) => {
  const url = await server.database();
  const client = await connect(t, url);
  const { rows } = await client.query<{ user: string; version: string; db: string }>('SELECT current_user AS user, current_setting(\'server_version_num\') AS version, current_database() AS db');
  t.is(rows[0]!.user, 'postgres');
  t.is(Math.floor(Number(rows[0]!.version) / 10_000), server.server().majorVersion);
  t.is(rows[0]!.db, new URL(url).pathname.slice(1));
  t.is(server.server().majorVersion, Number(postgresBinDir().split('/').at(-2)), 'the binaries the helper found');
  const wrong = new URL(url);
  wrong.password = 'not-the-password';
  const refused = new pg.Client({ connectionString: wrong.href });
  const err = await t.throwsAsync(refused.connect());
  t.is((err as Error & { code?: string }).code, '28P01', 'password authentication failed');
  await refused.end().catch(() => undefined);
});

test('each test gets its own empty database', async (t) => {
  const [a, b] = await Promise.all([server.database(), server.database()]);
  t.not(a, b);
  const ca = await connect(t, a);
  const cb = await connect(t, b);
  await ca.query('CREATE TABLE seen (id int PRIMARY KEY)');
  await ca.query('INSERT INTO seen VALUES ($1)', [1]);
  const { rows } = await cb.query<{ n: string }>('SELECT count(*) AS n FROM pg_tables WHERE schemaname = \'public\'');
  t.is(Number(rows[0]!.n), 0);
});

test('LISTEN/NOTIFY between two connections: a committed notification arrives with its payload, a rolled-back one never', async (t) => {
  const url = await server.database();
  const listener = await connect(t, url);
  const notifier = await connect(t, url);
  const received: { channel: string; payload: string | undefined; processId: number }[] = [];
  const arrived = new Promise<void>((resolve) => {
    listener.on('notification', (n) => {
      received.push({ channel: n.channel, payload: n.payload, processId: n.processId });
      if (received.length === 2) resolve();
    });
  });
  await listener.query('LISTEN baseline_changed');
  await notifier.query('BEGIN');
  await notifier.query('SELECT pg_notify($1, $2)', ['baseline_changed', 'rolled back']);
  await notifier.query('ROLLBACK');
  await notifier.query('BEGIN');
  await notifier.query('SELECT pg_notify($1, $2)', ['baseline_changed', 'image-a']);
  await notifier.query('SELECT pg_notify($1, $2)', ['other_channel', 'not listened to']);
  await notifier.query('COMMIT');
  await notifier.query('SELECT pg_notify($1, $2)', ['baseline_changed', 'image-b']);
  await arrived;
  // Notifications arrive in commit order: had the rolled-back one been sent, it would be first.
  const { rows } = await notifier.query<{ pid: number }>('SELECT pg_backend_pid() AS pid');
  t.deepEqual(received, [
    { channel: 'baseline_changed', payload: 'image-a', processId: rows[0]!.pid },
    { channel: 'baseline_changed', payload: 'image-b', processId: rows[0]!.pid },
  ]);
});

test('FOR UPDATE SKIP LOCKED: two transactions lease disjoint rows; a killed holder\'s rows are taken over', async (t) => {
  const url = await server.database();
  const admin = await connect(t, url);
  await admin.query('CREATE TABLE outbox (id int PRIMARY KEY, sent boolean NOT NULL DEFAULT false)');
  await admin.query('INSERT INTO outbox (id) SELECT generate_series(1, 6)');
  const lease = 'SELECT id FROM outbox WHERE NOT sent ORDER BY id LIMIT 2 FOR UPDATE SKIP LOCKED';
  const ids = (r: pg.QueryResult<{ id: number }>) => r.rows.map((x) => x.id);

  const one = await connect(t, url);
  const two = await connect(t, url);
  await one.query('BEGIN');
  t.deepEqual(ids(await one.query<{ id: number }>(lease)), [1, 2]);
  await two.query('BEGIN');
  t.deepEqual(ids(await two.query<{ id: number }>(lease)), [3, 4], 'the rows leased by one are skipped, not waited for');

  // A third holder in another process, killed with SIGKILL mid-lease as a replica would be.
  const script = [
    "import pg from 'pg';",
    'const c = new pg.Client({ connectionString: process.env.DB_URL });',
    'await c.connect();',
    "await c.query('BEGIN');",
    `const r = await c.query(${JSON.stringify(lease)});`,
    "process.stdout.write(JSON.stringify(r.rows.map((x) => x.id)) + '\\n');",
    'setInterval(() => {}, 1000);',
  ].join('\n');
  const child = spawn(process.execPath, ['--input-type=module', '-e', script], { env: { ...process.env, DB_URL: url }, stdio: ['ignore', 'pipe', 'inherit'] });
  t.teardown(() => child.kill('SIGKILL'));
  const line = await new Promise<string>((resolve, reject) => {
    let out = '';
    child.stdout.setEncoding('utf8').on('data', (c: string) => {
      out += c;
      if (out.includes('\n')) resolve(out.trim());
    });
    child.once('exit', (code) => reject(new Error(`the lease holder exited (${String(code)}) before leasing`)));
  });
  t.deepEqual(JSON.parse(line), [5, 6]);
  const four = await connect(t, url);
  t.deepEqual(ids(await four.query<{ id: number }>(lease)), [], 'everything is leased');
  child.kill('SIGKILL');
  // Waiting (no SKIP LOCKED) for the dead holder's rows returns once the server has dropped its session.
  const three = await connect(t, url);
  await three.query('BEGIN');
  t.deepEqual(ids(await three.query<{ id: number }>('SELECT id FROM outbox WHERE id IN (5, 6) ORDER BY id FOR UPDATE')), [5, 6]);
  await three.query('UPDATE outbox SET sent = true WHERE id IN (5, 6)');
  await three.query('COMMIT');

  // One commits its work; two dies with its connection closed mid-transaction: its lease returns.
  await one.query('UPDATE outbox SET sent = true WHERE id IN (1, 2)');
  await one.query('COMMIT');
  const twoPid = (await two.query<{ pid: number }>('SELECT pg_backend_pid() AS pid')).rows[0]!.pid;
  await admin.query('SELECT pg_terminate_backend($1)', [twoPid]);
  await three.query('BEGIN');
  t.deepEqual(ids(await three.query<{ id: number }>('SELECT id FROM outbox WHERE NOT sent ORDER BY id FOR UPDATE')), [3, 4]);
  await three.query('COMMIT');
});

test('stop ends the postmaster and every process it started, removes the directory and frees the port', async (t) => {
  const own = await startPostgres();
  t.teardown(() => own.stop());
  const client = await connect(t, own.urlFor('postgres'));
  await client.query('SELECT 1');
  const pids = [own.pid, ...childPids(own.pid)];
  t.true(pids.length >= 3, `the postmaster and its background processes (and our session's backend): ${pids.join(', ')}`);
  t.true(pids.every(processAlive));
  t.true(existsSync(own.dataDir));
  await own.stop();
  t.deepEqual(pids.filter(processAlive), [], 'no server process is left');
  t.false(existsSync(join(own.dataDir, '..')), 'the temporary directory is gone');
  const after = new pg.Client({ connectionString: own.urlFor('postgres') });
  const err = await t.throwsAsync(after.connect());
  t.is((err as Error & { code?: string }).code, 'ECONNREFUSED');
  await own.stop();
});

test('a server that cannot start says why and leaves nothing behind', async (t) => {
  const err = await t.throwsAsync(startPostgres({ settings: { shared_buffers: "'lots'" } }), { instanceOf: PostgresHarnessError });
  t.regex(err!.message, /shared_buffers/, 'the server log is in the message');
  const dir = /did not start in (\S+):/.exec(err!.message)?.[1];
  t.truthy(dir);
  t.false(existsSync(dir!), 'its directory is removed');
  t.false(ownDirs().includes(basename(dir!)));
});

test('a server whose test process was killed is stopped and removed by the next start', async (t) => {
  const helper = fileURLToPath(new URL('./postgres.js', import.meta.url));
  const script = [
    `const { startPostgres } = await import(${JSON.stringify(helper)});`,
    'const s = await startPostgres();',
    "process.stdout.write(JSON.stringify({ pid: s.pid, dataDir: s.dataDir }) + '\\n');",
    'setInterval(() => {}, 1000);',
  ].join('\n');
  const child = spawn(process.execPath, ['--input-type=module', '-e', script], { stdio: ['ignore', 'pipe', 'inherit'] });
  t.teardown(() => child.kill('SIGKILL'));
  const orphan = await new Promise<{ pid: number; dataDir: string }>((resolve, reject) => {
    let out = '';
    child.stdout.setEncoding('utf8').on('data', (c: string) => {
      out += c;
      if (out.includes('\n')) resolve(JSON.parse(out.trim()) as { pid: number; dataDir: string });
    });
    child.once('exit', (code) => reject(new Error(`the child exited (${String(code)}) before its server started`)));
  });
  const exited = new Promise((resolve) => child.once('exit', resolve));
  child.kill('SIGKILL');
  await exited;
  t.true(processAlive(orphan.pid), 'SIGKILL gave the child no chance to stop its server');
  const next = await startPostgres();
  t.teardown(() => next.stop());
  t.false(processAlive(orphan.pid));
  t.false(existsSync(join(orphan.dataDir, '..')));
  await next.stop();
});
