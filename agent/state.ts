/**
 * The agent's durable state in its state dir (SQLite, WAL): the spool of records waiting for the
 * collector's ack, the baselines it learned, and the positions of its sources. Only this module and
 * nothing else in the agent speaks SQL.
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
import { MAX_EXAMPLES, type BaselineRecord, type BaselineSnapshot, type ClusterBaseline, type EntryStats } from '../core/baseline.js';
import { entryFromId } from '../core/entry.js';
import { unite } from '../core/merge.js';
import type { Deviation } from '../core/deviation.js';
import { SEVERITIES, type Severity } from '../core/severity.js';

/** What kind of record a spool row holds. */
export type SpoolKind = 'deviation' | 'baseline';

/** One spooled record. */
export interface SpoolRecord {
  seq: number;
  kind: SpoolKind;
  body: string;
  bytes: number;
}

/** A deviation to spool, with the severity the agent gave it (it decides what a full spool drops first). */
export interface SpoolDeviation {
  deviation: Deviation;
  severity: Severity;
}

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

  const insertDeviation = db.prepare(`INSERT OR IGNORE INTO spool (kind, ref, body, bytes, severity, spooled_at) VALUES ('deviation', ?, ?, ?, ?, ?)`);
  // A newer delta of a baseline is merged into a queued older one and takes a new seq, so an in-flight
  // ack of the old one removes nothing that was not sent.
  const upsertDeltaSpool = db.prepare(`INSERT OR REPLACE INTO spool (kind, ref, body, bytes, severity, spooled_at) VALUES ('baseline', ?, ?, ?, 0, ?)`);
  const queuedDelta = db.prepare(`SELECT body, bytes, spooled_at FROM spool WHERE kind = 'baseline' AND ref = ?`);
  const upsertHeader = db.prepare(`INSERT OR REPLACE INTO baselines (key, header) VALUES (?, ?)`);
  // Stats are absolute and only grow, so writing an older delta after a newer one changes nothing.
  const upsertEntry = db.prepare(`
    INSERT INTO entries (key, id, first_seen, last_seen, count, nodes, examples) VALUES (?, ?, ?, ?, ?, ?, ?)
    ON CONFLICT (key, id) DO UPDATE SET first_seen = min(first_seen, excluded.first_seen), last_seen = max(last_seen, excluded.last_seen),
      count = max(count, excluded.count), nodes = excluded.nodes,
      examples = CASE WHEN excluded.examples = '[]' THEN examples ELSE excluded.examples END`);
  const selectExamples = db.prepare(`SELECT examples FROM entries WHERE key = ? AND id = ?`).pluck();
  const upsertPosition = db.prepare(`INSERT OR REPLACE INTO positions (source, position) VALUES (?, ?)`);
  const selectHeaders = db.prepare(`SELECT header FROM baselines`).pluck();
  const selectHeader = db.prepare(`SELECT header FROM baselines WHERE key = ?`).pluck();
  const selectEntryCounts = db.prepare(`SELECT id, first_seen, last_seen, count, nodes, json_array_length(examples) AS examples FROM entries WHERE key = ?`);
  const selectEntries = db.prepare(`SELECT id, first_seen, last_seen, count, nodes, examples FROM entries WHERE key = ? ORDER BY id`);
  const selectPosition = db.prepare(`SELECT position FROM positions WHERE source = ?`).pluck();
  const upsertCluster = db.prepare(`INSERT OR REPLACE INTO cluster_baselines (key, body) VALUES (?, ?)`);
  const selectClusters = db.prepare(`SELECT body FROM cluster_baselines ORDER BY key`).pluck();
  const selectAfter = db.prepare(`SELECT seq, kind, body, bytes FROM spool WHERE seq > ? ORDER BY seq LIMIT ?`);
  const deleteSeq = db.prepare(`DELETE FROM spool WHERE seq = ? RETURNING bytes`).pluck();
  const countRows = db.prepare(`SELECT count(*) FROM spool`).pluck();
  const sumBytes = db.prepare(`SELECT coalesce(sum(bytes), 0) FROM spool`).pluck();
  // The overflow policy's order: lowest severity (highest rank) first, then oldest (see spool_evict).
  const evictionVictims = db.prepare(`SELECT seq, bytes, severity FROM spool WHERE kind = 'deviation' ORDER BY severity DESC, seq LIMIT ?`);
  const oldestSpooled = db.prepare(`SELECT spooled_at FROM spool ORDER BY seq LIMIT 1`).pluck();

  let bytes = sumBytes.get() as number;

  /** Persist one delta's header and entries; examples are united with those already stored. */
  function persist(delta: BaselineSnapshot): void {
    const { entries, ...header } = delta;
    upsertHeader.run(delta.key, JSON.stringify(header));
    for (const e of entries) {
      let examples = '[]';
      if (e.examples.length > 0) {
        const stored = selectExamples.get(delta.key, e.id) as string | undefined;
        examples = JSON.stringify(unite(stored === undefined ? [] : (JSON.parse(stored) as string[]), e.examples, MAX_EXAMPLES));
      }
      upsertEntry.run(delta.key, e.id, e.firstSeen, e.lastSeen, e.count, JSON.stringify(e.nodes), examples);
    }
  }

  /** Queue a delta for the collector, merged into the one already queued for its key, if any. */
  function queue(delta: BaselineSnapshot): void {
    const queued = queuedDelta.get(delta.key) as { body: string; bytes: number; spooled_at: number } | undefined;
    let merged = delta;
    if (queued) {
      bytes -= queued.bytes;
      merged = mergeDeltas(JSON.parse(queued.body) as BaselineSnapshot, delta);
    }
    const body = JSON.stringify(merged);
    const size = Buffer.byteLength(body);
    // A merged delta keeps the time its first part was spooled: that is how long the change has waited.
    upsertDeltaSpool.run(delta.key, body, size, queued ? queued.spooled_at : now());
    bytes += size;
  }

  const commitTx = db.transaction((changes: StateCommit): CommitResult => {
    let spooled = 0;
    let evicted = 0;
    const evictedBySeverity: Partial<Record<Severity, number>> = {};
    const at = now();
    // Deltas first: a baseline's changes travel ahead of the deviations checked against it.
    for (const delta of changes.deltas ?? []) {
      persist(delta);
      queue(delta);
    }
    for (const { deviation: d, severity } of changes.deviations ?? []) {
      const body = JSON.stringify(d);
      const size = Buffer.byteLength(body);
      if (insertDeviation.run(d.id, body, size, severityRank(severity), at).changes === 1) {
        spooled++;
        bytes += size;
      }
    }
    for (const [source, position] of changes.positions ?? []) upsertPosition.run(source, JSON.stringify(position));
    // A relearn happened when it was applied; re-applying it at every start would forget again.
    for (const c of changes.clusters ?? []) upsertCluster.run(c.key, JSON.stringify({ ...c, relearn: false }));
    // Overflow policy: drop the lowest-severity deviations, oldest first among equals, until the spool
    // fits (counted by the caller, by severity). A deviation just committed may be the one dropped, when
    // everything older is more severe. Baseline deltas are never dropped: at most one is queued per baseline.
    while (bytes > maxSpoolBytes) {
      const victims = evictionVictims.all(256) as { seq: number; bytes: number; severity: number }[];
      if (victims.length === 0) break;
      for (const v of victims) {
        deleteSeq.get(v.seq);
        bytes -= v.bytes;
        evicted++;
        const severity = SEVERITIES[v.severity] ?? 'low';
        evictedBySeverity[severity] = (evictedBySeverity[severity] ?? 0) + 1;
        if (bytes <= maxSpoolBytes) break;
      }
    }
    return { spooled, evicted, evictedBySeverity };
  });

  const removeTx = db.transaction((seqs: readonly number[]) => {
    for (const seq of seqs) bytes -= (deleteSeq.get(seq) as number | undefined) ?? 0;
  });

  interface EntryRow {
    id: string;
    first_seen: number;
    last_seen: number;
    count: number;
    nodes: string;
    examples: string | number;
  }

  return {
    commit: (changes) => commitTx(changes),
    *loadBaselines() {
      for (const text of selectHeaders.iterate() as IterableIterator<string>) {
        const header = JSON.parse(text) as Omit<BaselineSnapshot, 'entries'>;
        yield {
          ...header,
          entries: (function* () {
            for (const r of selectEntryCounts.iterate(header.key) as IterableIterator<EntryRow>) {
              yield { id: r.id, firstSeen: r.first_seen, lastSeen: r.last_seen, count: r.count, nodes: JSON.parse(r.nodes) as string[], examples: r.examples as number };
            }
          })(),
        };
      }
    },
    loadClusterBaselines: () => (selectClusters.all() as string[]).map((body) => JSON.parse(body) as ClusterBaseline),
    readBaseline(key) {
      const text = selectHeader.get(key) as string | undefined;
      if (text === undefined) return null;
      const entries: EntryStats[] = (selectEntries.all(key) as EntryRow[]).map((r) => ({
        id: r.id,
        entry: entryFromId(r.id),
        firstSeen: r.first_seen,
        lastSeen: r.last_seen,
        count: r.count,
        nodes: JSON.parse(r.nodes) as string[],
        examples: JSON.parse(r.examples as string) as string[],
      }));
      return { ...(JSON.parse(text) as Omit<BaselineSnapshot, 'entries'>), entries };
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
    oldestSpooledAt: () => (oldestSpooled.get() as number | undefined) ?? null,
    close: () => db.close(),
  };
}

