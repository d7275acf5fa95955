/**
 * HTTP floods for the hostile-client tests: a storm of requests kept in flight from child
 * processes (so the test's own event loop, which times the probes, is not the one flooding), slow
 * clients that never finish their headers, and a prober that times a path while they run.
 */
import { fork } from 'node:child_process';
import { Agent, request } from 'node:http';
import { connect, type Socket } from 'node:net';
import { fileURLToPath } from 'node:url';

/** A storm: `inFlight` requests kept in flight (each on a fresh connection) for `durationMs`. */
export interface StormOptions {
  port: number;
  path: string;
  inFlight: number;
  durationMs: number;
  /** Child processes sharing `inFlight` (default 2: the flood needs more than one core's worth of clients). */
  processes?: number;
  /** The local address to send from (127.0.0.N stands for another host). */
  from?: string;
}

/** What a storm got: answers by status, and errors by code (a reset, a refused connect). */
export interface StormResult {
  requests: number;
  byOutcome: Record<string, number>;
}

const CHILD_FLAG = '--http-storm-child';

/** Run a storm from child processes; resolves once every child is done. */
export async function storm(options: StormOptions): Promise<StormResult> {
  const processes = options.processes ?? 2;
  const file = fileURLToPath(import.meta.url);
  const children = Array.from({ length: processes }, (_v, i) => {
    const share = Math.floor(options.inFlight / processes) + (i < options.inFlight % processes ? 1 : 0);
    const child = fork(file, [CHILD_FLAG, JSON.stringify({ ...options, inFlight: share })], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
    return new Promise<StormResult>((resolve, reject) => {
      let result: StormResult | null = null;
      child.on('message', (m) => (result = JSON.parse(String(m)) as StormResult));
      child.on('error', reject);
      child.on('exit', (code) => (result ? resolve(result) : reject(new Error(`storm child exited ${code} without a result`))));
    });
  });
  const results = await Promise.all(children);
  const byOutcome: Record<string, number> = {};
  for (const r of results) for (const [k, v] of Object.entries(r.byOutcome)) byOutcome[k] = (byOutcome[k] ?? 0) + v;
  return { requests: results.reduce((n, r) => n + r.requests, 0), byOutcome };
}

async function runChild(options: StormOptions): Promise<StormResult> {
  const agent = new Agent({ keepAlive: false, maxSockets: Infinity });
  const end = Date.now() + options.durationMs;
  const byOutcome: Record<string, number> = {};
  let requests = 0;
  const count = (k: string) => (byOutcome[k] = (byOutcome[k] ?? 0) + 1);
  const one = () =>
    new Promise<void>((resolve) => {
      requests++;
      const req = request({ host: '127.0.0.1', port: options.port, path: options.path, agent, ...(options.from ? { localAddress: options.from } : {}) }, (res) => {
        res.resume();
        res.on('end', () => {
          count(String(res.statusCode));
          resolve();
        });
        res.on('error', () => {
          count('aborted');
          resolve();
        });
      });
      req.on('error', (err: NodeJS.ErrnoException) => {
        count(err.code ?? 'error');
        resolve();
      });
      req.end();
    });
  const worker = async () => {
    while (Date.now() < end) await one();
  };
  await Promise.all(Array.from({ length: options.inFlight }, worker));
  return { requests, byOutcome };
}

if (process.argv[2] === CHILD_FLAG && process.send) {
  const result = await runChild(JSON.parse(process.argv[3] as string) as StormOptions);
  process.send(JSON.stringify(result), () => process.exit(0));
}

/** One timed GET: its status (or error code) and how long it took. */
export interface Probe {
  outcome: string;
  ms: number;
}

/** GET `url` on a fresh connection; gives up after `timeoutMs` (outcome `timeout`). */
export function probe(url: string, timeoutMs = 60_000): Promise<Probe> {
  const start = performance.now();
  return new Promise((resolve) => {
    const done = (outcome: string) => resolve({ outcome, ms: Math.round(performance.now() - start) });
    const req = request(url, { agent: false, timeout: timeoutMs }, (res) => {
      res.resume();
      res.on('end', () => done(String(res.statusCode)));
      res.on('error', () => done('aborted'));
    });
    req.on('timeout', () => req.destroy(Object.assign(new Error('timeout'), { code: 'timeout' })));
    req.on('error', (err: NodeJS.ErrnoException) => done(err.code ?? 'error'));
    req.end();
  });
}

/** Probe `url` one after another, `gapMs` apart, until `during` settles; resolves with every probe. */
export async function probeWhile(url: string, during: Promise<unknown>, gapMs = 100): Promise<Probe[]> {
  let running = true;
  void during.finally(() => (running = false)).catch(() => undefined);
  const probes: Probe[] = [];
  while (running) {
    probes.push(await probe(url));
    await new Promise((r) => setTimeout(r, gapMs));
  }
  return probes;
}

/** Slowest of `probes`, and a one-line summary for logs and the fault table. */
export function summarize(probes: Probe[]): { maxMs: number; text: string } {
  const ms = probes.map((p) => p.ms).sort((a, b) => a - b);
  const maxMs = ms.at(-1) ?? 0;
  const outcomes = [...new Set(probes.map((p) => p.outcome))].join('/');
  return { maxMs, text: `${probes.length} probes, median ${ms[ms.length >> 1] ?? 0} ms, slowest ${maxMs} ms (${outcomes})` };
}

/** A client that opens a connection and sends its headers a line at a time, never finishing them. */
export interface SlowClient {
  /** Resolves when the connection ends: the status line the server answered ('' for none), the error if any, and when. */
  readonly closed: Promise<{ answer: string; error: string; afterMs: number }>;
  destroy(): void;
}

/** Open a slow client to `port` from `from`, a header line every `everyMs`. */
export function slowClient(port: number, from: string, everyMs = 1_000): SlowClient {
  const start = performance.now();
  const socket: Socket = connect({ port, host: '127.0.0.1', localAddress: from });
  let answer = '';
  let error = '';
  socket.setEncoding('utf8');
  socket.on('data', (d: string) => (answer += d));
  socket.on('error', (err: NodeJS.ErrnoException) => (error = err.code ?? 'error'));
  // The header lines start once the request line is written: a socket is writable while it is
  // still connecting, and on a starved event loop the first tick of a timer can come before the
  // connect, which would send a header line first (the server rightly answers that with 400).
  let timer: NodeJS.Timeout | undefined;
  socket.on('connect', () => {
    socket.write('GET /api/v1/alerts HTTP/1.1\r\nhost: collector\r\n');
    let n = 0;
    timer = setInterval(() => {
      if (socket.writable) socket.write(`x-slow-${n++}: ${'a'.repeat(16)}\r\n`);
    }, everyMs);
  });
  const closed = new Promise<{ answer: string; error: string; afterMs: number }>((resolve) =>
    socket.on('close', () => {
      clearInterval(timer);
      resolve({ answer: answer.slice(0, answer.indexOf('\r\n') === -1 ? 64 : answer.indexOf('\r\n')), error, afterMs: Math.round(performance.now() - start) });
    }),
  );
  return { closed, destroy: () => socket.destroy() };
}

/** How slow clients had ended at a moment: closed without an answer, or answered. */
export interface SlowTally {
  closedUnanswered: number;
  answered: number;
}

/**
 * Resolves once the server has dealt with every slow client of `clients` it will not hold: all but
 * `held` closed without an answer (closed as accepted). Also resolves as soon as one is answered
 * (a bound not kept, or held ones cut already), so the caller's checks say what happened instead
 * of a wait that never ends. A connect finishing is not this: the kernel completes it before the
 * server accepts, and a loaded server accepts 1,600 connections over seconds.
 */
export function settled(clients: readonly SlowClient[], held: number): Promise<SlowTally> {
  const tally: SlowTally = { closedUnanswered: 0, answered: 0 };
  return new Promise((resolve) => {
    for (const c of clients)
      void c.closed.then(({ answer }) => {
        if (answer === '') tally.closedUnanswered++;
        else tally.answered++;
        if (tally.answered > 0 || tally.closedUnanswered >= clients.length - held) resolve({ ...tally });
      });
  });
}
