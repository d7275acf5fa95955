/**
 * The quarantine slice: nodes whose agents are not trusted any more. Quarantining one drops what it
 * taught from every baseline (the baselines slice does, a version per key) in the same transaction;
 * from then on the ingest slice refuses its deltas and the deviations slice marks what it sent.
 */
import type { NodeDropResult, QuarantineStore, QuarantinedNode } from '../store.js';
import type { SqliteBaselines } from './baselines.js';
import { writeTransaction, type Db } from './db.js';

/** The quarantine slice, and what the ingest and deviations slices read of it. */
export interface SqliteQuarantine {
  store: QuarantineStore;
  isQuarantined(node: string): boolean;
  /** Every quarantined node. */
  names(): Set<string>;
}

/** The quarantine slice on `db`. */
export function sqliteQuarantine(db: Db, deps: { baselines: SqliteBaselines }): SqliteQuarantine {
  const { baselines } = deps;
  const isQuarantined = db.prepare(`SELECT 1 FROM quarantined_nodes WHERE node = ?`).pluck();
  const insertQuarantine = db.prepare(`INSERT OR IGNORE INTO quarantined_nodes (node, by, at, reason) VALUES (?, ?, ?, ?)`);
  const deleteQuarantine = db.prepare(`DELETE FROM quarantined_nodes WHERE node = ?`);
  const selectQuarantined = db.prepare(`SELECT node, by, at, reason FROM quarantined_nodes ORDER BY node`);
  const quarantinedNames = db.prepare(`SELECT node FROM quarantined_nodes`).pluck();

  const quarantineTx = writeTransaction(db, (node: string, by: string, reason: string, at: number): NodeDropResult | null => {
    if (insertQuarantine.run(node, by, at, reason).changes === 0) return null;
    return baselines.dropNodeEverywhere(node, { by, action: 'quarantine', reason: `node ${node} quarantined${reason === '' ? '' : `: ${reason}`}`, at });
  });

  return {
    store: {
      quarantineNode: (node, by, reason, at) => quarantineTx(node, by, reason, at),
      releaseNode: (node) => deleteQuarantine.run(node).changes > 0,
      listQuarantined: () => selectQuarantined.all() as QuarantinedNode[],
    },
    isQuarantined: (node) => isQuarantined.get(node) !== undefined,
    names: () => new Set(quarantinedNames.all() as string[]),
  };
}
