/**
 * The nodes slice on PostgreSQL: each agent's last contact and lag, kept across collector restarts.
 * Several replicas save the records of the nodes they hear from: a row keeps the latest contact any
 * replica had (GREATEST) and the rest of the record from whichever replica had it, so a replica that
 * has not heard from a node lately never moves its last contact back (see NodeStore.saveNodes).
 */
import type pg from 'pg';
import type { Async } from '../async.js';
import { nodeOf, type NodeRow } from '../sqlite/nodes.js';
import type { NodeRecord, NodeStore } from '../store.js';
import { transaction, type Sql } from './db.js';

/** The nodes slice on `pool`. */
export function postgresNodes(pool: pg.Pool, sql: Sql): Async<NodeStore> {
  return {
    saveNodes: (records: readonly NodeRecord[]) =>
      transaction(pool, async (tx) => {
        for (const r of records) {
          await tx(
            `INSERT INTO nodes (node, agent_version, sources, first_seen, last_contact, spooled, spool_bytes, lag_ms, spool_dropped, watermark, silent_since, stopped_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)
             ON CONFLICT (node) DO UPDATE SET
               first_seen = LEAST(nodes.first_seen, excluded.first_seen),
               last_contact = GREATEST(nodes.last_contact, excluded.last_contact),
               agent_version = CASE WHEN excluded.last_contact >= nodes.last_contact THEN excluded.agent_version ELSE nodes.agent_version END,
               sources = CASE WHEN excluded.last_contact >= nodes.last_contact THEN excluded.sources ELSE nodes.sources END,
               spooled = CASE WHEN excluded.last_contact >= nodes.last_contact THEN excluded.spooled ELSE nodes.spooled END,
               spool_bytes = CASE WHEN excluded.last_contact >= nodes.last_contact THEN excluded.spool_bytes ELSE nodes.spool_bytes END,
               lag_ms = CASE WHEN excluded.last_contact >= nodes.last_contact THEN excluded.lag_ms ELSE nodes.lag_ms END,
               spool_dropped = CASE WHEN excluded.last_contact >= nodes.last_contact THEN excluded.spool_dropped ELSE nodes.spool_dropped END,
               watermark = CASE WHEN excluded.last_contact >= nodes.last_contact THEN excluded.watermark ELSE nodes.watermark END,
               silent_since = CASE WHEN excluded.last_contact >= nodes.last_contact THEN excluded.silent_since ELSE nodes.silent_since END,
               stopped_at = CASE WHEN excluded.last_contact >= nodes.last_contact THEN excluded.stopped_at ELSE nodes.stopped_at END`,
            [r.node, r.agentVersion, JSON.stringify(r.sources), r.firstSeen, r.lastContact, r.spooled, r.spoolBytes, r.lagMs, r.spoolDropped, r.watermark, r.silentSince, r.stoppedAt],
          );
        }
      }),
    deleteNode: async (node) => (await sql(`DELETE FROM nodes WHERE node = $1`, [node])).rowCount > 0,
    async listNodes() {
      const { rows } = await sql<NodeRow>(`SELECT * FROM nodes ORDER BY node`);
      return rows.map(nodeOf);
    },
  };
}
