/** The audit slice on PostgreSQL: the audit log's rows, append-only. */
import type { Async } from '../async.js';
import type { AuditRecord, AuditStore } from '../store.js';
import type { Sql } from './db.js';

/** The audit slice over `sql` (the pool: each append commits on its own). */
export function postgresAudit(sql: Sql): Async<AuditStore> {
  return {
    async appendAudit(r) {
      const { rows } = await sql<{ seq: number }>(
        `INSERT INTO audit_log (time, actor, role, action, target, before, after) VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING seq`,
        [r.time, r.actor, r.role, r.action, r.target, r.before, r.after],
      );
      return rows[0]!.seq;
    },
    async listAudit(before, limit) {
      const { rows } = await sql<AuditRecord & { seq: number }>(
        `SELECT seq, time, actor, role, action, target, before, after FROM audit_log WHERE seq < $1 ORDER BY seq DESC LIMIT $2`,
        [Math.min(before, Number.MAX_SAFE_INTEGER), limit],
      );
      return rows.map(({ seq, ...r }) => ({ id: seq, ...r }));
    },
  };
}
