/**
 * A real, throwaway PostgreSQL server for a test file: `initdb` into a fresh temporary directory,
 * `pg_ctl start -w`, one fresh database per test, `pg_ctl stop -m fast` and the directory removed
 * at the end, also when tests fail.
 *
 *   const pg = usePostgres(test);
 *   test('…', async (t) => { const url = await pg.database(); … });
 *
 * - Binaries: the highest /usr/lib/postgresql/N/bin (Debian's `postgresql` package, which
 *   scripts/test-prereqs.sh installs), or the directory in DRIFTWATCH_PG_BIN.
 * - User: PostgreSQL refuses to run as root. As root the server runs as the unprivileged user
 *   `driftwatch-test` (scripts/test-prereqs.sh creates it), which owns the temporary directory and
 *   nothing else; otherwise it runs as the current user.
 * - Access: TCP on 127.0.0.1 only, on a free port, with a random password (scram-sha-256), so the
 *   URLs the tests use carry credentials as production URLs do and other local users cannot log in
 *   while a test runs; trust only on the unix socket, in a directory only the server's user (and
 *   root) can enter.
 * - Concurrency: each test file gets its own server, port, socket directory and data directory, so
 *   ava's two concurrent test files never meet; the tests of one file share the server, each with
 *   its own database.
 * - Leftovers: a normal stop removes everything; a worker that exits without its `after` hook
 *   stops its servers in an exit handler; one that is killed outright leaves a directory whose
 *   owner process is gone, and the next server started anywhere stops and removes it.
 * - Settings: `fsync = off` unless a test asks otherwise: it changes nothing a client can observe
 *   short of an operating-system crash, and it keeps commits from queueing behind the disk of a
 *   busy machine. Durability figures belong to bench/, which runs its own server.
 */
import { spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chownSync, existsSync, lstatSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TestFn } from 'ava';
import pg from 'pg';

/** The user the server runs as when the tests run as root (created by scripts/test-prereqs.sh). */
export const TEST_USER = 'driftwatch-test';
/** The server's superuser (initdb --username). */
const SUPERUSER = 'postgres';
const DIR_PREFIX = 'dw-pg-';
/** pg_ctl's own wait for start and stop, in seconds: generous, for a busy two-core machine. */
const PG_CTL_WAIT_S = 180;
const PORT_ATTEMPTS = 5;

/** Options of one server. */
export interface PostgresOptions {
  /** postgresql.conf settings added to (or overriding) the helper's; values as written in postgresql.conf (quote strings yourself). */
  settings?: Readonly<Record<string, string>>;
}

/** A running throwaway server. */
export interface PostgresServer {
  /** Where it listens: 127.0.0.1 and this port. */
  readonly port: number;
  /** The directory of its unix socket (`host` for a socket connection). */
  readonly socketDir: string;
  readonly dataDir: string;
  /** The postmaster's process id. */
  readonly pid: number;
  /** The server's major version (15, 16, …). */
  readonly majorVersion: number;
  /** A postgresql:// URL (TCP, superuser with password) for `database`. */
  urlFor(database: string): string;
  /** Create a fresh, empty database and return its URL. */
  createDatabase(): Promise<string>;
  /** Fast shutdown (sessions ended, nothing lost), then the directory removed. Idempotent. */
  stop(): Promise<void>;
  /** Fast shutdown that keeps the data: a restart or a failover as clients see it; resume() starts it again. */
  halt(): Promise<void>;
  /** Start the server again after halt(), on the same port, with the same data. */
  resume(): Promise<void>;
}

/** Why no server could be started; the message names the fix. */
export class PostgresHarnessError extends Error {
  readonly code = 'postgres_harness' as const;
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'PostgresHarnessError';
  }
}

interface RunAs {
  uid?: number;
  gid?: number;
}

