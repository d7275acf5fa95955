/**
 * The ebpf source: the decoder on recorded bpftrace lines, the prerequisite check, and the real
 * bpftrace on this kernel (a process in a containerd-shaped cgroup v2 folder, a loopback TCP
 * listen/connect/accept and a UDP send), attributed through a fake CRI server.
 */
import test from 'ava';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, rmdirSync } from 'node:fs';
import { createServer } from 'node:net';
import { createSocket } from 'node:dgram';
import { completeFromRuntime } from '../../agent/attribution/attributor.js';
import { createContainerLookup, createCriClient } from '../../agent/attribution/cri.js';
import { createEbpfDecoder, decodeAddress, type ProcessResolver } from '../../agent/sources/ebpf/decode.js';
import { findBpftrace, type HostProbe, missingPrerequisites, REAL_HOST } from '../../agent/sources/ebpf/prerequisites.js';
import { createEbpfSource, EbpfError, parseEbpfArgument } from '../../agent/sources/ebpf/source.js';
import { ebpfProgram } from '../../agent/sources/ebpf/program.js';
import type { ActivityEvent } from '../../core/event.js';
import { startFakeCri } from '../helpers/cri-server.js';
import { testSourceContext } from '../helpers/source-context.js';

const hexOf = (s: string | Buffer, pad = 0) => {
  const b = Buffer.concat([Buffer.from(s), Buffer.alloc(Math.max(0, pad - Buffer.byteLength(s)))]);
  return [...b].map((x) => `\\x${x.toString(16).padStart(2, '0')}`).join('');
};
const printf = (data: string) => JSON.stringify({ type: 'printf', data: `${data}\n` });
const ID = 'c0ffee'.padEnd(64, '0');

function fixedResolver(): ProcessResolver {
  return {
    owner: (_pid, _cg, leaves) => (leaves.some((l) => l.includes(ID)) ? { kind: 'container', id: ID, runtime: 'containerd', podUid: '' } : { kind: 'host' }),
    exe: (pid) => (pid === 100 ? '/usr/sbin/nginx' : ''),
  };
}

function decoder() {
  const ctx = testSourceContext();
  const lost: number[] = [];
  ctx.counters = { lost: (n) => lost.push(n), restarted: () => {} };
  const d = createEbpfDecoder({ ctx, source: 'ebpf', clock: (ns) => ns / 1e6, resolver: fixedResolver(), now: () => 0 });
  return { d, ctx, lost };
}

test('decoder: an exec assembled from its header, file name and argv chunks (any order), argv split on NULs', (t) => {
  const { d, ctx } = decoder();
  const argv = Buffer.from('/bin/sh\0-c\0echo "a b"; id\0');
  d.line(printf(`A 5000000 200 0 ${hexOf(argv.subarray(0, 10))}`));
  d.line(printf(`F 5000000 200 ${hexOf('/bin/sh', 200)}`));
  t.is(d.take().length, 0, 'incomplete: waits');
  d.line(printf(`A 5000000 200 10 ${hexOf(argv.subarray(10))}`));
  d.line(printf(`X 5000000 200 100 0 77 ${argv.length} ${hexOf('nginx', 16)}`));
  t.is(d.take().length, 0, 'still waits for its cgroup');
  d.line(printf(`C 5000000 200 ${hexOf(`cri-containerd-${ID}.scope`, 128)}`));
  const [ev] = d.take();
  t.like(ev, { time: 5, kind: 'exec', container: { id: ID }, process: { pid: 200, exe: '/bin/sh', name: 'sh', args: ['-c', 'echo', '"a', 'b";', 'id'], parentExe: '/usr/sbin/nginx', parentName: 'nginx', uid: 0 } });
  t.deepEqual(ctx.rejects, []);
});

