/**
 * The ingest worker thread (see writer.ts): its own connection to the collector's database and
 * its own copy of the alert policy; it commits the groups the main thread sends, one at a time, in order.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { createAlertPolicy, type SuppressedReason } from '../alerting/policy.js';
import type { FromIngestWorker, IngestWorkerData, ToIngestWorker } from './writer.js';
import { openSqliteIngest } from '../store/sqlite/index.js';

if (!parentPort) throw new Error('ingest/worker.js runs as a worker thread of the collector');
const port = parentPort;
const { db, spec } = workerData as IngestWorkerData;
// A thread of its own: waiting for the main thread's write (a large retention prune) blocks nobody,
// and a batch given up on would only be resent.
const store = openSqliteIngest(db, { busyTimeoutMs: 120_000 });
let suppressed: Partial<Record<SuppressedReason, number>> = {};
let storms: { scope: string; until: string }[] = [];
const policy = createAlertPolicy(spec, {
  suppressed: (reason, n = 1) => void (suppressed[reason] = (suppressed[reason] ?? 0) + n),
  storm: (scope, until) => void storms.push({ scope, until }),
});

port.on('message', (m: ToIngestWorker) => {
  if (m.type === 'exceptions') return policy.setExceptions(m.active);
  if (m.type === 'close') {
    store.close();
    return port.close();
  }
  let reply: FromIngestWorker;
  try {
    reply = { type: 'committed', id: m.id, results: store.ingestPrepared(m.batches, m.receivedAt, policy), suppressed, storms };
  } catch (err) {
    reply = { type: 'committed', id: m.id, error: err instanceof Error ? err : new Error(String(err)), suppressed, storms };
  }
  suppressed = {};
  storms = [];
  port.postMessage(reply);
});
port.postMessage({ type: 'ready' } satisfies FromIngestWorker);
