/**
 * The baselines slice: agents' deltas merged into one cluster-wide baseline per key (per node and
 * entry, exactly and idempotently), security's review (states, entry statuses, versions), and what
 * agents enforce. The ingest, alerts and quarantine slices change baselines inside their own
 * transactions through the functions besides `store`.
 */
import type { BaselineSnapshot } from '../../../core/baseline.js';
import { coveringEntryId, entryFromId, entryId, type Entry } from '../../../core/entry.js';
import { mergeHeaders, unite, withoutShare, type EntryShare, type SnapshotHeader } from '../../../core/merge.js';
import { baselineFactsOf, type BaselineFacts } from '../../../core/severity.js';
import type { Alert, AlertTransition } from '../../alerting/alert.js';
import type {
  BaselineChange,
  BaselineStore,
  BaselineSummary,
  BaselineVersion,
  BaselineView,
  EntryStatus,
  NodeDropResult,
  ReviewResult,
  ReviewedState,
  StoreRefusal,
} from '../store.js';
import { flagReasonOf, mergeExamples, mergeOriginSql } from '../entry-merge.js';
import { assembleView, changedDriftAllowed, clusterOf, namespacesOf, reviewedState, type EntryRow } from '../baseline-view.js';
import { writeTransaction, type Db, type StoreLogger } from './db.js';

export { validEntryId } from '../baseline-view.js';

/** Most raw examples the merged baseline keeps per entry, from all nodes. */
export const MAX_MERGED_EXAMPLES = 5;
/** Most nodes listed per entry when a baseline is read (the count of nodes is exact). */
export const MAX_LISTED_NODES = 64;
/** Most nodes an entry remembers as dropped (quarantined, or their share dropped by a reviewer). */
export const MAX_DROPPED_NODES = 16;
/**
 * Most entries in one key's cluster baseline (merged from every node, approved and added ones
 * included): a node cannot grow a key past it (the agents' own bound is 2,000 per baseline and node).
 * Deltas' new entries beyond it are refused and counted (`key_full`).
 */
export const MAX_ENTRIES_PER_KEY = 20_000;

/** Whether `id` is an entry id that reads back as itself (rows written before ids were checked may not). */

/** The baselines slice, and what other slices do to baselines inside their transactions. */
export interface SqliteBaselines {
  store: BaselineStore;
  /**
   * Merge one node's delta (ingest; revision 1's snapshots on migration). False when it changed
   * nothing agents need to hear about; a refusal (`locked`, `key_full`) is counted into `refused`.
   */
  applyDelta(node: string, delta: BaselineSnapshot, receivedAt: number, refused: Partial<Record<StoreRefusal, number>>): boolean;
  /** Whether the cluster baseline of `key` knows the entry `id` (merged or added, not removed; or covered by one of its blocks or classes). */
  knows(key: string, id: string): boolean;
  /** What severity rules read of the cluster baseline of `key`. */
  factsOf(key: string): BaselineFacts;
  /** The entry of an alert being accepted joins the cluster baseline of its key as security's own (a new version). */
  accept(alert: Alert, change: AlertTransition): void;
  /** Drop what `node` taught from every key, each a new version recorded as `version` says. */
  dropNodeEverywhere(node: string, version: { by: string; action: string; reason: string; at: number }): NodeDropResult;
}

