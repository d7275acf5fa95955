/**
 * The ingest worker thread's life: a worker that dies fails the commits in flight (their agents
 * resend), is logged, and the next commit starts a new one. A real worker thread runs a script that
 * speaks the worker's messages and dies on demand. Then the real worker on a real PostgreSQL.
 */
import test from 'ava';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import pino from 'pino';
import { AlertingConfigSchema } from '../../collector/alerting/index.js';
import { startIngestWorker } from '../../collector/ingest/writer.js';
import { openPostgresStore } from '../../collector/store/postgres/index.js';
import { createDeviationPreparer } from '../../collector/store/prepare.js';
import type { IngestResult } from '../../collector/store/store.js';
import { deviationOf } from '../helpers/ingest.js';
import { usePostgres } from '../helpers/postgres.js';

const server = usePostgres(test);

const SCRIPT = `
import { parentPort } from 'node:worker_threads';
parentPort.on('message', (m) => {
  if (m.type === 'close') return parentPort.close();
  if (m.type !== 'commit') return;
  if (m.batches[0]?.node === 'die') process.exit(3);
  parentPort.postMessage({ type: 'committed', id: m.id, results: m.batches.map(() => ({ stored: 0 })), suppressed: { storm: 2 }, storms: [] });
});
parentPort.postMessage({ type: 'ready' });
`;

test('a worker that dies fails the commit in flight, is logged, and a new one takes the next commit', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'dw-writer-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const script = join(dir, 'worker.mjs');
  writeFileSync(script, SCRIPT);
  const logs: { msg: string; err?: { message: string } }[] = [];
  const logger = pino({ level: 'info' }, { write: (line: string) => void logs.push(JSON.parse(line) as (typeof logs)[number]) });
  const suppressed: string[] = [];
  const writer = await startIngestWorker(
    { db: join(dir, 'unused.db'), spec: { config: AlertingConfigSchema.parse({}), sinks: [], publicUrl: '' }, script: pathToFileURL(script) },
    { hooks: { suppressed: (reason, n = 1) => void suppressed.push(`${reason}×${n}`), storm: () => undefined }, logger },
  );
  const batch = (node: string) => [{ node, deviations: [], deltas: [] }];

  t.is((await writer.commit(batch('node-1'), 1)).length, 1);
  const err = await t.throwsAsync(writer.commit(batch('die'), 2));
  t.regex(err?.message ?? '', /exited \(3\)/);
  t.true(logs.some((l) => /ingest worker thread stopped/.test(l.msg)), JSON.stringify(logs));
  // The next commit is taken by a fresh worker.
  t.is((await writer.commit(batch('node-1'), 3)).length, 1);
  t.deepEqual(suppressed, ['storm×2', 'storm×2'], 'what each worker suppressed is reported to the main thread');
  await writer.close();
  await t.throwsAsync(writer.commit(batch('node-1'), 4), { message: /closed/ });
});

test('postgres: the worker takes two groups at once and commits them in order, on its own connection', async (t) => {
  const url = await server.database();
  const store = await openPostgresStore(url);
  t.teardown(() => store.close());
  const writer = await startIngestWorker({ db: url, spec: { config: AlertingConfigSchema.parse({}), sinks: [], publicUrl: '' } }, { hooks: { suppressed: () => undefined, storm: () => undefined }, logger: pino({ level: 'silent' }) });
  t.teardown(() => writer.close());
  t.is(writer.pipeline, 2, 'the service may hand it the next group while one commits');
  const prepare = createDeviationPreparer();
  const group = (from: number) => [{ node: 'node-1', deviations: [from, from + 1].map((i) => prepare(deviationOf({ i }), false)), deltas: [] }];
  // Handed over together: the first opens the alert, the second (committed after it) grows it.
  const [first, second] = await Promise.all([writer.commit(group(0), 1_000), writer.commit(group(2), 2_000)]);
  const a = first![0] as IngestResult;
  const b = second![0] as IngestResult;
  t.is(a.stored, 2);
  t.is(a.newAlerts.length, 1);
  t.is(b.stored, 2);
  t.deepEqual(b.newAlerts, []);
  t.deepEqual(b.updated, [a.newAlerts[0]!.fingerprint]);
  t.is((await store.getAlert(a.newAlerts[0]!.fingerprint))?.count, 4);
  // Replayed (an agent that reconnected): stored once.
  const [again] = await writer.commit(group(0), 3_000);
  t.like(again as IngestResult, { stored: 0, duplicates: 2 });
});
