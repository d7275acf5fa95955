/**
 * The ingest worker thread's life: a worker that dies fails the commits in flight (their agents
 * resend), is logged, and the next commit starts a new one. A real worker thread runs a script that
 * speaks the worker's messages and dies on demand.
 */
import test from 'ava';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import pino from 'pino';
import { AlertingConfigSchema } from '../../collector/alerting/index.js';
import { startIngestWorker } from '../../collector/ingest/writer.js';

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
