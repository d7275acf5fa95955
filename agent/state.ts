/**
 * The agent's durable state in its state dir (SQLite, WAL): the spool of records waiting for the
 * collector's ack, the baselines it learned, and the positions of its sources. Only this module and
 * nothing else in the agent speaks SQL.
 *
 * Baselines and source positions are written in one transaction, so after a crash the agent resumes
 * from a position whose effects on the baselines are exactly those persisted. Deviations are spooled
 * per batch (before a source's batch is acknowledged); if a crash re-reads events past the last saved
 * position, the deviations they make again carry the same ids and are stored once.
 */
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import type { BaselineSnapshot } from '../core/baseline.js';
import type { Deviation } from '../core/deviation.js';

/** What kind of record a spool row holds. */
export type SpoolKind = 'deviation' | 'baseline';

/** One spooled record. */
export interface SpoolRecord {
  seq: number;
  kind: SpoolKind;
  body: string;
  bytes: number;
}

/** What one commit writes. */
export interface StateCommit {
  deviations?: readonly Deviation[];
  snapshots?: readonly BaselineSnapshot[];
  positions?: ReadonlyMap<string, unknown>;
}

/** Result of a commit: how many deviations were new, and how many old ones the byte bound evicted. */
export interface CommitResult {
  spooled: number;
  evicted: number;
}

/** The agent's state store. */
export interface AgentState {
  commit(changes: StateCommit): CommitResult;
  /** Every persisted baseline, one at a time (so restoring thousands never holds all their JSON at once). */
  loadBaselines(): IterableIterator<BaselineSnapshot>;
  loadPosition(source: string): unknown;
  /** Records after `afterSeq`, oldest first, at most `limit` and about `maxBytes`. */
  peek(afterSeq: number, limit: number, maxBytes: number): SpoolRecord[];
  /** Remove acknowledged records. */
  remove(seqs: readonly number[]): void;
  spoolCount(): number;
  spoolBytes(): number;
  close(): void;
}

/** Open (creating if needed) the state in `dir`. `maxSpoolBytes` bounds the spool; the oldest deviations go first. */
export function openAgentState(dir: string, maxSpoolBytes: number): AgentState {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const db = new Database(join(dir, 'agent.db'));
  db.pragma('journal_mode = WAL');
  // NORMAL in WAL survives a process crash (kill -9); a power loss may drop the last commits.
  db.pragma('synchronous = NORMAL');
  db.pragma('busy_timeout = 5000');
  db.exec(`
    CREATE TABLE IF NOT EXISTS spool (
      seq   INTEGER PRIMARY KEY AUTOINCREMENT,
      kind  TEXT NOT NULL,
      ref   TEXT NOT NULL,
      body  TEXT NOT NULL,
      bytes INTEGER NOT NULL
    );
    CREATE UNIQUE INDEX IF NOT EXISTS spool_ref ON spool(kind, ref);
    CREATE TABLE IF NOT EXISTS baselines (key TEXT PRIMARY KEY, snapshot TEXT NOT NULL);
    CREATE TABLE IF NOT EXISTS positions (source TEXT PRIMARY KEY, position TEXT NOT NULL);
  `);

  const insertDeviation = db.prepare(`INSERT OR IGNORE INTO spool (kind, ref, body, bytes) VALUES ('deviation', ?, ?, ?)`);
  // A newer snapshot of a baseline replaces a queued older one (new seq, so an in-flight ack of the old one removes nothing).
  const upsertSnapshotSpool = db.prepare(`INSERT OR REPLACE INTO spool (kind, ref, body, bytes) VALUES ('baseline', ?, ?, ?)`);
  const upsertBaseline = db.prepare(`INSERT OR REPLACE INTO baselines (key, snapshot) VALUES (?, ?)`);
  const upsertPosition = db.prepare(`INSERT OR REPLACE INTO positions (source, position) VALUES (?, ?)`);
  const selectBaselines = db.prepare(`SELECT snapshot FROM baselines`).pluck();
  const selectPosition = db.prepare(`SELECT position FROM positions WHERE source = ?`).pluck();
  const selectAfter = db.prepare(`SELECT seq, kind, body, bytes FROM spool WHERE seq > ? ORDER BY seq LIMIT ?`);
  const deleteSeq = db.prepare(`DELETE FROM spool WHERE seq = ? RETURNING bytes`).pluck();
  const queuedSnapshotBytes = db.prepare(`SELECT bytes FROM spool WHERE kind = 'baseline' AND ref = ?`).pluck();
  const countRows = db.prepare(`SELECT count(*) FROM spool`).pluck();
  const sumBytes = db.prepare(`SELECT coalesce(sum(bytes), 0) FROM spool`).pluck();
  const oldestDeviations = db.prepare(`SELECT seq, bytes FROM spool WHERE kind = 'deviation' ORDER BY seq LIMIT ?`);

  let bytes = sumBytes.get() as number;

  const commitTx = db.transaction((changes: StateCommit): CommitResult => {
    let spooled = 0;
    let evicted = 0;
    for (const d of changes.deviations ?? []) {
      const body = JSON.stringify(d);
      const size = Buffer.byteLength(body);
      if (insertDeviation.run(d.id, body, size).changes === 1) {
        spooled++;
        bytes += size;
      }
    }
    for (const s of changes.snapshots ?? []) {
      const body = JSON.stringify(s);
      const size = Buffer.byteLength(body);
      upsertBaseline.run(s.key, body);
      bytes -= (queuedSnapshotBytes.get(s.key) as number | undefined) ?? 0;
      upsertSnapshotSpool.run(s.key, body, size);
      bytes += size;
    }
    for (const [source, position] of changes.positions ?? []) upsertPosition.run(source, JSON.stringify(position));
    // Overflow policy: drop the oldest deviations until the spool fits (counted by the caller).
    while (bytes > maxSpoolBytes) {
      const victims = oldestDeviations.all(256) as { seq: number; bytes: number }[];
      if (victims.length === 0) break;
      for (const v of victims) {
        deleteSeq.get(v.seq);
        bytes -= v.bytes;
        evicted++;
        if (bytes <= maxSpoolBytes) break;
      }
    }
    return { spooled, evicted };
  });

  const removeTx = db.transaction((seqs: readonly number[]) => {
    for (const seq of seqs) bytes -= (deleteSeq.get(seq) as number | undefined) ?? 0;
  });

  return {
    commit: (changes) => commitTx(changes),
    *loadBaselines() {
      for (const text of selectBaselines.iterate() as IterableIterator<string>) yield JSON.parse(text) as BaselineSnapshot;
    },
    loadPosition(source) {
      const raw = selectPosition.get(source) as string | undefined;
      return raw === undefined ? undefined : (JSON.parse(raw) as unknown);
    },
    peek(afterSeq, limit, maxBytes) {
      const rows = selectAfter.all(afterSeq, limit) as SpoolRecord[];
      let total = 0;
      for (let i = 0; i < rows.length; i++) {
        total += (rows[i] as SpoolRecord).bytes;
        if (total > maxBytes && i > 0) return rows.slice(0, i);
      }
      return rows;
    },
    remove: (seqs) => removeTx(seqs),
    spoolCount: () => countRows.get() as number,
    spoolBytes: () => bytes,
    close: () => db.close(),
  };
}
