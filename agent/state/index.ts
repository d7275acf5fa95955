/**
 * The agent's durable state in its state dir (SQLite, WAL): the spool of records waiting for the
 * collector's ack (spool.ts), the baselines it learned (baselines.ts), and the positions of its sources
 * (positions.ts), in the tables schema.ts creates and migrates. Only this folder and nothing else in
 * the agent speaks SQL.
 *
 * Baselines are stored row by row (a header per baseline, a row per entry) and written as deltas:
 * a flush costs what changed, not the size of what was learned. Raw examples live only here, not in
 * the agent's memory. Baselines and source positions are written in one transaction, so after a crash
 * the agent resumes from a position whose learned entries are all persisted. Deviations are spooled
 * per batch (before a source's batch is acknowledged); if a crash re-reads events past the last saved
 * position, the deviations they make again carry the same ids and are stored once.
 *
 * The spool is bounded in bytes. When a commit overflows it, deviations are dropped lowest severity
 * first (as the agent ranks them with the built-in severity table and its own baseline), oldest first
 * within a severity, and every drop is reported to the caller by severity. Baseline deltas are never
 * dropped: there is at most one queued per baseline.
 */
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import type { BaselineRecord, BaselineSnapshot, ClusterBaseline } from '../../core/baseline.js';
import type { Severity } from '../../core/severity.js';
import { createBaselineTables } from './baselines.js';
import { createPositions } from './positions.js';
import { migrate } from './schema.js';
import { createSpool, type SpoolDeviation, type SpoolRecord } from './spool.js';

export type { SpoolDeviation, SpoolKind, SpoolRecord } from './spool.js';

/** What one commit writes. */
export interface StateCommit {
  deviations?: readonly SpoolDeviation[];
  /** Baseline deltas (see takeDelta); a full snapshot is a delta too. Persisted and queued for the collector. */
  deltas?: readonly BaselineSnapshot[];
  positions?: ReadonlyMap<string, unknown>;
  /**
   * What the cluster last pushed for these keys, kept so that a restart enforces it before the
   * collector is reached again (entries pushed but not yet seen here are in no delta).
   */
  clusters?: readonly ClusterBaseline[];
}

/** Result of a commit: how many deviations were new, and how many spooled ones the byte bound evicted. */
export interface CommitResult {
  spooled: number;
  evicted: number;
  /** The evicted deviations by severity (only severities with drops). */
  evictedBySeverity: Partial<Record<Severity, number>>;
}

/** The agent's state store. */
export interface AgentState {
  commit(changes: StateCommit): CommitResult;
  /**
   * Every persisted baseline, one at a time, its entries read lazily and their examples only counted
   * (so restoring thousands never holds them all at once). Consume each before taking the next.
   */
  loadBaselines(): IterableIterator<BaselineRecord>;
  /** The last ClusterBaseline pushed for each key (relearn already applied: never set). */
  loadClusterBaselines(): ClusterBaseline[];
  /** One persisted baseline in full, examples included, or null. */
  readBaseline(key: string): BaselineSnapshot | null;
  loadPosition(source: string): unknown;
  /** Records after `afterSeq`, oldest first, at most `limit` and about `maxBytes`. */
  peek(afterSeq: number, limit: number, maxBytes: number): SpoolRecord[];
  /** Remove acknowledged records. */
  remove(seqs: readonly number[]): void;
  spoolCount(): number;
  spoolBytes(): number;
  /** Wall-clock time (ms) the oldest record still in the spool was written, or null when it is empty. */
  oldestSpooledAt(): number | null;
  close(): void;
}

/**
 * Open (creating if needed) the state in `dir`. `maxSpoolBytes` bounds the spool; the lowest-severity,
 * then oldest, deviations go first. `now` is the wall clock (the age of spooled records).
 */
export function openAgentState(dir: string, maxSpoolBytes: number, now: () => number = Date.now): AgentState {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const db = new Database(join(dir, 'agent.db'));
  db.pragma('journal_mode = WAL');
  // NORMAL in WAL survives a process crash (kill -9); a power loss may drop the last commits.
  db.pragma('synchronous = NORMAL');
  db.pragma('busy_timeout = 5000');
  migrate(db, now);
  const spool = createSpool(db, maxSpoolBytes, now);
  const baselines = createBaselineTables(db);
  const positions = createPositions(db);

  const commitTx = db.transaction((changes: StateCommit): CommitResult => {
    const at = now();
    // Deltas first: a baseline's changes travel ahead of the deviations checked against it.
    for (const delta of changes.deltas ?? []) {
      baselines.persist(delta);
      spool.queueDelta(delta);
    }
    const spooled = spool.addDeviations(changes.deviations ?? [], at);
    for (const [source, position] of changes.positions ?? []) positions.save(source, position);
    for (const c of changes.clusters ?? []) baselines.saveCluster(c);
    // Overflow policy (counted by the caller, by severity); baseline deltas are never dropped.
    const { evicted, evictedBySeverity } = spool.evictOverflow();
    return { spooled, evicted, evictedBySeverity };
  });

  return {
    commit: (changes) => commitTx(changes),
    loadBaselines: () => baselines.load(),
    loadClusterBaselines: () => baselines.loadClusters(),
    readBaseline: (key) => baselines.read(key),
    loadPosition: (source) => positions.load(source),
    peek: (afterSeq, limit, maxBytes) => spool.peek(afterSeq, limit, maxBytes),
    remove: (seqs) => spool.remove(seqs),
    spoolCount: () => spool.count(),
    spoolBytes: () => spool.bytes(),
    oldestSpooledAt: () => spool.oldestSpooledAt(),
    close: () => db.close(),
  };
}
