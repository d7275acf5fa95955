/**
 * Real child processes: the driftwatch CLI (collector, agent) and bench helper scripts, with their
 * JSON log lines parsed as they arrive. Every child is registered and killed when the bench exits.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { AGENT_NODE_FLAGS } from '../../agent/main.js';
import { followJsonLog } from '../../test/helpers/json-log.js';

/** The compiled CLI entry point. */
export const CLI = fileURLToPath(new URL('../../cli/driftwatch.js', import.meta.url));

const running = new Set<ChildProcess>();
let hooked = false;
function hookExit(): void {
  if (hooked) return;
  hooked = true;
  process.on('exit', () => {
    for (const c of running) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  });
}

/** A running child with parsed JSON stdout lines. */
export interface Child {
  child: ChildProcess;
  pid: number;
  logs: Record<string, unknown>[];
  readonly stderr: string;
  /** First log line (seen or future) matching `pred`, with the wall time (performance.now()) it arrived. */
  waitForLog(pred: (line: Record<string, unknown>) => boolean, timeoutMs?: number): Promise<Record<string, unknown> & { _at: number }>;
  exited: Promise<number | null>;
  stop(signal?: NodeJS.Signals, timeoutMs?: number): Promise<number | null>;
}

/**
 * With DWBENCH_CPU_PROF=DIR (set by `npm run bench -- --cpu-prof`), every driftwatch and
 * bench child process writes a V8 CPU profile there when it exits normally.
 */
function profArgs(): string[] {
  const dir = process.env.DWBENCH_CPU_PROF;
  return dir ? ['--cpu-prof', `--cpu-prof-dir=${dir}`] : [];
}

/** Spawn `node script ...args` (with `execArgv` before the script). */
export function spawnNode(script: string, args: string[], options: { execArgv?: string[]; env?: NodeJS.ProcessEnv; ipc?: boolean } = {}): Child {
  hookExit();
  const execArgv = [...profArgs(), ...(options.execArgv ?? [])];
  // DRIFTWATCH_* variables configure the CLI (flags > environment > file): none of the caller's may leak into a bench process.
  const env = Object.fromEntries(Object.entries(options.env ?? process.env).filter(([k]) => !k.startsWith('DRIFTWATCH_')));
  const child = spawn(process.execPath, [...(script === '-e' ? [] : execArgv), script, ...args], {
    stdio: options.ipc ? ['ignore', 'pipe', 'pipe', 'ipc'] : ['ignore', 'pipe', 'pipe'],
    env,
  });
  running.add(child);
  let stderr = '';
  child.stderr!.setEncoding('utf8');
  child.stderr!.on('data', (c: string) => {
    if (stderr.length < 100_000) stderr += c;
  });
  const exited = new Promise<number | null>((resolve) =>
    child.once('exit', (code) => {
      running.delete(child);
      resolve(code);
    }),
  );
  const { logs, waitForLog } = followJsonLog(child, exited, () => stderr);
  return {
    child,
    pid: child.pid as number,
    logs,
    get stderr() {
      return stderr;
    },
    exited,
    waitForLog: (pred, timeoutMs = 30_000) => waitForLog(pred, timeoutMs),
    async stop(signal = 'SIGTERM', timeoutMs = 15_000) {
      if (child.exitCode !== null || child.signalCode !== null) return child.exitCode;
      child.kill(signal);
      const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
      const code = await exited;
      clearTimeout(timer);
      return code;
    },
  };
}

/** A collector child on ephemeral loopback ports. */
export interface CollectorChild extends Child {
  grpcPort: number;
  httpPort: number;
  url: string;
  target: string;
}

/** Start `driftwatch collector` on 127.0.0.1 with ephemeral ports and wait for its ports. */
export async function spawnCollector(db: string, options: { execArgv?: string[]; logLevel?: string } = {}): Promise<CollectorChild> {
  const p = spawnNode(CLI, ['collector', '--db', db, '--grpc-listen', '127.0.0.1:0', '--http-listen', '127.0.0.1:0', '--log-level', options.logLevel ?? 'info', '--insecure'], {
    execArgv: options.execArgv ?? [],
  });
  const started = await p.waitForLog((l) => l.msg === 'collector started', 60_000);
  const grpcPort = started.grpcPort as number;
  const httpPort = started.httpPort as number;
  return Object.assign(p, { grpcPort, httpPort, url: `http://127.0.0.1:${httpPort}`, target: `127.0.0.1:${grpcPort}` });
}

/** Start `driftwatch agent` with the given flags (HTTP on an ephemeral loopback port). */
export async function spawnAgent(flags: string[], options: { execArgv?: string[] } = {}): Promise<Child & { httpUrl: string; startedAt: number; startedLogTime: number }> {
  // Started as the image starts it (Dockerfile ENTRYPOINT, DaemonSet NODE_OPTIONS): with AGENT_NODE_FLAGS.
  const p = spawnNode(CLI, ['agent', '--http-listen', '127.0.0.1:0', '--insecure', ...flags], { execArgv: [...AGENT_NODE_FLAGS, ...(options.execArgv ?? [])] });
  const started = await p.waitForLog((l) => l.msg === 'agent started', 60_000);
  return Object.assign(p, { httpUrl: `http://${started.http as string}`, startedAt: started._at, startedLogTime: Date.parse(started.time as string) });
}

/** GET a JSON document. */
export async function getJson<T = unknown>(url: string): Promise<T> {
  const res = await fetch(url);
  if (!res.ok) throw new Error(`GET ${url}: ${res.status} ${await res.text()}`);
  return (await res.json()) as T;
}

/** Read one sample (sum over label sets) of a Prometheus metric from a /metrics URL. */
export async function metricValue(url: string, name: string, labelFilter?: string): Promise<number> {
  const text = await (await fetch(url)).text();
  let total = 0;
  for (const line of text.split('\n')) {
    if (!line.startsWith(name)) continue;
    const rest = line.slice(name.length);
    if (rest[0] !== ' ' && rest[0] !== '{') continue;
    if (labelFilter && !rest.includes(labelFilter)) continue;
    total += Number(line.slice(line.lastIndexOf(' ') + 1));
  }
  return total;
}
