/** The audit slice: the audit log's rows, append-only (collector/audit.ts bounds what goes in and pages what comes out). */
import type { AuditRecord, AuditStore } from '../store.js';
import type { Db } from './db.js';

/** The audit slice on `db`. */
export function sqliteAudit(db: Db): AuditStore {
  const insert = db.prepare('INSERT INTO audit_log (time, actor, role, action, target, before, after) VALUES (?, ?, ?, ?, ?, ?, ?)');
  const page = db.prepare('SELECT seq, time, actor, role, action, target, before, after FROM audit_log WHERE seq < ? ORDER BY seq DESC LIMIT ?');
  return {
    // One row, committed on its own (synchronous=FULL: on disk when this returns).
    appendAudit: (r) => Number(insert.run(r.time, r.actor, r.role, r.action, r.target, r.before, r.after).lastInsertRowid),
    listAudit: (before, limit) => (page.all(before, limit) as (AuditRecord & { seq: number })[]).map(({ seq, ...r }) => ({ id: seq, ...r })),
  };
}
