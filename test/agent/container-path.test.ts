/**
 * The executable resolver (agent/attribution/container-path.ts): walks against real directory trees standing in
 * for a container's root (links relative and absolute, escapes, loops, chains, dangling links, mounts),
 * the resolver's choice of process and its cache against a directory shaped like /proc, and one walk
 * through the real /proc/<pid>/root of a live child process.
 */
import test from 'ava';
import { spawn } from 'node:child_process';
import { existsSync, readFileSync, realpathSync, rmSync, symlinkSync, unlinkSync } from 'node:fs';
import { join } from 'node:path';
import { readProcCgroup } from '../../agent/attribution/cgroup.js';
import { EXE_RESOLUTION_LIMITS, createExecutableResolver, parseMountInfo, resolveInRoot, type ExeOutcome } from '../../agent/attribution/container-path.js';
import type { ActivityEvent } from '../../core/event.js';
import { UNKNOWN_IMAGE } from '../../core/event.js';
import { addToTree, containerdCgroup, makeFakeProc, makeTree } from '../helpers/container-root.js';

const BUSYBOX = 'ELF busybox';

/** A small Alpine-like root: busybox and its applet links, one absolute and one relative. */
function alpineRoot() {
  return makeTree({
    'bin/busybox': BUSYBOX,
    'bin/sh': { link: '/bin/busybox' },
    'usr/bin/wget': { link: '/bin/busybox' },
    'usr/bin/nc': { link: '../../bin/busybox' },
    'usr/sbin/nginx': 'ELF nginx',
    'usr/local/bin/tool': { link: '../../sbin/nginx' },
    'opt/app': { link: '/usr' },
    'only-in-root/bin/real': 'ELF real',
    'usr/bin/inside': { link: '/only-in-root/bin/real' },
  });
}

test('relative and absolute links resolve inside the root, as the kernel resolves them for the container', (t) => {
  const root = alpineRoot();
  t.teardown(() => rmSync(root, { recursive: true, force: true }));
  t.like(resolveInRoot(root, '/usr/bin/wget', null), { outcome: 'resolved', path: '/bin/busybox' });
  t.like(resolveInRoot(root, '/usr/bin/nc', null), { outcome: 'resolved', path: '/bin/busybox' });
  t.like(resolveInRoot(root, '/usr/local/bin/tool', null), { outcome: 'resolved', path: '/usr/sbin/nginx' });
  // A link in the middle of the path (a directory link, absolute).
  t.like(resolveInRoot(root, '/opt/app/bin/wget', null), { outcome: 'resolved', path: '/bin/busybox' });
  // An absolute target that exists only in the container's root: resolved there, not on the host.
  t.like(resolveInRoot(root, '/usr/bin/inside', null), { outcome: 'resolved', path: '/only-in-root/bin/real' });
  t.like(resolveInRoot(root, '/usr/sbin/nginx', null), { outcome: 'unchanged', path: '/usr/sbin/nginx' });
  // No link, but not canonical: the kernel's path would be the canonical one.
  t.like(resolveInRoot(root, '/usr//sbin/./nginx', null), { outcome: 'resolved', path: '/usr/sbin/nginx' });
});

test('an absolute link never reaches the host: /etc/shadow exists here, not in the container', (t) => {
  t.true(existsSync('/etc/shadow') || existsSync('/etc/passwd'), 'the host has the file the link names');
  const hostFile = existsSync('/etc/shadow') ? '/etc/shadow' : '/etc/passwd';
  const root = makeTree({ 'usr/bin/x': { link: hostFile }, 'usr/bin/y': { link: '/etc' }, 'bin/busybox': BUSYBOX });
  t.teardown(() => rmSync(root, { recursive: true, force: true }));
  t.like(resolveInRoot(root, '/usr/bin/x', null), { outcome: 'not_found', path: '/usr/bin/x' });
  t.like(resolveInRoot(root, `/usr/bin/y/${hostFile.slice('/etc/'.length)}`, null), { outcome: 'not_found' });
  // With the container's own file there, that one is the answer.
  addToTree(root, { [hostFile.slice(1)]: 'container file' });
  t.like(resolveInRoot(root, '/usr/bin/x', null), { outcome: 'resolved', path: hostFile });
});

