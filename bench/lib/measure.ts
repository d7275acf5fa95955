/**
 * Tiny measurement helpers shared by the scenarios: wall time, percentiles, and RSS / CPU of this
 * process or of a child (read from /proc/<pid>/stat and /proc/<pid>/status, Linux only).
 */
import { readFileSync } from 'node:fs';

/** Monotonic milliseconds. */
export function nowMs(): number {
  return performance.now();
}

/** Run `fn` and return its result and the wall time it took in ms. */
export async function timed<T>(fn: () => Promise<T> | T): Promise<{ result: T; ms: number }> {
  const t0 = performance.now();
  const result = await fn();
  return { result, ms: performance.now() - t0 };
}

/** The p-th percentile (0..100) of `values` by nearest rank; NaN for an empty list. */
export function percentile(values: readonly number[], p: number): number {
  if (values.length === 0) return NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const rank = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[rank] as number;
}

/** The median of `values`. */
export function median(values: readonly number[]): number {
  return percentile(values, 50);
}

/** A reader of the kB fields of /proc/PID/status, in bytes: NaN for a field it lacks, or for all when the process is gone. */
function statusBytes(pid: number): (field: string) => number {
  let status = '';
  try {
    status = readFileSync(`/proc/${pid}/status`, 'utf8');
  } catch {
    // gone: every field reads NaN
  }
  return (field) => {
    const m = new RegExp(`^${field}:\\s+(\\d+)\\s+kB`, 'm').exec(status);
    return m ? Number(m[1]) * 1024 : NaN;
  };
}

/** Resident set size of a process in bytes (VmRSS), or NaN when it cannot be read. */
export function rssOf(pid: number): number {
  return statusBytes(pid)('VmRSS');
}

/** Where a process's RSS is, from /proc/PID/status: anonymous (heaps, malloc), file-backed (code), shared. */
export function rssPartsOf(pid: number): string {
  const field = statusBytes(pid);
  const m = (name: string) => Math.round(mib(field(name)));
  return `RSS ${m('VmRSS')} MiB: anon ${m('RssAnon')}, file ${m('RssFile')}, shmem ${m('RssShmem')}`;
}

/**
 * RSS of an idle process once it has settled: V8 keeps the young generation it grew for a burst of
 * allocation (a restore, a stream) until its memory reducer runs, 10-20 s after the process went
 * quiet. Samples every second until the RSS has not fallen for `stableMs`, or `maxMs` passed.
 * Returns the settled value and the first sample (the transient).
 */
export async function settledRssOf(pid: number, maxMs: number, stableMs = 6_000): Promise<{ rss: number; first: number; afterMs: number }> {
  const start = Date.now();
  const first = rssOf(pid);
  let low = first;
  let lowAt = start;
  while (Date.now() - start < maxMs && Date.now() - lowAt < stableMs) {
    await sleep(1_000);
    const now = rssOf(pid);
    // A fall of more than 1 MiB restarts the wait; smaller moves are noise.
    if (now < low - (1 << 20)) lowAt = Date.now();
    if (now < low) low = now;
  }
  return { rss: rssOf(pid), first, afterMs: Date.now() - start };
}

/** Peak resident set size of a process in bytes (VmHWM), or NaN. */
export function peakRssOf(pid: number): number {
  return statusBytes(pid)('VmHWM');
}

const CLOCK_TICKS = 100; // USER_HZ on Linux

/** CPU seconds (user + system) a process has used so far, or NaN. */
export function cpuSecondsOf(pid: number): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Fields after the command name (which may contain spaces) start after the last ')'.
    const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const utime = Number(rest[11]);
    const stime = Number(rest[12]);
    return (utime + stime) / CLOCK_TICKS;
  } catch {
    return NaN;
  }
}

/** Sample a child's CPU use over a window: returns the fraction of one core it used. */
export async function cpuShareOver(pid: number, ms: number): Promise<number> {
  const c0 = cpuSecondsOf(pid);
  const t0 = performance.now();
  await sleep(ms);
  const c1 = cpuSecondsOf(pid);
  return (c1 - c0) / ((performance.now() - t0) / 1000);
}

/** Resolve after `ms`. */
export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Poll `check` every `everyMs` until it returns something other than undefined; throws after `timeoutMs`. */
export async function waitFor<T>(check: () => Promise<T | undefined> | T | undefined, timeoutMs: number, what: string, everyMs = 25): Promise<T> {
  const deadline = performance.now() + timeoutMs;
  for (;;) {
    const v = await check();
    if (v !== undefined) return v;
    if (performance.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(everyMs);
  }
}

/** Format a number with a few significant digits for tables. */
export function fmt(n: number | null | undefined, digits = 3): string {
  if (n === null || n === undefined || Number.isNaN(n)) return '—';
  if (!Number.isFinite(n)) return String(n);
  const abs = Math.abs(n);
  if (abs >= 1e6) return `${(n / 1e6).toPrecision(digits)}M`;
  if (abs >= 1e4) return `${(n / 1e3).toPrecision(digits)}k`;
  if (abs >= 100) return n.toFixed(0);
  return n.toPrecision(digits);
}

/** Bytes → MiB. */
export function mib(bytes: number): number {
  return bytes / (1024 * 1024);
}
