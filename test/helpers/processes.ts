/** Real child processes of the driftwatch CLI, with their JSON log lines parsed as they arrive. */
import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import type { ExecutionContext } from 'ava';
import { followJsonLog } from './json-log.js';

/** The compiled CLI entry point. */
export const CLI = fileURLToPath(new URL('../../cli/driftwatch.js', import.meta.url));

/** A running CLI process. */
export interface CliProcess {
  child: ChildProcess;
  /** Parsed JSON log lines so far (stdout). */
  logs: Record<string, unknown>[];
  stderr: string;
  /** Resolve with the first log line matching `pred` (already seen or future). */
  waitForLog(pred: (line: Record<string, unknown>) => boolean, timeoutMs?: number): Promise<Record<string, unknown>>;
  /** Resolve with the exit code. */
  exited: Promise<number | null>;
  stop(signal?: NodeJS.Signals): Promise<number | null>;
}

/**
 * Spawn `driftwatch ...args`; killed at the end of the test if still running. Unless `secure`, the
 * child runs with DRIFTWATCH_INSECURE=true (plaintext gRPC, an open API), as the tests of delivery
 * and detection need no certificates; test/e2e/tls*.test.ts run it secured. `env` adds variables.
 */
export function spawnCli(t: ExecutionContext, args: string[], options: { stdin?: 'pipe' | 'ignore'; secure?: boolean; fdLimit?: number; env?: NodeJS.ProcessEnv } = {}): CliProcess {
  const env = { ...process.env, ...(options.secure ? {} : { DRIFTWATCH_INSECURE: 'true' }), ...options.env };
  const stdio: ['pipe' | 'ignore', 'pipe', 'pipe'] = [options.stdin ?? 'ignore', 'pipe', 'pipe'];
  // fdLimit: the child's hard and soft limit of open descriptors (Node raises its soft limit to the
  // hard one, so both are set); the shell's script is constant, the values are its arguments.
  const child =
    options.fdLimit === undefined
      ? spawn(process.execPath, [CLI, ...args], { stdio, env })
      : spawn('/bin/sh', ['-c', 'ulimit -n "$0" && exec "$@"', String(options.fdLimit), process.execPath, CLI, ...args], { stdio, env });
  let stderr = '';
  child.stderr!.setEncoding('utf8');
  child.stderr!.on('data', (c: string) => (stderr += c));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  const { logs, waitForLog } = followJsonLog(child, exited, () => stderr);
  t.teardown(() => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  });
  return {
    child,
    logs,
    get stderr() {
      return stderr;
    },
    exited,
    waitForLog: (pred, timeoutMs = 20_000) => waitForLog(pred, timeoutMs),
    async stop(signal = 'SIGTERM') {
      if (child.exitCode !== null || child.signalCode !== null) return child.exitCode;
      child.kill(signal);
      return exited;
    },
  };
}

/** Start a collector child on ephemeral ports; resolves once it logged its ports (probeUrl: with --probe-listen). */
export async function spawnCollector(t: ExecutionContext, db: string, grpcPort = 0, extra: readonly string[] = [], options: { fdLimit?: number } = {}): Promise<CliProcess & { grpcPort: number; url: string; probeUrl: string | null }> {
  const p = spawnCli(t, ['collector', '--db', db, '--grpc-listen', `127.0.0.1:${grpcPort}`, '--http-listen', '127.0.0.1:0', ...extra], options);
  const started = await p.waitForLog((l) => l.msg === 'collector started', 120_000);
  const probeUrl = typeof started.probePort === 'number' ? `http://127.0.0.1:${started.probePort}` : null;
  return Object.assign(p, { grpcPort: started.grpcPort as number, url: `http://127.0.0.1:${started.httpPort as number}`, probeUrl });
}

/** GET a JSON document. */
export async function getJson<T = any>(url: string): Promise<T> {
  const res = await fetch(url);
  if (!res.ok) throw new Error(`GET ${url}: ${res.status} ${await res.text()}`);
  return (await res.json()) as T;
}

/** Poll `check` until it returns a value that is not undefined. */
export async function eventually<T>(check: () => Promise<T | undefined> | T | undefined, timeoutMs = 20_000, what = 'condition'): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await check();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}
