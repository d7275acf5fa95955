/** The exceptions slice: risks accepted by security (what they match is stored and shown, not notified). */
import type { AlertException } from '../../alerting/alert.js';
import type { ExceptionStore } from '../store.js';
import type { Db } from './db.js';

export interface ExceptionRow {
  id: string;
  key_glob: string;
  entry_glob: string;
  namespace: string;
  reason: string;
  owner: string;
  created_by: string;
  created_at: number;
  expires_at: number;
  revoked_at: number;
  revoked_by: string;
  reminded_at: number;
}

export function exceptionOf(r: ExceptionRow): AlertException {
  return {
    id: r.id,
    key: r.key_glob,
    entry: r.entry_glob,
    namespace: r.namespace,
    reason: r.reason,
    owner: r.owner,
    createdBy: r.created_by,
    createdAt: r.created_at,
    expiresAt: r.expires_at,
    revokedAt: r.revoked_at,
    revokedBy: r.revoked_by,
    remindedAt: r.reminded_at,
  };
}

/** The exceptions slice on `db`. */
export function sqliteExceptions(db: Db): ExceptionStore {
  const insertException = db.prepare(`
    INSERT INTO exceptions (id, key_glob, entry_glob, namespace, reason, owner, created_by, created_at, expires_at, revoked_at, revoked_by, reminded_at)
    VALUES (@id, @key, @entry, @namespace, @reason, @owner, @createdBy, @createdAt, @expiresAt, @revokedAt, @revokedBy, @remindedAt)`);
  const selectExceptions = db.prepare(`SELECT * FROM exceptions ORDER BY created_at DESC, id`);
  const selectException = db.prepare(`SELECT * FROM exceptions WHERE id = ?`);
  const revokeException = db.prepare(`UPDATE exceptions SET revoked_at = ?, revoked_by = ? WHERE id = ? AND revoked_at = 0`);
  const remindException = db.prepare(`UPDATE exceptions SET reminded_at = ? WHERE id = ?`);
  return {
    addException(e) {
      insertException.run({ ...e });
    },
    listExceptions: () => (selectExceptions.all() as ExceptionRow[]).map(exceptionOf),
    getException(id) {
      const row = selectException.get(id) as ExceptionRow | undefined;
      return row ? exceptionOf(row) : null;
    },
    revokeException(id, by, at) {
      revokeException.run(at, by, id);
      const row = selectException.get(id) as ExceptionRow | undefined;
      return row ? exceptionOf(row) : null;
    },
    markReminded(id, at) {
      remindException.run(at, id);
    },
  };
}
