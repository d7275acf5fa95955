import test from 'ava';
import { collectEvents as collect } from '../helpers/source-context.js';
import { readFileSync } from 'node:fs';
import type * as grpc from '@grpc/grpc-js';
import { parseTetragonLine } from '../../agent/sources/tetragon-event.js';
import { createTetragonGrpcSource } from '../../agent/sources/tetragon-grpc.js';
import { createSource } from '../../agent/sources/index.js';
import type { ActivityEvent } from '../../core/event.js';
import { tetragonSensorsService } from '../../proto/third-party.js';
import { unixGrpcServer } from '../helpers/grpc-server.js';
import { testSourceContext } from '../helpers/source-context.js';

const FIXTURE = new URL('../../../fixtures/tetragon/events.jsonl', import.meta.url);
const lines = readFileSync(FIXTURE, 'utf8').trim().split('\n');

/** A recorded JSON line as a message to serialize: wrappers and Timestamps in their proto form. */
function toMessage(line: string): Record<string, unknown> {
  return JSON.parse(line, (key, value) => {
    if ((key === 'pid' || key === 'uid' || key === 'tid' || key === 'auid') && typeof value === 'number') return { value };
    if ((key === 'time' || key === 'start_time') && typeof value === 'string') {
      const ms = Date.parse(value);
      const frac = /\.(\d+)Z$/.exec(value)?.[1] ?? '';
      return { seconds: Math.floor(ms / 1000), nanos: Number(frac.padEnd(9, '0')) };
    }
    return value;
  }) as Record<string, unknown>;
}

test('streams GetEvents from a local Tetragon over a unix socket; same events as the JSON export; reconnects', async (t) => {
  const requests: unknown[] = [];
  let send = lines;
  const server = unixGrpcServer('tetragon', tetragonSensorsService().service, {
    GetEvents(call: grpc.ServerWritableStream<unknown, unknown>) {
      requests.push(call.request);
      for (const l of send) call.write(toMessage(l));
      // Tetragon keeps the stream open; the test ends it by killing the server.
    },
  });
  t.teardown(() => server.cleanup());
  await server.start();
  const ctx = testSourceContext();
  const src = createTetragonGrpcSource(server.target, ctx, { initialBackoffMs: 20, maxBackoffMs: 100 });
  const ac = new AbortController();
  const iter = src.batches(ac.signal)[Symbol.asyncIterator]();
  const events: ActivityEvent[] = [];
  await collect(iter, events, 10);
  const expected = lines.map((l) => parseTetragonLine(l, { node: 'node-1', source: src.name })).filter((r): r is ActivityEvent => !('reject' in r));
  t.is(expected.length, 10);
  t.deepEqual(events, expected);
  t.deepEqual(requests, [{ allow_list: [{ event_set: ['PROCESS_EXEC', 'PROCESS_KPROBE'] }], deny_list: [] }]);
  t.deepEqual(ctx.rejects, ['unsupported', 'unsupported']);

  server.kill();
  send = [lines[7]!];
  await new Promise((r) => setTimeout(r, 100));
  await server.start();
  await collect(iter, events, 11);
  t.is(events[10]?.process.exe, '/usr/bin/curl');
  t.deepEqual(events[10]?.container?.image, { repository: 'docker.io/library/nginx', tag: '1.25.3', digest: 'sha256:4c0fdaa8b6341bfdeca5f18f7837462c80cff90527ee35ef185571e1c327beac' });
  t.true(src.stats.reconnects >= 1);
  ac.abort();
  t.true((await iter.next()).done);
});

test('UDP sends travel the gRPC stream with their sockaddr_arg (proto field 30)', async (t) => {
  const udp = readFileSync(new URL('../../../fixtures/tetragon/udp.jsonl', import.meta.url), 'utf8').trim().split('\n');
  const server = unixGrpcServer('tetragon', tetragonSensorsService().service, {
    GetEvents(call: grpc.ServerWritableStream<unknown, unknown>) {
      for (const l of udp) call.write(toMessage(l));
    },
  });
  t.teardown(() => server.cleanup());
  await server.start();
  const ctx = testSourceContext();
  const src = createTetragonGrpcSource(server.target, ctx, { initialBackoffMs: 20, maxBackoffMs: 100 });
  const ac = new AbortController();
  const iter = src.batches(ac.signal)[Symbol.asyncIterator]();
  const events: ActivityEvent[] = [];
  await collect(iter, events, 7);
  ac.abort();
  const expected = udp.map((l) => parseTetragonLine(l, { node: 'node-1', source: src.name })).filter((r): r is ActivityEvent => !('reject' in r));
  t.deepEqual(events, expected);
  t.deepEqual(
    events.filter((e) => e.kind === 'connect').map((e) => `${e.network?.remoteAddress} ${e.network?.remotePort}`),
    ['10.96.0.10 53', '10.96.0.10 53', '2001:db8::35 53', '::ffff:203.0.113.7 123', '203.0.113.7 123', '192.0.2.123 123'],
  );
  t.deepEqual(ctx.rejects, ['unsupported']);
});

test('tetragon-grpc addresses: default socket, plaintext TCP (Tetragon\'s server-address), TLS', (t) => {
  const ctx = testSourceContext();
  t.is(createSource('tetragon-grpc', ctx).name, 'tetragon-grpc:unix:///var/run/tetragon/tetragon.sock');
  t.is(createSource('tetragon-grpc:localhost:54321', ctx).name, 'tetragon-grpc:localhost:54321');
  t.throws(() => createSource('tetragon-grpc:nowhere', ctx), { code: 'invalid_source' });
});
