/**
 * Hostile input, generated from a seeded PRNG (set DRIFTWATCH_FUZZ_SEED to replay a failure): thousands
 * of malformed Falco and Tetragon records interleaved with valid ones through a real agent (replay
 * source, pipeline, spool, uplink) into a real collector; malformed gRPC messages (random bytes, and
 * well-formed messages with wrong values) to a real collector; malformed API bodies and parameters.
 * Nothing crashes, every valid record arrives, every reject is counted.
 */
import test from 'ava';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import pino from 'pino';
import { loadAgentConfig, startAgent } from '../../agent/main.js';
import { agentService, deviationToWire, PROTOCOL_REVISION, type WireAgentMessage, type WireCollectorMessage, type WireDeviation } from '../../proto/index.js';
import { withCollector } from '../helpers/collector.js';
import { at, falcoLine, falcoRecord } from '../helpers/falco.js';
import { deviationOf } from '../helpers/ingest.js';
import { eventually } from '../helpers/processes.js';

const SEED = Number(process.env.DRIFTWATCH_FUZZ_SEED ?? 0x5eed);

/** mulberry32: small, seeded, good enough to pick mutations. */
function prng(seed: number) {
  let a = seed >>> 0;
  const next = () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  return { next, int: (n: number) => Math.floor(next() * n), pick: <T>(xs: readonly T[]) => xs[Math.floor(next() * xs.length)] as T };
}

const metricSum = (text: string, name: string) => [...text.matchAll(new RegExp(`^${name}(?:\\{[^}]*\\})? (\\d+)`, 'gm'))].reduce((n, m) => n + Number(m[1]), 0);

const SQL = `'; DROP TABLE deviations; -- " OR 1=1 /* \\x00 ${'%'.repeat(3)}`;

/** A malformed record: bytes that must be rejected (counted) and never become an event. */
function malformed(r: ReturnType<typeof prng>, i: number): Buffer {
  const valid = falcoRecord({ time: at(70 + i / 1000), fields: { 'proc.pid': 900_000 + i, 'proc.exepath': '/bin/sh', 'proc.name': 'sh', 'proc.cmdline': 'sh -c x', 'proc.pname': 'nginx' } });
  const of = valid.output_fields as Record<string, unknown>;
  switch (r.int(12)) {
    case 0: // truncated JSON
      return Buffer.from(JSON.stringify(valid).slice(0, 1 + r.int(200)));
    case 1: // JSON that is not an object
      return Buffer.from(r.pick(['[1,2,3]', '42', '"falco"', 'null', 'true', '[]']));
    case 2: { // invalid UTF-8 inside an otherwise valid record
      const text = JSON.stringify(valid);
      const cut = 10 + r.int(text.length - 20);
      return Buffer.concat([Buffer.from(text.slice(0, cut)), Buffer.from([r.pick([0xff, 0xc3, 0xe2, 0xf0, 0x80])]), Buffer.from(text.slice(cut))]);
    }
    case 3: // huge: over maxRecordBytes
      return Buffer.from(JSON.stringify({ ...valid, output: 'x'.repeat(70_000 + r.int(10_000)) }));
    case 4: // no output_fields, or of the wrong type
      return Buffer.from(JSON.stringify({ ...valid, output_fields: r.pick([undefined, 'str', 7, [], null]) }));
    case 5: // a bad time
      return Buffer.from(JSON.stringify({ ...valid, time: r.pick(['yesterday', '', 12, null, '2026-13-45T99:99:99Z', SQL]) }));
    case 6: // a pid of the wrong type
      return Buffer.from(JSON.stringify({ ...valid, output_fields: { ...of, 'proc.pid': r.pick(['abc', { a: 1 }, [1], true]) } }));
    case 7: // the executable of the wrong type
      return Buffer.from(JSON.stringify({ ...valid, output_fields: { ...of, 'proc.exepath': r.pick([42, { $ne: null }, [SQL], false]) } }));
    case 8: // deep nesting
      return Buffer.from(`{"output_fields":${'['.repeat(2000 + r.int(3000))}${']'.repeat(2000)}`);
    case 9: // Tetragon-shaped junk
      return Buffer.from(JSON.stringify(r.pick([{ process_exec: 5, time: at(70) }, { process_exec: { process: 'x' }, node_name: 'n', time: at(70) }, { process_kprobe: { function_name: [1] }, time: 'x' }])));
    case 10: // a network event whose address is nonsense
      return Buffer.from(JSON.stringify({ ...valid, output_fields: { ...of, 'evt.type': 'connect', 'fd.name': r.pick([SQL, '999.1.1.1:80->1.1.1.1:99999', '->', ':::::']) } }));
    default: // control characters and NUL as the whole line
      return Buffer.from(`\u0000\u0001{${SQL}`);
  }
}