test('`..` stops at the root, in the path and in link targets', (t) => {
  const root = makeTree({
    'etc/passwd': 'root:x:0:0::/root:/bin/sh',
    'usr/bin/up': { link: '../../../../../../../../etc/passwd' },
    'usr/bin/updir': { link: '../../../../..' },
    'usr/bin/gone': { link: '../../../../../../tmp/dw-nowhere/evil' },
  });
  t.teardown(() => rmSync(root, { recursive: true, force: true }));
  t.like(resolveInRoot(root, '/usr/bin/up', null), { outcome: 'resolved', path: '/etc/passwd' });
  t.like(resolveInRoot(root, '/../../../../etc/passwd', null), { outcome: 'resolved', path: '/etc/passwd' });
  t.like(resolveInRoot(root, '/usr/bin/updir/etc/passwd', null), { outcome: 'resolved', path: '/etc/passwd' });
  t.like(resolveInRoot(root, '/usr/bin/gone', null), { outcome: 'not_found', path: '/usr/bin/gone' });
});

test('loops, chains over 40 links, over-long targets and dangling links keep the invoked path', (t) => {
  const entries: Record<string, { link: string } | string> = {
    'bin/a': { link: 'b' },
    'bin/b': { link: '/bin/a' },
    'bin/self': { link: 'self' },
    'bin/dangling': { link: '/usr/bin/nothing' },
    'bin/file': 'ELF',
    'bin/dir/.keep': '',
    'bin/long1': { link: `${'./'.repeat(1500)}long2` },
    'bin/long2': { link: `${'./'.repeat(1500)}file` },
  };
  // c0 → c1 → … → c40 → file: 41 links; d0 → … → d39 → file: 40 links, the kernel's limit.
  for (let i = 0; i <= 40; i++) entries[`chain/c${i}`] = { link: i === 40 ? '/bin/file' : `c${i + 1}` };
  for (let i = 0; i < 40; i++) entries[`chain/d${i}`] = { link: i === 39 ? '/bin/file' : `d${i + 1}` };
  const root = makeTree(entries);
  t.teardown(() => rmSync(root, { recursive: true, force: true }));
  t.like(resolveInRoot(root, '/bin/a', null), { outcome: 'refused', path: '/bin/a' });
  t.like(resolveInRoot(root, '/bin/self', null), { outcome: 'refused' });
  t.like(resolveInRoot(root, '/chain/c0', null), { outcome: 'refused', path: '/chain/c0' });
  t.like(resolveInRoot(root, '/chain/d0', null), { outcome: 'resolved', path: '/bin/file' });
  t.like(resolveInRoot(root, '/bin/long1', null), { outcome: 'resolved', path: '/bin/file' }, 'long targets, one after the other');
  t.like(resolveInRoot(root, `/bin/long1/${'z/'.repeat(600)}x`, null), { outcome: 'refused' }, 'more than 4,096 characters of path pending');
  t.like(resolveInRoot(root, '/bin/dangling', null), { outcome: 'not_found', path: '/bin/dangling' });
  t.like(resolveInRoot(root, '/bin/file/x', null), { outcome: 'not_found' }, 'a file in the middle of a path');
  t.like(resolveInRoot(root, '/bin/dir', null), { outcome: 'not_found' }, 'a directory is not what ran');
  t.like(resolveInRoot(root, '/bin/dir/..', null), { outcome: 'not_found' }, 'nor is one reached by a final `..`');
  t.like(resolveInRoot(root, '/bin/file/.', null), { outcome: 'not_found' });
  t.like(resolveInRoot(root, 'bin/file', null), { outcome: 'refused' }, 'a relative path');
  t.like(resolveInRoot(root, `/bin${'/dir/..'.repeat(300)}/file`, null), { outcome: 'refused' }, 'more than 256 lookups');
  t.like(resolveInRoot(root, `/bin${'/dir/..'.repeat(100)}/file`, null), { outcome: 'resolved', path: '/bin/file' });
  t.like(resolveInRoot(root, `/${'x'.repeat(EXE_RESOLUTION_LIMITS.pathLength)}`, null), { outcome: 'refused' });
  t.like(resolveInRoot(join(root, 'missing'), '/bin/file', null), { outcome: 'gone' }, 'the root itself is gone');
});

