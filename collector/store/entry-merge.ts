/**
 * What merging one entry of an agent's delta decides, whichever store holds it: the merged examples
 * and which of them this node sent, and why a new entry is flagged for review. Pure: each store reads
 * the rows, asks here, and writes the answer with its own statements.
 */
import type { EntryStats } from '../../core/baseline.js';
import { generalPeerOf } from '../../core/entry.js';
import { exampleKey, unite } from '../../core/merge.js';

/**
 * The entry's merged examples with those the node sent added (bounded), and the node's example keys
 * with the keys of the examples of its that were kept: dropping the node takes out those and no one
 * else's. `keys` null (a row older than example provenance) stays null.
 */
export function mergeExamples(stored: string | undefined, sent: readonly string[], keys: string | null, bound: number): { examples: string; keys: string | null } {
  const next = unite(stored === undefined ? [] : (JSON.parse(stored) as string[]), sent, bound);
  return {
    examples: JSON.stringify(next),
    keys: keys === null ? null : JSON.stringify(unite(JSON.parse(keys) as string[], sent.filter((x) => next.includes(x)).map(exampleKey), bound)),
  };
}

/**
 * The SQL expression both stores merge an entry's origin with, given the stored column `origin` and
 * (`column`) and the node's value `param` (NULL when it told none): core/event mergeOrigin, in SQL. A drift origin
 * replaces any; `image` replaces none or `unknown`; NULL or `unknown` changes nothing. The values were
 * validated on the wire (proto/index originFromWire), and `param` is a placeholder, never text.
 */
export function mergeOriginSql(param: string, column = 'origin'): string {
  const c = column;
  return `CASE WHEN ${param} IS NULL OR ${param} = 'unknown' THEN ${c} WHEN ${param} IN ('upper-layer', 'memfd', 'deleted') OR ${c} IS NULL OR ${c} = 'unknown' THEN ${param} ELSE ${c} END`;
}

/**
 * Why a newly merged entry is flagged for review, or null: brought by a new image version during its
 * grace period, or a block or class an agent generalized from many addresses (with the evidence it was
 * learned from).
 */
export function flagReasonOf(e: EntryStats): string | null {
  if (e.addedBy !== undefined) return `new in version ${e.addedBy} (learned during its grace period)`;
  if (e.entry.type === 'network' && generalPeerOf(e.entry.peer) !== null) return (e.examples.find((x) => x.startsWith('generalized')) ?? 'generalized from many addresses').slice(0, 512);
  return null;
}
