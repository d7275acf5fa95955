/**
 * The baselines slice on PostgreSQL: agents' deltas merged into one cluster-wide baseline per key
 * (per node and entry, exactly and idempotently), security's review (states, entry statuses,
 * versions), and what agents enforce. Every write to a key holds its lock (db.ts lockKeys), so the
 * read-modify-writes of a merge (a node's previous share, the examples kept, the size bound) never
 * interleave between replicas; the merged rows themselves are written with INSERT … ON CONFLICT DO
 * UPDATE. Reads of several statements run on one snapshot. Semantics: the SQLite slice's.
 */
import type pg from 'pg';
import type { BaselineSnapshot } from '../../../core/baseline.js';
import { coveringEntryId, entryFromId, entryId, type Entry } from '../../../core/entry.js';
import { mergeHeaders, unite, withoutShare, type EntryShare, type SnapshotHeader } from '../../../core/merge.js';
import { baselineFactsOf, type BaselineFacts } from '../../../core/severity.js';
import type { Alert, AlertTransition } from '../../alerting/alert.js';
import type { Async } from '../async.js';
import { flagReasonOf, mergeExamples, mergeOriginSql } from '../entry-merge.js';
import { assembleView, changedDriftAllowed, clusterOf, namespacesOf, reviewedState, type EntryRow } from '../baseline-view.js';
import { MAX_DROPPED_NODES, MAX_ENTRIES_PER_KEY, MAX_LISTED_NODES, MAX_MERGED_EXAMPLES } from '../sqlite/baselines.js';
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
import { lockKeys, snapshot, transaction, type Sql, type StoreLogger } from './db.js';
import { announce, CHANNELS } from './feed.js';

/** The baselines slice, and what other slices do to baselines inside their transactions (`sql`: the caller's). */
export interface PostgresBaselines {
  store: Async<BaselineStore>;
  /** Merge one node's delta; the caller holds the key's lock. False when it changed nothing agents need to hear about. */
  applyDelta(sql: Sql, node: string, delta: BaselineSnapshot, receivedAt: number, refused: Partial<Record<StoreRefusal, number>>): Promise<boolean>;
  /**
   * Which of `pairs` the cluster baselines know (exactly, or covered by a generalized peer), as
   * `key\nid`: two statements whatever the number of pairs (a batch's deviations are checked at once).
   */
  knowsMany(sql: Sql, pairs: readonly { key: string; id: string }[]): Promise<Set<string>>;
  /** What severity rules read of the cluster baseline of `key`. */
  factsOf(sql: Sql, key: string): Promise<BaselineFacts>;
  /** factsOf each of `keys`, in one statement (the keys of a group commit's new alerts). */
  factsOfMany(sql: Sql, keys: readonly string[]): Promise<Map<string, BaselineFacts>>;
  /** The entry of an alert being accepted joins the cluster baseline of its key (a new version); the caller holds the key's lock. */
  accept(sql: Sql, alert: Alert, change: AlertTransition): Promise<void>;
  /** Drop what `node` taught from every key (locking them), each a new version. */
  dropNodeEverywhere(sql: Sql, node: string, version: { by: string; action: string; reason: string; at: number }): Promise<NodeDropResult>;
}

interface NodeShareRow {
  first_seen: number;
  last_seen: number;
  count: number;
  example_keys: string | null;
}

interface VersionRow {
  key: string;
  version: number;
  at: number;
  by: string;
  action: string;
  reason: string;
  state: ReviewedState;
  entries: string;
  removed: string;
}

const NOT_REMOVED = `NOT EXISTS (SELECT 1 FROM baseline_entry_reviews r WHERE r.key = e.key AND r.entry_id = e.entry_id AND r.status = 'removed')`;

const UPSERT_MERGED = `
  INSERT INTO baseline_entries (key, entry_id, type, first_seen, last_seen, count, nodes, examples, origin) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $10::text)
  ON CONFLICT (key, entry_id) DO UPDATE SET first_seen = LEAST(baseline_entries.first_seen, $4), last_seen = GREATEST(baseline_entries.last_seen, $5),
    count = baseline_entries.count + $6, nodes = baseline_entries.nodes + $7, examples = coalesce($9::text, baseline_entries.examples),
    origin = ${mergeOriginSql('$10::text', 'baseline_entries.origin')}`;

