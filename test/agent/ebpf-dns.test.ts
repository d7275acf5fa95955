/**
 * DNS answers in the ebpf source: the bounded parser on well-formed and hostile messages, the
 * per-container cache (TTL floor and cap, bounds, evictions counted), the decoder naming a connect
 * from Q/R records, and the real bpftrace on this kernel: a process in a containerd-shaped cgroup
 * queries a DNS server on loopback with recvfrom, read and recvmsg, then connects to the addresses it
 * was given; its connects carry the names, the host's connect to the same address does not.
 */
import test from 'ava';
import { fork, spawnSync } from 'node:child_process';
import { createSocket } from 'node:dgram';
import { existsSync, mkdirSync, rmdirSync, writeFileSync } from 'node:fs';
import { connect, createServer, type Socket } from 'node:net';
import { fileURLToPath } from 'node:url';
import { DNS_LIMITS, createDnsNames, isDnsMalformed, parseDnsResponse, type DnsAnswer, type DnsOutcome } from '../../agent/sources/ebpf/dns.js';
import { createEbpfDecoder, type ProcessResolver } from '../../agent/sources/ebpf/decode.js';
import { findBpftrace, missingPrerequisites, REAL_HOST } from '../../agent/sources/ebpf/prerequisites.js';
import { captureEbpf } from '../helpers/ebpf-capture.js';
import { testSourceContext } from '../helpers/source-context.js';

// ---------------------------------------------------------------------------------------------------
// Building DNS messages (RFC 1035 §4.1), for the tests and for the loopback server

const wireName = (name: string) => Buffer.concat([...name.split('.').map((l) => Buffer.concat([Buffer.from([l.length]), Buffer.from(l)])), Buffer.from([0])]);
const u16 = (n: number) => Buffer.from([n >> 8, n & 0xff]);
const u32 = (n: number) => {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(n >>> 0);
  return b;
};

interface Rr {
  /** Owner: a name, or a Buffer already encoded (a compression pointer). */
  owner: string | Buffer;
  type: 'A' | 'AAAA' | 'CNAME';
  ttl: number;
  data: string;
}

function rdata(rr: Rr): Buffer {
  if (rr.type === 'A') return Buffer.from(rr.data.split('.').map(Number));
  if (rr.type === 'AAAA') {
    const [head, tail] = rr.data.split('::') as [string, string | undefined];
    const h = head === '' ? [] : head.split(':');
    const t = tail === undefined || tail === '' ? [] : tail.split(':');
    const groups = tail === undefined ? h : [...h, ...Array(8 - h.length - t.length).fill('0'), ...t];
    return Buffer.concat(groups.map((g) => u16(parseInt(g, 16))));
  }
  return wireName(rr.data);
}

/** A response to `question` (type A unless `qtype`), with `answers`; flags/counts overridable. */
function response(question: string, answers: Rr[], over: { flags?: number; qdcount?: number; ancount?: number; qtype?: number } = {}): Buffer {
  const header = Buffer.concat([u16(0x1234), u16(over.flags ?? 0x8180), u16(over.qdcount ?? 1), u16(over.ancount ?? answers.length), u16(0), u16(0)]);
  const q = Buffer.concat([wireName(question), u16(over.qtype ?? 1), u16(1)]);
  const rrs = answers.map((rr) => {
    const d = rdata(rr);
    const owner = typeof rr.owner === 'string' ? wireName(rr.owner) : rr.owner;
    return Buffer.concat([owner, u16(rr.type === 'A' ? 1 : rr.type === 'AAAA' ? 28 : 5), u16(1), u32(rr.ttl), u16(d.length), d]);
  });
  return Buffer.concat([header, q, ...rrs]);
}

/** A pointer to the question's name (offset 12), as real servers write answer owners. */
const PTR_Q = Buffer.from([0xc0, 0x0c]);

// ---------------------------------------------------------------------------------------------------
// Parser