test('mounts: only local disk filesystems are entered (an NFS or FUSE mount could hang the agent)', (t) => {
  const root = alpineRoot();
  t.teardown(() => rmSync(root, { recursive: true, force: true }));
  const mounts = parseMountInfo(
    [
      '1 0 0:31 / / rw,relatime - overlay overlay rw,lowerdir=/l',
      '2 1 0:40 / /proc rw,nosuid - proc proc rw',
      '3 1 0:41 / /usr/local rw - fuse.sshfs sshfs rw',
      '4 1 0:42 / /mnt/with\\040space rw - nfs4 server:/x rw',
      '5 1 254:0 /data /opt rw - ext4 /dev/vda rw',
    ].join('\n'),
  );
  t.is(mounts.get('/mnt/with space'), 'nfs4', 'octal escapes are decoded');
  t.like(resolveInRoot(root, '/usr/bin/wget', mounts), { outcome: 'resolved', path: '/bin/busybox' });
  t.like(resolveInRoot(root, '/usr/local/bin/tool', mounts), { outcome: 'refused', path: '/usr/local/bin/tool' });
  t.like(resolveInRoot(root, '/proc/self/exe', mounts), { outcome: 'refused' });
  t.like(resolveInRoot(root, '/opt/app/bin/wget', mounts), { outcome: 'resolved', path: '/bin/busybox' }, 'an ext4 mount is entered');
  // The last mount on a point is the one on top.
  t.is(parseMountInfo('1 0 0:1 / / rw - ext4 a rw\n2 1 0:2 / / rw - fuse.x b rw\n').get('/'), 'fuse.x');
  t.like(resolveInRoot(root, '/usr/bin/wget', parseMountInfo('2 1 0:2 / / rw - fuse.fuse-overlayfs b rw\n')), { outcome: 'refused' }, 'a FUSE root');
  t.like(resolveInRoot(root, '/usr/bin/wget', new Map()), { outcome: 'refused' }, 'a root not in the table');
});

test('a walk through a link reports when what it passed last changed', (t) => {
  const before = Date.now();
  const root = alpineRoot();
  t.teardown(() => rmSync(root, { recursive: true, force: true }));
  const w = resolveInRoot(root, '/usr/bin/wget', null);
  t.true(w.changedAt >= before - 1_000 && w.changedAt <= Date.now() + 1, `${w.changedAt}`);
  t.is(resolveInRoot(root, '/usr/sbin/nginx', null).changedAt, -Infinity);
});

// ---------------------------------------------------------------------------------------------------
// The resolver: which process, which container, the cache, the counts.

const CID = '5e1f0c2a9b8d7e6f5a4b3c2d1e0f9a8b7c6d5e4f3a2b1c0d9e8f7a6b5c4d3e2f';
const OTHER = 'a'.repeat(64);

function exec(pid: number, exe: string, opts: { container?: string | null; parentExe?: string; time?: number } = {}): ActivityEvent {
  const id = opts.container === undefined ? CID.slice(0, 12) : opts.container;
  return {
    time: opts.time ?? Date.now(),
    node: 'node-1',
    source: 's',
    container: id === null ? null : { id, name: '', image: UNKNOWN_IMAGE },
    pod: null,
    kind: 'exec',
    process: { pid, exe, name: exe.slice(exe.lastIndexOf('/') + 1), args: [], parentExe: opts.parentExe ?? '', parentName: '', uid: 0, user: '' },
    network: null,
  };
}

function resolverOver(procRoot: string, now = () => Date.now()) {
  const counted: Partial<Record<ExeOutcome, number>> = {};
  const resolver = createExecutableResolver(
    { procRoot, isReplay: (s) => s.startsWith('replay:') },
    { now, count: (_source, outcome, n) => (counted[outcome] = (counted[outcome] ?? 0) + n) },
  );
  const run = (...events: ActivityEvent[]) => {
    resolver.resolve(events, 'tetragon-file:/x');
    return events.map((e) => e.process.exe);
  };
  return { resolver, counted, run };
}

test('a container process: its invoked path becomes the file in its own root; then through another live process once it exited', (t) => {
  const root = alpineRoot();
  const proc = makeFakeProc([{ pid: 4100, cgroup: containerdCgroup(CID), root }]);
  t.teardown(() => {
    rmSync(root, { recursive: true, force: true });
    proc.cleanup();
  });
  const { counted, run } = resolverOver(proc.procRoot);
  t.deepEqual(run(exec(4100, '/usr/bin/wget', { parentExe: '/bin/sh' })), ['/bin/busybox']);
  t.deepEqual(counted, { resolved: 2 });
  // 4100 exits; 4200 of the same container is alive. A new path: walked in 4200's root.
  proc.remove(4100);
  proc.add({ pid: 4200, cgroup: containerdCgroup(CID), root });
  const { counted: c2, run: run2 } = resolverOver(proc.procRoot);
  t.deepEqual(run2(exec(4200, '/usr/sbin/nginx')), ['/usr/sbin/nginx'], 'a live process seen once');
  t.deepEqual(run2(exec(4100, '/usr/bin/nc')), ['/bin/busybox'], 'its process gone, another of the container stands in');
  t.deepEqual(c2, { unchanged: 1, resolved: 1 });
});