test('decoder: an exec missing its argv lines is emitted with what arrived after the assembly window', (t) => {
  const { d } = decoder();
  d.line(printf(`X 7000000 300 1 1000 1 40 ${hexOf('bash', 16)}`));
  d.line(printf(`C 7000000 300 ${hexOf('', 128)}`));
  d.line(printf(`F 7000000 300 ${hexOf('/usr/bin/curl', 200)}`));
  d.expire(1_000, false);
  const [ev] = d.take();
  t.like(ev, { container: null, process: { exe: '/usr/bin/curl', args: [], uid: 1000 } });
});

test('decoder: network records (IPv4 bytes, kernel u32, IPv6, v4-mapped), UDP deduplicated per container and peer', (t) => {
  const { d, ctx } = decoder();
  const leaves = `${hexOf('nginx', 16)} ${hexOf(`cri-containerd-${ID}.scope`, 128)}`;
  d.line(printf(`N 1000000 100 0 9 connect tcp ${hexOf(Buffer.from([10, 0, 0, 5]))} 0 ${hexOf(Buffer.from([203, 0, 113, 50]))} 443 ${leaves}`));
  d.line(printf(`N 1000000 100 0 9 accept tcp 16777343 8080 33554559 51000 ${leaves}`));
  d.line(printf(`N 1000000 100 0 9 listen tcp ${hexOf(Buffer.alloc(16))} 8080 ${hexOf(Buffer.alloc(16))} 0 ${leaves}`));
  const v6 = Buffer.from('20010db8000000000000000000000001', 'hex');
  d.line(printf(`N 1000000 100 0 9 connect udp 0 0 ${hexOf(v6)} 53 ${leaves}`));
  d.line(printf(`N 1000000 100 0 9 connect udp 0 0 ${hexOf(v6)} 53 ${leaves}`));
  const evs = d.take();
  t.deepEqual(
    evs.map((e) => [e.kind, e.network?.protocol, e.network?.localAddress, e.network?.localPort, e.network?.remoteAddress, e.network?.remotePort, e.process.exe]),
    [
      ['connect', 'tcp', '10.0.0.5', -1, '203.0.113.50', 443, '/usr/sbin/nginx'],
      ['accept', 'tcp', '127.0.0.1', 8080, '127.0.0.2', 51000, '/usr/sbin/nginx'],
      ['listen', 'tcp', '::', 8080, '', -1, '/usr/sbin/nginx'],
      ['connect', 'udp', '', -1, '2001:db8::1', 53, '/usr/sbin/nginx'],
    ],
  );
  t.deepEqual(ctx.rejects, []);
  t.is(decodeAddress(hexOf(Buffer.from('00000000000000000000ffffc0a80001', 'hex'))), '192.168.0.1');
});

test('decoder: lost events are counted; malformed records are counted by reason and skipped', (t) => {
  const { d, ctx, lost } = decoder();
  d.line('{"type": "lost_events", "data": {"events": 17}}');
  d.line('not json');
  d.line('[1]');
  d.line(printf('X 1 2 3')); // too few fields
  d.line(printf(`F 1 2 \\x4g`)); // not hex
  d.line(printf(`N 1 2 0 9 connect tcp \\x01\\x02\\x03 0 \\x01 1 ${hexOf('a', 16)} ${hexOf('', 128)}`)); // 3-byte address
  d.line(printf(`N 1 2 0 9 connect sctp 0 0 1 1 ${hexOf('a', 16)} ${hexOf('', 128)}`));
  d.line(printf(`A 1 2 3990 ${hexOf(Buffer.alloc(20))}`)); // beyond the argv bound
  d.line('{"type": "map", "data": {}}');
  t.deepEqual(lost, [17]);
  t.deepEqual(ctx.rejects, ['not_json', 'not_object', 'wrong_type', 'wrong_type', 'bad_address', 'wrong_type', 'wrong_type', 'unsupported']);
  t.deepEqual(d.take(), []);
});