test('agent: malformed Falco and Tetragon records among valid ones; every valid one arrives, every bad one is counted', async (t) => {
  const r = prng(SEED);
  const dir = mkdtempSync(join(tmpdir(), 'dw-fuzz-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const c = await withCollector(t, {}, { dir });
  const parts: Buffer[] = [];
  let valid = 0;
  // Learning: nginx as usual.
  for (let m = 0; m < 60; m += 5) {
    parts.push(Buffer.from(falcoLine({ time: at(m), fields: { 'proc.pid': 100 + m } })));
    valid++;
  }
  // Then 1,500 valid shells (each a deviation, some with SQL metacharacters in their command line) among 3,000 bad records.
  const validPids = new Set<number>();
  let bad = 0;
  for (let i = 0; i < 4_500; i++) {
    if (r.next() < 1 / 3) {
      const pid = 10_000 + i;
      validPids.add(pid);
      parts.push(Buffer.from(falcoLine({ time: at(70 + i / 1000), fields: { 'proc.pid': pid, 'proc.exepath': '/bin/sh', 'proc.name': 'sh', 'proc.cmdline': r.next() < 0.2 ? `sh -c ${SQL}` : 'sh -c id', 'proc.pname': 'nginx', 'proc.pexepath': '/usr/sbin/nginx' } })));
      valid++;
    } else {
      parts.push(malformed(r, i));
      bad++;
    }
  }
  const file = join(dir, 'replay.jsonl');
  writeFileSync(file, Buffer.concat(parts.flatMap((p) => [p, Buffer.from('\n')])));

  const agent = await startAgent(
    loadAgentConfig({ sources: [`replay:${file}`], collector: `127.0.0.1:${c.grpcPort}`, node: 'node-1', stateDir: join(dir, 'agent'), httpListen: '127.0.0.1:0', insecure: true, exitWhenDone: true, maxRecordBytes: 65_536 }, {}),
    { logger: pino({ level: 'silent' }) },
  );
  await agent.done;
  t.deepEqual(agent.failedSources, []);
  const m = await agent.metrics.registry.metrics();
  t.is(metricSum(m, 'driftwatch_agent_events_total'), valid, 'exactly the valid records became events');
  t.is(metricSum(m, 'driftwatch_agent_events_rejected_total') + metricSum(m, 'driftwatch_agent_events_ignored_total'), bad, `every bad record counted (seed ${SEED})`);

  await eventually(async () => ((await c.store.countDeviations()) >= validPids.size ? true : undefined), 20_000, 'every valid deviation stored');
  const stored = new Set<number>();
  let cursor: string | undefined;
  do {
    const page = await c.store.listDeviations({ limit: 1000, cursor });
    for (const d of page.items) stored.add(d.deviation.event.process.pid);
    cursor = page.next ?? undefined;
  } while (cursor);
  t.deepEqual([...stored].sort(), [...validPids].sort(), 'the valid ones, and nothing else');
});

test('collector: random bytes and wrong values over gRPC; valid records in the same batches are stored, every reject counted', async (t) => {
  const r = prng(SEED + 1);
  const dir = mkdtempSync(join(tmpdir(), 'dw-fuzz-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const c = await withCollector(t, {}, { dir });

  // Random bytes as AgentMessages, each on its own stream: refused, and the collector stays up.
  const raw = grpc.makeGenericClientConstructor({ Connect: { path: '/driftwatch.v1.AgentService/Connect', requestStream: true, responseStream: true, requestSerialize: (b: Buffer) => b, requestDeserialize: (b: Buffer) => b, responseSerialize: (b: Buffer) => b, responseDeserialize: (b: Buffer) => b } }, 'Raw');
  const client = new raw(`127.0.0.1:${c.grpcPort}`, grpc.credentials.createInsecure());
  t.teardown(() => client.close());
  const outcomes = await Promise.all(
    Array.from({ length: 200 }, () => {
      const bytes = Buffer.from(Array.from({ length: 1 + r.int(300) }, () => r.int(256)));
      return new Promise<string>((resolve) => {
        const call = (client as unknown as { Connect: () => grpc.ClientDuplexStream<Buffer, Buffer> }).Connect();
        const timer = setTimeout(() => (call.cancel(), resolve('open')), 60_000);
        call.on('data', () => undefined);
        call.on('error', (e: grpc.ServiceError) => (clearTimeout(timer), resolve(grpc.status[e.code] ?? String(e.code))));
        call.on('end', () => (clearTimeout(timer), resolve('end')));
        call.write(bytes);
        call.end();
      });
    }),
  );
  t.true(outcomes.every((o) => o !== 'open'), 'every stream with junk ended');

  // Well-formed messages with wrong values, mixed with valid deviations in the same batches.
  const mutations: ((w: WireDeviation) => unknown)[] = [
    (w) => ({ ...w, id: r.pick(['', 'x', SQL, 'A'.repeat(32), 'f'.repeat(100_000)]) }),
    (w) => ({ ...w, event: null }),
    (w) => ({ ...w, entry: null }),
    (w) => ({ ...w, reason: r.pick(['', SQL, 'new-everything']) }),
    (w) => ({ ...w, baselineKey: '' }),
    (w) => ({ ...w, event: { ...w.event, node: 'node-2' } }),
    (w) => ({ ...w, event: { ...w.event, kind: 'EVENT_KIND_UNSPECIFIED' } }),
    (w) => ({ ...w, event: { ...w.event, process: null } }),
    // (10,000 arguments are cut and marked, not refused: a long command line is no way to hide.)
    (w) => ({ ...w, event: { ...w.event, process: { ...w.event!.process, exe: `/${'a'.repeat(5_000)}` } } }),
    (w) => ({ ...w, event: { ...w.event, network: { protocol: 'sctp', localAddress: SQL, localPort: 1, remoteAddress: '', remotePort: 2, remoteName: '' } } }),
    (w) => ({ ...w, nearest: Array.from({ length: 1_000 }, () => SQL) }),
  ];
  const { Client } = agentService();
  const agent = new Client(`127.0.0.1:${c.grpcPort}`, grpc.credentials.createInsecure());
  t.teardown(() => agent.close());
  const call = (agent.Connect as () => grpc.ClientDuplexStream<WireAgentMessage, WireCollectorMessage>).call(agent);
  const acks: NonNullable<WireCollectorMessage['ack']>[] = [];
  call.on('data', (m: WireCollectorMessage) => m.ack && acks.push(m.ack));
  call.on('error', () => undefined);
  call.write({ hello: { node: 'node-1', agentVersion: SQL, sources: [SQL], protocol: PROTOCOL_REVISION } });
  let validSent = 0;
  let invalidSent = 0;
  const batches = 20;
  for (let b = 1; b <= batches; b++) {
    const deviations: unknown[] = [];
    for (let i = 0; i < 50; i++) {
      const w = deviationToWire(deviationOf({ i: b * 100 + i, args: r.next() < 0.3 ? SQL : '-c id' }));
      if (r.next() < 0.5) {
        deviations.push(w);
        validSent++;
      } else {
        deviations.push(r.pick(mutations)(w));
        invalidSent++;
      }
    }
    call.write({ batch: { batchId: b, deviations: deviations as WireDeviation[], baselines: [] } });
  }
  await eventually(() => (acks.length === batches ? true : undefined), 10_000, 'every batch acknowledged');
  call.end();
  t.is(acks.reduce((n, a) => n + a.rejected, 0), invalidSent, `every invalid record rejected (seed ${SEED + 1})`);
  t.is(acks.reduce((n, a) => n + a.stored, 0), validSent, 'every valid one stored');
  const metrics = await c.metrics.registry.metrics();
  t.is(metricSum(metrics, 'driftwatch_collector_records_rejected_total'), invalidSent, 'and counted');
  t.is(await c.store.countDeviations(), validSent);
});

test('API: wrong types, huge values, deep nesting, invalid UTF-8 and SQL metacharacters get a 4xx, each counted', async (t) => {
  const r = prng(SEED + 2);
  const dir = mkdtempSync(join(tmpdir(), 'dw-fuzz-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const c = await withCollector(t, {}, { dir });
  const bodies: (() => Buffer | string)[] = [
    () => JSON.stringify({ reason: r.pick([1, null, [], {}, true]), owner: 'x', key: '*', expiresIn: '1d' }),
    () => JSON.stringify({ reason: 'r'.repeat(5_000), owner: 'x', key: '*', expiresIn: '1d' }),
    () => JSON.stringify({ reason: 'r', owner: 'x', key: '*', expiresIn: r.pick(['-1d', '1e309d', '99999999999d', SQL, '']) }),
    () => JSON.stringify({ reason: 'r', owner: 'x', key: '*', expiresAt: r.pick(['0000-00-00T00:00:00Z', SQL, 1e309, -1]) }),
    () => `{"reason":${'['.repeat(5000)}${']'.repeat(5000)}}`,
    () => Buffer.concat([Buffer.from('{"reason":"'), Buffer.from([0xff, 0xfe, 0xc3]), Buffer.from('","owner":"x","key":"*","expiresIn":"1d"}')]),
    () => JSON.stringify({ reason: SQL, owner: SQL, namespace: SQL, expiresIn: '1d' }),
    () => JSON.stringify({ alert: SQL, reason: 'r', owner: 'o', expiresIn: '1d' }),
    () => JSON.stringify({ reason: 'r', owner: 'o', key: '*', expiresIn: '1d', extra: { __proto__: { admin: true } } }),
    () => `{"reason": "r", "owner": "o", "key": "*", "expiresIn": "1d"`,
    () => JSON.stringify([1, 2, 3]),
  ];
  const targets = [
    { method: 'POST', path: '/api/v1/exceptions' },
    { method: 'POST', path: `/api/v1/alerts/${encodeURIComponent(SQL)}/ack` },
    { method: 'POST', path: '/api/v1/alerts/0123456789abcdef0123456789abcdef/resolve' },
  ];
  const statuses: number[] = [];
  for (let i = 0; i < 300; i++) {
    const target = r.pick(targets);
    const body = r.pick(bodies)();
    const res = await fetch(`${c.url}${target.path}`, { method: target.method, headers: { 'content-type': 'application/json' }, body });
    statuses.push(res.status);
    await res.arrayBuffer();
  }
  for (let i = 0; i < 100; i++) {
    const param = r.pick(['limit', 'cursor', 'kind', 'state', 'severity', SQL, 'image']);
    const value = r.pick([SQL, '-1', '1e309', '%zz', 'x'.repeat(600), '0', '99999']);
    const res = await fetch(`${c.url}/api/v1/alerts?${encodeURIComponent(param)}=${encodeURIComponent(value)}&${param === 'image' ? 'image=x' : 'limit=1'}`);
    statuses.push(res.status);
    await res.arrayBuffer();
  }
  t.deepEqual(statuses.filter((s) => s < 400 || s >= 500), [], 'every one refused with a 4xx');
  const metrics = await c.metrics.registry.metrics();
  t.is(metricSum(metrics, 'driftwatch_collector_api_requests_rejected_total'), statuses.length, 'every refusal counted');
  t.is((await fetch(`${c.url}/api/v1/alerts`)).status, 200, 'and the API still answers');
  t.is(await c.store.countDeviations(), 0);
});
