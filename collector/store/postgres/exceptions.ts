/** The exceptions slice on PostgreSQL: risks accepted by security. */
import type { Async } from '../async.js';
import { exceptionOf, type ExceptionRow } from '../sqlite/exceptions.js';
import type { ExceptionStore } from '../store.js';
import type { Sql } from './db.js';
import { CHANNELS } from './feed.js';

/** The exceptions slice over `sql`. */
export function postgresExceptions(sql: Sql): Async<ExceptionStore> {
  const get = async (id: string) => {
    const { rows } = await sql<ExceptionRow>(`SELECT * FROM exceptions WHERE id = $1`, [id]);
    return rows[0] ? exceptionOf(rows[0]) : null;
  };
  return {
    async addException(e) {
      // Announced in the same statement (so at its commit, and only if the row went in): every replica's
      // policy reloads its active exceptions (replicas/changes.ts), not only this one's.
      await sql(
        `WITH added AS (
           INSERT INTO exceptions (id, key_glob, entry_glob, namespace, reason, owner, created_by, created_at, expires_at, revoked_at, revoked_by, reminded_at)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) RETURNING id)
         SELECT pg_notify('${CHANNELS.exception}', 'added') FROM added`,
        [e.id, e.key, e.entry, e.namespace, e.reason, e.owner, e.createdBy, e.createdAt, e.expiresAt, e.revokedAt, e.revokedBy, e.remindedAt],
      );
    },
    listExceptions: async () => (await sql<ExceptionRow>(`SELECT * FROM exceptions ORDER BY created_at DESC, id`)).rows.map(exceptionOf),
    getException: get,
    async revokeException(id, by, at) {
      await sql(
        `WITH revoked AS (UPDATE exceptions SET revoked_at = $1, revoked_by = $2 WHERE id = $3 AND revoked_at = 0 RETURNING id)
         SELECT pg_notify('${CHANNELS.exception}', 'revoked') FROM revoked`,
        [at, by, id],
      );
      return get(id);
    },
    async markReminded(id, at) {
      await sql(`UPDATE exceptions SET reminded_at = $1 WHERE id = $2`, [at, id]);
    },
  };
}