test('prerequisites: every missing one is named, with how to fix it', (t) => {
  const host = (over: Partial<HostProbe> & { caps?: string; files?: string[] }): HostProbe => ({
    exists: (p) => (over.files ?? ['/sys/kernel/tracing/events', '/sys/kernel/btf/vmlinux']).includes(p),
    readFile: () => `Name:\tnode\nCapEff:\t${over.caps ?? '000001ffffffffff'}\n`,
    executable: (p) => p === '/usr/bin/bpftrace',
    env: { PATH: '/usr/bin' },
  });
  t.deepEqual(missingPrerequisites('/usr/bin/bpftrace', host({})), []);
  t.is(findBpftrace('', host({})), '/usr/bin/bpftrace');
  t.deepEqual(missingPrerequisites('/usr/bin/bpftrace', host({ caps: '000000c000000000' })), [], 'CAP_BPF + CAP_PERFMON without CAP_SYS_ADMIN is enough');
  const all = missingPrerequisites('', host({ files: [], caps: '0000008000000000' }));
  t.is(all.length, 4);
  t.regex(all[0]!, /tracefs is not mounted at \/sys\/kernel\/tracing \(mount -t tracefs/);
  t.regex(all[1]!, /no BTF at \/sys\/kernel\/btf\/vmlinux/);
  t.regex(all[2]!, /missing CAP_PERFMON\)/);
  t.regex(all[3]!, /bpftrace is not installed \(apt-get install -y bpftrace\)/);
  const err = t.throws(() => createEbpfSource('', testSourceContext(), { host: host({ files: [] }) }), { instanceOf: EbpfError });
  t.is(err?.code, 'prerequisites_missing');
  t.regex(err!.message, /^the ebpf source cannot start: tracefs .*; the kernel has no BTF/);
});

test('argument: an optional bpftrace path and dns=on|off; anything else is refused with the option named', (t) => {
  t.deepEqual(parseEbpfArgument(''), { bpftracePath: '', dns: true });
  t.deepEqual(parseEbpfArgument('/usr/bin/bpftrace'), { bpftracePath: '/usr/bin/bpftrace', dns: true });
  t.deepEqual(parseEbpfArgument('?dns=off'), { bpftracePath: '', dns: false });
  t.deepEqual(parseEbpfArgument('/opt/bpftrace?dns=on'), { bpftracePath: '/opt/bpftrace', dns: true });
  t.throws(() => parseEbpfArgument('?dns=no'), { message: /unknown option "dns=no".*dns=on\|off/ });
  t.throws(() => parseEbpfArgument('bpftrace'), { message: /absolute path/ });
  const off = ebpfProgram({ dns: false });
  t.false(off.includes('@dnsbuf'));
  t.false(off.includes('sys_enter_read'));
  t.true(off.includes('sched_process_exec') && off.includes('interval:s:60') && off.includes('END'));
  t.is(ebpfProgram({ dns: true }).split('@dnsbuf').length - 1 > 0, true);
});

/** Why the real-kernel test cannot run here, or null. */
function realKernelUnavailable(): string | null {
  const bpftrace = findBpftrace('', REAL_HOST);
  const missing = missingPrerequisites(bpftrace ?? '', REAL_HOST);
  return missing.length > 0 ? missing.join('; ') : null;
}

/** Load a program into the real bpftrace and return how many probes it attached. */
async function attachedProbes(program: string): Promise<number> {
  const child = spawn(findBpftrace('', REAL_HOST)!, ['-f', 'json', '-e', program, '0'], { stdio: ['ignore', 'pipe', 'pipe'], env: { PATH: process.env.PATH ?? '/usr/bin:/bin', BPFTRACE_STRLEN: '200' } });
  try {
    let out = '';
    let err = '';
    child.stderr.on('data', (c: Buffer) => (err += c.toString()));
    return await new Promise<number>((resolve, reject) => {
      child.stdout.on('data', (c: Buffer) => {
        out += c.toString();
        const m = /"type": ?"attached_probes", ?"data": ?\{"probes": ?(\d+)\}/.exec(out);
        if (m) resolve(Number(m[1]));
      });
      child.on('exit', (code) => reject(new Error(`bpftrace exited ${code} before attaching: ${err.slice(-500)}`)));
    });
  } finally {
    child.kill('SIGINT');
  }
}

