import test from 'ava';
import { collectEvents as collect } from '../helpers/source-context.js';
import type * as grpc from '@grpc/grpc-js';
import { parseSourceSpec, createSource } from '../../agent/sources/index.js';
import { createFalcoGrpcSource, falcoResponseToEvent } from '../../agent/sources/falco-grpc.js';
import { parseFalcoLine } from '../../agent/sources/falco-event.js';
import type { ActivityEvent } from '../../core/event.js';
import { falcoOutputsService } from '../../proto/third-party.js';
import { at, falcoLine, falcoRecord, type FalcoEventSpec } from '../helpers/falco.js';
import { unixGrpcServer } from '../helpers/grpc-server.js';
import { testSourceContext } from '../helpers/source-context.js';

/** A Falco JSON record as Falco's gRPC output sends it: Timestamp, values as strings (JSON text for non-strings). */
function falcoResponse(spec: FalcoEventSpec): Record<string, unknown> {
  const rec = falcoRecord(spec);
  const time = String(rec.time);
  const ms = Date.parse(time);
  const fields: Record<string, string> = {};
  for (const [k, v] of Object.entries(rec.output_fields as Record<string, unknown>)) fields[k] = typeof v === 'string' ? v : JSON.stringify(v);
  return {
    time: { seconds: Math.floor(ms / 1000), nanos: Number(time.slice(20, 29)) },
    priority: 'NOTICE',
    source_deprecated: 'SYSCALL',
    rule: rec.rule,
    output: rec.output,
    output_fields: fields,
    hostname: 'node-1',
    tags: ['driftwatch'],
    source: 'syscall',
  };
}

/** Falco's sub semantics: on every request, send what is queued, then wait for the next request. */
function falcoServer() {
  const queued: Record<string, unknown>[] = [];
  const impl = {
    sub(call: grpc.ServerDuplexStream<unknown, unknown>) {
      call.on('data', () => {
        for (const r of queued.splice(0)) call.write(r);
      });
      call.on('end', () => call.end());
      call.on('error', () => undefined);
    },
    get(call: grpc.ServerWritableStream<unknown, unknown>) {
      call.end();
    },
  };
  const server = unixGrpcServer('falco', falcoOutputsService().service, impl);
  return { server, queued };
}

test('a gRPC response becomes the same event as the JSON line of the same alert', (t) => {
  const ctx = { node: 'node-1', source: 's' };
  for (const spec of [
    { time: '2026-11-23T08:00:00.123456789Z' },
    { time: at(1), type: 'connect', fields: { 'fd.name': '10.244.2.3:51234->[2001:db8::50]:443', 'fd.l4proto': 'tcp', 'container.image.repository': null, 'user.uid': 4294967295 } },
    { time: at(2), type: 'bind', fields: { 'fd.name': '0.0.0.0:53', 'fd.l4proto': 'udp', 'proc.cmdline': 'coredns -conf /etc/coredns/Corefile' } },
  ] satisfies FalcoEventSpec[]) {
    t.deepEqual(falcoResponseToEvent(falcoResponse(spec), ctx), parseFalcoLine(falcoLine(spec), ctx));
  }
  // Hostile responses are rejected with a reason.
  t.like(falcoResponseToEvent({ time: { seconds: '99999999999999' }, output_fields: { 'evt.type': 'execve' } }, ctx), { reject: 'bad_time' });
  t.like(falcoResponseToEvent({ ...falcoResponse({ time: at(0) }), source: 'k8s_audit' }, ctx), { reject: 'unsupported' });
  t.like(falcoResponseToEvent(null, ctx), { reject: 'not_object' });
});

test('streams events from a local Falco over a unix socket, reconnects after Falco restarts', async (t) => {
  const { server, queued } = falcoServer();
  t.teardown(() => server.cleanup());
  await server.start();
  queued.push(
    falcoResponse({ time: at(0) }),
    falcoResponse({ time: at(1), type: 'connect', fields: { 'fd.name': '10.244.2.3:51234->203.0.113.50:80', 'fd.l4proto': 'tcp', 'proc.exepath': '/usr/bin/curl', 'proc.name': 'curl', 'proc.cmdline': 'curl -s http://203.0.113.50/x.sh' } }),
    { ...falcoResponse({ time: at(2) }), output_fields: { 'evt.type': 'execve' } },
  );
  const ctx = testSourceContext();
  const src = createFalcoGrpcSource(server.target, ctx, { pollMs: 20, initialBackoffMs: 20, maxBackoffMs: 100 });
  t.is(src.name, `falco-grpc:${server.target}`);
  const ac = new AbortController();
  const iter = src.batches(ac.signal)[Symbol.asyncIterator]();
  const events: ActivityEvent[] = [];
  await collect(iter, events, 2);
  t.is(events[0]?.kind, 'exec');
  t.is(events[0]?.process.exe, '/usr/sbin/nginx');
  t.deepEqual(events[0]?.container?.image, { repository: 'docker.io/library/nginx', tag: '1.25.3', digest: '' });
  t.deepEqual(events[0]?.pod, { namespace: 'shop', name: 'web-7d9f8c6b5-x2kqz', labels: {}, workload: '' });
  t.is(events[0]?.time, Date.UTC(2026, 10, 23, 8, 0, 0, 0));
  t.is(events[1]?.kind, 'connect');
  t.deepEqual(events[1]?.process.args, ['-s', 'http://203.0.113.50/x.sh']);
  t.is(events[1]?.network?.remoteAddress, '203.0.113.50');
  t.is(events[1]?.network?.remotePort, 80);
  t.is(events[1]?.source, `falco-grpc:${server.target}`);

  // Polling: an alert queued later arrives on the same stream.
  queued.push(falcoResponse({ time: at(3), fields: { 'proc.pid': 7 } }));
  await collect(iter, events, 3);
  t.is(events[2]?.process.pid, 7);
  t.is(src.stats.reconnects, 0);

  // Falco goes away and comes back on the same socket: the source reconnects by itself.
  server.kill();
  await new Promise((r) => setTimeout(r, 150));
  queued.push(falcoResponse({ time: at(4), fields: { 'proc.pid': 8 } }));
  await server.start();
  await collect(iter, events, 4);
  t.is(events[3]?.process.pid, 8);
  t.true(src.stats.reconnects >= 1);
  t.true(src.stats.connects >= 2);
  ac.abort();
  const end = await iter.next();
  t.true(end.done);
  t.deepEqual(ctx.rejects, ['missing_field']);
});

test('falco-grpc addresses: default socket, unix paths, TCP only with mTLS', (t) => {
  const ctx = testSourceContext();
  t.is(parseSourceSpec('falco-grpc').factory.scheme, 'falco-grpc');
  t.is(createSource('falco-grpc', ctx).name, 'falco-grpc:unix:///run/falco/falco.sock');
  t.is(createSource('falco-grpc:unix:///var/run/falco.sock', ctx).name, 'falco-grpc:unix:///var/run/falco.sock');
  t.throws(() => createSource('falco-grpc:falco.falco.svc:5060', ctx), { code: 'invalid_source', message: /mTLS/ });
  t.throws(() => createSource('falco-grpc:falco:5060?ca=/c&cert=/c', ctx), { message: /ca, cert and key/ });
  t.throws(() => createSource('falco-grpc:falco:5060?ca=/a&cert=/b&key=/c&insecure=1', ctx), { message: /unknown option "insecure"/ });
  t.throws(() => createSource('falco-grpc:unix:relative.sock', ctx), { message: /absolute/ });
  t.notThrows(() => createSource('falco-grpc:falco:5060?ca=/a&cert=/b&key=/c', ctx));
});

