/**
 * The SQLite store: one file, WAL, synchronous=FULL (a batch is acknowledged only after its commit
 * is on disk), prepared statements only.
 */
import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import Database from 'better-sqlite3';
import type { BaselineSnapshot, BaselineState } from '../../core/baseline.js';
import { deviationFingerprint, type Deviation } from '../../core/deviation.js';
import { coveringEntryId, entryFromId, entryId, exampleOf, generalPeerOf, type Entry } from '../../core/entry.js';
import type { EventKind } from '../../core/event.js';
import { mergeHeaders, unite, type SnapshotHeader } from '../../core/merge.js';
import { SEVERITIES, baselineFactsOf, type BaselineFacts, type Severity } from '../../core/severity.js';
import type { Alert, AlertException, AlertPolicy, AlertState, AlertTransition, OutboxEntry, OutboxItem } from '../alerting/alert.js';
import {
  CursorError,
  type BaselineChange,
  type BaselineSummary,
  type BaselineVersion,
  type BaselineView,
  type ClusterBaseline,
  type EntryStatus,
  type PreparedBatch,
  type PreparedDeviation,
  type IngestResult,
  type ReviewResult,
  type ReviewedEntry,
  type ReviewedState,
  type TransitionResult,
  type Page,
  type Store,
  type StoredDeviation,
} from './store.js';
import type { NodeDropResult, NodeRecord, NodeStore, QuarantinedNode, StoreRefusal } from './store.js';

/** Whether `id` is an entry id that reads back as itself (rows written before ids were checked may not). */
function validEntryId(id: string): boolean {
  try {
    return entryId(entryFromId(id)) === id;
  } catch {
    return false;
  }
}

/** What the store logs: rows it repaired or skipped. */
export interface StoreLogger {
  warn(fields: Record<string, unknown>, message: string): void;
}

/** The stored (unique) id of a deviation: the agent's id scoped by its node, so no node can collide with another's. */
export function scopedDeviationId(node: string, id: string): string {
  // Node names (RFC 1123) have no ':', so the scoped id is unambiguous.
  return `${node}:${id}`;
}

/** Most nodes and pods an alert lists. */
const MAX_ALERT_NODES = 64;
const MAX_ALERT_PODS = 64;
/** Most raw examples the merged baseline keeps per entry, from all nodes. */
const MAX_MERGED_EXAMPLES = 5;
/** Most nodes listed per entry when a baseline is read (the count of nodes is exact). */
const MAX_LISTED_NODES = 64;
/**
 * Most entries in one key's cluster baseline (merged from every node, approved and added ones
 * included): a node cannot grow a key past it (the agents' own bound is 2,000 per baseline and node).
 * Deltas' new entries beyond it are refused and counted (`key_full`).
 */
export const MAX_ENTRIES_PER_KEY = 20_000;
/**
 * The schema revision this code writes (PRAGMA user_version). Revision 4: deviation ids scoped by
 * node (`node:id`), and baseline entry rows whose id does not read back as an entry repaired away.
 */
const SCHEMA_VERSION = 4;
/** Columns revision 3 added to alerts, with their definitions (ALTER TABLE on older files). */
const ALERT_COLUMNS_V3: readonly [string, string][] = [
  ['severity', `TEXT NOT NULL DEFAULT 'medium'`],
  ['rule_id', `TEXT NOT NULL DEFAULT ''`],
  ['rule_reason', `TEXT NOT NULL DEFAULT ''`],
  ['team', `TEXT NOT NULL DEFAULT ''`],
  ['namespace', `TEXT NOT NULL DEFAULT ''`],
  ['labels', `TEXT NOT NULL DEFAULT '{}'`],
  ['receivers', `TEXT NOT NULL DEFAULT '[]'`],
  ['suppressed_by', `TEXT NOT NULL DEFAULT ''`],
  ['state_by', `TEXT NOT NULL DEFAULT ''`],
  ['state_at', `INTEGER NOT NULL DEFAULT 0`],
  ['state_comment', `TEXT NOT NULL DEFAULT ''`],
];
/** Most pod labels kept on an alert, and longest label value. */
const MAX_ALERT_LABELS = 32;
/** Deliveries listed per alert. */
const MAX_LISTED_DELIVERIES = 50;

interface AlertRow {
  seq: number;
  fingerprint: string;
  state: AlertState;
  baseline_key: string;
  image: string;
  kind: EventKind;
  entry: string;
  reason: string;
  explanation: string;
  nearest: string;
  first_seen: number;
  last_seen: number;
  count: number;
  nodes: string;
  pods: string;
  last_deviation_id: string;
  example: string;
  created_at: number;
  severity: Severity;
  rule_id: string;
  rule_reason: string;
  team: string;
  namespace: string;
  labels: string;
  receivers: string;
  suppressed_by: string;
  state_by: string;
  state_at: number;
  state_comment: string;
}

interface OutboxRow {
  seq: number;
  alert: string;
  sink: string;
  action: string;
  body: string;
  state: OutboxItem['state'];
  attempts: number;
  next_at: number;
  last_error: string;
  created_at: number;
  done_at: number;
}

function outboxOf(r: OutboxRow): OutboxItem {
  return {
    seq: r.seq,
    alert: r.alert,
    sink: r.sink,
    action: r.action,
    body: r.body,
    state: r.state,
    attempts: r.attempts,
    nextAt: r.next_at,
    lastError: r.last_error,
    createdAt: r.created_at,
    doneAt: r.done_at,
  };
}

interface ExceptionRow {
  id: string;
  key_glob: string;
  entry_glob: string;
  namespace: string;
  reason: string;
  owner: string;
  created_by: string;
  created_at: number;
  expires_at: number;
  revoked_at: number;
  revoked_by: string;
  reminded_at: number;
}

function exceptionOf(r: ExceptionRow): AlertException {
  return {
    id: r.id,
    key: r.key_glob,
    entry: r.entry_glob,
    namespace: r.namespace,
    reason: r.reason,
    owner: r.owner,
    createdBy: r.created_by,
    createdAt: r.created_at,
    expiresAt: r.expires_at,
    revokedAt: r.revoked_at,
    revokedBy: r.revoked_by,
    remindedAt: r.reminded_at,
  };
}

/** A deviation's pod labels, bounded, as stored on its alert. */
function labelsOf(d: Deviation): Record<string, string> {
  const out: Record<string, string> = {};
  let n = 0;
  for (const [k, v] of Object.entries(d.event.pod?.labels ?? {})) {
    if (n++ >= MAX_ALERT_LABELS) break;
    out[k] = v;
  }
  return out;
}

/** The default decision when the caller gives no policy (tests of the store alone). */
const NO_POLICY: AlertPolicy = {
  decide: () => ({ severity: 'medium', ruleId: 'unmatched', ruleReason: '', team: '', receivers: [] }),
  exceptionFor: () => '',
};

function alertOf(r: AlertRow): Alert {
  return {
    fingerprint: r.fingerprint,
    state: r.state,
    baselineKey: r.baseline_key,
    image: r.image,
    kind: r.kind,
    entry: JSON.parse(r.entry) as Entry,
    reason: r.reason,
    explanation: r.explanation,
    nearest: JSON.parse(r.nearest) as string[],
    firstSeen: r.first_seen,
    lastSeen: r.last_seen,
    count: r.count,
    nodes: JSON.parse(r.nodes) as string[],
    pods: JSON.parse(r.pods) as string[],
    lastDeviationId: r.last_deviation_id,
    example: r.example,
    createdAt: r.created_at,
    severity: r.severity,
    ruleId: r.rule_id,
    ruleReason: r.rule_reason,
    team: r.team,
    namespace: r.namespace,
    labels: JSON.parse(r.labels) as Record<string, string>,
    receivers: JSON.parse(r.receivers) as string[],
    suppressedBy: r.suppressed_by,
    stateBy: r.state_by,
    stateAt: r.state_at,
    stateComment: r.state_comment,
  };
}

function encodeCursor(seq: number): string {
  return Buffer.from(`s${seq}`).toString('base64url');
}

function decodeCursor(cursor: string | undefined): number {
  if (cursor === undefined) return Number.MAX_SAFE_INTEGER;
  const text = Buffer.from(cursor, 'base64url').toString('utf8');
  if (!/^s\d{1,15}$/.test(text)) throw new CursorError();
  return Number(text.slice(1));
}

/**
 * A write transaction that takes the write lock at BEGIN (BEGIN IMMEDIATE). The collector writes
 * through two connections (the ingest worker's and the main thread's), and a deferred transaction
 * that read first could not upgrade to writing after the other committed (SQLITE_BUSY_SNAPSHOT, which
 * the busy timeout does not wait out). Nested calls run as savepoints, as with db.transaction.
 */
