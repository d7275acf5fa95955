import test from 'ava';
import { parseFalcoLine } from '../../agent/sources/falco-event.js';
import { isRejected, type ParseResult } from '../../agent/sources/record.js';
import type { ActivityEvent } from '../../core/event.js';
import { at, falcoLine, falcoRecord } from '../helpers/falco.js';

const ctx = { node: 'node-1', source: 'test' };

function ok(r: ParseResult): ActivityEvent {
  if (isRejected(r)) throw new Error(`rejected: ${r.reject} ${r.detail}`);
  return r;
}

test('an exec from the Driftwatch rules', (t) => {
  const ev = ok(parseFalcoLine(falcoLine({ time: '2026-11-23T08:00:00.123456789Z' }), ctx));
  t.is(ev.time, Date.UTC(2026, 10, 23, 8, 0, 0, 123));
  t.is(ev.kind, 'exec');
  t.is(ev.node, 'node-1');
  t.deepEqual(ev.container, { id: '3ad7b26ded6d', name: 'nginx', image: { repository: 'docker.io/library/nginx', tag: '1.25.3', digest: '' } });
  t.deepEqual(ev.pod, { namespace: 'shop', name: 'web-7d9f8c6b5-x2kqz', labels: {}, workload: '' });
  t.is(ev.process.exe, '/usr/sbin/nginx');
  t.deepEqual(ev.process.args, ['-g', 'daemon', 'off;']);
  t.is(ev.process.parentExe, '/usr/bin/containerd-shim-runc-v2');
  t.is(ev.network, null);
});

test('evt.time beyond MAX_SAFE_INTEGER is tolerated; `time` wins', (t) => {
  const line = falcoLine({ time: '2026-11-23T08:00:00.987654321Z' }).replace('"evt.type"', '"evt.time":1795420800987654321,"evt.type"');
  t.true(line.includes('1795420800987654321'));
  t.is(ok(parseFalcoLine(line, ctx)).time, Date.UTC(2026, 10, 23, 8, 0, 0, 987));
});

test('without `time`, evt.time nanoseconds are used', (t) => {
  const rec = falcoRecord({ time: at(0), fields: { 'evt.time': 1795420800987654321 } });
  delete rec.time;
  t.is(ok(parseFalcoLine(JSON.stringify(rec), ctx)).time, 1795420800987);
});

test('a connect with only fd.name (stock rule style) and null image fields', (t) => {
  const ev = ok(
    parseFalcoLine(
      falcoLine({
        time: at(1),
        type: 'connect',
        fields: { 'fd.name': '10.244.2.3:51234->203.0.113.50:80', 'container.image.repository': null, 'container.image.tag': null },
      }),
      ctx,
    ),
  );
  t.is(ev.kind, 'connect');
  t.deepEqual(ev.network, { protocol: 'tcp', localAddress: '10.244.2.3', localPort: 51234, remoteAddress: '203.0.113.50', remotePort: 80, remoteName: '' });
  t.is(ev.container?.image.repository, '');
});

test('an accept: fd.name is client->server, so the local end is the server', (t) => {
  const ev = ok(parseFalcoLine(falcoLine({ time: at(1), type: 'accept4', fields: { 'fd.name': '10.244.1.7:43512->10.244.2.3:80', 'fd.l4proto': 'tcp' } }), ctx));
  t.is(ev.kind, 'accept');
  t.is(ev.network?.localPort, 80);
  t.is(ev.network?.remoteAddress, '10.244.1.7');
});

test('IPv6 endpoints, bracketed or bare, and UDP', (t) => {
  const a = ok(parseFalcoLine(falcoLine({ time: at(1), type: 'connect', fields: { 'fd.name': '[fd00:10:244::5]:40000->[2001:db8::1]:53', 'fd.l4proto': 'udp' } }), ctx));
  t.is(a.network?.remoteAddress, '2001:db8::1');
  t.is(a.network?.remotePort, 53);
  t.is(a.network?.protocol, 'udp');
  const b = ok(parseFalcoLine(falcoLine({ time: at(1), type: 'connect', fields: { 'fd.name': 'fd00:10:244::5:40000->2001:db8::1:443' } }), ctx));
  t.is(b.network?.remoteAddress, '2001:db8::1');
  t.is(b.network?.remotePort, 443);
});

test('fd.lip/fd.rip/fd.lport/fd.rport are used when nothing role-based is given', (t) => {
  const ev = ok(parseFalcoLine(falcoLine({ time: at(1), type: 'connect', fields: { 'fd.rip': '198.51.100.23', 'fd.rport': 4444, 'fd.lip': '10.244.2.3', 'fd.lport': 40000 } }), ctx));
  t.is(ev.network?.remoteAddress, '198.51.100.23');
  t.is(ev.network?.remotePort, 4444);
});

test('a loopback accept: locality-based ports are ambiguous, the client->server roles are not', (t) => {
  // Both ends are local, so Falco may report the client's port as fd.lport.
  const fields = { 'fd.name': '127.0.0.1:56534->127.0.0.1:8080', 'fd.lip': '127.0.0.1', 'fd.lport': 56534, 'fd.rip': '127.0.0.1', 'fd.rport': 8080, 'fd.sport': 8080, 'fd.cport': 56534 };
  const ev = ok(parseFalcoLine(falcoLine({ time: at(1), type: 'accept4', fields }), ctx));
  t.is(ev.network?.localPort, 8080);
  t.is(ev.network?.remotePort, 56534);
});