const UPSERT_STATUS = `
  INSERT INTO baseline_entry_reviews (key, entry_id, status, by, at, reason) VALUES ($1, $2, $3, $4, $5, $6)
  ON CONFLICT (key, entry_id) DO UPDATE SET status = excluded.status, by = excluded.by, at = excluded.at, reason = excluded.reason`;

const UPSERT_REVIEW = `INSERT INTO baseline_reviews (key, state, version) VALUES ($1, $2, $3) ON CONFLICT (key) DO UPDATE SET state = excluded.state, version = excluded.version`;

const INSERT_FLAG = `INSERT INTO baseline_entry_reviews (key, entry_id, status, by, at, reason) VALUES ($1, $2, 'flagged', 'driftwatch', $3, $4) ON CONFLICT (key, entry_id) DO NOTHING`;

function versionOf(r: VersionRow): BaselineVersion {
  return { key: r.key, version: r.version, at: r.at, by: r.by, action: r.action, reason: r.reason, state: r.state, entryIds: JSON.parse(r.entries) as string[], removedIds: JSON.parse(r.removed) as string[] };
}




/** One node's share of an entry, as core/merge takes it. */
const shareOf = (r: NodeShareRow): EntryShare => ({
  firstSeen: r.first_seen,
  lastSeen: r.last_seen,
  count: r.count,
  examples: r.example_keys === null ? null : (JSON.parse(r.example_keys) as string[]),
});