function writeTransaction<A extends unknown[], R>(db: Database.Database, fn: (...args: A) => R): (...args: A) => R {
  const tx = db.transaction(fn);
  return (...args) => tx.immediate(...args);
}

/**
 * Prepares deviations for the store (see PreparedDeviation). Fingerprints are cached by (key, entry):
 * a storm repeats a few fingerprints, each a sha256. Bounded. `keep` attaches the deviation itself
 * (same thread: the store then never parses the body back).
 */
export function createDeviationPreparer(): (d: Deviation, keep?: boolean) => PreparedDeviation {
  const cache = new Map<string, { fingerprint: string; entryId: string }>();
  return (d, keep = false) => {
    const id = entryId(d.entry);
    const text = `${d.key}\n${id}`;
    let fp = cache.get(text);
    if (fp === undefined) {
      fp = { fingerprint: deviationFingerprint(d), entryId: id };
      if (cache.size >= 50_000) cache.clear();
      cache.set(text, fp);
    }
    const ev = d.event;
    const pod = ev.pod ? `${ev.pod.namespace}/${ev.pod.name}` : '';
    return { id: d.id, fingerprint: fp.fingerprint, entryId: id, key: d.key, kind: ev.kind, time: ev.time, node: ev.node, pod, body: JSON.stringify(d), deviation: keep ? d : undefined };
  };
}

/** The deviation a prepared one stands for (parsed from its body once, when it did not come along). */
function deviationOf(p: PreparedDeviation): Deviation {
  return (p.deviation ??= JSON.parse(p.body) as Deviation);
}

/** From which states each transition may start. */
const ALLOWED_FROM: Readonly<Record<AlertTransition['to'], readonly AlertState[]>> = {
  acknowledged: ['firing'],
  resolved: ['firing', 'acknowledged'],
  accepted: ['firing', 'acknowledged', 'resolved'],
};

function imageOfKey(d: Deviation): string {
  return d.event.container?.image.repository ?? d.key;
}

