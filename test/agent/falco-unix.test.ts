import test from 'ava';
import { existsSync, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { spawn } from 'node:child_process';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createSource } from '../../agent/sources/index.js';
import type { SourceBatch } from '../../agent/sources/source.js';
import type { ActivityEvent } from '../../core/event.js';
import { at, falcoLine } from '../helpers/falco.js';
import { testSourceContext } from '../helpers/source-context.js';

async function waitFor(cond: () => boolean, what: string): Promise<void> {
  const deadline = Date.now() + 5_000;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

test('several program_output writers at once over a 0660 unix socket; removed on shutdown', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'dw-unix-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const path = join(dir, 'falco.sock');
  const ctx = testSourceContext();
  const src = createSource(`falco-unix:${path}`, ctx);
  const ac = new AbortController();
  const events: ActivityEvent[] = [];
  const run = (async () => {
    for await (const b of src.batches(ac.signal) as AsyncIterable<SourceBatch>) events.push(...b.events);
  })();
  await waitFor(() => existsSync(path), 'the socket');
  await waitFor(() => (statSync(path).mode & 0o777) === 0o660, 'mode 0660');
  t.true(statSync(path).isSocket());

  // Three writers, each sending its lines in pieces interleaved with the others'.
  const writers = [0, 1, 2].map(() => connect(path));
  await Promise.all(writers.map((w) => new Promise((r) => w.once('connect', r))));
  const lines = writers.map((_, w) => [0, 1, 2].map((i) => `${falcoLine({ time: at(w * 10 + i), fields: { 'proc.pid': 100 * (w + 1) + i } })}\n`).join(''));
  for (let off = 0; off < Math.max(...lines.map((l) => l.length)); off += 97) {
    writers.forEach((w, i) => {
      const part = lines[i]!.slice(off, off + 97);
      if (part !== '') w.write(part);
    });
    await new Promise((r) => setImmediate(r));
  }
  writers[0]!.write('not json\n');
  // The last writer ends without a final newline: its last line still counts.
  writers[2]!.end(falcoLine({ time: at(30), fields: { 'proc.pid': 399 } }));
  await waitFor(() => events.length >= 10, '10 events');
  t.deepEqual(events.map((e) => e.process.pid).sort(), [100, 101, 102, 200, 201, 202, 300, 301, 302, 399]);
  t.true(events.every((e) => e.container?.image.repository === 'docker.io/library/nginx' && e.source === `falco-unix:${path}`));
  t.deepEqual(ctx.rejects, ['not_json']);

  ac.abort();
  await run;
  t.false(existsSync(path));
  for (const w of writers) w.destroy();
});

test('a stale socket file is replaced; a regular file at the path is refused, not deleted', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'dw-unix-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const path = join(dir, 'falco.sock');
  writeFileSync(path, 'precious');
  const src = createSource(`falco-unix:${path}`, testSourceContext());
  await t.throwsAsync(async () => {
    for await (const _ of src.batches(new AbortController().signal)) break;
  }, { message: /not a socket/ });
  t.true(existsSync(path));
  t.throws(() => createSource('falco-unix:relative.sock', testSourceContext()), { code: 'invalid_source' });

  // An agent killed with SIGKILL leaves its socket file behind; the next one takes the path over.
  const stale = join(dir, 'stale.sock');
  const child = spawn(process.execPath, ['-e', 'require("node:net").createServer().listen(process.argv[1], () => console.log("up"))', stale], { stdio: ['ignore', 'pipe', 'inherit'] });
  await new Promise((r) => child.stdout.once('data', r));
  child.kill('SIGKILL');
  await new Promise((r) => child.once('exit', r));
  t.true(statSync(stale).isSocket());
  const ac = new AbortController();
  const events: number[] = [];
  const run = (async () => {
    for await (const b of createSource(`falco-unix:${stale}`, testSourceContext()).batches(ac.signal)) events.push(...b.events.map((e) => e.process.pid));
  })();
  await waitFor(() => existsSync(stale) && (statSync(stale).mode & 0o777) === 0o660, 'the new socket');
  const w = connect(stale);
  w.end(`${falcoLine({ time: at(0), fields: { 'proc.pid': 5 } })}\n`);
  await waitFor(() => events.length === 1, 'one event');
  ac.abort();
  await run;
  t.deepEqual(events, [5]);
});
