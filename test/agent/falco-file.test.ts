import test from 'ava';
import { appendFileSync, mkdtempSync, renameSync, rmSync, statSync, truncateSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createFileTail, type FilePosition } from '../../agent/sources/falco-file.js';
import type { SourceBatch } from '../../agent/sources/source.js';
import { at, falcoLine } from '../helpers/falco.js';
import { testSourceContext } from '../helpers/source-context.js';

function line(minute: number, pid: number): string {
  return `${falcoLine({ time: at(minute), fields: { 'proc.pid': pid } })}\n`;
}

/** Collect events until `n` have arrived (or fail after a timeout). */
async function collect(iter: AsyncIterator<SourceBatch>, n: number, got: number[], positions: FilePosition[]): Promise<void> {
  const deadline = Date.now() + 10_000;
  while (got.length < n) {
    if (Date.now() > deadline) throw new Error(`timed out with ${got.length}/${n} events`);
    const r = await iter.next();
    if (r.done) return;
    for (const e of r.value.events) got.push(e.process.pid);
    if (r.value.position) positions.push(r.value.position as FilePosition);
  }
}

test('reads from the start, follows appends, survives rotation and truncation', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'dw-tail-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const path = join(dir, 'events.json');
  writeFileSync(path, line(0, 1) + line(1, 2));
  const ctx = testSourceContext();
  const ac = new AbortController();
  const src = createFileTail('falco-file:test', path, ctx, { pollMs: 20 });
  const iter = src.batches(ac.signal)[Symbol.asyncIterator]();
  const pids: number[] = [];
  const positions: FilePosition[] = [];
  await collect(iter, 2, pids, positions);
  t.deepEqual(pids, [1, 2]);

  // Appends, including a line written in two parts.
  appendFileSync(path, line(2, 3));
  const half = line(3, 4);
  appendFileSync(path, half.slice(0, 40));
  await new Promise((r) => setTimeout(r, 60));
  appendFileSync(path, half.slice(40));
  await collect(iter, 4, pids, positions);
  t.deepEqual(pids, [1, 2, 3, 4]);

  // Rotation: the old file gets one last line after the rename, then a new file appears.
  renameSync(path, `${path}.1`);
  appendFileSync(`${path}.1`, line(4, 5));
  writeFileSync(path, line(5, 6));
  await collect(iter, 6, pids, positions);
  t.deepEqual(pids, [1, 2, 3, 4, 5, 6]);

  // copytruncate: the file shrinks, reading restarts at 0.
  truncateSync(path, 0);
  await new Promise((r) => setTimeout(r, 60));
  appendFileSync(path, line(6, 7));
  await collect(iter, 7, pids, positions);
  t.deepEqual(pids, [1, 2, 3, 4, 5, 6, 7]);
  ac.abort();
  await iter.return?.();
  t.deepEqual(ctx.rejects, []);
  const last = positions[positions.length - 1]!;
  t.is(last.offset, line(6, 7).length);
});

test('resumes from a saved position on restart, not from the start', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'dw-tail-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const path = join(dir, 'events.json');
  writeFileSync(path, line(0, 1) + line(1, 2));
  const first = createFileTail('f', path, testSourceContext(), { follow: false });
  const positions: FilePosition[] = [];
  for await (const b of first.batches(new AbortController().signal)) if (b.position) positions.push(b.position as FilePosition);
  appendFileSync(path, line(2, 3));
  const second = createFileTail('f', path, testSourceContext({ savedPosition: positions[positions.length - 1] }), { follow: false });
  const pids: number[] = [];
  for await (const b of second.batches(new AbortController().signal)) pids.push(...b.events.map((e) => e.process.pid));
  t.deepEqual(pids, [3]);
});

test('malformed lines are counted and skipped; the source keeps going', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'dw-tail-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const path = join(dir, 'events.json');
  const garbage = ['not json', '{"output_fields":[]}', JSON.stringify({ time: 5, output_fields: {} }), 'x'.repeat(3 << 20)].join('\n');
  writeFileSync(path, Buffer.concat([Buffer.from(line(0, 1) + garbage + '\n'), Buffer.from([0xc3, 0x28, 0x0a]), Buffer.from(line(1, 2))]));
  const ctx = testSourceContext();
  const src = createFileTail('f', path, ctx, { follow: false });
  const pids: number[] = [];
  for await (const b of src.batches(new AbortController().signal)) pids.push(...b.events.map((e) => e.process.pid));
  t.deepEqual(pids, [1, 2]);
  t.deepEqual(ctx.rejects.sort(), ['bad_time', 'invalid_utf8', 'not_json', 'too_large', 'wrong_type']);
});

test('a write caught half-way (mtime already newer, size not yet) is not taken for a rewrite; a real same-size rewrite is', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'dw-tail-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const path = join(dir, 'events.json');
  writeFileSync(path, line(0, 1));
  const ac = new AbortController();
  const iter = createFileTail('falco-file:test', path, testSourceContext(), { pollMs: 40 }).batches(ac.signal)[Symbol.asyncIterator]();
  const pids: number[] = [];
  await collect(iter, 1, pids, []);
  // What the kernel shows for a moment during an append: a newer mtime, the old size. Then the data lands.
  await new Promise((r) => setTimeout(r, 60));
  utimesSync(path, new Date(), new Date(Date.now() + 5_000));
  await new Promise((r) => setTimeout(r, 50));
  appendFileSync(path, line(1, 2));
  await collect(iter, 2, pids, []);
  t.deepEqual(pids, [1, 2], 'the first line is not read twice');
  // A rewrite to the same size (copytruncate refilled exactly as long) stays that way: read again from the start.
  const size = statSync(path).size;
  writeFileSync(path, (line(2, 3) + line(3, 4)).padEnd(size, ' ').slice(0, size));
  utimesSync(path, new Date(), new Date(Date.now() + 10_000));
  await collect(iter, 3, pids, []);
  t.is(pids[2], 3);
  ac.abort();
  await iter.return?.();
});
