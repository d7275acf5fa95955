/**
 * The job-lease slice on PostgreSQL: of several replicas, the one whose lease on a job is live runs
 * it. One statement takes the lease when the job has none, an expired one, or the caller's own; the
 * row's lock makes two replicas asking at once take turns, and the second sees the first's lease.
 */
import type { Async } from '../async.js';
import { MAX_JOB_NAME } from '../sqlite/job-leases.js';
import type { JobLeaseStore } from '../store.js';
import type { Sql } from './db.js';

/** The job-lease slice over `sql` (the pool). */
export function postgresJobLeases(sql: Sql): Async<JobLeaseStore> {
  return {
    tryLead: async (job, owner, ttlMs, now) =>
      (
        await sql(
          `INSERT INTO job_leases (job, owner, until) VALUES ($1, $2, $3)
           ON CONFLICT (job) DO UPDATE SET owner = excluded.owner, until = excluded.until
           WHERE job_leases.until < $4 OR job_leases.owner = excluded.owner
           RETURNING owner`,
          [job.slice(0, MAX_JOB_NAME), owner.slice(0, MAX_JOB_NAME), now + ttlMs, now],
        )
      ).rowCount > 0,
    resign: async (job, owner) => void (await sql(`DELETE FROM job_leases WHERE job = $1 AND owner = $2`, [job.slice(0, MAX_JOB_NAME), owner.slice(0, MAX_JOB_NAME)])),
  };
}