test('parser: A and AAAA answers name their addresses by the question (compressed owners, IPv6 canonical, v4-mapped as IPv4)', (t) => {
  const msg = response('Storage.Example.COM', [
    { owner: PTR_Q, type: 'A', ttl: 60, data: '203.0.113.7' },
    { owner: PTR_Q, type: 'A', ttl: 60, data: '203.0.113.8' },
    { owner: PTR_Q, type: 'AAAA', ttl: 120, data: '2001:db8:0:0:0:0:0:1' },
    { owner: PTR_Q, type: 'AAAA', ttl: 120, data: '::ffff:c000:201' },
  ]);
  t.deepEqual(parseDnsResponse(msg), {
    name: 'storage.example.com',
    addresses: [
      { address: '203.0.113.7', ttlS: 60 },
      { address: '203.0.113.8', ttlS: 60 },
      { address: '2001:db8::1', ttlS: 120 },
      { address: '192.0.2.1', ttlS: 120 },
    ],
    truncated: false,
  });
});

test('parser: a CNAME chain leads from the question to its addresses; records of other owners are ignored', (t) => {
  const msg = response('api.example.com', [
    { owner: PTR_Q, type: 'CNAME', ttl: 300, data: 'api.edge.cdn.example' },
    { owner: 'api.edge.cdn.example', type: 'CNAME', ttl: 300, data: 'e1.cdn.example' },
    { owner: 'e1.cdn.example', type: 'A', ttl: 20, data: '198.51.100.4' },
    { owner: 'unrelated.example', type: 'A', ttl: 20, data: '198.51.100.66' },
  ]);
  t.deepEqual(parseDnsResponse(msg), { name: 'api.example.com', addresses: [{ address: '198.51.100.4', ttlS: 20 }], truncated: false });
});

test('parser: a message cut at the bytes read keeps the complete records before the cut, marked truncated', (t) => {
  const answers: Rr[] = [];
  for (let i = 0; i < 60; i++) answers.push({ owner: PTR_Q, type: 'A', ttl: 60, data: `198.51.100.${i}` });
  const full = response('many.example.com', answers);
  t.true(full.length > DNS_LIMITS.bytes);
  const cut = parseDnsResponse(full.subarray(0, DNS_LIMITS.bytes));
  if (isDnsMalformed(cut)) return t.fail(cut.malformed);
  t.true(cut.truncated);
  // 12 header + 22 question, then 16 bytes per record: 35 complete records in 600 bytes.
  t.is(cut.addresses.length, Math.floor((DNS_LIMITS.bytes - 12 - 22) / 16));
  t.is(cut.addresses.at(-1)?.address, `198.51.100.${cut.addresses.length - 1}`);
});

test('parser: hostile and non-answer messages are refused with a reason, never loop', (t) => {
  const a = (owner: string | Buffer = PTR_Q): Rr => ({ owner, type: 'A', ttl: 1, data: '192.0.2.1' });
  const at = 12 + wireName('x.example').length + 4;
  const loop = Buffer.from(response('x.example', [a(Buffer.from([0xc0, at]))])); // owner pointer to its own offset
  const forward = Buffer.from(response('x.example', [a(Buffer.from([0xc0, at + 2]))]));
  const longLabel = Buffer.concat([response('x.example', []).subarray(0, 12), Buffer.from([64]), Buffer.alloc(64, 0x61), Buffer.from([0, 0, 1, 0, 1])]);
  longLabel.writeUInt16BE(1, 6);
  const longName = response(Array(5).fill('a'.repeat(60)).join('.'), [a()]);
  const cases: [string, Buffer, RegExp][] = [
    ['a query, not a response', response('x.example', [a()], { flags: 0x0100 }), /not a response/],
    ['NXDOMAIN', response('x.example', [], { flags: 0x8183 }), /rcode/],
    ['opcode STATUS', response('x.example', [a()], { flags: 0x9180 }), /opcode/],
    ['two questions', response('x.example', [a()], { qdcount: 2 }), /not one question/],
    ['no answers', response('x.example', []), /no answer records/],
    ['a pointer to itself', loop, /bad record name/],
    ['a forward pointer', forward, /bad record name/],
    ['a 64-byte label', longLabel, /bad question name/],
    ['a name over 255 bytes', longName, /bad question name/],
    ['a space in a name', response('x y.example', [a()]), /bad question name/],
    ['a 5-byte A record', Buffer.concat([response('x.example', [], { ancount: 1 }), PTR_Q, u16(1), u16(1), u32(1), u16(5), Buffer.alloc(5)]), /wrong length/],
    ['only a header', Buffer.from(response('x.example', [a()]).subarray(0, 12)), /no complete address/],
    ['an answer for another name only', response('x.example', [a('y.example')]), /no address for the question/],
  ];
  for (const [what, msg, reason] of cases) {
    const r = parseDnsResponse(msg);
    t.true(isDnsMalformed(r), what);
    if (isDnsMalformed(r)) t.regex(r.malformed, reason, what);
  }
  // A CNAME loop is followed a bounded number of steps and names nothing beyond it.
  const cnameLoop = response('a.example', [
    { owner: PTR_Q, type: 'CNAME', ttl: 1, data: 'b.example' },
    { owner: 'b.example', type: 'CNAME', ttl: 1, data: 'a.example' },
  ]);
  t.deepEqual(parseDnsResponse(cnameLoop), { malformed: 'no address for the question' });
  // A TTL with the top bit set is 0 (RFC 2181 §8).
  t.like(parseDnsResponse(response('x.example', [{ owner: PTR_Q, type: 'A', ttl: 0x80000000, data: '192.0.2.1' }])), { addresses: [{ ttlS: 0 }] });
});

