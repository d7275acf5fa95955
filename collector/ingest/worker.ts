/**
 * The ingest worker thread (see writer.ts): its own connection to the collector's database (the
 * SQLite file, or a small pool to PostgreSQL) and its own copy of the alert policy; it commits the
 * groups the main thread sends, one at a time, in order. On PostgreSQL it also exchanges storm
 * counts with the other replicas (storm-share.ts): the counts are this policy's, which decides.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { createAlertPolicy, type SuppressedReason } from '../alerting/policy.js';
import { startStormShare, type StormShare } from '../alerting/storm-share.js';
import type { IngestResult, PreparedBatch } from '../store/store.js';
import type { FromIngestWorker, IngestWorkerData, ToIngestWorker } from './writer.js';
import { isPostgresUrl } from '../store/database-url.js';
import { openSqliteIngest } from '../store/sqlite/index.js';

if (!parentPort) throw new Error('ingest/worker.js runs as a worker thread of the collector');
const port = parentPort;
const { db, spec, storm } = workerData as IngestWorkerData;
const post = (m: FromIngestWorker) => port.postMessage(m);

let suppressed: Partial<Record<SuppressedReason, number>> = {};
let storms: { scope: string; until: string }[] = [];
const policy = createAlertPolicy(spec, {
  suppressed: (reason, n = 1) => void (suppressed[reason] = (suppressed[reason] ?? 0) + n),
  storm: (scope, until) => void storms.push({ scope, until }),
});

/** One group commit, whichever the database. */
type Commit = (batches: readonly PreparedBatch[], receivedAt: number) => Promise<(IngestResult | Error)[]>;
let commit: Commit;
let closeStore: () => Promise<void>;
let share: StormShare | null = null;
if (isPostgresUrl(db)) {
  const { openPostgresIngest } = await import('../store/postgres/index.js');
  const store = openPostgresIngest(db, { onRetry: (code) => post({ type: 'retry', code }) });
  commit = (batches, receivedAt) => store.ingestPrepared(batches, receivedAt, policy);
  closeStore = () => store.close();
  if (storm) {
    share = startStormShare({
      store,
      policy,
      owner: storm.owner,
      everyMs: storm.everyMs,
      now: Date.now,
      logger: { warn: (obj, msg) => post({ type: 'log', level: 'warn', obj, msg }) },
    });
  }
} else {
  // A thread of its own: waiting for the main thread's write (a large retention prune) blocks nobody,
  // and a batch given up on would only be resent.
  const store = openSqliteIngest(db, { busyTimeoutMs: 120_000 });
  commit = async (batches, receivedAt) => store.ingestPrepared(batches, receivedAt, policy);
  closeStore = async () => store.close();
}

/** Commits run one after another, in the order they came (PostgreSQL's answer asynchronously). */
let queue: Promise<void> = Promise.resolve();

port.on('message', (m: ToIngestWorker) => {
  if (m.type === 'exceptions') return policy.setExceptions(m.active);
  if (m.type === 'share') {
    const done = (error?: Error) => post(error ? { type: 'shared', id: m.id, error } : { type: 'shared', id: m.id });
    if (!share) return done();
    return void share.exchange().then(() => done(), (err: unknown) => done(err instanceof Error ? err : new Error(String(err))));
  }
  if (m.type === 'close') {
    queue = queue.then(async () => {
      await share?.stop();
      await closeStore();
      port.close();
    });
    return;
  }
  const run = async () => {
    let reply: FromIngestWorker;
    try {
      reply = { type: 'committed', id: m.id, results: await commit(m.batches, m.receivedAt), suppressed, storms };
    } catch (err) {
      reply = { type: 'committed', id: m.id, error: err instanceof Error ? err : new Error(String(err)), suppressed, storms };
    }
    suppressed = {};
    storms = [];
    post(reply);
  };
  queue = queue.then(run);
});
post({ type: 'ready' });