test('a short-lived process whose container no event named yet: one of its processes is found in /proc; once the container is gone, its last walks stand', (t) => {
  const root = alpineRoot();
  // 4800 is the container's init: no event names it. The exec'd process 4801 exited before the agent looked.
  const proc = makeFakeProc([{ pid: 4800, cgroup: containerdCgroup(CID), root }, { pid: 4900, cgroup: containerdCgroup(OTHER), root: '/' }]);
  t.teardown(() => {
    rmSync(root, { recursive: true, force: true });
    proc.cleanup();
  });
  let now = Date.now();
  const { counted, run } = resolverOver(proc.procRoot, () => now);
  t.deepEqual(run(exec(4801, '/usr/bin/wget', { container: CID })), ['/bin/busybox'], 'all 64 characters of the id');
  t.deepEqual(run(exec(4802, '/usr/bin/nc', { container: CID.slice(0, 12) })), ['/bin/busybox'], 'the first 12');
  // The container stops; later events (read late) keep what its files said while it lived.
  proc.remove(4800);
  now += EXE_RESOLUTION_LIMITS.ttlMs * 10;
  t.deepEqual(run(exec(4803, '/usr/bin/wget', { container: CID })), ['/bin/busybox']);
  t.deepEqual(run(exec(4803, '/usr/local/bin/tool', { container: CID })), ['/usr/local/bin/tool'], 'never walked: kept');
  t.deepEqual(counted, { resolved: 3, gone: 1 });
});

test('a pid that is not in the event\'s container (another container, a reused pid, another node\'s event) is never walked', (t) => {
  const root = alpineRoot();
  const evil = makeTree({ 'usr/bin/wget': { link: '/usr/sbin/trusted' }, 'usr/sbin/trusted': 'x' });
  const proc = makeFakeProc([{ pid: 4300, cgroup: containerdCgroup(OTHER), root: evil }, { pid: 4301, cgroup: '0::/system.slice/sshd.service\n', root: evil }]);
  t.teardown(() => {
    for (const d of [root, evil]) rmSync(d, { recursive: true, force: true });
    proc.cleanup();
  });
  const { counted, run } = resolverOver(proc.procRoot);
  t.deepEqual(run(exec(4300, '/usr/bin/wget')), ['/usr/bin/wget'], 'pid 4300 is another container\'s');
  t.deepEqual(run(exec(4301, '/usr/bin/wget')), ['/usr/bin/wget'], 'pid 4301 is a host process');
  t.deepEqual(run(exec(9999, '/usr/bin/wget')), ['/usr/bin/wget'], 'no such pid');
  t.deepEqual(run(exec(4300, '/usr/bin/wget', { container: 'not-a-container-id' })), ['/usr/bin/wget']);
  t.deepEqual(counted, { gone: 4 });
});

test('an agent in a pod of its own (no hostPID: no kthreadd in its /proc) resolves nothing: the pids events name are the host\'s', (t) => {
  const root = alpineRoot();
  const proc = makeFakeProc([{ pid: 5000, cgroup: '0::/\n', root }, { pid: 5001, cgroup: containerdCgroup(CID), root }]);
  t.teardown(() => {
    rmSync(root, { recursive: true, force: true });
    proc.cleanup();
  });
  proc.remove(2);
  // 5000 looks like a host process (the agent's own, in a private cgroup namespace); 5001 is the container's.
  const { counted, run } = resolverOver(proc.procRoot);
  t.deepEqual(run(exec(5000, '/usr/bin/wget', { container: null, parentExe: '/bin/sh' }), exec(5001, '/usr/bin/wget')), ['/usr/bin/wget', '/usr/bin/wget']);
  t.deepEqual(counted, { gone: 3 });
});

test('host processes resolve in the host\'s root; a replay is counted and left as recorded', (t) => {
  const root = alpineRoot();
  const proc = makeFakeProc([{ pid: 4400, cgroup: '0::/system.slice/cron.service\n', root }]);
  t.teardown(() => {
    rmSync(root, { recursive: true, force: true });
    proc.cleanup();
  });
  const { resolver, counted, run } = resolverOver(proc.procRoot);
  t.deepEqual(run(exec(4400, '/usr/bin/wget', { container: null })), ['/bin/busybox']);
  const replayed = exec(4400, '/usr/bin/wget', { container: null, parentExe: '/bin/sh' });
  resolver.resolve([replayed], 'replay:/recorded.jsonl');
  t.is(replayed.process.exe, '/usr/bin/wget');
  t.deepEqual(counted, { resolved: 1, replay: 2 });
});