test('parser: random bytes behind a valid header never throw', (t) => {
  let seed = 7;
  const rnd = () => (seed = (seed * 1103515245 + 12345) & 0x7fffffff) & 0xff;
  for (let i = 0; i < 2_000; i++) {
    const msg = Buffer.alloc(12 + (i % 200));
    for (let j = 0; j < msg.length; j++) msg[j] = rnd();
    msg.writeUInt16BE(0x8180, 2);
    msg.writeUInt16BE(1, 4);
    msg.writeUInt16BE(1 + (i % 5), 6);
    t.notThrows(() => parseDnsResponse(msg));
  }
});

// ---------------------------------------------------------------------------------------------------
// Cache

const answer = (name: string, ...addresses: [string, number][]): DnsAnswer => ({ name, addresses: addresses.map(([address, ttlS]) => ({ address, ttlS })), truncated: false });

test('cache: names are per container; a TTL is kept at least 30 s and at most 1 h', (t) => {
  const counted: DnsOutcome[] = [];
  const names = createDnsNames((o) => counted.push(o));
  names.learn('c1', answer('s3.example.com', ['203.0.113.7', 5], ['203.0.113.8', 86_400]), 0);
  t.is(names.nameOf('c1', '203.0.113.7', 29_000), 's3.example.com', 'a 5 s TTL lasts the 30 s floor');
  t.is(names.nameOf('c2', '203.0.113.7', 1_000), '', 'another container did not resolve it');
  t.is(names.nameOf('host', '203.0.113.7', 1_000), '');
  t.is(names.nameOf('c1', '203.0.113.7', 30_001), '', 'expired after the floor');
  t.is(names.nameOf('c1', '203.0.113.8', 3_599_000), 's3.example.com');
  t.is(names.nameOf('c1', '203.0.113.8', 3_600_001), '', 'a day-long TTL is capped at an hour');
  t.is(names.size, 0, 'expired entries are dropped when looked up');
  names.learn('c1', answer('a.example', ['192.0.2.1', 60]), 0);
  names.learn('c1', answer('b.example', ['192.0.2.1', 60]), 1);
  t.is(names.nameOf('c1', '192.0.2.1', 2), 'b.example', 'the latest answer for an address wins');
  t.deepEqual(counted, []);
});

