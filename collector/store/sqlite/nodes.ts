/** The nodes slice: each agent's last contact and lag (issue 7, delivery), kept across collector restarts. */
import type { NodeRecord, NodeStore } from '../store.js';
import { writeTransaction, type Db } from './db.js';

/** One row of `nodes` (the same columns in both stores). */
export interface NodeRow {
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

/** The nodes slice on `db`. */
export function sqliteNodes(db: Db): NodeStore {
  const upsert = db.prepare(`
    INSERT INTO nodes (node, agent_version, sources, first_seen, last_contact, spooled, spool_bytes, lag_ms, spool_dropped, watermark, silent_since, stopped_at)
    VALUES (@node, @agentVersion, @sources, @firstSeen, @lastContact, @spooled, @spoolBytes, @lagMs, @spoolDropped, @watermark, @silentSince, @stoppedAt)
    ON CONFLICT (node) DO UPDATE SET
               first_seen = min(nodes.first_seen, excluded.first_seen),
               last_contact = max(nodes.last_contact, excluded.last_contact),
               agent_version = CASE WHEN excluded.last_contact >= nodes.last_contact THEN excluded.agent_version ELSE nodes.agent_version END,
               sources = CASE WHEN excluded.last_contact >= nodes.last_contact THEN excluded.sources ELSE nodes.sources END,
               spooled = CASE WHEN excluded.last_contact >= nodes.last_contact THEN excluded.spooled ELSE nodes.spooled END,
               spool_bytes = CASE WHEN excluded.last_contact >= nodes.last_contact THEN excluded.spool_bytes ELSE nodes.spool_bytes END,
               lag_ms = CASE WHEN excluded.last_contact >= nodes.last_contact THEN excluded.lag_ms ELSE nodes.lag_ms END,
               spool_dropped = CASE WHEN excluded.last_contact >= nodes.last_contact THEN excluded.spool_dropped ELSE nodes.spool_dropped END,
               watermark = CASE WHEN excluded.last_contact >= nodes.last_contact THEN excluded.watermark ELSE nodes.watermark END,
               silent_since = CASE WHEN excluded.last_contact >= nodes.last_contact THEN excluded.silent_since ELSE nodes.silent_since END,
               stopped_at = CASE WHEN excluded.last_contact >= nodes.last_contact THEN excluded.stopped_at ELSE nodes.stopped_at END`);
  const selectAll = db.prepare(`SELECT * FROM nodes ORDER BY node`);
  const remove = db.prepare(`DELETE FROM nodes WHERE node = ?`);
  const saveTx = writeTransaction(db, (records: readonly NodeRecord[]) => {
    for (const r of records) upsert.run({ ...r, sources: JSON.stringify(r.sources) });
  });
  return {
    saveNodes: (records) => saveTx(records),
    deleteNode: (node) => remove.run(node).changes > 0,
    listNodes: () =>
      (selectAll.all() as NodeRow[]).map(nodeOf),
  };
}

/** A `nodes` row as the store gives it. */
export function nodeOf(r: NodeRow): NodeRecord {
  return {
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
  };
}