/** Open (creating if needed) the store at `path`. */
export function openSqliteStore(path: string, options: { busyTimeoutMs?: number; logger?: StoreLogger | undefined } = {}): Store {
  const log: StoreLogger = options.logger ?? { warn: () => undefined };
  if (path !== ':memory:') mkdirSync(dirname(path), { recursive: true });
  const db = new Database(path);
  db.pragma('journal_mode = WAL');
  db.pragma('synchronous = FULL');
  // How long a write waits for the other connection's transaction (see writeTransaction).
  db.pragma(`busy_timeout = ${Math.trunc(options.busyTimeoutMs ?? 5_000)}`);
  db.pragma('foreign_keys = ON');
  const schema = db.pragma('user_version', { simple: true }) as number;
  if (schema > SCHEMA_VERSION) throw new Error(`${path} was written by a newer Driftwatch (schema ${schema}; this one reads up to ${SCHEMA_VERSION})`);
  // Revision 1 kept one JSON snapshot per key and node, and entry ids only in baseline_entries.
  const legacy = (db.prepare(`SELECT count(*) FROM sqlite_master WHERE name = 'baseline_snapshots'`).pluck().get() as number) > 0;
  if (legacy) db.exec(`DROP TABLE IF EXISTS baseline_entries`);
  db.exec(`
    CREATE TABLE IF NOT EXISTS deviations (
      seq              INTEGER PRIMARY KEY,
      id               TEXT NOT NULL UNIQUE,
      fingerprint      TEXT NOT NULL,
      baseline_key     TEXT NOT NULL,
      kind             TEXT NOT NULL,
      time             INTEGER NOT NULL,
      received_at      INTEGER NOT NULL,
      node             TEXT NOT NULL,
      body             TEXT NOT NULL
    );
    CREATE INDEX IF NOT EXISTS deviations_fingerprint ON deviations(fingerprint, seq);
    CREATE INDEX IF NOT EXISTS deviations_key ON deviations(baseline_key, seq);
    CREATE INDEX IF NOT EXISTS deviations_node ON deviations(node, seq);
    CREATE TABLE IF NOT EXISTS alerts (
      seq               INTEGER PRIMARY KEY,
      fingerprint       TEXT NOT NULL UNIQUE,
      state             TEXT NOT NULL DEFAULT 'firing',
      baseline_key      TEXT NOT NULL,
      image             TEXT NOT NULL,
      kind              TEXT NOT NULL,
      entry             TEXT NOT NULL,
      reason            TEXT NOT NULL,
      explanation       TEXT NOT NULL,
      nearest           TEXT NOT NULL,
      first_seen        INTEGER NOT NULL,
      last_seen         INTEGER NOT NULL,
      count             INTEGER NOT NULL,
      nodes             TEXT NOT NULL,
      pods              TEXT NOT NULL,
      last_deviation_id TEXT NOT NULL,
      example           TEXT NOT NULL,
      created_at        INTEGER NOT NULL
    );
    CREATE INDEX IF NOT EXISTS alerts_image ON alerts(image, seq);
    -- Per baseline key and node: the header of the newest delta that node sent.
    CREATE TABLE IF NOT EXISTS baseline_nodes (
      key         TEXT NOT NULL,
      node        TEXT NOT NULL,
      version     INTEGER NOT NULL,
      received_at INTEGER NOT NULL,
      header      TEXT NOT NULL,
      PRIMARY KEY (key, node)
    ) WITHOUT ROWID;
    -- Per key, entry and node: that node's own absolute stats. Deltas carry absolute stats, so a
    -- resent or late delta changes nothing here, and the difference feeds the merged row exactly.
    CREATE TABLE IF NOT EXISTS baseline_entry_nodes (
      key        TEXT NOT NULL,
      entry_id   TEXT NOT NULL,
      node       TEXT NOT NULL,
      first_seen INTEGER NOT NULL,
      last_seen  INTEGER NOT NULL,
      count      INTEGER NOT NULL,
      PRIMARY KEY (key, entry_id, node)
    ) WITHOUT ROWID;
    -- Per key and entry: the cluster-wide merge (counts summed over nodes, first/last widened).
    CREATE TABLE IF NOT EXISTS baseline_entries (
      key        TEXT NOT NULL,
      entry_id   TEXT NOT NULL,
      type       TEXT NOT NULL,
      first_seen INTEGER NOT NULL,
      last_seen  INTEGER NOT NULL,
      count      INTEGER NOT NULL,
      nodes      INTEGER NOT NULL,
      examples   TEXT NOT NULL,
      PRIMARY KEY (key, entry_id)
    ) WITHOUT ROWID;
    -- Notifications for sinks: written in the transaction that decides them, delivered by the
    -- outbox worker, retried with backoff across restarts; the row stays as the delivery record.
    CREATE TABLE IF NOT EXISTS outbox (
      seq        INTEGER PRIMARY KEY,
      alert      TEXT NOT NULL,
      sink       TEXT NOT NULL,
      action     TEXT NOT NULL,
      body       TEXT NOT NULL,
      state      TEXT NOT NULL,
      attempts   INTEGER NOT NULL DEFAULT 0,
      next_at    INTEGER NOT NULL,
      last_error TEXT NOT NULL DEFAULT '',
      created_at INTEGER NOT NULL,
      done_at    INTEGER NOT NULL DEFAULT 0
    );
    CREATE INDEX IF NOT EXISTS outbox_due ON outbox(sink, state, next_at, seq);
    CREATE INDEX IF NOT EXISTS outbox_alert ON outbox(alert, seq);
    -- Review: what security decided. State override per key ('' follows the agents; locked,
    -- enforcing (imported) or relearn), each entry's status, and every version with its entries.
    CREATE TABLE IF NOT EXISTS baseline_reviews (
      key     TEXT PRIMARY KEY,
      state   TEXT NOT NULL DEFAULT '',
      version INTEGER NOT NULL DEFAULT 0
    ) WITHOUT ROWID;
    CREATE TABLE IF NOT EXISTS baseline_entry_reviews (
      key      TEXT NOT NULL,
      entry_id TEXT NOT NULL,
      status   TEXT NOT NULL,
      by       TEXT NOT NULL,
      at       INTEGER NOT NULL,
      reason   TEXT NOT NULL,
      PRIMARY KEY (key, entry_id)
    ) WITHOUT ROWID;
    CREATE TABLE IF NOT EXISTS baseline_versions (
      key     TEXT NOT NULL,
      version INTEGER NOT NULL,
      at      INTEGER NOT NULL,
      by      TEXT NOT NULL,
      action  TEXT NOT NULL,
      reason  TEXT NOT NULL,
      state   TEXT NOT NULL,
      entries TEXT NOT NULL,
      removed TEXT NOT NULL,
      PRIMARY KEY (key, version)
    ) WITHOUT ROWID;
    CREATE TABLE IF NOT EXISTS exceptions (
      id          TEXT PRIMARY KEY,
      key_glob    TEXT NOT NULL,
      entry_glob  TEXT NOT NULL,
      namespace   TEXT NOT NULL,
      reason      TEXT NOT NULL,
      owner       TEXT NOT NULL,
      created_by  TEXT NOT NULL,
      created_at  INTEGER NOT NULL,
      expires_at  INTEGER NOT NULL,
      revoked_at  INTEGER NOT NULL DEFAULT 0,
      revoked_by  TEXT NOT NULL DEFAULT '',
      reminded_at INTEGER NOT NULL DEFAULT 0
    ) WITHOUT ROWID;
  `);
  const alertColumns = new Set((db.prepare(`SELECT name FROM pragma_table_info('alerts')`).pluck().all() as string[]));
  for (const [name, definition] of ALERT_COLUMNS_V3) if (!alertColumns.has(name)) db.exec(`ALTER TABLE alerts ADD COLUMN ${name} ${definition}`);
  db.exec(`
    CREATE TABLE IF NOT EXISTS quarantined_nodes (
      node   TEXT PRIMARY KEY,
      by     TEXT NOT NULL,
      at     INTEGER NOT NULL,
      reason TEXT NOT NULL
    ) WITHOUT ROWID;
  `);
  if (schema < 4) {
    writeTransaction(db, () => {
      // Older versions took entry ids as agents sent them; one that does not read back as an entry
      // broke every read of its key. Such rows go, with a log line each (bounded).
      const bad: { key: string; entry_id: string }[] = [];
      for (const table of ['baseline_entries', 'baseline_entry_nodes', 'baseline_entry_reviews']) {
        for (const r of db.prepare(`SELECT DISTINCT key, entry_id FROM ${table}`).iterate() as IterableIterator<{ key: string; entry_id: string }>) {
          if (!validEntryId(r.entry_id)) bad.push(r);
        }
      }
      const seen = new Set<string>();
      for (const r of bad) {
        const k = `${r.key}\n${r.entry_id}`;
        if (seen.has(k)) continue;
        seen.add(k);
        for (const table of ['baseline_entries', 'baseline_entry_nodes', 'baseline_entry_reviews']) db.prepare(`DELETE FROM ${table} WHERE key = ? AND entry_id = ?`).run(r.key, r.entry_id);
        if (seen.size <= 100) log.warn({ key: r.key.slice(0, 256), entryId: r.entry_id.slice(0, 256) }, 'removed a stored baseline entry whose id is not an entry id');
      }
      if (seen.size > 100) log.warn({ removed: seen.size }, 'removed stored baseline entries whose id is not an entry id');
      // Deviation ids were unique across nodes; they are unique per node now.
      db.exec(`UPDATE deviations SET id = node || ':' || id WHERE instr(id, ':') = 0`);
    })();
  }
  db.exec(`
    CREATE INDEX IF NOT EXISTS alerts_severity ON alerts(severity, seq);
    CREATE INDEX IF NOT EXISTS alerts_namespace ON alerts(namespace, seq);
    CREATE INDEX IF NOT EXISTS alerts_state ON alerts(state, seq);
  `);
  // Open alerts per baseline key, for the baseline list: a counter kept exact by triggers on every
  // path that inserts, changes the state of, or deletes an alert, so the list reads one row per key
  // instead of counting every open alert (it was 35 ms at 10k deviations, 65 ms at 10M).
  const OPEN = `('firing', 'acknowledged')`; // the open states, as an SQL list (a constant, never input)
  const hadCounts = (db.prepare(`SELECT count(*) FROM sqlite_master WHERE name = 'baseline_open_alerts'`).pluck().get() as number) > 0;
  db.exec(`
    DROP INDEX IF EXISTS alerts_state_key;
    CREATE TABLE IF NOT EXISTS baseline_open_alerts (key TEXT PRIMARY KEY, n INTEGER NOT NULL) WITHOUT ROWID;
    CREATE TRIGGER IF NOT EXISTS alerts_open_insert AFTER INSERT ON alerts WHEN new.state IN ${OPEN} BEGIN
      INSERT INTO baseline_open_alerts (key, n) VALUES (new.baseline_key, 1) ON CONFLICT (key) DO UPDATE SET n = n + 1;
    END;
    CREATE TRIGGER IF NOT EXISTS alerts_open_delete AFTER DELETE ON alerts WHEN old.state IN ${OPEN} BEGIN
      UPDATE baseline_open_alerts SET n = n - 1 WHERE key = old.baseline_key;
    END;
    CREATE TRIGGER IF NOT EXISTS alerts_open_update AFTER UPDATE OF state, baseline_key ON alerts
    WHEN (old.state IN ${OPEN}) != (new.state IN ${OPEN}) OR old.baseline_key != new.baseline_key BEGIN
      UPDATE baseline_open_alerts SET n = n - 1 WHERE key = old.baseline_key AND old.state IN ${OPEN};
      INSERT INTO baseline_open_alerts (key, n) SELECT new.baseline_key, 1 WHERE new.state IN ${OPEN} ON CONFLICT (key) DO UPDATE SET n = n + 1;
    END;
  `);
  if (!hadCounts) {
    db.exec(`INSERT INTO baseline_open_alerts (key, n) SELECT baseline_key, count(*) FROM alerts WHERE state IN ${OPEN} GROUP BY baseline_key`);
  }

  const insertDeviation = db.prepare(
    `INSERT OR IGNORE INTO deviations (id, fingerprint, baseline_key, kind, time, received_at, node, body) VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
  );
  const selectAlert = db.prepare(`SELECT * FROM alerts WHERE fingerprint = ?`);
  const insertAlert = db.prepare(`
    INSERT INTO alerts (fingerprint, baseline_key, image, kind, entry, reason, explanation, nearest, first_seen, last_seen, count, nodes, pods, last_deviation_id, example, created_at,
      severity, rule_id, rule_reason, team, namespace, labels, receivers, suppressed_by)
    VALUES (@fingerprint, @baselineKey, @image, @kind, @entry, @reason, @explanation, @nearest, @firstSeen, @lastSeen, @count, @nodes, @pods, @lastDeviationId, @example, @createdAt,
      @severity, @ruleId, @ruleReason, @team, @namespace, @labels, @receivers, @suppressedBy)`);
  // An alert that grows: most of a storm. Its state (indexed twice) is not in the SET list, so
  // SQLite leaves those indexes alone; a resolved alert that comes back takes reopenAlert instead.
  const growAlert = `count = count + @count, first_seen = min(first_seen, @minTime), last_seen = max(last_seen, @maxTime),
      nodes = @nodes, pods = @pods, suppressed_by = @suppressedBy,
      last_deviation_id = CASE WHEN @maxTime >= last_seen THEN @id ELSE last_deviation_id END,
      example = CASE WHEN @maxTime >= last_seen THEN @example ELSE example END`;
  const updateAlert = db.prepare(`UPDATE alerts SET ${growAlert} WHERE fingerprint = @fingerprint`);
  const reopenAlert = db.prepare(`UPDATE alerts SET ${growAlert}, state = 'firing', state_by = '', state_at = @receivedAt WHERE fingerprint = @fingerprint`);
  const selectAlertToGrow = db.prepare(`SELECT state, suppressed_by, nodes, pods FROM alerts WHERE fingerprint = ?`);
  const upsertHeader = db.prepare(`
    INSERT INTO baseline_nodes (key, node, version, received_at, header) VALUES (?, ?, ?, ?, ?)
    ON CONFLICT (key, node) DO UPDATE SET version = excluded.version, received_at = excluded.received_at, header = excluded.header
    WHERE excluded.version >= baseline_nodes.version`);
  const selectNodeEntry = db.prepare(`SELECT first_seen, last_seen, count FROM baseline_entry_nodes WHERE key = ? AND entry_id = ? AND node = ?`);
  const upsertNodeEntry = db.prepare(`
    INSERT INTO baseline_entry_nodes (key, entry_id, node, first_seen, last_seen, count) VALUES (?, ?, ?, ?, ?, ?)
    ON CONFLICT (key, entry_id, node) DO UPDATE SET first_seen = min(first_seen, excluded.first_seen),
      last_seen = max(last_seen, excluded.last_seen), count = max(count, excluded.count)`);
  const selectMergedExamples = db.prepare(`SELECT examples FROM baseline_entries WHERE key = ? AND entry_id = ?`).pluck();
  const upsertMergedEntry = db.prepare(`
    INSERT INTO baseline_entries (key, entry_id, type, first_seen, last_seen, count, nodes, examples) VALUES (@key, @id, @type, @first, @last, @count, @newNodes, @examples)
    ON CONFLICT (key, entry_id) DO UPDATE SET first_seen = min(first_seen, @first), last_seen = max(last_seen, @last),
      count = count + @count, nodes = nodes + @newNodes, examples = coalesce(@merged, examples)`);
  const selectHeadersOfKey = db.prepare(`SELECT node, header FROM baseline_nodes WHERE key = ?`);
  const selectEntriesOfKey = db.prepare(`SELECT entry_id, first_seen, last_seen, count, examples FROM baseline_entries WHERE key = ? ORDER BY entry_id`);
  const selectEntryNodesOfKey = db.prepare(`SELECT entry_id, node FROM baseline_entry_nodes WHERE key = ? ORDER BY entry_id, node`);
  const selectAllHeaders = db.prepare(`SELECT key, node, header FROM baseline_nodes ORDER BY key`);
  const countEntriesByKey = db.prepare(`SELECT key, sum(type = 'process') AS process, count(*) AS total FROM baseline_entries GROUP BY key`);
  const countDeviations = db.prepare(`SELECT count(*) FROM deviations`).pluck();
  const countEntriesOfKey = db.prepare(`SELECT count(*) FROM baseline_entries WHERE key = ?`).pluck();
  const isQuarantined = db.prepare(`SELECT 1 FROM quarantined_nodes WHERE node = ?`).pluck();
  const insertQuarantine = db.prepare(`INSERT OR IGNORE INTO quarantined_nodes (node, by, at, reason) VALUES (?, ?, ?, ?)`);
  const deleteQuarantine = db.prepare(`DELETE FROM quarantined_nodes WHERE node = ?`);
  const selectQuarantined = db.prepare(`SELECT node, by, at, reason FROM quarantined_nodes ORDER BY node`);
  const quarantinedNames = db.prepare(`SELECT node FROM quarantined_nodes`).pluck();
  const keysOfNode = db.prepare(`SELECT key FROM baseline_nodes WHERE node = ? UNION SELECT DISTINCT key FROM baseline_entry_nodes WHERE node = ?`).pluck();
  const nodeEntriesOfKey = db.prepare(`SELECT entry_id, count FROM baseline_entry_nodes WHERE key = ? AND node = ?`);
  const otherNodesOfEntry = db.prepare(`SELECT count(*) FROM baseline_entry_nodes WHERE key = ? AND entry_id = ? AND node != ?`).pluck();
  const statusOf = db.prepare(`SELECT status FROM baseline_entry_reviews WHERE key = ? AND entry_id = ?`).pluck();
  const shrinkMergedEntry = db.prepare(`UPDATE baseline_entries SET count = max(0, count - ?), nodes = max(0, nodes - 1) WHERE key = ? AND entry_id = ?`);
  const deleteMergedEntry = db.prepare(`DELETE FROM baseline_entries WHERE key = ? AND entry_id = ?`);
  const deleteEntryStatus = db.prepare(`DELETE FROM baseline_entry_reviews WHERE key = ? AND entry_id = ? AND status IN ('learned', 'flagged')`);
  const deleteNodeEntriesOfKey = db.prepare(`DELETE FROM baseline_entry_nodes WHERE key = ? AND node = ?`);
  const deleteNodeHeaderOfKey = db.prepare(`DELETE FROM baseline_nodes WHERE key = ? AND node = ?`);
  // Known to the cluster: merged from the agents or added by security, and not removed by security.
  const knownEntry = db
    .prepare(
      `SELECT 1 FROM baseline_entries e WHERE e.key = ? AND e.entry_id = ?
       AND NOT EXISTS (SELECT 1 FROM baseline_entry_reviews r WHERE r.key = e.key AND r.entry_id = e.entry_id AND r.status = 'removed')`,
    )
    .pluck();
  // Blocks and classes of a key (their peer holds a '/' or is @public), not removed: a deviation they cover is not news either.
  const generalizedEntryIds = db
    .prepare(
      `SELECT entry_id FROM baseline_entries e WHERE e.key = ? AND e.type = 'network' AND (instr(e.entry_id, '/') > 0 OR instr(e.entry_id, '|@public|') > 0)
       AND NOT EXISTS (SELECT 1 FROM baseline_entry_reviews r WHERE r.key = e.key AND r.entry_id = e.entry_id AND r.status = 'removed')`,
    )
    .pluck();
  const processEntryIds = db
    .prepare(
      `SELECT entry_id FROM baseline_entries e WHERE e.key = ? AND e.type = 'process'
       AND NOT EXISTS (SELECT 1 FROM baseline_entry_reviews r WHERE r.key = e.key AND r.entry_id = e.entry_id AND r.status = 'removed')`,
    )
    .pluck();
  const selectReview = db.prepare(`SELECT state, version FROM baseline_reviews WHERE key = ?`);
  const upsertReview = db.prepare(`INSERT INTO baseline_reviews (key, state, version) VALUES (?, ?, ?) ON CONFLICT (key) DO UPDATE SET state = excluded.state, version = excluded.version`);
  const clearRelearn = db.prepare(`UPDATE baseline_reviews SET state = '' WHERE key = ? AND state = 'relearn'`);
  const selectStatuses = db.prepare(`SELECT entry_id, status, reason FROM baseline_entry_reviews WHERE key = ?`);
  const upsertStatus = db.prepare(`
    INSERT INTO baseline_entry_reviews (key, entry_id, status, by, at, reason) VALUES (?, ?, ?, ?, ?, ?)
    ON CONFLICT (key, entry_id) DO UPDATE SET status = excluded.status, by = excluded.by, at = excluded.at, reason = excluded.reason`);
  const deleteFlags = db.prepare(`DELETE FROM baseline_entry_reviews WHERE key = ? AND status = 'flagged'`);
  const insertFlag = db.prepare(`INSERT OR IGNORE INTO baseline_entry_reviews (key, entry_id, status, by, at, reason) VALUES (?, ?, ?, ?, ?, ?)`);
  const insertVersion = db.prepare(`INSERT INTO baseline_versions (key, version, at, by, action, reason, state, entries, removed) VALUES (@key, @version, @at, @by, @action, @reason, @state, @entries, @removed)`);
  const selectVersions = db.prepare(`SELECT * FROM baseline_versions WHERE key = ? ORDER BY version DESC LIMIT 1000`);
  const selectVersion = db.prepare(`SELECT * FROM baseline_versions WHERE key = ? AND version = ?`);
  const mergedExists = db.prepare(`SELECT 1 FROM baseline_entries WHERE key = ? AND entry_id = ?`).pluck();
  const selectNodeHeaderState = db.prepare(`SELECT json_extract(header, '$.state') FROM baseline_nodes WHERE key = ? AND node = ?`).pluck();
  const deleteNodeHeaders = db.prepare(`DELETE FROM baseline_nodes WHERE key = ?`);
  const deleteNodeEntries = db.prepare(`DELETE FROM baseline_entry_nodes WHERE key = ?`);
  const deleteLearnedEntries = db.prepare(`
    DELETE FROM baseline_entries WHERE key = ?
    AND entry_id NOT IN (SELECT entry_id FROM baseline_entry_reviews WHERE key = ? AND status IN ('approved', 'added'))`);
  const openAlertsByKey = db.prepare(`SELECT key, n FROM baseline_open_alerts WHERE n > 0`);
  const reviewedKeys = db.prepare(`SELECT key FROM baseline_reviews`).pluck();
  const keysPastLearning = db.prepare(`SELECT DISTINCT key FROM baseline_nodes WHERE json_extract(header, '$.state') != 'learning'`).pluck();
  const setAlertState = db.prepare(`UPDATE alerts SET state = @to, state_by = @by, state_at = @at, state_comment = @comment WHERE fingerprint = @fingerprint`);
  const insertOutbox = db.prepare(`INSERT INTO outbox (alert, sink, action, body, state, next_at, last_error, created_at, done_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`);
  const selectDue = db.prepare(`SELECT * FROM outbox WHERE sink = ? AND state = 'pending' AND next_at <= ? ORDER BY next_at, seq LIMIT 1`);
  const selectNextDue = db.prepare(`SELECT min(next_at) FROM outbox WHERE sink = ? AND state = 'pending'`).pluck();
  const settleOutbox = db.prepare(`UPDATE outbox SET state = @state, attempts = @attempts, next_at = @nextAt, last_error = @error, done_at = @doneAt WHERE seq = @seq`);
  const selectDeliveries = db.prepare(`SELECT * FROM outbox WHERE alert = ? ORDER BY seq DESC LIMIT ${MAX_LISTED_DELIVERIES}`);
  const countPending = db.prepare(`SELECT count(*) FROM outbox WHERE state = 'pending'`).pluck();
  const insertException = db.prepare(`
    INSERT INTO exceptions (id, key_glob, entry_glob, namespace, reason, owner, created_by, created_at, expires_at, revoked_at, revoked_by, reminded_at)
    VALUES (@id, @key, @entry, @namespace, @reason, @owner, @createdBy, @createdAt, @expiresAt, @revokedAt, @revokedBy, @remindedAt)`);
  const selectExceptions = db.prepare(`SELECT * FROM exceptions ORDER BY created_at DESC, id`);
  const selectException = db.prepare(`SELECT * FROM exceptions WHERE id = ?`);
  const revokeException = db.prepare(`UPDATE exceptions SET revoked_at = ?, revoked_by = ? WHERE id = ? AND revoked_at = 0`);
  const remindException = db.prepare(`UPDATE exceptions SET reminded_at = ? WHERE id = ?`);
  const pruneDeviations = db.prepare(`DELETE FROM deviations WHERE received_at < ?`);
  const pruneAlerts = db.prepare(`DELETE FROM alerts WHERE state IN ('resolved', 'accepted') AND last_seen < ? AND state_at < ?`);
  const pruneOutbox = db.prepare(`DELETE FROM outbox WHERE state != 'pending' AND created_at < ?`);
  const prepare = createDeviationPreparer();
  // Filtered list queries differ only in which fixed WHERE fragments they use: prepare each shape once.
  const listStatements = new Map<string, Database.Statement>();
  const listStatement = (sql: string) => {
    let st = listStatements.get(sql);
    if (!st) listStatements.set(sql, (st = db.prepare(sql)));
    return st;
  };

  interface Group {
    first: PreparedDeviation;
    count: number;
    minTime: number;
    maxTime: number;
    latest: PreparedDeviation;
    nodes: Set<string>;
    pods: Set<string>;
  }

  /**
   * Apply one node's baseline delta: its header, then each entry's absolute stats on that node, and
   * the difference they make to the cluster-wide merged entry.
   */
  function applyDelta(node: string, delta: BaselineSnapshot, receivedAt: number, refused: Partial<Record<StoreRefusal, number>>): boolean {
    const refuse = (reason: StoreRefusal, n = 1) => (refused[reason] = (refused[reason] ?? 0) + n);
    // A quarantined node teaches nothing; a locked baseline learns nothing from agents.
    if (isQuarantined.get(node) !== undefined) {
      refuse('quarantined');
      return false;
    }
    if (reviewOf(delta.key)?.state === 'locked') {
      refuse('locked');
      return false;
    }
    const { entries, ...header } = delta;
    let size = -1;
    const previousState = selectNodeHeaderState.get(delta.key, node) as string | undefined;
    // Agents report their fresh window after a relearn: from then on the agents' state counts again.
    if (delta.state === 'learning') clearRelearn.run(delta.key);
    upsertHeader.run(delta.key, node, delta.version, receivedAt, JSON.stringify(header));
    // Agents hear about a key when its state changed on a node, or it grew past learning.
    let clusterChanged = previousState !== delta.state;
    for (const e of entries) {
      const old = selectNodeEntry.get(delta.key, e.id, node) as { first_seen: number; last_seen: number; count: number } | undefined;
      if (!old && mergedExists.get(delta.key, e.id) === undefined) {
        // A new entry for the key: bounded per key, whichever nodes it comes from.
        if (size === -1) size = countEntriesOfKey.get(delta.key) as number;
        if (size >= MAX_ENTRIES_PER_KEY) {
          refuse('key_full');
          continue;
        }
        size++;
        if (delta.state !== 'learning') clusterChanged = true;
      }
      const grown = old ? Math.max(0, e.count - old.count) : e.count;
      const unchanged = old !== undefined && grown === 0 && e.firstSeen >= old.first_seen && e.lastSeen <= old.last_seen;
      if (unchanged && e.examples.length === 0) continue;
      if (!unchanged) upsertNodeEntry.run(delta.key, e.id, node, e.firstSeen, e.lastSeen, e.count);
      let merged: string | null = null;
      let examples = '[]';
      if (e.examples.length > 0) {
        const stored = selectMergedExamples.get(delta.key, e.id) as string | undefined;
        examples = JSON.stringify(unite(stored === undefined ? [] : (JSON.parse(stored) as string[]), e.examples, MAX_MERGED_EXAMPLES));
        merged = examples;
      }
      upsertMergedEntry.run({ key: delta.key, id: e.id, type: e.entry.type, first: e.firstSeen, last: e.lastSeen, count: grown, newNodes: old ? 0 : 1, examples, merged });
      // Brought by a new image version during its grace period: for review, unless already reviewed.
      if (e.addedBy !== undefined && !old) insertFlag.run(delta.key, e.id, 'flagged', 'driftwatch', receivedAt, `new in version ${e.addedBy} (learned during its grace period)`);
      // A block or class an agent generalized from many addresses: for review, with the evidence it was learned from.
      else if (!old && e.entry.type === 'network' && generalPeerOf(e.entry.peer) !== null) {
        const evidence = e.examples.find((x) => x.startsWith('generalized')) ?? 'generalized from many addresses';
        insertFlag.run(delta.key, e.id, 'flagged', 'driftwatch', receivedAt, evidence.slice(0, 512));
      }
    }
    return clusterChanged;
  }

  const ingestTx = writeTransaction(db, (node: string, deviations: readonly PreparedDeviation[], deltas: readonly BaselineSnapshot[], receivedAt: number, policy: AlertPolicy) => {
    let stored = 0;
    let duplicates = 0;
    let known = 0;
    const newAlerts: Alert[] = [];
    const updated: string[] = [];
    const reopened: Alert[] = [];
    const clusterChanged: string[] = [];
    const notifications: OutboxEntry[] = [];
    const notify = (alert: Alert) => {
      for (const item of policy.notify?.(alert, receivedAt) ?? []) {
        insertOutbox.run(item.alert, item.sink, item.action, item.body, item.state, Math.max(receivedAt, item.notBefore ?? 0), item.lastError, receivedAt, item.state === 'pending' ? 0 : receivedAt);
        notifications.push(item);
      }
    };
    // The batch's baseline deltas first: its deviations and alerts are judged against what they teach.
    const refused: Partial<Record<StoreRefusal, number>> = {};
    for (const delta of deltas) if (applyDelta(node, delta, receivedAt, refused) && !clusterChanged.includes(delta.key)) clusterChanged.push(delta.key);
    // Deviations of one fingerprint in a batch (a storm is mostly that) update their alert once,
    // and ask the cluster baseline about their entry once.
    const groups = new Map<string, Group>();
    const knownInBatch = new Map<string, boolean>();
    for (const d of deviations) {
      const { fingerprint, entryId: id } = d;
      // The agent checked against its own baseline; the cluster-wide one may know more (another
      // node learned it, or security accepted it). Such a deviation is not news: drop it.
      const knownKey = `${d.key}\n${id}`;
      let isKnown = knownInBatch.get(knownKey);
      if (isKnown === undefined) {
        isKnown = knownEntry.get(d.key, id) !== undefined || (!id.startsWith('exec|') && coveringEntryId(entryFromId(id), generalizedEntryIds.all(d.key) as string[]) !== null);
        knownInBatch.set(knownKey, isKnown);
      }
      if (isKnown) {
        known++;
        continue;
      }
      const inserted = insertDeviation.run(scopedDeviationId(d.node, d.id), fingerprint, d.key, d.kind, d.time, receivedAt, d.node, d.body).changes === 1;
      if (!inserted) {
        duplicates++;
        continue;
      }
      stored++;
      const { pod, time } = d;
      const g = groups.get(fingerprint);
      if (!g) {
        groups.set(fingerprint, { first: d, count: 1, minTime: time, maxTime: time, latest: d, nodes: new Set([d.node]), pods: new Set(pod === '' ? [] : [pod]) });
        continue;
      }
      g.count++;
      if (time < g.minTime) g.minTime = time;
      if (time >= g.maxTime) {
        g.maxTime = time;
        g.latest = d;
      }
      if (g.nodes.size < MAX_ALERT_NODES) g.nodes.add(d.node);
      if (pod !== '' && g.pods.size < MAX_ALERT_PODS) g.pods.add(pod);
    }
    const facts = new Map<string, BaselineFacts>();
    for (const [fingerprint, g] of groups) {
      const row = selectAlertToGrow.get(fingerprint) as Pick<AlertRow, 'state' | 'suppressed_by' | 'nodes' | 'pods'> | undefined;
      const latest = deviationOf(g.latest);
      const example = exampleOf(latest.event);
      const suppressedBy = policy.exceptionFor(latest, receivedAt);
      if (!row) {
        const d = deviationOf(g.first);
        const decision = policy.decide(d, () => {
          let f = facts.get(d.key);
          if (!f) facts.set(d.key, (f = baselineFactsOf((processEntryIds.all(d.key) as string[]).map(entryFromId))));
          return f;
        });
        insertAlert.run({
          fingerprint,
          baselineKey: d.key,
          image: imageOfKey(d),
          kind: d.event.kind,
          entry: JSON.stringify(d.entry),
          reason: d.reason,
          explanation: d.explanation,
          nearest: JSON.stringify(d.nearest),
          firstSeen: g.minTime,
          lastSeen: g.maxTime,
          count: g.count,
          nodes: JSON.stringify([...g.nodes]),
          pods: JSON.stringify([...g.pods]),
          lastDeviationId: g.latest.id,
          example,
          createdAt: receivedAt,
          severity: decision.severity,
          ruleId: decision.ruleId,
          ruleReason: decision.ruleReason,
          team: decision.team,
          namespace: d.event.pod?.namespace ?? '',
          labels: JSON.stringify(labelsOf(d)),
          receivers: JSON.stringify(decision.receivers),
          suppressedBy,
        });
        const created = alertOf(selectAlert.get(fingerprint) as AlertRow);
        newAlerts.push(created);
        notify(created);
        continue;
      }
      const nodes = JSON.parse(row.nodes) as string[];
      for (const n of g.nodes) if (!nodes.includes(n) && nodes.length < MAX_ALERT_NODES) nodes.push(n);
      const pods = JSON.parse(row.pods) as string[];
      for (const p of g.pods) if (!pods.includes(p) && pods.length < MAX_ALERT_PODS) pods.push(p);
      (row.state === 'resolved' ? reopenAlert : updateAlert).run({
        fingerprint,
        count: g.count,
        minTime: g.minTime,
        maxTime: g.maxTime,
        nodes: JSON.stringify(nodes),
        pods: JSON.stringify(pods),
        id: g.latest.id,
        example,
        suppressedBy,
        receivedAt,
      });
      // Resolved, or covered by an exception that no longer covers it: it is news again.
      const fresh = row.state === 'resolved' || (row.suppressed_by !== '' && suppressedBy === '' && row.state !== 'accepted');
      if (fresh) {
        const again = alertOf(selectAlert.get(fingerprint) as AlertRow);
        reopened.push(again);
        notify(again);
      } else updated.push(fingerprint);
    }
    return { stored, duplicates, newAlerts, snapshots: deltas.length, known, updated, reopened, clusterChanged, notifications, refused };
  });

  // ingestTx called inside a transaction runs as a savepoint: a batch that throws is rolled back alone.
  const ingestManyTx = writeTransaction(db, (batches: readonly PreparedBatch[], receivedAt: number, policy: AlertPolicy) =>
    batches.map((b): IngestResult | Error => {
      try {
        return ingestTx(b.node, b.deviations, b.deltas, receivedAt, policy);
      } catch (err) {
        return err instanceof Error ? err : new Error(String(err));
      }
    }),
  );

  // ---- review: views, changes, versions, what agents enforce ----

  /** The namespaces the nodes saw a key in, sorted, bounded. */
  function namespacesOf(headers: ReadonlyMap<string, SnapshotHeader>): string[] {
    const all = new Set<string>();
    for (const h of headers.values()) for (const ns of h.namespaces ?? []) if (all.size < 64) all.add(ns);
    return [...all].sort();
  }

  function headersOf(key: string): Map<string, SnapshotHeader> {
    return new Map((selectHeadersOfKey.all(key) as { node: string; header: string }[]).map((h) => [h.node, JSON.parse(h.header) as SnapshotHeader]));
  }

  function reviewOf(key: string): { state: string; version: number } | undefined {
    return selectReview.get(key) as { state: string; version: number } | undefined;
  }

  /** The reviewed state: security's override, else the most advanced state the agents report. */
  function reviewedState(merged: BaselineState, review: { state: string } | undefined): ReviewedState {
    const s = review?.state ?? '';
    return s === 'locked' || s === 'enforcing' || s === 'relearn' ? s : merged;
  }

  function viewOf(key: string): BaselineView | null {
    const headers = headersOf(key);
    const review = reviewOf(key);
    if (headers.size === 0 && review === undefined) return null;
    const merged = mergeHeaders(key, headers);
    const nodes = new Map<string, string[]>();
    for (const r of selectEntryNodesOfKey.iterate(key) as IterableIterator<{ entry_id: string; node: string }>) {
      let list = nodes.get(r.entry_id);
      if (!list) nodes.set(r.entry_id, (list = []));
      if (list.length < MAX_LISTED_NODES) list.push(r.node);
    }
    const reviews = new Map((selectStatuses.all(key) as { entry_id: string; status: EntryStatus; reason: string }[]).map((r) => [r.entry_id, r]));
    const rows = selectEntriesOfKey.all(key) as { entry_id: string; first_seen: number; last_seen: number; count: number; examples: string }[];
    const entries: ReviewedEntry[] = [];
    const skip = (id: string) => {
      log.warn({ key: key.slice(0, 256), entryId: id.slice(0, 256) }, 'skipped a stored baseline entry whose id is not an entry id');
      return true;
    };
    for (const r of rows) {
      if (!validEntryId(r.entry_id) && skip(r.entry_id)) continue;
      entries.push({
      id: r.entry_id,
      entry: entryFromId(r.entry_id),
      firstSeen: r.first_seen,
      lastSeen: r.last_seen,
      count: r.count,
      nodes: nodes.get(r.entry_id) ?? [],
      examples: JSON.parse(r.examples) as string[],
      status: reviews.get(r.entry_id)?.status ?? 'learned',
      statusReason: reviews.get(r.entry_id)?.reason ?? '',
      });
    }
    // Removed entries stay listed (removed stays removed), even after a relearn dropped their stats.
    const listed = new Set(rows.map((r) => r.entry_id));
    for (const [id, { status, reason }] of reviews) {
      if (status === 'removed' && !listed.has(id) && (validEntryId(id) || !skip(id))) entries.push({ id, entry: entryFromId(id), firstSeen: 0, lastSeen: 0, count: 0, nodes: [], examples: [], status, statusReason: reason });
    }
    entries.sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
    const partial = [...headers.values()].some((h) => h.partial === true);
    return { ...merged, state: reviewedState(merged.state, review), version: review?.version ?? 0, partial, namespaces: namespacesOf(headers), entries };
  }

  function clusterOf(view: BaselineView): ClusterBaseline {
    const active = view.entries.filter((e) => e.status !== 'removed').map((e) => e.id);
    const removed = view.entries.filter((e) => e.status === 'removed').map((e) => e.id);
    return {
      key: view.key,
      state: view.state === 'relearn' ? 'learning' : view.state,
      relearn: view.state === 'relearn',
      version: view.version,
      windowStart: view.windowStart,
      learnUntil: view.learnUntil,
      entryIds: active,
      removedIds: removed,
    };
  }

  function recordVersion(key: string, by: string, action: string, reason: string, at: number): { view: BaselineView; version: number } {
    const version = (reviewOf(key)?.version ?? 0) + 1;
    upsertReview.run(key, reviewOf(key)?.state ?? '', version);
    const view = viewOf(key) as BaselineView;
    const c = clusterOf(view);
    insertVersion.run({ key, version, at, by, action, reason, state: view.state, entries: JSON.stringify(c.entryIds), removed: JSON.stringify(c.removedIds) });
    return { view, version };
  }

  function addEntry(key: string, entry: Entry, status: EntryStatus, by: string, at: number, reason: string, example = ''): string {
    const id = entryId(entry);
    if (mergedExists.get(key, id) === undefined) {
      upsertMergedEntry.run({ key, id, type: entry.type, first: at, last: at, count: 0, newNodes: 0, examples: JSON.stringify(example === '' ? [] : [example]), merged: null });
    }
    upsertStatus.run(key, id, status, by, at, reason);
    return id;
  }

  /**
   * Take one node's share out of a key: its header, its per-entry stats (subtracted from the merged
   * counts), and the entries only it taught, unless security approved or added them. Returns how
   * many entries went, or -1 when the node taught the key nothing.
   */
  function dropNode(key: string, node: string): number {
    const rows = nodeEntriesOfKey.all(key, node) as { entry_id: string; count: number }[];
    const hadHeader = deleteNodeHeaderOfKey.run(key, node).changes > 0;
    if (rows.length === 0 && !hadHeader) return -1;
    let removed = 0;
    for (const r of rows) {
      const status = statusOf.get(key, r.entry_id) as EntryStatus | undefined;
      if ((otherNodesOfEntry.get(key, r.entry_id, node) as number) === 0 && status !== 'approved' && status !== 'added' && status !== 'removed') {
        deleteMergedEntry.run(key, r.entry_id);
        deleteEntryStatus.run(key, r.entry_id);
        removed++;
      } else shrinkMergedEntry.run(r.count, key, r.entry_id);
    }
    deleteNodeEntriesOfKey.run(key, node);
    return removed;
  }

  const quarantineTx = writeTransaction(db, (node: string, by: string, reason: string, at: number): NodeDropResult | null => {
    if (insertQuarantine.run(node, by, at, reason).changes === 0) return null;
    const keys = keysOfNode.all(node, node) as string[];
    let entriesRemoved = 0;
    for (const key of keys) {
      entriesRemoved += Math.max(0, dropNode(key, node));
      recordVersion(key, by, 'quarantine', `node ${node} quarantined${reason === '' ? '' : `: ${reason}`}`, at);
    }
    return { keys, entriesRemoved };
  });

  const reviewTx = writeTransaction(db, (key: string, change: BaselineChange, by: string, reason: string, at: number): ReviewResult => {
    const before = viewOf(key);
    if (!before && change.action !== 'import' && change.action !== 'add') return { ok: false, status: 404, message: `no baseline with key ${JSON.stringify(key.slice(0, 256))}` };
    const review = reviewOf(key);
    const setState = (state: string) => upsertReview.run(key, state, review?.version ?? 0);
    const find = (id: string) => before?.entries.find((e) => e.id === id);
    switch (change.action) {
      case 'lock':
        if (before?.state === 'locked') return { ok: false, status: 409, message: 'the baseline is already locked' };
        setState('locked');
        break;
      case 'unlock':
        if (review?.state !== 'locked' && review?.state !== 'enforcing') return { ok: false, status: 409, message: 'the baseline is not locked' };
        setState('');
        break;
      case 'relearn':
        if (before?.state === 'learning' || before?.state === 'relearn') return { ok: false, status: 409, message: `the baseline is already ${before.state}` };
        // Learned entries and the agents' windows go; what security approved, added or removed stays.
        deleteNodeHeaders.run(key);
        deleteNodeEntries.run(key);
        deleteLearnedEntries.run(key, key);
        deleteFlags.run(key);
        setState('relearn');
        break;
      case 'approve':
      case 'remove': {
        const e = find(change.entryId);
        if (!e) return { ok: false, status: 404, message: 'no entry with this id in the baseline' };
        if (change.action === 'approve' && e.status === 'removed') return { ok: false, status: 409, message: 'the entry was removed; add it again to allow it' };
        if (change.action === 'remove' && e.status === 'removed') return { ok: false, status: 409, message: 'the entry is already removed' };
        upsertStatus.run(key, e.id, change.action === 'approve' ? 'approved' : 'removed', by, at, reason);
        break;
      }
      case 'drop-node':
        if (dropNode(key, change.node) === -1) return { ok: false, status: 404, message: `node ${JSON.stringify(change.node.slice(0, 256))} taught this baseline nothing` };
        break;
      case 'add': {
        const e = find(entryId(change.entry));
        if (e && e.status !== 'removed') return { ok: false, status: 409, message: `the baseline already has this entry (${e.status})` };
        if (!review) upsertReview.run(key, '', 0);
        addEntry(key, change.entry, 'added', by, at, reason);
        break;
      }
      case 'import': {
        // The document is the desired state: what it lists is allowed, what it removes or omits is removed.
        if (!review) upsertReview.run(key, '', 0);
        setState(change.state === 'locked' ? 'locked' : change.state === 'enforcing' ? 'enforcing' : '');
        const wanted = new Set<string>();
        for (const entry of change.entries) {
          const id = entryId(entry);
          wanted.add(id);
          const e = find(id);
          if (e && e.status !== 'removed') {
            if (e.status === 'learned') upsertStatus.run(key, id, 'approved', by, at, reason);
          } else addEntry(key, entry, 'added', by, at, reason);
        }
        for (const entry of change.removed) {
          const id = entryId(entry);
          if (!wanted.has(id)) upsertStatus.run(key, id, 'removed', by, at, reason);
        }
        for (const e of before?.entries ?? []) if (!wanted.has(e.id) && e.status !== 'removed') upsertStatus.run(key, e.id, 'removed', by, at, reason);
        break;
      }
    }
    const { view, version } = recordVersion(key, by, change.action, reason, at);
    return { ok: true, before, after: view, version };
  });

  function versionOf(r: { key: string; version: number; at: number; by: string; action: string; reason: string; state: ReviewedState; entries: string; removed: string }): BaselineVersion {
    return { key: r.key, version: r.version, at: r.at, by: r.by, action: r.action, reason: r.reason, state: r.state, entryIds: JSON.parse(r.entries) as string[], removedIds: JSON.parse(r.removed) as string[] };
  }

  const transitionTx = writeTransaction(db, (fingerprint: string, change: AlertTransition, followUps?: (change: { before: Alert; after: Alert }) => OutboxEntry[]): TransitionResult => {
    const row = selectAlert.get(fingerprint) as AlertRow | undefined;
    if (!row) return { ok: false, reason: 'not-found' };
    const before = alertOf(row);
    if (!ALLOWED_FROM[change.to].includes(before.state)) return { ok: false, reason: 'conflict', alert: before };
    setAlertState.run({ fingerprint, to: change.to, by: change.by, at: change.at, comment: change.comment });
    if (change.to === 'accepted') {
      // The entry joins the cluster-wide baseline as security's own: no node saw it as learned.
      const id = entryId(before.entry);
      upsertMergedEntry.run({
        key: before.baselineKey,
        id,
        type: before.entry.type,
        first: before.firstSeen,
        last: before.lastSeen,
        count: 0,
        newNodes: 0,
        examples: JSON.stringify(before.example === '' ? [] : [before.example]),
        merged: null,
      });
      if (!reviewOf(before.baselineKey)) upsertReview.run(before.baselineKey, '', 0);
      upsertStatus.run(before.baselineKey, id, 'added', change.by, change.at, change.comment || 'accepted from an alert');
      recordVersion(before.baselineKey, change.by, 'accept', change.comment || `accepted alert ${fingerprint}`, change.at);
    }
    const after = alertOf(selectAlert.get(fingerprint) as AlertRow);
    // The notifications of the change commit with it: a crash cannot leave a resolved alert whose
    // pager incident stays open.
    const notifications = followUps?.({ before, after }) ?? [];
    for (const i of notifications) insertOutbox.run(i.alert, i.sink, i.action, i.body, i.state, Math.max(change.at, i.notBefore ?? 0), i.lastError, change.at, i.state === 'pending' ? 0 : change.at);
    return { ok: true, before, after, notifications };
  });

  if (legacy) {
    writeTransaction(db, () => {
      // One snapshot at a time: they may add up to more than memory should hold at once.
      const one = db.prepare(`SELECT received_at, snapshot FROM baseline_snapshots WHERE key = ? AND node = ?`);
      for (const { key, node } of db.prepare(`SELECT key, node FROM baseline_snapshots`).all() as { key: string; node: string }[]) {
        const r = one.get(key, node) as { received_at: number; snapshot: string };
        applyDelta(node, JSON.parse(r.snapshot) as BaselineSnapshot, r.received_at, {});
      }
      db.exec(`DROP TABLE baseline_snapshots`);
    })();
  }
  db.pragma(`user_version = ${SCHEMA_VERSION}`);

  return {
    ingest: (node, deviations, deltas, receivedAt, policy = NO_POLICY) => ingestTx(node, deviations.map((d) => prepare(d, true)), deltas, receivedAt, policy),
    ingestMany: (batches, receivedAt, policy = NO_POLICY) => ingestManyTx(batches.map((b) => ({ node: b.node, deviations: b.deviations.map((d) => prepare(d, true)), deltas: b.deltas })), receivedAt, policy),
    ingestPrepared: (batches, receivedAt, policy = NO_POLICY) => ingestManyTx(batches, receivedAt, policy),
    listAlerts(q) {
      const before = decodeCursor(q.cursor);
      const where = ['seq < @before'];
      if (q.image !== undefined) where.push('image = @image');
      if (q.kind !== undefined) where.push('kind = @kind');
      if (q.state !== undefined) where.push('state = @state');
      if (q.namespace !== undefined) where.push('namespace = @namespace');
      const levels: Record<string, Severity> = {};
      if (q.severity !== undefined) {
        // This severity or a more urgent one: a fixed fragment per level, each value bound.
        const upTo = SEVERITIES.slice(0, SEVERITIES.indexOf(q.severity) + 1);
        upTo.forEach((s, i) => (levels[`s${i}`] = s));
        where.push(`severity IN (${upTo.map((_s, i) => `@s${i}`).join(', ')})`);
      }
      // The WHERE clause is assembled from fixed fragments only; every value is a bound parameter.
      const rows = listStatement(`SELECT * FROM alerts WHERE ${where.join(' AND ')} ORDER BY seq DESC LIMIT @limit`)
        .all({ before, image: q.image, kind: q.kind, state: q.state, namespace: q.namespace, ...levels, limit: q.limit + 1 }) as AlertRow[];
      const more = rows.length > q.limit;
      const page = rows.slice(0, q.limit);
      return { items: page.map(alertOf), next: more ? encodeCursor((page[page.length - 1] as AlertRow).seq) : null };
    },
    getAlert(fingerprint) {
      const row = selectAlert.get(fingerprint) as AlertRow | undefined;
      return row ? alertOf(row) : null;
    },
    listDeviations(q): Page<StoredDeviation> {
      const before = decodeCursor(q.cursor);
      const where = ['seq < @before'];
      if (q.fingerprint !== undefined) where.push('fingerprint = @fingerprint');
      if (q.baselineKey !== undefined) where.push('baseline_key = @baselineKey');
      if (q.node !== undefined) where.push('node = @node');
      const rows = listStatement(`SELECT seq, fingerprint, received_at, body FROM deviations WHERE ${where.join(' AND ')} ORDER BY seq DESC LIMIT @limit`)
        .all({ before, fingerprint: q.fingerprint, baselineKey: q.baselineKey, node: q.node, limit: q.limit + 1 }) as {
        seq: number;
        fingerprint: string;
        received_at: number;
        body: string;
      }[];
      const more = rows.length > q.limit;
      const page = rows.slice(0, q.limit);
      const quarantined = new Set(quarantinedNames.all() as string[]);
      return {
        items: page.map((r) => {
          const deviation = JSON.parse(r.body) as Deviation;
          return { deviation, fingerprint: r.fingerprint, receivedAt: r.received_at, nodeQuarantined: quarantined.has(deviation.event.node) };
        }),
        next: more ? encodeCursor((page[page.length - 1] as { seq: number }).seq) : null,
      };
    },
    countDeviations: () => countDeviations.get() as number,
    listBaselines(): BaselineSummary[] {
      const headers = new Map<string, Map<string, SnapshotHeader>>();
      for (const row of selectAllHeaders.iterate() as IterableIterator<{ key: string; node: string; header: string }>) {
        let m = headers.get(row.key);
        if (!m) headers.set(row.key, (m = new Map()));
        m.set(row.node, JSON.parse(row.header) as SnapshotHeader);
      }
      for (const key of reviewedKeys.all() as string[]) if (!headers.has(key)) headers.set(key, new Map());
      const counts = new Map((countEntriesByKey.all() as { key: string; process: number; total: number }[]).map((r) => [r.key, r]));
      const open = new Map((openAlertsByKey.all() as { key: string; n: number }[]).map((r) => [r.key, r.n]));
      return [...headers].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)).map(([key, byNode]) => {
        const c = counts.get(key);
        const merged = mergeHeaders(key, byNode);
        const review = reviewOf(key);
        return {
          ...merged,
          state: reviewedState(merged.state, review),
          version: review?.version ?? 0,
          partial: [...byNode.values()].some((h) => h.partial === true),
          namespaces: namespacesOf(byNode),
          processEntries: c?.process ?? 0,
          networkEntries: c ? c.total - c.process : 0,
          openAlerts: open.get(key) ?? 0,
        };
      });
    },
    getBaseline: (key) => viewOf(key),
    reviewBaseline: (key, change, by, reason, at) => reviewTx(key, change, by, reason, at),
    listVersions: (key) => (selectVersions.all(key) as Parameters<typeof versionOf>[0][]).map(versionOf),
    getVersion(key, version) {
      const r = selectVersion.get(key, version) as Parameters<typeof versionOf>[0] | undefined;
      return r ? versionOf(r) : null;
    },
    clusterBaseline(key) {
      const v = viewOf(key);
      return v ? clusterOf(v) : null;
    },
    clusterKeys() {
      // Runs at every agent connect: SQLite reads the state out of each header, no JSON parse here.
      return [...new Set<string>([...(reviewedKeys.all() as string[]), ...(keysPastLearning.all() as string[])])];
    },
    transitionAlert: (fingerprint, change, followUps) => transitionTx(fingerprint, change, followUps),
    quarantineNode: (node, by, reason, at) => quarantineTx(node, by, reason, at),
    releaseNode: (node) => deleteQuarantine.run(node).changes > 0,
    listQuarantined: () => selectQuarantined.all() as QuarantinedNode[],
    enqueue: writeTransaction(db, (items: Parameters<Store['enqueue']>[0], now: number) => {
      for (const i of items) insertOutbox.run(i.alert, i.sink, i.action, i.body, i.state, Math.max(now, i.notBefore ?? 0), i.lastError, now, i.state === 'pending' ? 0 : now);
    }),
    nextDelivery(sink, now) {
      const row = selectDue.get(sink, now) as OutboxRow | undefined;
      return row ? outboxOf(row) : null;
    },
    nextDueAt: (sink) => (selectNextDue.get(sink) as number | null) ?? null,
    settleDelivery(seq, o) {
      settleOutbox.run({ seq, state: o.state, attempts: o.attempts, nextAt: o.nextAt, error: o.error, doneAt: o.state === 'pending' ? 0 : o.at });
    },
    deliveriesOf: (alert) => (selectDeliveries.all(alert) as OutboxRow[]).map(outboxOf),
    pendingDeliveries: () => countPending.get() as number,
    addException(e) {
      insertException.run({ ...e });
    },
    listExceptions: () => (selectExceptions.all() as ExceptionRow[]).map(exceptionOf),
    getException(id) {
      const row = selectException.get(id) as ExceptionRow | undefined;
      return row ? exceptionOf(row) : null;
    },
    revokeException(id, by, at) {
      revokeException.run(at, by, id);
      const row = selectException.get(id) as ExceptionRow | undefined;
      return row ? exceptionOf(row) : null;
    },
    markReminded(id, at) {
      remindException.run(at, id);
    },
    prune: writeTransaction(db, (deviationsBefore: number, alertsBefore: number) => ({
      deviations: pruneDeviations.run(deviationsBefore).changes,
      alerts: pruneAlerts.run(alertsBefore, alertsBefore).changes,
      deliveries: pruneOutbox.run(alertsBefore).changes,
    })),
    ...openNodeStore(db),
    close: () => db.close(),
  };
}

// ---- nodes: each agent's last contact and lag (issue 7, delivery) ----

/** One row of `nodes`. */
interface NodeRow {
  node: string;
  agent_version: string;
  sources: string;
  first_seen: number;
  last_contact: number;
  spooled: number;
  spool_bytes: number;
  lag_ms: number;
  spool_dropped: number;
  watermark: number;
  silent_since: number;
  stopped_at: number;
}

/** The `nodes` table (created if missing) and its statements. */
function openNodeStore(db: Database.Database): NodeStore {
  db.exec(`
    CREATE TABLE IF NOT EXISTS nodes (
      node          TEXT PRIMARY KEY,
      agent_version TEXT NOT NULL,
      sources       TEXT NOT NULL,
      first_seen    INTEGER NOT NULL,
      last_contact  INTEGER NOT NULL,
      spooled       INTEGER NOT NULL,
      spool_bytes   INTEGER NOT NULL,
      lag_ms        INTEGER NOT NULL,
      spool_dropped INTEGER NOT NULL,
      watermark     INTEGER NOT NULL,
      silent_since  INTEGER NOT NULL,
      stopped_at    INTEGER NOT NULL
    ) WITHOUT ROWID;
  `);
  const upsert = db.prepare(`
    INSERT OR REPLACE INTO nodes (node, agent_version, sources, first_seen, last_contact, spooled, spool_bytes, lag_ms, spool_dropped, watermark, silent_since, stopped_at)
    VALUES (@node, @agentVersion, @sources, @firstSeen, @lastContact, @spooled, @spoolBytes, @lagMs, @spoolDropped, @watermark, @silentSince, @stoppedAt)`);
  const selectAll = db.prepare(`SELECT * FROM nodes ORDER BY node`);
  const remove = db.prepare(`DELETE FROM nodes WHERE node = ?`);
  const saveTx = writeTransaction(db, (records: readonly NodeRecord[]) => {
    for (const r of records) upsert.run({ ...r, sources: JSON.stringify(r.sources) });
  });
  return {
    saveNodes: (records) => saveTx(records),
    deleteNode: (node) => remove.run(node).changes > 0,
    listNodes: () =>
      (selectAll.all() as NodeRow[]).map((r) => ({
        node: r.node,
        agentVersion: r.agent_version,
        sources: JSON.parse(r.sources) as string[],
        firstSeen: r.first_seen,
        lastContact: r.last_contact,
        spooled: r.spooled,
        spoolBytes: r.spool_bytes,
        lagMs: r.lag_ms,
        spoolDropped: r.spool_dropped,
        watermark: r.watermark,
        silentSince: r.silent_since,
        stoppedAt: r.stopped_at,
      })),
  };
}