test('cache: bounded per container and in all; live names evicted oldest first and counted', (t) => {
  const counted: DnsOutcome[] = [];
  const names = createDnsNames((o) => counted.push(o), { perContainer: 3, total: 5, minTtlS: 30, maxTtlS: 3600 });
  names.learn('c1', answer('one.example', ['10.0.0.1', 60], ['10.0.0.2', 60], ['10.0.0.3', 60], ['10.0.0.4', 60]), 0);
  t.is(names.nameOf('c1', '10.0.0.1', 1), '', 'the oldest of c1 went');
  t.is(names.nameOf('c1', '10.0.0.4', 1), 'one.example');
  t.deepEqual(counted, ['evicted_container_full']);
  names.learn('c2', answer('two.example', ['10.0.1.1', 60], ['10.0.1.2', 60], ['10.0.1.3', 60]), 2);
  t.is(names.size, 5);
  t.is(names.nameOf('c1', '10.0.0.2', 3), '', 'c1 resolved least recently: its oldest made room');
  t.is(names.nameOf('c1', '10.0.0.3', 3), 'one.example');
  t.is(names.nameOf('c2', '10.0.1.1', 3), 'two.example');
  t.deepEqual(counted, ['evicted_container_full', 'evicted_cache_full']);
  // Expired names make room without counting.
  names.learn('c3', answer('three.example', ['10.0.2.1', 1]), 10_000_000);
  t.is(names.nameOf('c3', '10.0.2.1', 10_000_001), 'three.example');
  t.is(names.size, 5);
  t.is(counted.length, 2);
});

// ---------------------------------------------------------------------------------------------------
// Decoder: Q/R records name a connect

const ID = 'd5'.padEnd(64, '0');
const OTHER = 'e6'.padEnd(64, '0');
const hexOf = (b: Buffer) => [...b].map((x) => `\\x${x.toString(16).padStart(2, '0')}`).join('');
const leafHex = (id: string) => hexOf(Buffer.concat([Buffer.from(`cri-containerd-${id}.scope`), Buffer.alloc(128 - 85)]));
const printf = (data: string) => JSON.stringify({ type: 'printf', data: `${data}\n` });

function decoder() {
  const ctx = testSourceContext();
  const counted: DnsOutcome[] = [];
  ctx.counters = { lost: () => {}, restarted: () => {}, dns: (o) => counted.push(o) };
  const resolver: ProcessResolver = {
    owner: (_pid, _cg, leaves) => {
      const m = /cri-containerd-([0-9a-f]{64})\.scope/.exec(leaves[0] ?? '');
      return m ? { kind: 'container', id: m[1] as string, runtime: 'containerd', podUid: '' } : { kind: 'host' };
    },
    exe: () => '/app',
  };
  let now = 0;
  const d = createEbpfDecoder({ ctx, source: 'ebpf', clock: (ns) => ns / 1e6, resolver, now: () => now });
  return { d, ctx, counted, tick: (ms: number) => (now += ms) };
}

/** bpftrace's lines for one answer received by `pid` in container `id`. */
function answerLines(ns: number, pid: number, id: string, msg: Buffer): string[] {
  const n = Math.min(msg.length, DNS_LIMITS.bytes);
  const lines = [printf(`Q ${ns} ${pid} 0 77 ${n} ${leafHex(id)}`)];
  for (let o = 0; o < n; o += 200) lines.push(printf(`R ${ns} ${pid} ${o} ${hexOf(msg.subarray(o, Math.min(n, o + 200)))}`));
  return lines;
}

const connectLine = (ns: number, pid: number, id: string, addr: number[], port: number, proto = 'tcp') =>
  printf(`N ${ns} ${pid} 0 77 connect ${proto} ${proto === 'tcp' ? hexOf(Buffer.from([10, 0, 0, 5])) : '0'} 0 ${hexOf(Buffer.from(addr))} ${port} ${hexOf(Buffer.alloc(16, 0x61))} ${leafHex(id)}`);