/** The directory with initdb, pg_ctl and postgres. */
export function postgresBinDir(): string {
  const fromEnv = process.env.DRIFTWATCH_PG_BIN;
  if (fromEnv) return fromEnv;
  const root = '/usr/lib/postgresql';
  const versions = existsSync(root) ? readdirSync(root).filter((v) => /^\d+$/.test(v) && existsSync(join(root, v, 'bin', 'pg_ctl'))) : [];
  versions.sort((a, b) => Number(b) - Number(a));
  if (versions.length === 0) {
    throw new PostgresHarnessError('no PostgreSQL server binaries under /usr/lib/postgresql/*/bin: run scripts/test-prereqs.sh as root (it installs Debian\'s postgresql package), or set DRIFTWATCH_PG_BIN to the directory holding initdb and pg_ctl');
  }
  return join(root, versions[0]!, 'bin');
}

/** As root, the unprivileged user to run the server as; otherwise nobody to switch to. */
function runAs(): RunAs {
  if (process.getuid?.() !== 0) return {};
  const result = spawnSync('getent', ['passwd', TEST_USER], { encoding: 'utf8', timeout: 30_000 });
  const fields = result.status === 0 ? result.stdout.trim().split(':') : [];
  const uid = Number(fields[2]);
  const gid = Number(fields[3]);
  if (fields.length < 4 || !Number.isInteger(uid) || !Number.isInteger(gid) || uid === 0) {
    throw new PostgresHarnessError(`PostgreSQL does not run as root, and the unprivileged user ${TEST_USER} does not exist: run scripts/test-prereqs.sh as root once (it creates that user)`);
  }
  return { uid, gid };
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() => (typeof address === 'object' && address !== null ? resolve(address.port) : reject(new Error('no port'))));
    });
  });
}

/** Run a PostgreSQL program (an argument array, no shell) as `user`; resolves with its output, rejects with it on failure. */
function run(bin: string, args: readonly string[], user: RunAs, env: NodeJS.ProcessEnv, timeoutMs: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(bin, args, { ...user, env, stdio: ['ignore', 'pipe', 'pipe'], timeout: timeoutMs, killSignal: 'SIGKILL' });
    let output = '';
    child.stdout.setEncoding('utf8').on('data', (c: string) => (output = (output + c).slice(-16_384)));
    child.stderr.setEncoding('utf8').on('data', (c: string) => (output = (output + c).slice(-16_384)));
    child.once('error', reject);
    child.once('close', (code, signal) => {
      if (code === 0) resolve(output);
      else reject(new PostgresHarnessError(`${bin} ${args.join(' ')} failed (${signal ?? `exit ${String(code)}`}): ${output.trim()}`));
    });
  });
}

/** A postgresql.conf string literal. */
function confString(value: string): string {
  return `'${value.replace(/\\/g, '\\\\').replace(/'/g, "''")}'`;
}

/** Start time of a process (clock ticks since boot), or undefined when it does not exist. */
function processStart(pid: number): string | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Field 22, counted after the command name, which is in parentheses and may hold spaces.
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19];
  } catch {
    return undefined;
  }
}

function postmasterPid(dataDir: string): number | undefined {
  try {
    const pid = Number(readFileSync(join(dataDir, 'postmaster.pid'), 'utf8').split('\n')[0]);
    return Number.isInteger(pid) && pid > 0 ? pid : undefined;
  } catch {
    return undefined;
  }
}

/** Stop whatever runs in `dataDir` at once (no shutdown checkpoint), synchronously; for cleanup paths only. */
function stopImmediatelySync(bin: string, dataDir: string, user: RunAs): void {
  if (!existsSync(join(dataDir, 'postmaster.pid'))) return;
  spawnSync(join(bin, 'pg_ctl'), ['stop', '-D', dataDir, '-m', 'immediate', '-w', '-t', '60', '-s'], { ...user, stdio: 'ignore', timeout: 90_000, killSignal: 'SIGKILL' });
  const pid = postmasterPid(dataDir);
  if (pid !== undefined && processStart(pid) !== undefined) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // Already gone.
    }
  }
}

/**
 * Directories left by a worker that was killed before it could stop its server: their owner
 * process is gone (or its pid now belongs to another process). Stop their servers, remove them.
 */
