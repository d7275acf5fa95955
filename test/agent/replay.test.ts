import test from 'ava';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createSource } from '../../agent/sources/index.js';
import type { ActivityEvent } from '../../core/event.js';
import { falcoLine } from '../helpers/falco.js';
import { testSourceContext } from '../helpers/source-context.js';

const TETRAGON = readFileSync(new URL('../../../fixtures/tetragon/events.jsonl', import.meta.url), 'utf8').trim().split('\n');

function tmpFile(t: { teardown(fn: () => void): void }, text: string): string {
  const dir = mkdtempSync(join(tmpdir(), 'dw-replay-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const path = join(dir, 'recorded.jsonl');
  writeFileSync(path, text);
  return path;
}

async function drain(spec: string, ctx = testSourceContext()): Promise<{ events: ActivityEvent[]; positions: number; ms: number }> {
  const started = performance.now();
  const events: ActivityEvent[] = [];
  let positions = 0;
  for await (const b of createSource(spec, ctx).batches(new AbortController().signal)) {
    events.push(...b.events);
    if (b.position !== undefined) positions++;
  }
  return { events, positions, ms: performance.now() - started };
}

test('a file mixing Falco and Tetragon lines is read once to its end, each line in its own format', async (t) => {
  const path = tmpFile(t, [falcoLine({ time: '2026-11-23T07:59:00.000000000Z' }), TETRAGON[0], TETRAGON[3], 'garbage', TETRAGON[4]].join('\n'));
  const ctx = testSourceContext({ savedPosition: { ino: 1, offset: 999 } });
  const { events, positions } = await drain(`replay:${path}`, ctx);
  t.deepEqual(
    events.map((e) => [e.kind, e.process.exe, e.process.args.join(' '), e.container?.image.repository]),
    [
      ['exec', '/usr/sbin/nginx', '-g daemon off;', 'docker.io/library/nginx'],
      ['exec', '/usr/sbin/nginx', '-g daemon off;', 'docker.io/library/nginx'],
      ['connect', '/usr/sbin/nginx', '-g daemon off;', 'docker.io/library/nginx'],
    ],
  );
  t.is(events[2]?.network?.remotePort, 8080);
  t.is(positions, 0, 'a replay saves no position');
  t.deepEqual(ctx.rejects, ['not_json', 'unsupported']);
});

test('speed=N paces by event time; without speed it does not wait', async (t) => {
  // Three events 0 s, 1 s and 2 s apart in event time.
  const lines = [0, 1, 2].map((s) => falcoLine({ time: `2026-11-23T08:00:0${s}.000000000Z`, fields: { 'proc.pid': s } }));
  const path = tmpFile(t, `${lines.join('\n')}\n`);
  const fast = await drain(`replay:${path}?speed=0`);
  t.is(fast.events.length, 3);
  t.true(fast.ms < 2_000, `took ${fast.ms} ms unpaced: it waited for the 2 s of event time`);
  const paced = await drain(`replay:${path}?speed=10`);
  t.deepEqual(paced.events.map((e) => e.process.pid), [0, 1, 2]);
  // At 10× the 2 s take at least 200 ms; at 1× they would take 2 s on top of the work the unpaced run measured.
  t.true(paced.ms >= 190, `took ${paced.ms} ms for 2 s of event time at 10×`);
  t.true(paced.ms < 2_000 + 2 * fast.ms, `took ${paced.ms} ms for 2 s of event time at 10× (unpaced: ${fast.ms} ms)`);
});

test('bad replay arguments and a missing file are errors', async (t) => {
  const ctx = testSourceContext();
  t.throws(() => createSource('replay:/x?speed=fast', ctx), { code: 'invalid_source', message: /speed must be a number/ });
  t.throws(() => createSource('replay:/x?loop=1', ctx), { message: /unknown option "loop"/ });
  t.throws(() => createSource('replay:', ctx), { code: 'invalid_source' });
  await t.throwsAsync(drain('replay:/nonexistent/recording.jsonl'), { code: 'ENOENT' });
});