/** The baselines slice on `db`. */
export function sqliteBaselines(db: Db, log: StoreLogger): SqliteBaselines {
  const upsertHeader = db.prepare(`
    INSERT INTO baseline_nodes (key, node, version, received_at, header) VALUES (?, ?, ?, ?, ?)
    ON CONFLICT (key, node) DO UPDATE SET version = excluded.version, received_at = excluded.received_at, header = excluded.header
    WHERE excluded.version >= baseline_nodes.version`);
  const selectNodeEntry = db.prepare(`SELECT first_seen, last_seen, count, example_keys FROM baseline_entry_nodes WHERE key = ? AND entry_id = ? AND node = ?`);
  const upsertNodeEntry = db.prepare(`
    INSERT INTO baseline_entry_nodes (key, entry_id, node, first_seen, last_seen, count, example_keys) VALUES (?, ?, ?, ?, ?, ?, ?)
    ON CONFLICT (key, entry_id, node) DO UPDATE SET first_seen = min(first_seen, excluded.first_seen),
      last_seen = max(last_seen, excluded.last_seen), count = max(count, excluded.count),
      example_keys = CASE WHEN example_keys IS NULL THEN NULL ELSE excluded.example_keys END`);
  const selectMergedExamples = db.prepare(`SELECT examples FROM baseline_entries WHERE key = ? AND entry_id = ?`).pluck();
  const upsertMergedEntry = db.prepare(`
    INSERT INTO baseline_entries (key, entry_id, type, first_seen, last_seen, count, nodes, examples, origin) VALUES (@key, @id, @type, @first, @last, @count, @newNodes, @examples, @origin)
    ON CONFLICT (key, entry_id) DO UPDATE SET first_seen = min(first_seen, @first), last_seen = max(last_seen, @last),
      count = count + @count, nodes = nodes + @newNodes, examples = coalesce(@merged, examples),
      origin = ${mergeOriginSql('@origin')}`);
  const selectHeadersOfKey = db.prepare(`SELECT node, header FROM baseline_nodes WHERE key = ?`);
  const selectEntriesOfKey = db.prepare(`SELECT entry_id, first_seen, last_seen, count, examples, dropped_nodes, origin FROM baseline_entries WHERE key = ? ORDER BY entry_id`);
  const selectEntryNodesOfKey = db.prepare(`SELECT entry_id, node FROM baseline_entry_nodes WHERE key = ? ORDER BY entry_id, node`);
  const selectAllHeaders = db.prepare(`SELECT key, node, header FROM baseline_nodes ORDER BY key`);
  const countEntriesByKey = db.prepare(`SELECT key, sum(type = 'process') AS process, count(*) AS total FROM baseline_entries GROUP BY key`);
  const countEntriesOfKey = db.prepare(`SELECT count(*) FROM baseline_entries WHERE key = ?`).pluck();
  const keysOfNode = db.prepare(`SELECT key FROM baseline_nodes WHERE node = ? UNION SELECT DISTINCT key FROM baseline_entry_nodes WHERE node = ?`).pluck();
  const nodeSharesOfKey = db.prepare(`SELECT entry_id, first_seen, last_seen, count, example_keys FROM baseline_entry_nodes WHERE key = ? AND node = ?`);
  const otherSharesOfEntry = db.prepare(`SELECT first_seen, last_seen, count, example_keys FROM baseline_entry_nodes WHERE key = ? AND entry_id = ? AND node != ?`);
  const statusOf = db.prepare(`SELECT status FROM baseline_entry_reviews WHERE key = ? AND entry_id = ?`).pluck();
  const selectMergedStats = db.prepare(`SELECT first_seen, last_seen, count, examples, dropped_nodes FROM baseline_entries WHERE key = ? AND entry_id = ?`);
  const setMergedStats = db.prepare(`
    UPDATE baseline_entries SET first_seen = @firstSeen, last_seen = @lastSeen, count = @count, nodes = @nodes, examples = @examples, dropped_nodes = @dropped
    WHERE key = @key AND entry_id = @id`);
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
  const selectReview = db.prepare(`SELECT state, version, drift_allowed FROM baseline_reviews WHERE key = ?`);
  const updateDriftAllowed = db.prepare(`UPDATE baseline_reviews SET drift_allowed = ? WHERE key = ?`);
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

  /**
   * Apply one node's baseline delta: its header, then each entry's absolute stats on that node, and
   * the difference they make to the cluster-wide merged entry.
   */
  function applyDelta(node: string, delta: BaselineSnapshot, receivedAt: number, refused: Partial<Record<StoreRefusal, number>>): boolean {
    const refuse = (reason: StoreRefusal, n = 1) => (refused[reason] = (refused[reason] ?? 0) + n);
    // A locked baseline learns nothing from agents. (A quarantined node's deltas never get here: the
    // ingest slice refuses them first.)
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
      const old = selectNodeEntry.get(delta.key, e.id, node) as { first_seen: number; last_seen: number; count: number; example_keys: string | null } | undefined;
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
      let merged: string | null = null;
      let examples = '[]';
      let keys = old ? old.example_keys : '[]';
      if (e.examples.length > 0) {
        ({ examples, keys } = mergeExamples(selectMergedExamples.get(delta.key, e.id) as string | undefined, e.examples, keys, MAX_MERGED_EXAMPLES));
        merged = examples;
      }
      upsertNodeEntry.run(delta.key, e.id, node, e.firstSeen, e.lastSeen, e.count, keys);
      upsertMergedEntry.run({ key: delta.key, id: e.id, type: e.entry.type, first: e.firstSeen, last: e.lastSeen, count: grown, newNodes: old ? 0 : 1, examples, merged, origin: e.origin ?? null });
      // A new entry of a version in grace, or a block or class generalized by an agent: for review, unless already reviewed.
      const flag = old ? null : flagReasonOf(e);
      if (flag !== null) insertFlag.run(delta.key, e.id, 'flagged', 'driftwatch', receivedAt, flag);
    }
    return clusterChanged;
  }


  function headersOf(key: string): Map<string, SnapshotHeader> {
    return new Map((selectHeadersOfKey.all(key) as { node: string; header: string }[]).map((h) => [h.node, JSON.parse(h.header) as SnapshotHeader]));
  }

  function reviewOf(key: string): { state: string; version: number; drift_allowed: string } | undefined {
    return selectReview.get(key) as { state: string; version: number; drift_allowed: string } | undefined;
  }


  function viewOf(key: string): BaselineView | null {
    const headers = headersOf(key);
    const review = reviewOf(key);
    if (headers.size === 0 && review === undefined) return null;
    const nodes = new Map<string, string[]>();
    for (const r of selectEntryNodesOfKey.iterate(key) as IterableIterator<{ entry_id: string; node: string }>) {
      let list = nodes.get(r.entry_id);
      if (!list) nodes.set(r.entry_id, (list = []));
      if (list.length < MAX_LISTED_NODES) list.push(r.node);
    }
    const reviews = new Map((selectStatuses.all(key) as { entry_id: string; status: EntryStatus; reason: string }[]).map((r) => [r.entry_id, r]));
    const rows = selectEntriesOfKey.all(key) as EntryRow[];
    return assembleView({ key, headers, review, nodes, reviews, rows }, log);
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
      upsertMergedEntry.run({ key, id, type: entry.type, first: at, last: at, count: 0, newNodes: 0, examples: JSON.stringify(example === '' ? [] : [example]), merged: null, origin: null });
    }
    upsertStatus.run(key, id, status, by, at, reason);
    return id;
  }

  /** One node's share of an entry, as core/merge takes it. */
  const shareOf = (r: { first_seen: number; last_seen: number; count: number; example_keys: string | null }): EntryShare => ({
    firstSeen: r.first_seen,
    lastSeen: r.last_seen,
    count: r.count,
    examples: r.example_keys === null ? null : (JSON.parse(r.example_keys) as string[]),
  });

  /**
   * Take one node's share out of a key: its header, the entries only it taught (unless security
   * approved, added or removed them), and from every other entry it taught its share of the stats,
   * recomputed from the shares of the nodes that remain (core/merge withoutShare); such an entry
   * remembers the node as dropped. Null when the node taught the key nothing.
   */
  function dropNode(key: string, node: string): Omit<NodeDropResult, 'keys'> | null {
    const rows = nodeSharesOfKey.all(key, node) as { entry_id: string; first_seen: number; last_seen: number; count: number; example_keys: string | null }[];
    const hadHeader = deleteNodeHeaderOfKey.run(key, node).changes > 0;
    if (rows.length === 0 && !hadHeader) return null;
    const out = { entriesRemoved: 0, entriesRecomputed: 0, entriesNarrowed: 0 };
    for (const r of rows) {
      const status = statusOf.get(key, r.entry_id) as EntryStatus | undefined;
      const rest = (otherSharesOfEntry.all(key, r.entry_id, node) as Parameters<typeof shareOf>[0][]).map(shareOf);
      if (rest.length === 0 && status !== 'approved' && status !== 'added' && status !== 'removed') {
        deleteMergedEntry.run(key, r.entry_id);
        deleteEntryStatus.run(key, r.entry_id);
        out.entriesRemoved++;
        continue;
      }
      const m = selectMergedStats.get(key, r.entry_id) as { first_seen: number; last_seen: number; count: number; examples: string; dropped_nodes: string } | undefined;
      if (!m) continue;
      const merged = { firstSeen: m.first_seen, lastSeen: m.last_seen, count: m.count, nodes: rest.length + 1, examples: JSON.parse(m.examples) as string[] };
      const { stats, narrowed } = withoutShare(merged, shareOf(r), rest, status === 'added');
      const dropped = JSON.stringify(unite(JSON.parse(m.dropped_nodes) as string[], [node], MAX_DROPPED_NODES));
      setMergedStats.run({ key, id: r.entry_id, ...stats, examples: JSON.stringify(stats.examples), dropped });
      out.entriesRecomputed++;
      if (narrowed.length > 0) {
        out.entriesNarrowed++;
        if (out.entriesNarrowed <= 20) log.warn({ key: key.slice(0, 256), entryId: r.entry_id.slice(0, 256), node, narrowed }, 'could not tell the dropped node\'s share of an entry from security\'s own exactly: narrowed to what provably remains');
      }
    }
    deleteNodeEntriesOfKey.run(key, node);
    return out;
  }

  const reviewTx = writeTransaction(db, (key: string, change: BaselineChange, by: string, reason: string, at: number): ReviewResult => {
    const before = viewOf(key);
    if (!before && change.action !== 'import' && change.action !== 'add') return { ok: false, status: 404, message: `no baseline with key ${JSON.stringify(key.slice(0, 256))}` };
    const review = reviewOf(key);
    const setState = (state: string) => upsertReview.run(key, state, review?.version ?? 0);
    const find = (id: string) => before?.entries.find((e) => e.id === id);
    let dropped: Omit<NodeDropResult, 'keys'> | undefined;
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
        dropped = dropNode(key, change.node) ?? undefined;
        if (!dropped) return { ok: false, status: 404, message: `node ${JSON.stringify(change.node.slice(0, 256))} taught this baseline nothing` };
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
        // The document's drift allow list is the key's (absent: none).
        updateDriftAllowed.run(JSON.stringify(change.driftAllowed ?? []), key);
        break;
      }
      case 'allow-drift':
      case 'disallow-drift': {
        const next = changedDriftAllowed(before?.driftAllowed ?? [], change);
        if (!Array.isArray(next)) return { ok: false, ...next };
        if (!review) upsertReview.run(key, '', 0);
        updateDriftAllowed.run(JSON.stringify(next), key);
        break;
      }
    }
    const { view, version } = recordVersion(key, by, change.action, reason, at);
    return dropped ? { ok: true, before, after: view, version, dropped } : { ok: true, before, after: view, version };
  });

  function versionOf(r: { key: string; version: number; at: number; by: string; action: string; reason: string; state: ReviewedState; entries: string; removed: string }): BaselineVersion {
    return { key: r.key, version: r.version, at: r.at, by: r.by, action: r.action, reason: r.reason, state: r.state, entryIds: JSON.parse(r.entries) as string[], removedIds: JSON.parse(r.removed) as string[] };
  }

  return {
    store: {
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
    },
    applyDelta,
    knows: (key, id) =>
      knownEntry.get(key, id) !== undefined || (!id.startsWith('exec|') && coveringEntryId(entryFromId(id), generalizedEntryIds.all(key) as string[]) !== null),
    factsOf: (key) => baselineFactsOf((processEntryIds.all(key) as string[]).map(entryFromId)),
    accept(before, change) {
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
        origin: null,
      });
      if (!reviewOf(before.baselineKey)) upsertReview.run(before.baselineKey, '', 0);
      upsertStatus.run(before.baselineKey, id, 'added', change.by, change.at, change.comment || 'accepted from an alert');
      recordVersion(before.baselineKey, change.by, 'accept', change.comment || `accepted alert ${before.fingerprint}`, change.at);
    },
    dropNodeEverywhere(node, version) {
      const keys = keysOfNode.all(node, node) as string[];
      const out: NodeDropResult = { keys, entriesRemoved: 0, entriesRecomputed: 0, entriesNarrowed: 0 };
      for (const key of keys) {
        const d = dropNode(key, node);
        if (d) {
          out.entriesRemoved += d.entriesRemoved;
          out.entriesRecomputed += d.entriesRecomputed;
          out.entriesNarrowed += d.entriesNarrowed;
        }
        recordVersion(key, version.by, version.action, version.reason, version.at);
      }
      return out;
    },
  };
}