test('decoder: a connect to an address its container resolved carries the name; another container\'s does not', (t) => {
  const { d, ctx, counted } = decoder();
  const msg = response('bucket.s3.example.com', [
    { owner: PTR_Q, type: 'CNAME', ttl: 5, data: 's3-w.example.com' },
    { owner: 's3-w.example.com', type: 'A', ttl: 5, data: '203.0.113.9' },
  ]);
  for (const l of answerLines(1_000_000, 40, ID, msg)) d.line(l);
  d.line(connectLine(2_000_000, 40, ID, [203, 0, 113, 9], 443));
  d.line(connectLine(2_000_000, 41, OTHER, [203, 0, 113, 9], 443));
  d.line(connectLine(2_000_000, 40, ID, [203, 0, 113, 9], 53, 'udp'));
  d.line(connectLine(2_000_000, 40, ID, [203, 0, 113, 10], 443));
  t.deepEqual(
    d.take().map((e) => [e.container?.id, e.network?.protocol, e.network?.remoteAddress, e.network?.remoteName]),
    [
      [ID, 'tcp', '203.0.113.9', 'bucket.s3.example.com'],
      [OTHER, 'tcp', '203.0.113.9', ''],
      [ID, 'udp', '203.0.113.9', 'bucket.s3.example.com'],
      [ID, 'tcp', '203.0.113.10', ''],
    ],
  );
  t.deepEqual(counted, ['learned']);
  t.deepEqual(ctx.rejects, []);
});

test('decoder: a connect read before the answer that preceded it (another CPU\'s buffer) is named while not yet taken', (t) => {
  const { d } = decoder();
  const msg = response('late.example.com', [{ owner: PTR_Q, type: 'A', ttl: 60, data: '203.0.113.77' }]);
  d.line(connectLine(3_000_000, 60, ID, [203, 0, 113, 77], 443));
  d.line(connectLine(900_000, 60, ID, [203, 0, 113, 77], 8443)); // before the answer: not named by it
  for (const l of answerLines(2_000_000, 60, ID, msg)) d.line(l);
  t.deepEqual(d.take().map((e) => e.network?.remoteName), ['late.example.com', '']);
});

test('decoder: an answer in three chunks, one missing its chunk (counted incomplete), and malformed Q/R lines rejected', (t) => {
  const { d, ctx, counted, tick } = decoder();
  const answers: Rr[] = [];
  for (let i = 0; i < 40; i++) answers.push({ owner: PTR_Q, type: 'A', ttl: 60, data: `198.51.100.${i}` });
  const big = response('big.example', answers);
  const lines = answerLines(5_000_000, 50, ID, big);
  t.is(lines.length, 4, 'header and three chunks');
  for (const l of [lines[0], lines[3], lines[1], lines[2]]) d.line(l as string);
  t.deepEqual(counted, ['truncated', 'learned']);
  const lost = answerLines(6_000_000, 50, ID, big);
  d.line(lost[0] as string);
  d.line(lost[1] as string);
  tick(1_000);
  d.expire(1_000, false);
  t.deepEqual(counted, ['truncated', 'learned', 'incomplete']);
  d.line(printf(`Q 1 2 0 77 9999 ${leafHex(ID)}`)); // longer than the bytes printed
  d.line(printf(`Q 1 2 0 77 40`)); // missing its cgroup
  d.line(printf(`R 1 2 7 ${hexOf(Buffer.alloc(4))}`)); // not at a chunk boundary
  d.line(printf(`R 1 2 400 ${hexOf(Buffer.alloc(201))}`)); // beyond the bound
  t.deepEqual(ctx.rejects, ['wrong_type', 'wrong_type', 'wrong_type', 'wrong_type']);
  // A query-shaped (not an answer) message is counted malformed, not learned.
  for (const l of answerLines(7_000_000, 50, ID, response('q.example', [], { flags: 0x0100, ancount: 1 }))) d.line(l);
  t.deepEqual(counted, ['truncated', 'learned', 'incomplete', 'malformed']);
  d.line(connectLine(8_000_000, 50, ID, [198, 51, 100, 30], 443));
  t.is(d.take()[0]?.network?.remoteName, 'big.example');
});

// ---------------------------------------------------------------------------------------------------
// The real kernel

const CGROUP_V2 = ['/sys/fs/cgroup/unified', '/sys/fs/cgroup'].find((p) => existsSync(`${p}/cgroup.procs`) && existsSync(`${p}/cgroup.controllers`));
const PYTHON = spawnSync('python3', ['-c', 'print(1)'], { encoding: 'utf8' }).stdout?.trim() === '1' ? 'python3' : null;