test('an event older than a link or directory on its path keeps its invoked path (the path may have changed after the exec)', (t) => {
  const root = alpineRoot();
  const proc = makeFakeProc([{ pid: 4500, cgroup: containerdCgroup(CID), root }]);
  t.teardown(() => {
    rmSync(root, { recursive: true, force: true });
    proc.cleanup();
  });
  const { counted, run } = resolverOver(proc.procRoot);
  // The tree was made just now: an exec a minute ago cannot have run through these links.
  t.deepEqual(run(exec(4500, '/usr/bin/wget', { time: Date.now() - 60_000 })), ['/usr/bin/wget']);
  t.deepEqual(run(exec(4500, '/usr/bin/wget')), ['/bin/busybox'], 'a later event, same cached walk');
  t.deepEqual(run(exec(4500, '/usr/sbin/nginx', { time: Date.now() - 60_000 })), ['/usr/sbin/nginx']);
  t.deepEqual(counted, { changed: 1, resolved: 1, unchanged: 1 });
});

test('the kernel\'s path of a deleted executable is kept, even when a link by that name exists', (t) => {
  const root = alpineRoot();
  addToTree(root, { 'tmp/x (deleted)': { link: '/usr/sbin/nginx' } });
  const proc = makeFakeProc([{ pid: 4600, cgroup: containerdCgroup(CID), root }]);
  t.teardown(() => {
    rmSync(root, { recursive: true, force: true });
    proc.cleanup();
  });
  const { counted, run } = resolverOver(proc.procRoot);
  t.deepEqual(run(exec(4600, '/tmp/x (deleted)')), ['/tmp/x (deleted)']);
  t.deepEqual(counted, { unchanged: 1 });
});

test('the cache: a hit reads nothing from /proc; after its lifetime the path is walked again', (t) => {
  const root = alpineRoot();
  const proc = makeFakeProc([{ pid: 4700, cgroup: containerdCgroup(CID), root }]);
  t.teardown(() => {
    rmSync(root, { recursive: true, force: true });
    proc.cleanup();
  });
  let now = Date.now();
  const { counted, run } = resolverOver(proc.procRoot, () => now);
  t.deepEqual(run(exec(4700, '/usr/bin/wget')), ['/bin/busybox']);
  // The process exits: within the cache's lifetime the answer stands without /proc.
  proc.remove(4700);
  t.deepEqual(run(exec(4700, '/usr/bin/wget')), ['/bin/busybox']);
  // The link is retargeted and the process is back; after the lifetime the new target is found.
  unlinkSync(join(root, 'usr/bin/wget'));
  symlinkSync('/usr/sbin/nginx', join(root, 'usr/bin/wget'));
  proc.add({ pid: 4700, cgroup: containerdCgroup(CID), root });
  now += EXE_RESOLUTION_LIMITS.ttlMs;
  t.deepEqual(run(exec(4700, '/usr/bin/wget', { time: Date.now() + 5 })), ['/usr/sbin/nginx']);
  t.deepEqual(counted, { resolved: 3 });
});

test('a real process: resolved through the kernel\'s /proc/<pid>/root of a live child', async (t) => {
  const dir = makeTree({ 'real-tool': 'ELF', 'bin/tool': { link: '../real-tool' } });
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const child = spawn('sleep', ['60'], { stdio: 'ignore' });
  t.teardown(() => {
    child.kill('SIGKILL');
  });
  await new Promise<void>((resolve, reject) => child.once('spawn', resolve).once('error', reject));
  const pid = child.pid as number;
  // Whatever this machine runs the tests in: the child's own container, or the host.
  const owner = readProcCgroup(pid);
  t.truthy(owner);
  const container = owner?.kind === 'container' ? owner.id : null;
  const { counted, run } = resolverOver('/proc');
  const invoked = join(dir, 'bin/tool');
  let kthreadd = '';
  try {
    kthreadd = readFileSync('/proc/2/comm', 'utf8');
  } catch {
    // no pid 2 here
  }
  if (kthreadd !== 'kthreadd\n') {
    // Tests running in a pid namespace of their own: like an agent without hostPID, nothing is resolved.
    t.log('not the host\'s pid namespace: the resolver leaves paths as given');
    t.deepEqual(run(exec(pid, invoked, { container })), [invoked]);
    t.deepEqual(counted, { gone: 1 });
    return;
  }
  t.deepEqual(run(exec(pid, invoked, { container })), [join(realpathSync(dir), 'real-tool')]);
  t.deepEqual(counted, { resolved: 1 });
});
