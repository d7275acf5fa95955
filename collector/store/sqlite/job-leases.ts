/**
 * The job-lease slice on SQLite: one process uses the file, so its owner always leads; the statement
 * is the PostgreSQL store's (take the lease when free, expired or already ours), so one behaviour
 * is tested on both.
 */
import type { JobLeaseStore } from '../store.js';
import type { Db } from './db.js';

/** Longest job name and owner id stored (both come from code and the host, bounded anyway). */
export const MAX_JOB_NAME = 128;

/** The job-lease slice on `db`. */
export function sqliteJobLeases(db: Db): JobLeaseStore {
  const lead = db.prepare(
    `INSERT INTO job_leases (job, owner, until) VALUES (@job, @owner, @until)
     ON CONFLICT (job) DO UPDATE SET owner = excluded.owner, until = excluded.until
     WHERE job_leases.until < @now OR job_leases.owner = excluded.owner
     RETURNING owner`,
  );
  const resign = db.prepare(`DELETE FROM job_leases WHERE job = ? AND owner = ?`);
  return {
    tryLead: (job, owner, ttlMs, now) => lead.get({ job: job.slice(0, MAX_JOB_NAME), owner: owner.slice(0, MAX_JOB_NAME), until: now + ttlMs, now }) !== undefined,
    resign: (job, owner) => void resign.run(job.slice(0, MAX_JOB_NAME), owner.slice(0, MAX_JOB_NAME)),
  };
}