/** Why the real-kernel test cannot run here, or null. */
function realKernelUnavailable(): string | null {
  const missing = missingPrerequisites(findBpftrace('', REAL_HOST) ?? '', REAL_HOST);
  if (CGROUP_V2 === undefined) missing.push('no cgroup v2 hierarchy is mounted');
  if (PYTHON === null) missing.push('python3 (the DNS client) is not installed');
  return missing.length > 0 ? missing.join('; ') : null;
}

/**
 * The client: asks the server one question with the receive call named, then connects over TCP to the
 * address in the answer's last record, as a resolver's caller does. Plain sockets: no resolver library.
 * It pins itself to one CPU: bpftrace reads per-CPU buffers in turn, so a client that moved between its
 * receive and its connect could have its lines read out of order (the known limit, in the README; the
 * decoder test above covers the case the agent repairs).
 */
const CLIENT = String.raw`
import os, select, socket, struct, sys
os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
server, tcp_port, mode, name, qtype = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4], int(sys.argv[5])
q = struct.pack('>HHHHHH', 0x4242, 0x0100, 1, 0, 0, 0) + b''.join(bytes([len(l)]) + l.encode() for l in name.split('.')) + b'\0' + struct.pack('>HH', qtype, 1)
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
if mode == 'read':
    s.connect(('127.0.0.1', server)); s.send(q)
else:
    s.sendto(q, ('127.0.0.1', server))
select.select([s], [], [], 10)
if mode == 'recvfrom': data = s.recvfrom(2048)[0]
elif mode == 'read': data = os.read(s.fileno(), 2048)
else: data = s.recvmsg(2048)[0]
family = socket.AF_INET if qtype == 1 else socket.AF_INET6
addr = socket.inet_ntop(family, data[-4:] if qtype == 1 else data[-16:])
c = socket.create_connection((addr, tcp_port), timeout=10)
c.close()
`;