function sweepOrphans(bin: string, user: RunAs): void {
  const serverUid = user.uid ?? process.getuid?.();
  for (const name of readdirSync(tmpdir())) {
    if (!name.startsWith(DIR_PREFIX)) continue;
    const dir = join(tmpdir(), name);
    try {
      // Only directories this helper made for the same server user: never another user's files.
      const stat = lstatSync(dir);
      if (!stat.isDirectory() || stat.uid !== serverUid) continue;
      const owner = JSON.parse(readFileSync(join(dir, 'owner.json'), 'utf8')) as { pid: number; start: string };
      if (processStart(owner.pid) === owner.start) continue;
      stopImmediatelySync(bin, join(dir, 'data'), user);
      rmSync(dir, { recursive: true, force: true });
    } catch {
      // Still being set up (no owner.json yet), or not ours to remove: leave it.
    }
  }
}

/** Start a throwaway server; everything it made is removed again if starting fails. */
export async function startPostgres(options: PostgresOptions = {}): Promise<PostgresServer> {
  const bin = postgresBinDir();
  const user = runAs();
  sweepOrphans(bin, user);
  const base = mkdtempSync(join(tmpdir(), DIR_PREFIX));
  // pg_ctl runs the server through /bin/sh with the data directory quoted; keep the path plain anyway.
  if (!/^[\w./-]+$/.test(base)) {
    rmSync(base, { recursive: true, force: true });
    throw new PostgresHarnessError(`the temporary directory ${base} has characters this helper does not pass to pg_ctl; set TMPDIR to a plain path`);
  }
  const dataDir = join(base, 'data');
  const socketDir = join(base, 'sock');
  const logFile = join(base, 'server.log');
  const owned = (path: string): void => {
    if (user.uid !== undefined) chownSync(path, user.uid, user.gid!);
  };
  writeFileSync(join(base, 'owner.json'), JSON.stringify({ pid: process.pid, start: processStart(process.pid) }));
  owned(base);
  mkdirSync(socketDir, { mode: 0o700 });
  owned(socketDir);
  // The server's own environment: nothing of the test's (PG* variables, HOME it cannot read).
  const env: NodeJS.ProcessEnv = { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: base, LC_ALL: 'C', TZ: 'UTC' };
  const password = randomBytes(24).toString('base64url');
  let started = false;
  const exitHandler = (): void => {
    stopImmediatelySync(bin, dataDir, user);
    rmSync(base, { recursive: true, force: true });
  };
  process.once('exit', exitHandler);
  try {
    const pwfile = join(base, 'pwfile');
    writeFileSync(pwfile, `${password}\n`, { mode: 0o600 });
    owned(pwfile);
    await run(
      join(bin, 'initdb'),
      ['-D', dataDir, '--username', SUPERUSER, '--pwfile', pwfile, '--auth-local', 'trust', '--auth-host', 'scram-sha-256', '--encoding', 'UTF8', '--no-locale', '--no-sync', '--no-instructions'],
      user,
      env,
      PG_CTL_WAIT_S * 1000,
    );
    rmSync(pwfile);
    const majorVersion = Number(readFileSync(join(dataDir, 'PG_VERSION'), 'utf8').trim());
    writeFileSync(join(dataDir, 'postgresql.conf'), `${readFileSync(join(dataDir, 'postgresql.conf'), 'utf8')}\ninclude 'driftwatch-test.conf'\n`);

    let port = 0;
    for (let attempt = 1; ; attempt++) {
      port = await freePort();
      const settings: Record<string, string> = {
        listen_addresses: "'127.0.0.1'",
        port: String(port),
        unix_socket_directories: confString(socketDir),
        unix_socket_permissions: '0700',
        shared_buffers: '32MB',
        max_connections: '100',
        fsync: 'off',
        logging_collector: 'off',
        log_min_messages: 'warning',
        ...options.settings,
      };
      const conf = join(dataDir, 'driftwatch-test.conf');
      writeFileSync(conf, Object.entries(settings).map(([k, v]) => `${k} = ${v}\n`).join(''));
      owned(conf);
      try {
        await run(join(bin, 'pg_ctl'), ['start', '-D', dataDir, '-l', logFile, '-w', '-t', String(PG_CTL_WAIT_S), '-s'], user, env, (PG_CTL_WAIT_S + 30) * 1000);
        break;
      } catch (err) {
        const log = existsSync(logFile) ? readFileSync(logFile, 'utf8') : '';
        stopImmediatelySync(bin, dataDir, user);
        // Another process took the port between freePort() and the server's bind: try another.
        if (attempt < PORT_ATTEMPTS && /could not bind|Address already in use/i.test(log)) continue;
        throw new PostgresHarnessError(`PostgreSQL did not start in ${base}: ${(err as Error).message}\n${log.slice(-4_000)}`, { cause: err });
      }
    }
    const pid = postmasterPid(dataDir);
    if (pid === undefined) throw new PostgresHarnessError(`PostgreSQL started but ${dataDir}/postmaster.pid names no process`);
    started = true;

    const urlFor = (database: string): string => `postgresql://${SUPERUSER}:${password}@127.0.0.1:${port}/${encodeURIComponent(database)}`;
    let databases = 0;
    // CREATE DATABASE copies template1; one at a time keeps concurrent tests from tripping over each other there.
    let creating: Promise<unknown> = Promise.resolve();
    let stopping: Promise<void> | undefined;
    return {
      port,
      socketDir,
      dataDir,
      pid,
      majorVersion,
      urlFor,
      createDatabase() {
        const name = `t${process.pid}_${++databases}`;
        const created = creating.then(async () => {
          const client = new pg.Client({ connectionString: urlFor('postgres') });
          await client.connect();
          try {
            // An identifier cannot be a parameter; the name is ours, [a-z0-9_] only.
            await client.query(`CREATE DATABASE ${pg.escapeIdentifier(name)}`);
          } finally {
            await client.end();
          }
          return urlFor(name);
        });
        creating = created.catch(() => undefined);
        return created;
      },
      halt: () => run(join(bin, 'pg_ctl'), ['stop', '-D', dataDir, '-m', 'fast', '-w', '-t', String(PG_CTL_WAIT_S), '-s'], user, env, (PG_CTL_WAIT_S + 30) * 1000).then(() => undefined),
      resume: () => run(join(bin, 'pg_ctl'), ['start', '-D', dataDir, '-l', logFile, '-w', '-t', String(PG_CTL_WAIT_S), '-s'], user, env, (PG_CTL_WAIT_S + 30) * 1000).then(() => undefined),
      stop() {
        stopping ??= (async () => {
          try {
            await run(join(bin, 'pg_ctl'), ['stop', '-D', dataDir, '-m', 'fast', '-w', '-t', String(PG_CTL_WAIT_S), '-s'], user, env, (PG_CTL_WAIT_S + 30) * 1000);
          } catch {
            stopImmediatelySync(bin, dataDir, user);
          } finally {
            rmSync(base, { recursive: true, force: true });
            process.removeListener('exit', exitHandler);
          }
        })();
        return stopping;
      },
    };
  } finally {
    if (!started) {
      stopImmediatelySync(bin, dataDir, user);
      rmSync(base, { recursive: true, force: true });
      process.removeListener('exit', exitHandler);
    }
  }
}

/** One server for a test file: started before its first test, stopped after its last, failed or not. */
export interface FilePostgres {
  /** A fresh database for the calling test; its URL. */
  database(): Promise<string>;
  /** The file's server (after `before` ran). */
  server(): PostgresServer;
}

/** Give a test file a server (see the header): `const pg = usePostgres(test)`. */
export function usePostgres(test: TestFn, options: PostgresOptions = {}): FilePostgres {
  let server: PostgresServer | undefined;
  test.before(async () => {
    server = await startPostgres(options);
  });
  test.after.always(async () => {
    await server?.stop();
  });
  const current = (): PostgresServer => {
    if (!server) throw new PostgresHarnessError('the file\'s PostgreSQL server is not running (did test.before fail?)');
    return server;
  };
  return { database: () => current().createDatabase(), server: current };
}

/** Whether a process still exists (and is not a zombie). */
export function processAlive(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[0] !== 'Z';
  } catch {
    return false;
  }
}

/** The ids of `pid`'s child processes. */
export function childPids(pid: number): number[] {
  const children: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      if (Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]) === pid) children.push(Number(entry));
    } catch {
      // Exited while we looked.
    }
  }
  return children;
}
