/**
 * Where ingest commits: the SQL of a group commit (inserts, alert grouping, the outbox, the commit's
 * fsync) is most of the collector's CPU in a storm. By default it runs in a worker thread with its own
 * connection to the database (SQLite's WAL: readers on the main thread are never blocked), so the
 * event loop keeps decoding agent streams, answering the API and sending heartbeats while a commit
 * runs, and batches that arrive meanwhile make the next group. `main` runs it on the event loop instead.
 *
 * On PostgreSQL too: a commit there is a dozen round trips, and on the event loop each answer
 * waited behind the decoding of whatever agent batches had arrived meanwhile (a group commit of
 * 0.1–0.6 s of statements took 1.3–3.7 s of wall time in a storm); the worker answers each at once.
 */
import { Worker } from 'node:worker_threads';
import type { AlertPolicyHandle, PolicyHooks, PolicySpec, SuppressedReason } from '../alerting/policy.js';
import type { Logger } from '../../runtime/logger.js';
import type { AlertException } from '../alerting/alert.js';
import type { Async } from '../store/async.js';
import { isPostgresUrl } from '../store/database-url.js';
import type { IngestResult, IngestStore, PreparedBatch } from '../store/store.js';

/** Commits groups of batches. */
export interface IngestWriter {
  /** Whether commits run on this thread (prepared deviations may then keep their objects). */
  readonly sameThread: boolean;
  /**
   * How many groups it takes at once; it commits them one after another, in order (PostgreSQL's
   * worker: 2, so the next transaction starts when one commits, not when the main thread gets round
   * to handing it over).
   */
  readonly pipeline: number;
  /**
   * Commit the batches in one transaction, each in its own savepoint (see Store.ingestMany): each
   * batch's result, or its Error when it alone was rolled back. Rejects when nothing was committed.
   */
  commit(batches: readonly PreparedBatch[], receivedAt: number): Promise<(IngestResult | Error)[]>;
  /** The active exceptions changed: later commits match against these. */
  setExceptions(active: readonly AlertException[]): void;
  /** Exchange storm counts with the other replicas now, where the writer's policy shares them (PostgreSQL's worker). */
  shareStorms?(): Promise<void>;
  /** Finish (after the last commit resolved) and release the connection. */
  close(): Promise<void>;
}

/**
 * Commits through the main thread's store and policy: on the event loop for SQLite (ingestThread
 * main), over the network for PostgreSQL, whose ingest slice answers asynchronously (the policy
 * still runs inside its transaction). Group commit is the ingest service's: one commit at a time,
 * what arrives meanwhile makes the next group; a batch is acknowledged only once the promise of its
 * commit resolved, so a commit lost with its connection (a database restart) is answered as failed
 * and resent by the agent (ingest is idempotent by deviation id). close() waits for the commits
 * under way, so the store is never closed under one.
 */
export function createInThreadWriter(store: Async<IngestStore>, policy: AlertPolicyHandle): IngestWriter {
  const inFlight = new Set<Promise<unknown>>();
  let closed = false;
  return {
    sameThread: true,
    pipeline: 1,
    commit(batches, receivedAt) {
      if (closed) return Promise.reject(new Error('the ingest writer is closed'));
      const p = store.ingestPrepared(batches, receivedAt, policy);
      const settled = p.then(
        () => undefined,
        () => undefined,
      );
      inFlight.add(settled);
      void settled.then(() => inFlight.delete(settled));
      return p;
    },
    setExceptions: (active) => policy.setExceptions(active),
    async close() {
      closed = true;
      await Promise.all(inFlight);
    },
  };
}

/** What the worker thread is started with. */
export interface IngestWorkerData {
  db: string;
  spec: PolicySpec;
  /** The worker's script (tests give another that speaks the same messages); default worker.js (beside this file). */
  script?: URL | undefined;
  /**
   * PostgreSQL replicas: exchange the worker policy's storm counts with the other replicas' (as
   * this replica, every `everyMs`): the policy that decides is the worker's.
   */
  storm?: { owner: string; everyMs: number } | undefined;
}

/** Messages to the worker. */
export type ToIngestWorker =
  | { type: 'commit'; id: number; batches: readonly PreparedBatch[]; receivedAt: number }
  | { type: 'exceptions'; active: readonly AlertException[] }
  /** Exchange storm counts now (answered by `shared` with the same id). */
  | { type: 'share'; id: number }
  | { type: 'close' };

