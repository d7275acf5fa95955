/**
 * This collector among several on one store (issue 20): its replica id, the name its outbox and job
 * leases are held in, and `runIfLeader`, which runs a periodic job only on the replica leading it.
 * On SQLite (one process) this replica always leads; on PostgreSQL the replica whose lease is live
 * does, renewing it with each run, and when it dies its lease expires and another takes over.
 */
import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import type { Logger } from '../../runtime/logger.js';
import type { Async } from '../store/async.js';
import type { JobLeaseStore } from '../store/store.js';

/** An id no other replica has, readable in logs and in the lease tables: host, process, random (bounded). */
export function replicaId(): string {
  return `${hostname().slice(0, 63)}:${process.pid}:${randomBytes(6).toString('hex')}`;
}

/** What leadership needs. */
export interface LeadershipDeps {
  store: Async<JobLeaseStore>;
  owner: string;
  logger: Pick<Logger, 'info' | 'warn'>;
  now: () => number;
}

/** Periodic jobs run by the leading replica. */
export interface Leadership {
  /**
   * Run `fn` when this replica leads `job` (taking or renewing a lease of `ttlMs`); undefined when
   * another replica leads it. `ttlMs` should outlast the job's period, so the leader keeps it from
   * run to run, and bounds how long a dead leader's job waits for another replica.
   */
  runIfLeader<T>(job: string, ttlMs: number, fn: () => Promise<T>): Promise<T | undefined>;
  /** Give up every lease this replica took (clean shutdown: another replica leads at its next run). */
  resignAll(): Promise<void>;
}

/** Leadership of periodic jobs, as `owner`. */
export function createLeadership(deps: LeadershipDeps): Leadership {
  const { store, owner, logger, now } = deps;
  /** Jobs this replica led at its last try, for the log line when that changes. */
  const leading = new Set<string>();
  return {
    async runIfLeader(job, ttlMs, fn) {
      const leads = await store.tryLead(job, owner, ttlMs, now());
      if (leads !== leading.has(job)) {
        if (leads) leading.add(job);
        else leading.delete(job);
        logger.info({ job, owner }, leads ? 'this replica leads the job' : 'another replica leads the job');
      }
      return leads ? fn() : undefined;
    },
    async resignAll() {
      for (const job of leading) await store.resign(job, owner).catch((err: unknown) => logger.warn({ err, job }, 'could not resign a job lease'));
      leading.clear();
    },
  };
}
