/**
 * The spool: records waiting for the collector's ack, oldest first, bounded in bytes. Deviations are
 * spooled once per id; a baseline delta is merged into the one already queued for its key, so at most
 * one is queued per baseline and deltas are never dropped. When the spool overflows, deviations go
 * lowest severity first (as the agent ranked them), oldest first within a severity.
 */
import type Database from 'better-sqlite3';
import { MAX_EXAMPLES, type BaselineSnapshot } from '../../core/baseline.js';
import type { Deviation } from '../../core/deviation.js';
import { unite } from '../../core/merge.js';
import { SEVERITIES, type Severity } from '../../core/severity.js';

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

/** The spool's rows; every write runs inside the caller's transaction except remove, which is its own. */
export interface Spool {
  /** Queue a baseline delta, merged into the one already queued for its key, if any. */
  queueDelta(delta: BaselineSnapshot): void;
  /** Spool deviations written at `at`; returns how many were new (an id already spooled is stored once). */
  addDeviations(deviations: readonly SpoolDeviation[], at: number): number;
  /** Drop deviations until the spool fits its bound: how many, and how many of each severity. */
  evictOverflow(): { evicted: number; evictedBySeverity: Partial<Record<Severity, number>> };
  /** Records after `afterSeq`, oldest first, at most `limit` and about `maxBytes`. */
  peek(afterSeq: number, limit: number, maxBytes: number): SpoolRecord[];
  /** Remove acknowledged records. */
  remove(seqs: readonly number[]): void;
  count(): number;
  bytes(): number;
  /** Wall-clock time (ms) the oldest record still in the spool was written, or null when it is empty. */
  oldestSpooledAt(): number | null;
}

/** The spool in `db`, bounded by `maxSpoolBytes`; `now` is the wall clock (the age of spooled records). */
export function createSpool(db: Database.Database, maxSpoolBytes: number, now: () => number): Spool {
  const insertDeviation = db.prepare(`INSERT OR IGNORE INTO spool (kind, ref, body, bytes, severity, spooled_at) VALUES ('deviation', ?, ?, ?, ?, ?)`);
  // A newer delta of a baseline is merged into a queued older one and takes a new seq, so an in-flight
  // ack of the old one removes nothing that was not sent.
  const upsertDeltaSpool = db.prepare(`INSERT OR REPLACE INTO spool (kind, ref, body, bytes, severity, spooled_at) VALUES ('baseline', ?, ?, ?, 0, ?)`);
  const queuedDelta = db.prepare(`SELECT body, bytes, spooled_at FROM spool WHERE kind = 'baseline' AND ref = ?`);
  const selectAfter = db.prepare(`SELECT seq, kind, body, bytes FROM spool WHERE seq > ? ORDER BY seq LIMIT ?`);
  const deleteSeq = db.prepare(`DELETE FROM spool WHERE seq = ? RETURNING bytes`).pluck();
  const countRows = db.prepare(`SELECT count(*) FROM spool`).pluck();
  const sumBytes = db.prepare(`SELECT coalesce(sum(bytes), 0) FROM spool`).pluck();
  // The overflow policy's order: lowest severity (highest rank) first, then oldest (see spool_evict).
  const evictionVictims = db.prepare(`SELECT seq, bytes, severity FROM spool WHERE kind = 'deviation' ORDER BY severity DESC, seq LIMIT ?`);
  const oldestSpooled = db.prepare(`SELECT spooled_at FROM spool ORDER BY seq LIMIT 1`).pluck();

  let bytes = sumBytes.get() as number;

  /** Queue a delta for the collector, merged into the one already queued for its key, if any. */
  function queueDelta(delta: BaselineSnapshot): void {
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

  const removeTx = db.transaction((seqs: readonly number[]) => {
    for (const seq of seqs) bytes -= (deleteSeq.get(seq) as number | undefined) ?? 0;
  });

  return {
    queueDelta,
    addDeviations(deviations, at) {
      let spooled = 0;
      for (const { deviation: d, severity } of deviations) {
        const body = JSON.stringify(d);
        const size = Buffer.byteLength(body);
        if (insertDeviation.run(d.id, body, size, severityRank(severity), at).changes === 1) {
          spooled++;
          bytes += size;
        }
      }
      return spooled;
    },
    evictOverflow() {
      let evicted = 0;
      const evictedBySeverity: Partial<Record<Severity, number>> = {};
      // Drop the lowest-severity deviations, oldest first among equals, until the spool fits. A deviation
      // just committed may be the one dropped, when everything older is more severe.
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
      return { evicted, evictedBySeverity };
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
    count: () => countRows.get() as number,
    bytes: () => bytes,
    oldestSpooledAt: () => (oldestSpooled.get() as number | undefined) ?? null,
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