test.serial('real bpftrace: a container process resolves names (recvfrom, read, recvmsg; A, AAAA, CNAME) and its connects carry them', async (t) => {
  const why = realKernelUnavailable();
  if (why !== null) {
    t.log(`SKIPPED: ${why}`);
    t.pass();
    return;
  }
  const id = `d45${Date.now().toString(16)}`.padEnd(64, 'c');
  const scope = `${CGROUP_V2 as string}/dw-dns-${process.pid}.slice`;
  const leaf = `${scope}/cri-containerd-${id}.scope`;
  mkdirSync(leaf, { recursive: true });

  // The DNS server: answers from a table, any id, on a random loopback port.
  const table: Record<string, Rr[]> = {
    'recvfrom.dns-test.example': [{ owner: PTR_Q, type: 'A', ttl: 60, data: '127.0.0.21' }],
    'read.dns-test.example': [{ owner: PTR_Q, type: 'A', ttl: 60, data: '127.0.0.22' }],
    'recvmsg.dns-test.example': [{ owner: PTR_Q, type: 'A', ttl: 60, data: '127.0.0.23' }],
    'cname.dns-test.example': [
      { owner: PTR_Q, type: 'CNAME', ttl: 60, data: 'edge.cdn-test.example' },
      { owner: 'edge.cdn-test.example', type: 'A', ttl: 60, data: '127.0.0.24' },
    ],
    'six.dns-test.example': [{ owner: PTR_Q, type: 'AAAA', ttl: 60, data: '::1' }],
  };
  const dns = createSocket('udp4');
  dns.on('message', (m, from) => {
    let end = 12;
    while (end < m.length && m[end] !== 0) end += (m[end] as number) + 1;
    const labels: string[] = [];
    for (let i = 12; i < end; i += (m[i] as number) + 1) labels.push(m.subarray(i + 1, i + 1 + (m[i] as number)).toString());
    const name = labels.join('.');
    const reply = response(name, table[name] ?? [], { qtype: m.readUInt16BE(end + 1) });
    reply.writeUInt16BE(m.readUInt16BE(0), 0);
    dns.send(reply, from.port, from.address);
  });
  await new Promise<void>((r) => dns.bind(0, '127.0.0.1', r));
  const dnsPort = dns.address().port;
  // One TCP port on every answered address: 127.0.0.0/8 is all local, ::1 too.
  const servers = ['127.0.0.21', '127.0.0.22', '127.0.0.23', '127.0.0.24', '::1'].map(() => createServer((s: Socket) => s.end()));
  const first = servers[0]!;
  await new Promise<void>((r) => first.listen(0, '127.0.0.21', r));
  const tcpPort = (first.address() as { port: number }).port;
  const addrs = ['127.0.0.22', '127.0.0.23', '127.0.0.24', '::1'];
  await Promise.all(addrs.map((a, i) => new Promise<void>((r, j) => servers[i + 1]!.once('error', j).listen(tcpPort, a, r))));

  const runner = fork(fileURLToPath(new URL('../helpers/cgroup-runner.js', import.meta.url)), [], { stdio: ['ignore', 'ignore', 'inherit', 'ipc'] });
  await new Promise<void>((resolve, reject) => runner.once('spawn', resolve).once('error', reject));
  writeFileSync(`${leaf}/cgroup.procs`, String(runner.pid));
  t.teardown(() => {
    runner.kill();
    dns.close();
    for (const s of servers) s.close();
    // The runner leaves the cgroup when it exits; retry until then.
    const rm = (n: number) => {
      try {
        for (const d of [leaf, scope]) rmdirSync(d);
      } catch {
        if (n > 0) setTimeout(() => rm(n - 1), 200);
      }
    };
    rm(25);
  });
  const run = (args: string[]) =>
    new Promise<void>((resolve, reject) => {
      runner.once('message', (m) => {
        const r = m as { status: number | null; error: string | null };
        if (r.status === 0) resolve();
        else reject(new Error(`client ${args.join(' ')}: status ${r.status} ${r.error ?? ''}`));
      });
      runner.send({ exe: PYTHON as string, args: ['-c', CLIENT, ...args] });
    });

  const ctx = testSourceContext();
  const lost: number[] = [];
  const counted: DnsOutcome[] = [];
  ctx.counters = { lost: (n) => lost.push(n), restarted: () => {}, dns: (o) => counted.push(o) };
  const capture = await captureEbpf(t, ctx, `dw-dns-ready-${process.pid}`, 30_000);
  const { events } = capture;

  const cases: [mode: string, name: string, qtype: number, address: string][] = [
    ['recvfrom', 'recvfrom.dns-test.example', 1, '127.0.0.21'],
    ['read', 'read.dns-test.example', 1, '127.0.0.22'],
    ['recvmsg', 'recvmsg.dns-test.example', 1, '127.0.0.23'],
    ['recvfrom', 'cname.dns-test.example', 1, '127.0.0.24'],
    ['recvfrom', 'six.dns-test.example', 28, '::1'],
  ];
  for (const [mode, name, qtype] of cases) await run([String(dnsPort), String(tcpPort), mode, name, String(qtype)]);
  // The host (this process) connects to a resolved address too: it resolved nothing, so no name.
  await new Promise<void>((resolve, reject) => connect(tcpPort, '127.0.0.21').on('connect', function (this: Socket) { this.end(); resolve(); }).on('error', reject));

  const connectTo = (address: string, inContainer: boolean) =>
    events.find((e) => e.kind === 'connect' && e.network?.protocol === 'tcp' && e.network.remoteAddress === address && e.network.remotePort === tcpPort && (e.container?.id === id) === inContainer);
  const deadline = Date.now() + 20_000;
  while ((cases.some(([, , , a]) => !connectTo(a, true)) || !connectTo('127.0.0.21', false)) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
  await capture.stop();

  for (const [mode, name, , address] of cases) {
    t.like(connectTo(address, true), { container: { id }, network: { remoteAddress: address, remotePort: tcpPort, remoteName: name } }, `${mode} ${name}`);
  }
  t.like(connectTo('127.0.0.21', false), { container: null, network: { remoteName: '' } }, 'the host resolved nothing');
  t.is(counted.filter((o) => o === 'learned').length >= cases.length, true, `learned: ${counted.join(',')}`);
  t.deepEqual(lost, []);
  t.log(`events: ${events.length}; dns outcomes: ${[...new Set(counted)].map((o) => `${o}=${counted.filter((c) => c === o).length}`).join(' ')}; rejected: ${ctx.rejects.length}`);
});