test.serial('real bpftrace: the program loads with and without the DNS probes, which dns=off leaves out', async (t) => {
  const why = realKernelUnavailable();
  if (why !== null) {
    t.log(`SKIPPED: eBPF is not possible here: ${why}`);
    t.pass();
    return;
  }
  const full = await attachedProbes(ebpfProgram({ dns: true }));
  const lean = await attachedProbes(ebpfProgram({ dns: false }));
  t.log(`probes attached: ${full} with DNS, ${lean} without`);
  t.is(full - lean, 6, 'the three receive syscalls, entry and exit');
});

const CGROUP_V2 = ['/sys/fs/cgroup/unified', '/sys/fs/cgroup'].find((p) => existsSync(`${p}/cgroup.procs`) && existsSync(`${p}/cgroup.controllers`));

test.serial('real bpftrace: exec with argv and parent in a containerd-shaped cgroup, TCP listen/connect/accept and UDP on loopback, attributed via the CRI', async (t) => {
  const why = realKernelUnavailable();
  if (why !== null || CGROUP_V2 === undefined) {
    t.log(`SKIPPED: eBPF is not possible here: ${why ?? 'no cgroup v2 hierarchy mounted'}`);
    t.pass();
    return;
  }
  const id = `d1f7${Date.now().toString(16)}`.padEnd(64, 'e');
  const scope = `${CGROUP_V2}/dw-test-${process.pid}.slice`;
  const leaf = `${scope}/cri-containerd-${id}.scope`;
  mkdirSync(leaf, { recursive: true });
  t.teardown(() => {
    for (const d of [leaf, scope]) try { rmdirSync(d); } catch { /* still busy: removed when empty */ }
  });
  const cri = await startFakeCri([{ id, sandbox: 'sb-test', name: 'app', image: 'registry.example.com/team/app:1.2', imageRef: `registry.example.com/team/app@sha256:${'f'.repeat(64)}`, pod: { name: 'app-5c6d', namespace: 'prod', uid: '00000000-0000-0000-0000-000000000001', labels: { app: 'app' } } }]);
  t.teardown(() => cri.cleanup());
  const lookup = createContainerLookup(createCriClient(cri.target));
  t.teardown(() => lookup.close());

  const ctx = testSourceContext();
  const lost: number[] = [];
  ctx.counters = { lost: (n) => lost.push(n), restarted: () => {} };
  const source = createEbpfSource('', ctx);
  const controller = new AbortController();
  const events: ActivityEvent[] = [];
  const reading = (async () => {
    for await (const b of source.batches(controller.signal)) {
      await completeFromRuntime(b.events, lookup);
      events.push(...b.events);
    }
  })();
  t.teardown(() => controller.abort());

  // Startup: exec a marker until bpftrace reports it.
  const started = Date.now();
  const marker = `dw-ready-${process.pid}`;
  while (!events.some((e) => e.kind === 'exec' && e.process.args.includes(marker))) {
    if (Date.now() - started > 90_000) throw new Error(`bpftrace did not report an exec within 90 s; rejects: ${ctx.rejects.join(',')}`);
    spawnSync('/bin/true', [marker]);
    await new Promise((r) => setTimeout(r, 100));
  }
  t.log(`bpftrace startup (spawn to first event): ${Date.now() - started} ms`);

  // A process in the container's cgroup: sh moves itself in, then execs /bin/true with a distinctive argv.
  const tag = `dw-argv-${process.pid}`;
  spawnSync('/bin/sh', ['-c', 'echo $$ > "$1/cgroup.procs" && exec /bin/true "$2" "with space" \'q"uote\'', 'sh', leaf, tag]);
  // TCP on loopback from this (host) process.
  const server = createServer((s) => s.end());
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as { port: number }).port;
  t.teardown(() => server.close());
  const { connect } = await import('node:net');
  await new Promise<void>((resolve, reject) => connect(port, '127.0.0.1').on('connect', function (this: import('node:net').Socket) { this.end(); resolve(); }).on('error', reject));
  const udp = createSocket('udp4');
  await new Promise<void>((r) => udp.send('x', 9, '127.0.0.9', () => r()));
  udp.close();

  const deadline = Date.now() + 60_000;
  const find = () => ({
    exec: events.find((e) => e.kind === 'exec' && e.process.args[0] === tag),
    listen: events.find((e) => e.kind === 'listen' && e.network?.localPort === port),
    connect: events.find((e) => e.kind === 'connect' && e.network?.protocol === 'tcp' && e.network.remotePort === port),
    accept: events.find((e) => e.kind === 'accept' && e.network?.localPort === port),
    udp: events.find((e) => e.kind === 'connect' && e.network?.protocol === 'udp' && e.network.remoteAddress === '127.0.0.9'),
  });
  let found = find();
  while (Object.values(found).some((v) => v === undefined) && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 100));
    found = find();
  }
  controller.abort();
  await reading;

  t.like(found.exec, {
    kind: 'exec',
    container: { id, name: 'app', image: { repository: 'registry.example.com/team/app', tag: '1.2', digest: `sha256:${'f'.repeat(64)}` } },
    pod: { namespace: 'prod', name: 'app-5c6d', labels: { app: 'app' } },
    process: { exe: '/bin/true', name: 'true', args: [tag, 'with', 'space', 'q"uote'], parentName: 'node', parentExe: process.execPath, uid: 0 },
  });
  t.true(Math.abs((found.exec?.time ?? 0) - Date.now()) < 30_000, 'event time is wall-clock time');
  const self = { pid: process.pid, exe: process.execPath };
  t.like(found.listen, { container: null, process: self, network: { protocol: 'tcp', localAddress: '127.0.0.1', localPort: port } });
  t.like(found.connect, { container: null, process: self, network: { protocol: 'tcp', remoteAddress: '127.0.0.1', remotePort: port, localAddress: '127.0.0.1' } });
  t.like(found.accept, { container: null, process: self, network: { protocol: 'tcp', localAddress: '127.0.0.1', localPort: port, remoteAddress: '127.0.0.1' } });
  t.like(found.udp, { container: null, process: self, network: { protocol: 'udp', remoteAddress: '127.0.0.9', remotePort: 9 } });
  t.deepEqual(lost, [], 'no kernel drops at this rate');
  t.log(`events read: ${events.length}; rejected: ${ctx.rejects.length} (${[...new Set(ctx.rejects)].join(', ')})`);
});

test.serial('bpftrace that dies is restarted with backoff', async (t) => {
  const why = realKernelUnavailable();
  if (why !== null) {
    t.log(`SKIPPED: eBPF is not possible here: ${why}`);
    t.pass();
    return;
  }
  const ctx = testSourceContext();
  let restarts = 0;
  ctx.counters = { lost: () => {}, restarted: () => restarts++ };
  // /bin/false stands in for a bpftrace that exits at once.
  const source = createEbpfSource('/bin/false', ctx, { initialBackoffMs: 20, maxBackoffMs: 40 });
  const controller = new AbortController();
  const run = (async () => {
    for await (const _ of source.batches(controller.signal)) void _;
  })();
  const until = Date.now() + 60_000;
  while (source.stats.starts < 3 && Date.now() < until) await new Promise((r) => setTimeout(r, 20));
  controller.abort();
  await run;
  t.true(source.stats.starts >= 3);
  t.is(restarts, source.stats.starts - 1);
});
