/**
 * The quarantine slice on PostgreSQL: nodes whose agents are not trusted any more. Quarantining one
 * holds the node's lock (db.ts lockNode) and drops what it taught from every key (the baselines
 * slice, a version per key) in the same transaction.
 */
import type pg from 'pg';
import type { Async } from '../async.js';
import type { NodeDropResult, QuarantineStore, QuarantinedNode } from '../store.js';
import type { PostgresBaselines } from './baselines.js';
import { lockNode, transaction, type Sql } from './db.js';

/** The quarantine slice, and what the ingest and deviations slices read of it. */
export interface PostgresQuarantine {
  store: Async<QuarantineStore>;
  isQuarantined(sql: Sql, node: string): Promise<boolean>;
  /** Every quarantined node. */
  names(sql: Sql): Promise<Set<string>>;
}

/** The quarantine slice on `pool`. */
export function postgresQuarantine(pool: pg.Pool, sql: Sql, deps: { baselines: PostgresBaselines }): PostgresQuarantine {
  const { baselines } = deps;
  return {
    store: {
      quarantineNode: (node, by, reason, at) =>
        transaction(pool, async (tx): Promise<NodeDropResult | null> => {
          await lockNode(tx, node, true);
          const inserted = await tx(`INSERT INTO quarantined_nodes (node, by, at, reason) VALUES ($1, $2, $3, $4) ON CONFLICT (node) DO NOTHING`, [node, by, at, reason]);
          if (inserted.rowCount === 0) return null;
          return baselines.dropNodeEverywhere(tx, node, { by, action: 'quarantine', reason: `node ${node} quarantined${reason === '' ? '' : `: ${reason}`}`, at });
        }),
      releaseNode: async (node) => (await sql(`DELETE FROM quarantined_nodes WHERE node = $1`, [node])).rowCount > 0,
      listQuarantined: async () => (await sql<QuarantinedNode>(`SELECT node, by, at, reason FROM quarantined_nodes ORDER BY node`)).rows,
    },
    isQuarantined: async (tx, node) => (await tx(`SELECT 1 FROM quarantined_nodes WHERE node = $1`, [node])).rowCount > 0,
    names: async (tx) => new Set((await tx<{ node: string }>(`SELECT node FROM quarantined_nodes`)).rows.map((r) => r.node)),
  };
}