/** The baselines slice on `pool`. */
export function postgresBaselines(pool: pg.Pool, log: StoreLogger): PostgresBaselines {
  async function reviewOf(sql: Sql, key: string): Promise<{ state: string; version: number; drift_allowed: string } | undefined> {
    return (await sql<{ state: string; version: number; drift_allowed: string }>(`SELECT state, version, drift_allowed FROM baseline_reviews WHERE key = $1`, [key])).rows[0];
  }

  async function headersOf(sql: Sql, key: string): Promise<Map<string, SnapshotHeader>> {
    const { rows } = await sql<{ node: string; header: string }>(`SELECT node, header FROM baseline_nodes WHERE key = $1`, [key]);
    return new Map(rows.map((h) => [h.node, JSON.parse(h.header) as SnapshotHeader]));
  }

  async function mergedExists(sql: Sql, key: string, id: string): Promise<boolean> {
    return (await sql(`SELECT 1 FROM baseline_entries WHERE key = $1 AND entry_id = $2`, [key, id])).rowCount > 0;
  }

  async function applyDelta(sql: Sql, node: string, delta: BaselineSnapshot, receivedAt: number, refused: Partial<Record<StoreRefusal, number>>): Promise<boolean> {
    const refuse = (reason: StoreRefusal, n = 1) => (refused[reason] = (refused[reason] ?? 0) + n);
    if ((await reviewOf(sql, delta.key))?.state === 'locked') {
      refuse('locked');
      return false;
    }
    const { entries, ...header } = delta;
    let size = -1;
    const previousState = (await sql<{ state: string }>(`SELECT state FROM baseline_nodes WHERE key = $1 AND node = $2`, [delta.key, node])).rows[0]?.state;
    if (delta.state === 'learning') await sql(`UPDATE baseline_reviews SET state = '' WHERE key = $1 AND state = 'relearn'`, [delta.key]);
    await sql(
      `INSERT INTO baseline_nodes (key, node, version, received_at, state, header) VALUES ($1, $2, $3, $4, $5, $6)
       ON CONFLICT (key, node) DO UPDATE SET version = excluded.version, received_at = excluded.received_at, state = excluded.state, header = excluded.header
       WHERE excluded.version >= baseline_nodes.version`,
      [delta.key, node, delta.version, receivedAt, delta.state, JSON.stringify(header)],
    );
    let clusterChanged = previousState !== delta.state;
    for (const e of entries) {
      const old = (await sql<NodeShareRow>(`SELECT first_seen, last_seen, count, example_keys FROM baseline_entry_nodes WHERE key = $1 AND entry_id = $2 AND node = $3`, [delta.key, e.id, node])).rows[0];
      if (!old && !(await mergedExists(sql, delta.key, e.id))) {
        if (size === -1) size = (await sql<{ n: number }>(`SELECT count(*) AS n FROM baseline_entries WHERE key = $1`, [delta.key])).rows[0]!.n;
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
        const stored = (await sql<{ examples: string }>(`SELECT examples FROM baseline_entries WHERE key = $1 AND entry_id = $2`, [delta.key, e.id])).rows[0]?.examples;
        ({ examples, keys } = mergeExamples(stored, e.examples, keys, MAX_MERGED_EXAMPLES));
        merged = examples;
      }
      await sql(
        `INSERT INTO baseline_entry_nodes (key, entry_id, node, first_seen, last_seen, count, example_keys) VALUES ($1, $2, $3, $4, $5, $6, $7)
         ON CONFLICT (key, entry_id, node) DO UPDATE SET first_seen = LEAST(baseline_entry_nodes.first_seen, excluded.first_seen),
           last_seen = GREATEST(baseline_entry_nodes.last_seen, excluded.last_seen), count = GREATEST(baseline_entry_nodes.count, excluded.count),
           example_keys = CASE WHEN baseline_entry_nodes.example_keys IS NULL THEN NULL ELSE excluded.example_keys END`,
        [delta.key, e.id, node, e.firstSeen, e.lastSeen, e.count, keys],
      );
      await sql(UPSERT_MERGED, [delta.key, e.id, e.entry.type, e.firstSeen, e.lastSeen, grown, old ? 0 : 1, examples, merged, e.origin ?? null]);
      const flag = old ? null : flagReasonOf(e);
      if (flag !== null) await sql(INSERT_FLAG, [delta.key, e.id, receivedAt, flag]);
    }
    return clusterChanged;
  }

  async function viewOf(sql: Sql, key: string): Promise<BaselineView | null> {
    const headers = await headersOf(sql, key);
    const review = await reviewOf(sql, key);
    if (headers.size === 0 && review === undefined) return null;
    const nodes = new Map<string, string[]>();
    for (const r of (await sql<{ entry_id: string; node: string }>(`SELECT entry_id, node FROM baseline_entry_nodes WHERE key = $1 ORDER BY entry_id, node`, [key])).rows) {
      let list = nodes.get(r.entry_id);
      if (!list) nodes.set(r.entry_id, (list = []));
      if (list.length < MAX_LISTED_NODES) list.push(r.node);
    }
    const statuses = (await sql<{ entry_id: string; status: EntryStatus; reason: string }>(`SELECT entry_id, status, reason FROM baseline_entry_reviews WHERE key = $1`, [key])).rows;
    const reviews = new Map(statuses.map((r) => [r.entry_id, r]));
    const rows = (
      await sql<EntryRow>(
        `SELECT entry_id, first_seen, last_seen, count, examples, dropped_nodes, origin FROM baseline_entries WHERE key = $1 ORDER BY entry_id`,
        [key],
      )
    ).rows;
    return assembleView({ key, headers, review, nodes, reviews, rows }, log);
  }

  async function recordVersion(sql: Sql, key: string, by: string, action: string, reason: string, at: number): Promise<{ view: BaselineView; version: number }> {
    const review = await reviewOf(sql, key);
    const version = (review?.version ?? 0) + 1;
    await sql(UPSERT_REVIEW, [key, review?.state ?? '', version]);
    const view = (await viewOf(sql, key))!;
    const c = clusterOf(view);
    await sql(`INSERT INTO baseline_versions (key, version, at, by, action, reason, state, entries, removed) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)`, [
      key,
      version,
      at,
      by,
      action,
      reason,
      view.state,
      JSON.stringify(c.entryIds),
      JSON.stringify(c.removedIds),
    ]);
    return { view, version };
  }

  async function addEntry(sql: Sql, key: string, entry: Entry, status: EntryStatus, by: string, at: number, reason: string): Promise<string> {
    const id = entryId(entry);
    if (!(await mergedExists(sql, key, id))) await sql(UPSERT_MERGED, [key, id, entry.type, at, at, 0, 0, '[]', null, null]);
    await sql(UPSERT_STATUS, [key, id, status, by, at, reason]);
    return id;
  }

  /** Take one node's share out of a key (see the SQLite slice's dropNode); null when it taught the key nothing. */
  async function dropNode(sql: Sql, key: string, node: string): Promise<Omit<NodeDropResult, 'keys'> | null> {
    const rows = (await sql<NodeShareRow & { entry_id: string }>(`SELECT entry_id, first_seen, last_seen, count, example_keys FROM baseline_entry_nodes WHERE key = $1 AND node = $2`, [key, node])).rows;
    const hadHeader = (await sql(`DELETE FROM baseline_nodes WHERE key = $1 AND node = $2`, [key, node])).rowCount > 0;
    if (rows.length === 0 && !hadHeader) return null;
    const out = { entriesRemoved: 0, entriesRecomputed: 0, entriesNarrowed: 0 };
    for (const r of rows) {
      const status = (await sql<{ status: EntryStatus }>(`SELECT status FROM baseline_entry_reviews WHERE key = $1 AND entry_id = $2`, [key, r.entry_id])).rows[0]?.status;
      const rest = (await sql<NodeShareRow>(`SELECT first_seen, last_seen, count, example_keys FROM baseline_entry_nodes WHERE key = $1 AND entry_id = $2 AND node != $3`, [key, r.entry_id, node])).rows.map(shareOf);
      if (rest.length === 0 && status !== 'approved' && status !== 'added' && status !== 'removed') {
        await sql(`DELETE FROM baseline_entries WHERE key = $1 AND entry_id = $2`, [key, r.entry_id]);
        await sql(`DELETE FROM baseline_entry_reviews WHERE key = $1 AND entry_id = $2 AND status IN ('learned', 'flagged')`, [key, r.entry_id]);
        out.entriesRemoved++;
        continue;
      }
      const m = (
        await sql<{ first_seen: number; last_seen: number; count: number; examples: string; dropped_nodes: string }>(
          `SELECT first_seen, last_seen, count, examples, dropped_nodes FROM baseline_entries WHERE key = $1 AND entry_id = $2`,
          [key, r.entry_id],
        )
      ).rows[0];
      if (!m) continue;
      const merged = { firstSeen: m.first_seen, lastSeen: m.last_seen, count: m.count, nodes: rest.length + 1, examples: JSON.parse(m.examples) as string[] };
      const { stats, narrowed } = withoutShare(merged, shareOf(r), rest, status === 'added');
      const dropped = JSON.stringify(unite(JSON.parse(m.dropped_nodes) as string[], [node], MAX_DROPPED_NODES));
      await sql(`UPDATE baseline_entries SET first_seen = $1, last_seen = $2, count = $3, nodes = $4, examples = $5, dropped_nodes = $6 WHERE key = $7 AND entry_id = $8`, [
        stats.firstSeen,
        stats.lastSeen,
        stats.count,
        stats.nodes,
        JSON.stringify(stats.examples),
        dropped,
        key,
        r.entry_id,
      ]);
      out.entriesRecomputed++;
      if (narrowed.length > 0) {
        out.entriesNarrowed++;
        if (out.entriesNarrowed <= 20) log.warn({ key: key.slice(0, 256), entryId: r.entry_id.slice(0, 256), node, narrowed }, 'could not tell the dropped node\'s share of an entry from security\'s own exactly: narrowed to what provably remains');
      }
    }
    await sql(`DELETE FROM baseline_entry_nodes WHERE key = $1 AND node = $2`, [key, node]);
    return out;
  }

  async function review(sql: Sql, key: string, change: BaselineChange, by: string, reason: string, at: number): Promise<ReviewResult> {
    await lockKeys(sql, [key]);
    const before = await viewOf(sql, key);
    if (!before && change.action !== 'import' && change.action !== 'add') return { ok: false, status: 404, message: `no baseline with key ${JSON.stringify(key.slice(0, 256))}` };
    const current = await reviewOf(sql, key);
    const setState = (state: string) => sql(UPSERT_REVIEW, [key, state, current?.version ?? 0]);
    const setStatus = (id: string, status: EntryStatus) => sql(UPSERT_STATUS, [key, id, status, by, at, reason]);
    const find = (id: string) => before?.entries.find((e) => e.id === id);
    let dropped: Omit<NodeDropResult, 'keys'> | undefined;
    switch (change.action) {
      case 'lock':
        if (before?.state === 'locked') return { ok: false, status: 409, message: 'the baseline is already locked' };
        await setState('locked');
        break;
      case 'unlock':
        if (current?.state !== 'locked' && current?.state !== 'enforcing') return { ok: false, status: 409, message: 'the baseline is not locked' };
        await setState('');
        break;
      case 'relearn':
        if (before?.state === 'learning' || before?.state === 'relearn') return { ok: false, status: 409, message: `the baseline is already ${before.state}` };
        await sql(`DELETE FROM baseline_nodes WHERE key = $1`, [key]);
        await sql(`DELETE FROM baseline_entry_nodes WHERE key = $1`, [key]);
        await sql(`DELETE FROM baseline_entries WHERE key = $1 AND entry_id NOT IN (SELECT entry_id FROM baseline_entry_reviews WHERE key = $1 AND status IN ('approved', 'added'))`, [key]);
        await sql(`DELETE FROM baseline_entry_reviews WHERE key = $1 AND status = 'flagged'`, [key]);
        await setState('relearn');
        break;
      case 'approve':
      case 'remove': {
        const e = find(change.entryId);
        if (!e) return { ok: false, status: 404, message: 'no entry with this id in the baseline' };
        if (change.action === 'approve' && e.status === 'removed') return { ok: false, status: 409, message: 'the entry was removed; add it again to allow it' };
        if (change.action === 'remove' && e.status === 'removed') return { ok: false, status: 409, message: 'the entry is already removed' };
        await setStatus(e.id, change.action === 'approve' ? 'approved' : 'removed');
        break;
      }
      case 'drop-node':
        dropped = (await dropNode(sql, key, change.node)) ?? undefined;
        if (!dropped) return { ok: false, status: 404, message: `node ${JSON.stringify(change.node.slice(0, 256))} taught this baseline nothing` };
        break;
      case 'add': {
        const e = find(entryId(change.entry));
        if (e && e.status !== 'removed') return { ok: false, status: 409, message: `the baseline already has this entry (${e.status})` };
        if (!current) await sql(UPSERT_REVIEW, [key, '', 0]);
        await addEntry(sql, key, change.entry, 'added', by, at, reason);
        break;
      }
      case 'import': {
        if (!current) await sql(UPSERT_REVIEW, [key, '', 0]);
        await setState(change.state === 'locked' ? 'locked' : change.state === 'enforcing' ? 'enforcing' : '');
        const wanted = new Set<string>();
        for (const entry of change.entries) {
          const id = entryId(entry);
          wanted.add(id);
          const e = find(id);
          if (e && e.status !== 'removed') {
            if (e.status === 'learned') await setStatus(id, 'approved');
          } else await addEntry(sql, key, entry, 'added', by, at, reason);
        }
        for (const entry of change.removed) {
          const id = entryId(entry);
          if (!wanted.has(id)) await setStatus(id, 'removed');
        }
        for (const e of before?.entries ?? []) if (!wanted.has(e.id) && e.status !== 'removed') await setStatus(e.id, 'removed');
        // The document's drift allow list is the key's (absent: none).
        await sql(`UPDATE baseline_reviews SET drift_allowed = $1 WHERE key = $2`, [JSON.stringify(change.driftAllowed ?? []), key]);
        break;
      }
      case 'allow-drift':
      case 'disallow-drift': {
        const next = changedDriftAllowed(before?.driftAllowed ?? [], change);
        if (!Array.isArray(next)) return { ok: false, ...next };
        if (!current) await sql(UPSERT_REVIEW, [key, '', 0]);
        await sql(`UPDATE baseline_reviews SET drift_allowed = $1 WHERE key = $2`, [JSON.stringify(next), key]);
        break;
      }
    }
    const { view, version } = await recordVersion(sql, key, by, change.action, reason, at);
    return dropped ? { ok: true, before, after: view, version, dropped } : { ok: true, before, after: view, version };
  }

  async function knowsMany(sql: Sql, pairs: readonly { key: string; id: string }[]): Promise<Set<string>> {
    const known = new Set<string>();
    if (pairs.length === 0) return known;
    const exact = await sql<{ key: string; entry_id: string }>(
      `SELECT e.key, e.entry_id FROM baseline_entries e JOIN unnest($1::text[], $2::text[]) AS q(key, id) ON e.key = q.key AND e.entry_id = q.id WHERE ${NOT_REMOVED}`,
      [pairs.map((p) => p.key), pairs.map((p) => p.id)],
    );
    for (const r of exact.rows) known.add(`${r.key}\n${r.entry_id}`);
    // Network entries not known exactly may be covered by a block or the public class of their key.
    const rest = pairs.filter((p) => !p.id.startsWith('exec|') && !known.has(`${p.key}\n${p.id}`));
    if (rest.length === 0) return known;
    const general = new Map<string, string[]>();
    const rows = await sql<{ key: string; entry_id: string }>(
      `SELECT e.key, e.entry_id FROM baseline_entries e WHERE e.key = ANY($1::text[]) AND e.type = 'network' AND (strpos(e.entry_id, '/') > 0 OR strpos(e.entry_id, '|@public|') > 0) AND ${NOT_REMOVED}`,
      [[...new Set(rest.map((p) => p.key))]],
    );
    for (const r of rows.rows) {
      let ids = general.get(r.key);
      if (!ids) general.set(r.key, (ids = []));
      ids.push(r.entry_id);
    }
    for (const p of rest) {
      const ids = general.get(p.key);
      if (ids && coveringEntryId(entryFromId(p.id), ids) !== null) known.add(`${p.key}\n${p.id}`);
    }
    return known;
  }

  return {
    store: {
      listBaselines: () =>
        snapshot(pool, async (sql): Promise<BaselineSummary[]> => {
          const headers = new Map<string, Map<string, SnapshotHeader>>();
          for (const row of (await sql<{ key: string; node: string; header: string }>(`SELECT key, node, header FROM baseline_nodes ORDER BY key`)).rows) {
            let m = headers.get(row.key);
            if (!m) headers.set(row.key, (m = new Map()));
            m.set(row.node, JSON.parse(row.header) as SnapshotHeader);
          }
          const reviews = new Map((await sql<{ key: string; state: string; version: number }>(`SELECT key, state, version FROM baseline_reviews`)).rows.map((r) => [r.key, r]));
          for (const key of reviews.keys()) if (!headers.has(key)) headers.set(key, new Map());
          const counts = new Map(
            (await sql<{ key: string; process: number; total: number }>(`SELECT key, count(*) FILTER (WHERE type = 'process') AS process, count(*) AS total FROM baseline_entries GROUP BY key`)).rows.map((r) => [r.key, r]),
          );
          const open = new Map((await sql<{ key: string; n: number }>(`SELECT key, n FROM baseline_open_alerts WHERE n > 0`)).rows.map((r) => [r.key, r.n]));
          return [...headers].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)).map(([key, byNode]) => {
            const c = counts.get(key);
            const merged = mergeHeaders(key, byNode);
            const review = reviews.get(key);
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
        }),
      getBaseline: (key) => snapshot(pool, (sql) => viewOf(sql, key)),
      reviewBaseline: (key, change, by, reason, at) =>
        transaction(pool, async (sql) => {
          const result = await review(sql, key, change, by, reason, at);
          // Every replica pushes the new version to its agents (delivered at COMMIT).
          if (result.ok) await announce(sql, CHANNELS.baseline, [key]);
          return result;
        }),
      listVersions: (key) => snapshot(pool, async (sql) => (await sql<VersionRow>(`SELECT * FROM baseline_versions WHERE key = $1 ORDER BY version DESC LIMIT 1000`, [key])).rows.map(versionOf)),
      getVersion: (key, version) =>
        snapshot(pool, async (sql) => {
          const r = (await sql<VersionRow>(`SELECT * FROM baseline_versions WHERE key = $1 AND version = $2`, [key, version])).rows[0];
          return r ? versionOf(r) : null;
        }),
      clusterBaseline: (key) =>
        snapshot(pool, async (sql) => {
          const v = await viewOf(sql, key);
          return v ? clusterOf(v) : null;
        }),
      clusterKeys: () =>
        snapshot(pool, async (sql) => {
          const reviewed = (await sql<{ key: string }>(`SELECT key FROM baseline_reviews`)).rows.map((r) => r.key);
          const past = (await sql<{ key: string }>(`SELECT DISTINCT key FROM baseline_nodes WHERE state != 'learning'`)).rows.map((r) => r.key);
          return [...new Set<string>([...reviewed, ...past])];
        }),
    },
    applyDelta,
    knowsMany,
    factsOf: async (sql, key) =>
      baselineFactsOf(
        (await sql<{ entry_id: string }>(`SELECT entry_id FROM baseline_entries e WHERE e.key = $1 AND e.type = 'process' AND ${NOT_REMOVED}`, [key])).rows.map((r) => entryFromId(r.entry_id)),
      ),
    async factsOfMany(sql, keys) {
      const ids = new Map<string, string[]>(keys.map((k) => [k, []]));
      if (keys.length === 0) return new Map();
      const { rows } = await sql<{ key: string; entry_id: string }>(
        `SELECT e.key, e.entry_id FROM baseline_entries e WHERE e.key = ANY($1::text[]) AND e.type = 'process' AND ${NOT_REMOVED}`,
        [[...ids.keys()]],
      );
      for (const r of rows) ids.get(r.key)?.push(r.entry_id);
      return new Map([...ids].map(([key, list]) => [key, baselineFactsOf(list.map(entryFromId))]));
    },
    async accept(sql, before, change) {
      const key = before.baselineKey;
      const id = entryId(before.entry);
      await sql(UPSERT_MERGED, [key, id, before.entry.type, before.firstSeen, before.lastSeen, 0, 0, JSON.stringify(before.example === '' ? [] : [before.example]), null, null]);
      if (!(await reviewOf(sql, key))) await sql(UPSERT_REVIEW, [key, '', 0]);
      await sql(UPSERT_STATUS, [key, id, 'added', change.by, change.at, change.comment || 'accepted from an alert']);
      await recordVersion(sql, key, change.by, 'accept', change.comment || `accepted alert ${before.fingerprint}`, change.at);
      await announce(sql, CHANNELS.baseline, [key]);
    },
    async dropNodeEverywhere(sql, node, version) {
      const keys = (
        await sql<{ key: string }>(`SELECT key FROM baseline_nodes WHERE node = $1 UNION SELECT key FROM baseline_entry_nodes WHERE node = $1 ORDER BY key`, [node])
      ).rows.map((r) => r.key);
      await lockKeys(sql, keys);
      const out: NodeDropResult = { keys, entriesRemoved: 0, entriesRecomputed: 0, entriesNarrowed: 0 };
      for (const key of keys) {
        const d = await dropNode(sql, key, node);
        if (d) {
          out.entriesRemoved += d.entriesRemoved;
          out.entriesRecomputed += d.entriesRecomputed;
          out.entriesNarrowed += d.entriesNarrowed;
        }
        await recordVersion(sql, key, version.by, version.action, version.reason, version.at);
      }
      await announce(sql, CHANNELS.baseline, keys);
      return out;
    },
  };
}
