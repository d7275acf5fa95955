/**
 * Follows a child process's stdout as JSON log lines (pino): keeps them (bounded), stamps each with
 * its arrival time, and lets callers wait for a line. Shared by the tests and the bench.
 */
import type { ChildProcess } from 'node:child_process';

/** A parsed log line with the `performance.now()` time it arrived. */
export type LogLine = Record<string, unknown> & { _at: number };

/** Lines kept; a long run's alert lines beyond this are not needed. */
const MAX_LINES = 10_000;

/** The lines so far, and a way to wait for one. */
export interface JsonLog {
  logs: LogLine[];
  /** Resolve with the first line matching `pred` (already seen or future); reject on timeout or exit. */
  waitForLog(pred: (line: Record<string, unknown>) => boolean, timeoutMs: number): Promise<LogLine>;
}

/** Start following `child`'s stdout. `stderr` supplies the tail quoted in errors. */
export function followJsonLog(child: ChildProcess, exited: Promise<number | null>, stderr: () => string): JsonLog {
  const logs: LogLine[] = [];
  const waiters: { pred: (l: Record<string, unknown>) => boolean; resolve: (l: LogLine) => void }[] = [];
  let buffer = '';
  child.stdout!.setEncoding('utf8');
  child.stdout!.on('data', (chunk: string) => {
    const at = performance.now();
    buffer += chunk;
    let nl;
    while ((nl = buffer.indexOf('\n')) !== -1) {
      const text = buffer.slice(0, nl);
      buffer = buffer.slice(nl + 1);
      let line: LogLine;
      try {
        line = Object.assign(JSON.parse(text) as Record<string, unknown>, { _at: at });
      } catch {
        continue;
      }
      if (logs.length < MAX_LINES) logs.push(line);
      for (const w of [...waiters]) {
        if (w.pred(line)) {
          waiters.splice(waiters.indexOf(w), 1);
          w.resolve(line);
        }
      }
    }
  });
  return {
    logs,
    waitForLog(pred, timeoutMs) {
      const seen = logs.find(pred);
      if (seen) return Promise.resolve(seen);
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`no matching log line within ${timeoutMs} ms; stderr: ${stderr().slice(-800)}`)), timeoutMs);
        void exited.then((code) => {
          clearTimeout(timer);
          reject(new Error(`process exited (${code}) before the expected log line; stderr: ${stderr().slice(-800)}`));
        });
        waiters.push({ pred, resolve: (l) => (clearTimeout(timer), resolve(l)) });
      });
    },
  };
}
