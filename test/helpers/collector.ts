/**
 * A fresh, real collector for a test: its SQLite file in a new temporary directory, gRPC and the
 * HTTP API on ephemeral loopback ports, `insecure` (plaintext stream without node identity, an API
 * without tokens) unless the settings say otherwise, and its logs dropped unless the test keeps them.
 * /metrics is rendered fresh for every scrape (`metricsInterval: 0s`): a test reads a number after an
 * action, as a person does, and a tight polling loop must not be served a shared rendering from before
 * it (the sharing itself is tested in auth-limits with its own interval).
 * `withCollector` stops it and removes the directory when the test ends.
 */
import type { ExecutionContext } from 'ava';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { loadCollectorConfig, startCollector, type CollectorHandle } from '../../collector/main.js';

/** How a test collector runs, besides its settings. */
export interface TestCollectorOptions {
  /** The collector's wall clock. */
  now?: () => number;
  /** Its log lines (JSON, level info and up) are pushed here; by default it logs nothing. */
  logs?: string[];
  /** An API tokens file (YAML), written beside the database and set as apiTokensFile. */
  tokens?: string;
  /** The test's own directory for the database, left in place (a restart over the same file); default a new one, removed. */
  dir?: string;
}

/** A running test collector. */
export interface TestCollector extends CollectorHandle {
  /** The directory of its database (c.db) and tokens file. */
  readonly dir: string;
  /** Where the API tokens file is, when `tokens` was given (a test may rewrite it). */
  readonly tokensFile: string;
  /** Stop it, then remove its directory unless the test owns it. */
  close(): Promise<void>;
}

/** Start a collector with `settings` over the test defaults; the caller closes it. */
export async function startTestCollector(settings: Record<string, unknown> = {}, options: TestCollectorOptions = {}): Promise<TestCollector> {
  const dir = options.dir ?? mkdtempSync(join(tmpdir(), 'dw-collector-'));
  const tokensFile = join(dir, 'tokens.yaml');
  if (options.tokens !== undefined) writeFileSync(tokensFile, options.tokens);
  const logs = options.logs;
  const logger = logs ? pino({ level: 'info' }, { write: (line: string) => logs.push(line) }) : pino({ level: 'silent' });
  let c: CollectorHandle;
  try {
    c = await startCollector(
      loadCollectorConfig({ db: join(dir, 'c.db'), grpcListen: '127.0.0.1:0', httpListen: '127.0.0.1:0', insecure: true, metricsInterval: '0s', ...(options.tokens !== undefined ? { apiTokensFile: tokensFile } : {}), ...settings }, {}),
      { logger, ...(options.now ? { now: options.now } : {}) },
    );
  } catch (err) {
    if (options.dir === undefined) rmSync(dir, { recursive: true, force: true });
    throw err;
  }
  return Object.assign(c, {
    dir,
    tokensFile,
    async close() {
      await c.stop();
      if (options.dir === undefined) rmSync(dir, { recursive: true, force: true });
    },
  });
}

/** A collector for this test, closed when the test ends. */
export async function withCollector(t: ExecutionContext, settings: Record<string, unknown> = {}, options: TestCollectorOptions = {}): Promise<TestCollector> {
  const c = await startTestCollector(settings, options);
  t.teardown(() => c.close());
  return c;
}
