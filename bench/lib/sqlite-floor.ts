/**
 * The SQLite floor: bare better-sqlite3 batched inserts of exactly the rows the collector's store
 * writes for a list of deviations, into its real `deviations` table (schema created by the store
 * itself), with the store's pragmas (WAL, synchronous=FULL), one transaction per batch.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { deviationFingerprint, type Deviation } from '../../core/deviation.js';
import { openSqliteStore } from '../../collector/store/sqlite/index.js';

/** One deviations row as the store writes it. */
export type DeviationRow = [id: string, fingerprint: string, baselineKey: string, kind: string, time: number, receivedAt: number, node: string, body: string];

/** The row the store writes for `d` (see collector/store/sqlite/ingest.ts ingestTx). */
export function rowOf(d: Deviation, receivedAt: number): DeviationRow {
  return [d.id, deviationFingerprint(d), d.key, d.event.kind, d.event.time, receivedAt, d.event.node, JSON.stringify(d)];
}

/** Insert `rows` in transactions of `batch`; returns rows per second. */
export function sqliteInsertFloor(workDir: string, rows: readonly DeviationRow[], batch: number): { rate: number; ms: number } {
  const dir = mkdtempSync(join(workDir, 'sqlite-floor-'));
  const path = join(dir, 'floor.db');
  openSqliteStore(path).close();
  const db = new Database(path);
  db.pragma('journal_mode = WAL');
  db.pragma('synchronous = FULL');
  const insert = db.prepare(`INSERT OR IGNORE INTO deviations (id, fingerprint, baseline_key, kind, time, received_at, node, body) VALUES (?, ?, ?, ?, ?, ?, ?, ?)`);
  const tx = db.transaction((part: readonly DeviationRow[]) => {
    for (const r of part) insert.run(r);
  });
  const t0 = performance.now();
  for (let i = 0; i < rows.length; i += batch) tx(rows.slice(i, i + batch));
  const ms = performance.now() - t0;
  db.close();
  rmSync(dir, { recursive: true, force: true });
  return { rate: rows.length / (ms / 1000), ms };
}
