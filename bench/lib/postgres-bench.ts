/**
 * PostgreSQL for the bench (issue 20): a throwaway server (the tests' harness, test/helpers/postgres.ts)
 * with durability ON — `fsync` and `synchronous_commit` as a production server has them, not the
 * harness's fsync=off — real collector replicas on it, and the bare floor: batched multi-row INSERTs
 * of the same rows into a plain table from one client.
 */
import { mkdtempSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import pg from 'pg';
import { startPostgres, type PostgresServer } from '../../test/helpers/postgres.js';
import { CLI, spawnNode, type CollectorChild } from './procs.js';
import type { DeviationRow } from './sqlite-floor.js';

/** A server with fsync and synchronous_commit on (what the figures compare honestly). */
export function startDurablePostgres(): Promise<PostgresServer> {
  return startPostgres({ settings: { fsync: 'on', synchronous_commit: 'on', full_page_writes: 'on', shared_buffers: "'128MB'", max_connections: '200' } });
}

/** The database URL written to a file only its reader may read (the collector's --db-url-file). */
export function urlFile(workDir: string, url: string): string {
  const path = join(mkdtempSync(join(workDir, 'pg-url-')), 'db-url');
  writeFileSync(path, `${url}\n`, { mode: 0o600 });
  return path;
}

/** Start `driftwatch collector --db-url-file FILE` on 127.0.0.1 with ephemeral ports and wait for its ports. */
export async function spawnPostgresCollector(dbUrlFile: string, options: { logLevel?: string } = {}): Promise<CollectorChild> {
  const p = spawnNode(CLI, ['collector', '--db-url-file', dbUrlFile, '--grpc-listen', '127.0.0.1:0', '--http-listen', '127.0.0.1:0', '--log-level', options.logLevel ?? 'info', '--insecure']);
  try {
    const started = await p.waitForLog((l) => l.msg === 'collector started', 120_000);
    const grpcPort = started.grpcPort as number;
    const httpPort = started.httpPort as number;
    return Object.assign(p, { grpcPort, httpPort, url: `http://127.0.0.1:${httpPort}`, target: `127.0.0.1:${grpcPort}` });
  } catch (err) {
    await p.stop('SIGKILL');
    throw err;
  }
}

/** A client (or pool) that ignores the error an idle connection emits when the server stops under it. */
export function quietClient(url: string): pg.Client {
  const client = new pg.Client({ connectionString: url });
  client.on('error', () => undefined);
  return client;
}

/**
 * The floor: `rows` into a plain table (the store's columns, `id` its primary key, no partitions, no
 * other index) in multi-row INSERTs of `batch` rows, each statement its own transaction, one client,
 * synchronous_commit=on. A fresh database each time; returns rows per second.
 */
export async function postgresInsertFloor(server: PostgresServer, rows: readonly DeviationRow[], batch: number): Promise<{ rate: number; ms: number }> {
  const url = await server.createDatabase();
  const client = quietClient(url);
  await client.connect();
  try {
    await client.query('SET synchronous_commit = on');
    await client.query(`CREATE TABLE deviations_floor (
      id TEXT COLLATE "C" PRIMARY KEY, fingerprint TEXT COLLATE "C" NOT NULL, baseline_key TEXT COLLATE "C" NOT NULL,
      kind TEXT NOT NULL, time BIGINT NOT NULL, received_at BIGINT NOT NULL, node TEXT COLLATE "C" NOT NULL, body TEXT NOT NULL)`);
    const statement = (n: number) => ({
      name: `floor-${n}`,
      text: `INSERT INTO deviations_floor (id, fingerprint, baseline_key, kind, time, received_at, node, body) VALUES ${Array.from({ length: n }, (_, r) => `(${Array.from({ length: 8 }, (_, c) => `$${r * 8 + c + 1}`).join(', ')})`).join(', ')}`,
    });
    const full = statement(batch);
    const t0 = performance.now();
    for (let i = 0; i < rows.length; i += batch) {
      const part = rows.slice(i, i + batch);
      await client.query({ ...(part.length === batch ? full : statement(part.length)), values: part.flat() });
    }
    const ms = performance.now() - t0;
    const { rows: counted } = await client.query<{ n: string }>('SELECT count(*) AS n FROM deviations_floor');
    if (Number(counted[0]!.n) !== rows.length) throw new Error(`postgres floor stored ${counted[0]!.n} of ${rows.length} rows`);
    return { rate: rows.length / (ms / 1000), ms };
  } finally {
    await client.end().catch(() => undefined);
  }
}
