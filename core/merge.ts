/**
 * Merging what several nodes sent for one baseline key into the cluster's view of it: the earliest
 * window and the most advanced state (entries merge row by row in the collector's store). Pure.
 */
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
