/**
 * A baseline as a reviewer sees it, assembled from what either store read: the nodes' headers,
 * security's review, the merged entries with the nodes that taught each and their statuses. Pure, so
 * SQLite and PostgreSQL answer `getBaseline` and push down `clusterBaseline` the same way.
 */
import { DRIFT_ALLOW_LIMITS, type BaselineState } from '../../core/baseline.js';
import { entryFromId, entryId } from '../../core/entry.js';
import { mergeHeaders, type SnapshotHeader } from '../../core/merge.js';
import type { BaselineView, ClusterBaseline, EntryStatus, ReviewedEntry, ReviewedState } from './store.js';
import type { ExecutableOrigin } from '../../core/event.js';

/** One merged entry row as both stores keep it. */
export interface EntryRow {
  entry_id: string;
  first_seen: number;
  last_seen: number;
  count: number;
  examples: string;
  dropped_nodes: string;
  /** core/event ExecutableOrigin, or NULL (rows before it, network entries, no source told). */
  origin?: string | null;
}

/** What the view is made of. */
export interface ViewParts {
  key: string;
  /** Each node's last header for the key. */
  headers: ReadonlyMap<string, SnapshotHeader>;
  /** Security's review of the key, if any. */
  review: { state: string; version: number; drift_allowed?: string } | undefined;
  /** The nodes that taught each entry (already bounded). */
  nodes: ReadonlyMap<string, string[]>;
  /** Each reviewed entry's status. */
  reviews: ReadonlyMap<string, { status: EntryStatus; reason: string }>;
  /** The merged entries, by id. */
  rows: readonly EntryRow[];
}

/** Whether `id` is the id of the entry it names (rows of older versions may not be). */
export function validEntryId(id: string): boolean {
  try {
    return entryId(entryFromId(id)) === id;
  } catch {
    return false;
  }
}

/** The namespaces the nodes saw a key in, sorted, bounded. */
export function namespacesOf(headers: ReadonlyMap<string, SnapshotHeader>): string[] {
  const all = new Set<string>();
  for (const h of headers.values()) for (const ns of h.namespaces ?? []) if (all.size < 64) all.add(ns);
  return [...all].sort();
}

/** The reviewed state: security's override, else the most advanced state the agents report. */
export function reviewedState(merged: BaselineState, review: { state: string } | undefined): ReviewedState {
  const s = review?.state ?? '';
  return s === 'locked' || s === 'enforcing' || s === 'relearn' ? s : merged;
}

/**
 * The view of a key. A stored row whose id is not an entry id (an older version's) is skipped with a
 * log line, never fails the key; removed entries stay listed (removed stays removed), even after a
 * relearn dropped their stats.
 */
export function assembleView(parts: ViewParts, log: { warn(o: object, msg: string): void }): BaselineView {
  const { key, headers, review, nodes, reviews, rows } = parts;
  const merged = mergeHeaders(key, headers);
  const skip = (id: string) => {
    log.warn({ key: key.slice(0, 256), entryId: id.slice(0, 256) }, 'skipped a stored baseline entry whose id is not an entry id');
    return true;
  };
  const entries: ReviewedEntry[] = [];
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
      droppedNodes: JSON.parse(r.dropped_nodes) as string[],
      ...(r.origin ? { origin: r.origin as ExecutableOrigin } : {}),
      status: reviews.get(r.entry_id)?.status ?? 'learned',
      statusReason: reviews.get(r.entry_id)?.reason ?? '',
    });
  }
  const listed = new Set(rows.map((r) => r.entry_id));
  for (const [id, { status, reason }] of reviews) {
    if (status === 'removed' && !listed.has(id) && (validEntryId(id) || !skip(id))) entries.push({ id, entry: entryFromId(id), firstSeen: 0, lastSeen: 0, count: 0, nodes: [], examples: [], droppedNodes: [], status, statusReason: reason });
  }
  entries.sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  const partial = [...headers.values()].some((h) => h.partial === true);
  const driftAllowed = review?.drift_allowed ? (JSON.parse(review.drift_allowed) as string[]) : [];
  return { ...merged, state: reviewedState(merged.state, review), version: review?.version ?? 0, partial, namespaces: namespacesOf(headers), entries, driftAllowed };
}

/** What agents enforce for a key: its active and removed entry ids, and its state. */
export function clusterOf(view: BaselineView): ClusterBaseline {
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
    ...(view.driftAllowed.length > 0 ? { driftAllowed: [...view.driftAllowed] } : {}),
  };
}

/**
 * The drift allow list after a change, or an error message: a pattern is added once, at most
 * DRIFT_ALLOW_LIMITS.patterns of them; one that is not listed cannot be taken out. Both stores ask here.
 */
export function changedDriftAllowed(current: readonly string[], change: { action: 'allow-drift' | 'disallow-drift'; pattern: string }): string[] | { status: 409; message: string } {
  const has = current.includes(change.pattern);
  if (change.action === 'allow-drift') {
    if (has) return { status: 409, message: 'the pattern is already allowed' };
    if (current.length >= DRIFT_ALLOW_LIMITS.patterns) return { status: 409, message: `at most ${DRIFT_ALLOW_LIMITS.patterns} drift patterns per baseline` };
    return [...current, change.pattern];
  }
  if (!has) return { status: 409, message: 'the pattern is not allowed' };
  return current.filter((p) => p !== change.pattern);
}