test('a listen with one endpoint in fd.name', (t) => {
  const ev = ok(parseFalcoLine(falcoLine({ time: at(1), type: 'listen', fields: { 'fd.name': '0.0.0.0:16379' } }), ctx));
  t.is(ev.kind, 'listen');
  t.is(ev.network?.localPort, 16379);
  t.is(ev.network?.localAddress, '0.0.0.0');
});

test('a UDP bind is a listening socket; IPv6 any-address in fd.name', (t) => {
  const ev = ok(parseFalcoLine(falcoLine({ time: at(1), type: 'bind', fields: { 'fd.name': ':::53', 'fd.l4proto': 'udp', 'fd.sport': 53 } }), ctx));
  t.is(ev.kind, 'listen');
  t.is(ev.network?.localAddress, '::');
  t.is(ev.network?.localPort, 53);
  t.is(ev.network?.protocol, 'udp');
});

test('stock rule without evt.type: a shell is an exec', (t) => {
  const ev = ok(parseFalcoLine(falcoLine({ time: at(1), omit: ['evt.type'], rule: 'Terminal shell in container', fields: { 'proc.exepath': '/bin/bash', 'proc.cmdline': 'bash -il' } }), ctx));
  t.is(ev.kind, 'exec');
  t.deepEqual(ev.process.args, ['-il']);
});

test('host events have no container', (t) => {
  const ev = ok(parseFalcoLine(falcoLine({ time: at(1), fields: { 'container.id': 'host', 'container.image.repository': null, 'k8s.ns.name': null, 'k8s.pod.name': null } }), ctx));
  t.is(ev.container, null);
  t.is(ev.pod, null);
});

test('<NA> values and an unknown uid', (t) => {
  const ev = ok(parseFalcoLine(falcoLine({ time: at(1), fields: { 'user.uid': 4294967295, 'user.name': '<NA>', 'proc.pexepath': '<NA>' } }), ctx));
  t.is(ev.process.uid, -1);
  t.is(ev.process.user, '');
  t.is(ev.process.parentExe, '');
});

test('image given only as container.image', (t) => {
  const ev = ok(parseFalcoLine(falcoLine({ time: at(1), omit: ['container.image.repository', 'container.image.tag'], fields: { 'container.image': 'registry.example.com:5000/team/api:2.1@sha256:ab' } }), ctx));
  t.deepEqual(ev.container?.image, { repository: 'registry.example.com:5000/team/api', tag: '2.1', digest: 'sha256:ab' });
});

test('pod labels as Falco renders them', (t) => {
  const ev = ok(parseFalcoLine(falcoLine({ time: at(1), fields: { 'k8s.pod.labels': '[app:web, pod-template-hash:7d9f8c6b5]' } }), ctx));
  t.deepEqual(ev.pod?.labels, { app: 'web', 'pod-template-hash': '7d9f8c6b5' });
});

const rejects: [string, string, string][] = [
  ['not JSON', '{"output_fields": {', 'not_json'],
  ['an array', '[1,2]', 'not_object'],
  ['no output_fields', JSON.stringify({ time: at(0) }), 'missing_field'],
  ['output_fields a string', JSON.stringify({ time: at(0), output_fields: 'x' }), 'wrong_type'],
  ['proc.cmdline an object', falcoLine({ time: at(0), fields: { 'proc.cmdline': { a: 1 } } }), 'wrong_type'],
  ['proc.pid a word', falcoLine({ time: at(0), fields: { 'proc.pid': 'abc' } }), 'wrong_type'],
  ['bad time', falcoLine({ time: 'yesterday' }), 'bad_time'],
  ['no container.id', falcoLine({ time: at(0), omit: ['container.id'] }), 'missing_field'],
  ['an exec without any process field', falcoLine({ time: at(0), omit: ['proc.exepath', 'proc.name', 'proc.cmdline'] }), 'missing_field'],
  ['connect without a peer', falcoLine({ time: at(0), type: 'connect' }), 'missing_field'],
  ['a bad port', falcoLine({ time: at(0), type: 'connect', fields: { 'fd.name': '1.2.3.4:5->6.7.8.9:99999' } }), 'bad_address'],
  ['an open() event', falcoLine({ time: at(0), type: 'openat' }), 'unsupported'],
  ['a k8s_audit event', JSON.stringify({ ...falcoRecord({ time: at(0) }), source: 'k8s_audit' }), 'unsupported'],
];
for (const [what, line, reason] of rejects) {
  test(`rejects ${what} as ${reason}`, (t) => {
    const r = parseFalcoLine(line, ctx);
    t.true(isRejected(r));
    if (isRejected(r)) t.is(r.reject as string, reason);
  });
}

test('huge fields are bounded, not refused', (t) => {
  const ev = ok(parseFalcoLine(falcoLine({ time: at(0), fields: { 'proc.cmdline': `sh ${'x '.repeat(50_000)}` } }), ctx));
  t.true(ev.process.args.length <= 256);
});
