/**
 * Baseline deltas as an agent sends them, for collector tests: a snapshot of a key learned for an
 * hour from T0 (enforcing from then on, unless it is still learning) around the entries a test names.
 */
import type { BaselineSnapshot, EntryStats } from '../../core/baseline.js';
import { entryId, type Entry } from '../../core/entry.js';

export const T0 = Date.UTC(2026, 10, 23, 8, 0, 0);

/** One entry as `node` learned it. */
export function statsOf(entry: Entry, node: string, seen: { firstSeen: number; lastSeen: number; count: number; examples?: string[] }): EntryStats {
  return { id: entryId(entry), entry, firstSeen: seen.firstSeen, lastSeen: seen.lastSeen, count: seen.count, nodes: [node], examples: seen.examples ?? [] };
}

/** A delta of `key` (image tag 1.25, version 5, 100 events) with `entries`; `extra` sets any other field. */
export function deltaOf(key: string, entries: EntryStats[], extra: Partial<BaselineSnapshot> = {}): BaselineSnapshot {
  const state = extra.state ?? 'enforcing';
  return {
    key,
    state,
    version: 5,
    windowStart: T0,
    learnUntil: T0 + 3_600_000,
    enforcingSince: state === 'learning' ? 0 : T0 + 3_600_000,
    events: 100,
    overflow: 0,
    images: [{ repository: key, tag: '1.25', digest: '' }],
    entries,
    ...extra,
  };
}