/** Merge a newer delta of one baseline into an older queued one: newer header and entry stats, examples united. */
function mergeDeltas(older: BaselineSnapshot, newer: BaselineSnapshot): BaselineSnapshot {
  const byId = new Map(older.entries.map((e) => [e.id, e]));
  for (const e of newer.entries) {
    const old = byId.get(e.id);
    byId.set(e.id, old ? { ...e, examples: unite(old.examples, e.examples, MAX_EXAMPLES) } : e);
  }
  return { ...newer, entries: [...byId.values()] };
}

/** Rank stored with a spooled deviation: its index in SEVERITIES (0 = critical; larger goes first when full). */
function severityRank(severity: Severity): number {
  const rank = SEVERITIES.indexOf(severity);
  return rank === -1 ? SEVERITIES.length - 1 : rank;
}

/** The schema revision this code writes (PRAGMA user_version). */
const SCHEMA_VERSION = 3;

/**
 * Create the tables, or bring an older state dir up to date. Revision 1 kept each baseline as one
 * JSON snapshot; revision 2 keeps a header per baseline and a row per entry; revision 3 adds each
 * spooled record's severity rank and the time it was spooled (overflow policy, lag).
 */
function migrate(db: Database.Database, now: () => number): void {
  const version = db.pragma('user_version', { simple: true }) as number;
  if (version > SCHEMA_VERSION) {
    throw new Error(`the state dir was written by a newer Driftwatch (schema ${version}; this one reads up to ${SCHEMA_VERSION})`);
  }
  db.transaction(() => {
    const legacy = version < 2 && (db.prepare(`SELECT count(*) FROM pragma_table_info('baselines') WHERE name = 'snapshot'`).pluck().get() as number) > 0;
    if (legacy) db.exec(`ALTER TABLE baselines RENAME TO baselines_v1`);
    db.exec(`
      CREATE TABLE IF NOT EXISTS spool (
        seq   INTEGER PRIMARY KEY AUTOINCREMENT,
        kind  TEXT NOT NULL,
        ref   TEXT NOT NULL,
        body  TEXT NOT NULL,
        bytes INTEGER NOT NULL,
        severity   INTEGER NOT NULL DEFAULT 2,
        spooled_at INTEGER NOT NULL DEFAULT 0
      );
      CREATE UNIQUE INDEX IF NOT EXISTS spool_ref ON spool(kind, ref);
      CREATE TABLE IF NOT EXISTS baselines (key TEXT PRIMARY KEY, header TEXT NOT NULL);
      CREATE TABLE IF NOT EXISTS entries (
        key        TEXT NOT NULL,
        id         TEXT NOT NULL,
        first_seen INTEGER NOT NULL,
        last_seen  INTEGER NOT NULL,
        count      INTEGER NOT NULL,
        nodes      TEXT NOT NULL,
        examples   TEXT NOT NULL,
        PRIMARY KEY (key, id)
      ) WITHOUT ROWID;
      CREATE TABLE IF NOT EXISTS positions (source TEXT PRIMARY KEY, position TEXT NOT NULL);
      -- Added without a new revision: older agents ignore it, newer ones create it.
      CREATE TABLE IF NOT EXISTS cluster_baselines (key TEXT PRIMARY KEY, body TEXT NOT NULL);
    `);
    // Revision 2 spools lack the severity rank (their deviations count as medium) and the spool time.
    const spoolColumns = new Set(db.prepare(`SELECT name FROM pragma_table_info('spool')`).pluck().all() as string[]);
    if (!spoolColumns.has('severity')) db.exec(`ALTER TABLE spool ADD COLUMN severity INTEGER NOT NULL DEFAULT 2`);
    if (!spoolColumns.has('spooled_at')) {
      db.exec(`ALTER TABLE spool ADD COLUMN spooled_at INTEGER NOT NULL DEFAULT 0`);
      db.prepare(`UPDATE spool SET spooled_at = ?`).run(now());
    }
    db.exec(`CREATE INDEX IF NOT EXISTS spool_evict ON spool(kind, severity DESC, seq)`);
    if (legacy) {
      const header = db.prepare(`INSERT OR REPLACE INTO baselines (key, header) VALUES (?, ?)`);
      const entry = db.prepare(`INSERT OR REPLACE INTO entries (key, id, first_seen, last_seen, count, nodes, examples) VALUES (?, ?, ?, ?, ?, ?, ?)`);
      // One snapshot at a time (a write cannot run while a read iterates on the same connection).
      const one = db.prepare(`SELECT snapshot FROM baselines_v1 WHERE key = ?`).pluck();
      for (const key of db.prepare(`SELECT key FROM baselines_v1`).pluck().all() as string[]) {
        const { entries, ...h } = JSON.parse(one.get(key) as string) as BaselineSnapshot;
        header.run(h.key, JSON.stringify(h));
        for (const e of entries) entry.run(h.key, e.id, e.firstSeen, e.lastSeen, e.count, JSON.stringify(e.nodes), JSON.stringify(e.examples.slice(0, MAX_EXAMPLES)));
      }
      db.exec(`DROP TABLE baselines_v1`);
    }
    db.pragma(`user_version = ${SCHEMA_VERSION}`);
  })();
}
