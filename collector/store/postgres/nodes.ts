/** The nodes slice on PostgreSQL: each agent's last contact and lag, kept across collector restarts. */
import type pg from 'pg';
import type { Async } from '../async.js';
import type { NodeRecord, NodeStore } from '../store.js';
import { transaction, type Sql } from './db.js';

interface NodeRow {
  node: string;
  agent_version: string;
  sources: string;
  first_seen: number;
  last_contact: number;
  spooled: number;
  spool_bytes: number;
  lag_ms: number;
  spool_dropped: number;
  watermark: number;
  silent_since: number;
  stopped_at: number;
}

/** The nodes slice on `pool`. */
export function postgresNodes(pool: pg.Pool, sql: Sql): Async<NodeStore> {
  return {
    saveNodes: (records: readonly NodeRecord[]) =>
      transaction(pool, async (tx) => {
        for (const r of records) {
          await tx(
            `INSERT INTO nodes (node, agent_version, sources, first_seen, last_contact, spooled, spool_bytes, lag_ms, spool_dropped, watermark, silent_since, stopped_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)
             ON CONFLICT (node) DO UPDATE SET agent_version = excluded.agent_version, sources = excluded.sources, first_seen = excluded.first_seen,
               last_contact = excluded.last_contact, spooled = excluded.spooled, spool_bytes = excluded.spool_bytes, lag_ms = excluded.lag_ms,
               spool_dropped = excluded.spool_dropped, watermark = excluded.watermark, silent_since = excluded.silent_since, stopped_at = excluded.stopped_at`,
            [r.node, r.agentVersion, JSON.stringify(r.sources), r.firstSeen, r.lastContact, r.spooled, r.spoolBytes, r.lagMs, r.spoolDropped, r.watermark, r.silentSince, r.stoppedAt],
          );
        }
      }),
    deleteNode: async (node) => (await sql(`DELETE FROM nodes WHERE node = $1`, [node])).rowCount > 0,
    async listNodes() {
      const { rows } = await sql<NodeRow>(`SELECT * FROM nodes ORDER BY node`);
      return rows.map((r) => ({
        node: r.node,
        agentVersion: r.agent_version,
        sources: JSON.parse(r.sources) as string[],
        firstSeen: r.first_seen,
        lastContact: r.last_contact,
        spooled: r.spooled,
        spoolBytes: r.spool_bytes,
        lagMs: r.lag_ms,
        spoolDropped: r.spool_dropped,
        watermark: r.watermark,
        silentSince: r.silent_since,
        stoppedAt: r.stopped_at,
      }));
    },
  };
}