/** Messages from the worker. */
export type FromIngestWorker =
  | { type: 'ready' }
  | {
      type: 'committed';
      id: number;
      results?: (IngestResult | Error)[];
      error?: Error;
      /** What the policy suppressed meanwhile, and the storm windows it opened (metrics and logs live on the main thread). */
      suppressed: Partial<Record<SuppressedReason, number>>;
      storms: { scope: string; until: string }[];
    }
  | { type: 'shared'; id: number; error?: Error }
  /** A transaction of the worker's ran again after a deadlock or serialization failure (its SQLSTATE). */
  | { type: 'retry'; code: string }
  /** Something for the collector's log (the worker has no logger of its own). */
  | { type: 'log'; level: 'warn'; obj: object; msg: string };

/**
 * Start the ingest worker thread on `db` (opened, and migrated, by the main thread's store first).
 * A worker that dies (it should not: its errors are answered per commit) fails the commits in flight,
 * is logged, and a new one is started for the next commit.
 */
export async function startIngestWorker(data: IngestWorkerData, deps: { hooks: PolicyHooks; logger: Logger; onRetry?: (code: string) => void }): Promise<IngestWriter> {
  const { hooks, logger } = deps;
  /** The active exceptions, sent to every worker started. */
  let exceptions: readonly AlertException[] = [];
  let nextId = 1;
  /** Requests (commits, storm exchanges) awaiting the worker's answer, by id. */
  const pending = new Map<number, { resolve: (answer: unknown) => void; reject: (err: Error) => void }>();
  /** Settle request `id`: rejected with `error`, else resolved with `value`. */
  const answer = (id: number, error: Error | undefined, value?: unknown) => {
    const p = pending.get(id);
    if (!p) return;
    pending.delete(id);
    if (error) p.reject(error);
    else p.resolve(value);
  };
  let closing = false;
  let current: Worker | null = null;
  let starting: Promise<Worker> | null = null;

  function spawn(): Promise<Worker> {
    return new Promise((resolve, reject) => {
      const worker = new Worker(data.script ?? new URL('./worker.js', import.meta.url), { workerData: { db: data.db, spec: data.spec, storm: data.storm }, name: 'driftwatch-ingest' });
      let ready = false;
      let dead = false;
      worker.on('message', (m: FromIngestWorker) => {
        if (m.type === 'ready') {
          ready = true;
          worker.postMessage({ type: 'exceptions', active: exceptions } satisfies ToIngestWorker);
          return resolve(worker);
        }
        if (m.type === 'retry') return deps.onRetry?.(m.code);
        if (m.type === 'shared') return answer(m.id, m.error);
        if (m.type === 'log') return logger[m.level](m.obj, m.msg);
        for (const [reason, n] of Object.entries(m.suppressed)) hooks.suppressed(reason as SuppressedReason, n);
        for (const s of m.storms) hooks.storm(s.scope, s.until);
        if (m.results) answer(m.id, undefined, m.results);
        else answer(m.id, m.error ?? new Error('the ingest worker failed the commit'));
      });
      const died = (err: Error) => {
        if (dead) return;
        dead = true;
        if (!ready) return reject(err);
        if (current === worker) current = null;
        for (const p of pending.values()) p.reject(err);
        pending.clear();
        if (!closing) logger.error({ err }, 'the ingest worker thread stopped; a new one starts with the next commit');
      };
      worker.on('error', died);
      worker.on('exit', (code) => died(new Error(`the ingest worker thread exited (${code})`)));
    });
  }

  current = await spawn();
  const worker = async (): Promise<Worker> => {
    if (current) return current;
    starting ??= spawn().finally(() => (starting = null));
    return (current = await starting);
  };
  /** Send the message `of(id)` to the worker (started again if it died) and wait for its answer. */
  async function request<T>(of: (id: number) => ToIngestWorker): Promise<T> {
    if (closing) throw new Error('the ingest writer is closed');
    const w = await worker();
    const id = nextId++;
    return new Promise<T>((resolve, reject) => {
      pending.set(id, { resolve: resolve as (answer: unknown) => void, reject });
      w.postMessage(of(id));
    });
  }

  return {
    sameThread: false,
    // SQLite's commit is a few milliseconds of its thread; PostgreSQL's waits on the server, and the
    // main thread, busy decoding agent streams, took its time to hand over the next group.
    pipeline: isPostgresUrl(data.db) ? 2 : 1,
    commit: (batches, receivedAt) => request((id) => ({ type: 'commit', id, batches, receivedAt })),
    setExceptions(active) {
      exceptions = active;
      current?.postMessage({ type: 'exceptions', active } satisfies ToIngestWorker);
    },
    shareStorms: () => request<void>((id) => ({ type: 'share', id })),
    async close() {
      closing = true;
      const w = current;
      if (!w) return;
      await new Promise<void>((resolve) => {
        w.once('exit', () => resolve());
        w.postMessage({ type: 'close' } satisfies ToIngestWorker);
      });
    },
  };
}
