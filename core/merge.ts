/**
 * Merging what several nodes sent for one baseline key into the cluster's view of it: the earliest
 * window and the most advanced state (entries merge row by row in the collector's store), and
 * taking one node's share back out of a merged entry. Pure.
 */
import { createHash } from 'node:crypto';
import type { BaselineSnapshot, BaselineState, EntryStats } from './baseline.js';
import type { ImageRef } from './event.js';

/** One baseline key across the cluster. */
export interface MergedBaseline {
  key: string;
  state: BaselineState;
  /** Nodes that sent a snapshot of this key, with the version each last sent. */
  nodes: { node: string; version: number; state: BaselineState }[];
  windowStart: number;
  learnUntil: number;
  enforcingSince: number;
  events: number;
  overflow: number;
  images: ImageRef[];
  entries: EntryStats[];
}

const STATE_RANK: Record<BaselineState, number> = { learning: 0, enforcing: 1, locked: 2 };

/** A snapshot without its entries: what a baseline list needs. */
export type SnapshotHeader = Omit<BaselineSnapshot, 'entries'>;

/** The merged header of one key, without entries. */
export type MergedHeader = Omit<MergedBaseline, 'entries'>;

/** Merge the headers of per-node snapshots of one key (`byNode` maps node → its latest header). */
export function mergeHeaders(key: string, byNode: ReadonlyMap<string, SnapshotHeader>): MergedHeader {
  let state: BaselineState = 'learning';
  let windowStart = Infinity;
  let learnUntil = Infinity;
  let enforcingSince = Infinity;
  let events = 0;
  let overflow = 0;
  const images = new Map<string, ImageRef>();
  const nodes: MergedBaseline['nodes'] = [];
  for (const [node, s] of byNode) {
    nodes.push({ node, version: s.version, state: s.state });
    if (STATE_RANK[s.state] > STATE_RANK[state]) state = s.state;
    windowStart = Math.min(windowStart, s.windowStart);
    learnUntil = Math.min(learnUntil, s.learnUntil);
    if (s.enforcingSince > 0) enforcingSince = Math.min(enforcingSince, s.enforcingSince);
    events += s.events;
    overflow += s.overflow;
    for (const img of s.images) images.set(`${img.repository}:${img.tag}@${img.digest}`, img);
  }
  nodes.sort((a, b) => a.node.localeCompare(b.node));
  return {
    key,
    state,
    nodes,
    windowStart: Number.isFinite(windowStart) ? windowStart : 0,
    learnUntil: Number.isFinite(learnUntil) ? learnUntil : 0,
    enforcingSince: Number.isFinite(enforcingSince) ? enforcingSince : 0,
    events,
    overflow,
    images: [...images.values()],
  };
}

/** The values of `a`, then those of `b` that `a` lacks, at most `max` in all (examples, node lists). */
export function unite(a: readonly string[], b: readonly string[], max: number): string[] {
  const out = a.slice(0, max);
  for (const x of b) if (out.length < max && !out.includes(x)) out.push(x);
  return out;
}

/**
 * The stored key of a raw example: what a node's share of an entry records of the examples it sent
 * (32 hex of sha256), so that the share stays small whatever the examples' length.
 */
export function exampleKey(example: string): string {
  return createHash('sha256').update(example).digest('hex').slice(0, 32);
}

/** One node's share of a merged entry, as the collector's store keeps it. */
export interface EntryShare {
  firstSeen: number;
  lastSeen: number;
  count: number;
  /** exampleKey of each merged example this node sent; null when not recorded (rows of older stores). */
  examples: readonly string[] | null;
}

/** An entry's cluster-wide stats: the nodes' shares merged, plus security's own when it added or accepted the entry. */
export interface MergedEntryStats {
  firstSeen: number;
  lastSeen: number;
  count: number;
  /** How many nodes taught it. */
  nodes: number;
  examples: string[];
}

/** What is left of a merged entry once one node's share is taken out. */
export interface ShareRemoval {
  stats: MergedEntryStats;
  /**
   * Fields that could not be recomputed exactly and were narrowed to what provably came from the
   * remaining nodes or from security: `times` when security's own first or last seen coincided with
   * the removed node's, `examples` when the removed node's examples were not recorded.
   */
  narrowed: ('times' | 'examples')[];
}

/**
 * `merged` without the share `gone`, from the shares that remain (`rest`). Counts add up, so the
 * count is exact: the remaining shares plus what no node accounts for (security's own, or stats a
 * relearn kept). First and last seen are the remaining shares' extremes, plus security's own when
 * the entry may hold one (`ownShare`: security added or accepted it; or a count no node accounts
 * for) and the merged value lies outside every node's share (then it can only be security's). Such
 * a share hidden behind the removed node's times is left out and reported as narrowed; without one,
 * the times are the remaining nodes' alone. An example stays when a remaining
 * node sent it, or when the removed node's examples are recorded and it is not among them.
 */
export function withoutShare(merged: MergedEntryStats, gone: EntryShare, rest: readonly EntryShare[], ownShare: boolean): ShareRemoval {
  const narrowed: ShareRemoval['narrowed'] = [];
  const all = [gone, ...rest];
  const unaccounted = Math.max(0, merged.count - all.reduce((n, s) => n + s.count, 0));
  const own = ownShare || unaccounted > 0;
  const firsts = rest.map((s) => s.firstSeen);
  const lasts = rest.map((s) => s.lastSeen);
  if (own) {
    // Security's own times: exact where they lie outside every node's share; unknown where the
    // removed node's first or last seen covered them (left out then: narrowed, never the node's).
    const first = merged.firstSeen > 0 && merged.firstSeen < Math.min(...all.map((s) => s.firstSeen)) ? merged.firstSeen : null;
    const last = merged.lastSeen > Math.max(...all.map((s) => s.lastSeen)) ? merged.lastSeen : null;
    const firstHidden = first === null && gone.firstSeen === merged.firstSeen && !firsts.includes(merged.firstSeen);
    const lastHidden = last === null && gone.lastSeen === merged.lastSeen && !lasts.includes(merged.lastSeen);
    // One end known bounds the other: security's last seen is not before its first seen.
    if (first !== null) firsts.push(first);
    if (last !== null) lasts.push(last);
    if (firstHidden && last !== null) firsts.push(last);
    if (lastHidden && first !== null) lasts.push(first);
    if (firstHidden || lastHidden) narrowed.push('times');
  }
  const goneKeys = gone.examples === null ? null : new Set(gone.examples);
  const restKeys = new Set(rest.flatMap((s) => s.examples ?? []));
  const examples = merged.examples.filter((x) => {
    const k = exampleKey(x);
    return restKeys.has(k) || (goneKeys !== null && !goneKeys.has(k));
  });
  if (goneKeys === null && examples.length < merged.examples.length) narrowed.push('examples');
  return {
    stats: {
      firstSeen: firsts.length > 0 ? Math.min(...firsts) : 0,
      lastSeen: lasts.length > 0 ? Math.max(...lasts) : 0,
      count: rest.reduce((n, s) => n + s.count, 0) + unaccounted,
      nodes: rest.length,
      examples,
    },
    narrowed,
  };
}
